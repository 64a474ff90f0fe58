// Shared helpers of platformatic.test.mjs: clients with bounded timeouts, unique names, and
// bounded waits over @platformatic/kafka's message streams. A broken broker must fail a test,
// never hang the suite.
import { randomBytes } from 'node:crypto'
import { Admin, Consumer, Producer, stringDeserializers, stringSerializers } from '@platformatic/kafka'

export { assertKeysStayAndOffsetsDense, byValue, sorted, waitUntil } from './compat_util.mjs'

export const BOOTSTRAP = process.env.RUNNEL_BOOTSTRAP || '127.0.0.1:9092'
export const OPERATION_TIMEOUT_MS = 10000
export const CONSUME_TIMEOUT_MS = 20000
// After the expected messages have arrived, how long to keep listening for extra ones
// (duplicates, or messages that should not have been delivered).
export const SETTLE_MS = 500
const RETRIES_MAX = 3
const RETRY_DELAY_MS = 200
const FETCH_WAIT_MS = 300
const HEARTBEAT_INTERVAL_MS = 500
const SESSION_TIMEOUT_MS = 10000
const REBALANCE_TIMEOUT_MS = 10000

const common = () => ({
  bootstrapBrokers: [BOOTSTRAP],
  timeout: OPERATION_TIMEOUT_MS,
  retries: RETRIES_MAX,
  retryDelay: RETRY_DELAY_MS,
})

/** A name no other test (or run against the same broker) uses. */
export function uniq (what) {
  return `plat-${what}-${randomBytes(4).toString('hex')}`
}

export function newAdmin () {
  return new Admin({ clientId: 'runnel-compat-plat-admin', ...common() })
}

export function newProducer (options = {}) {
  return new Producer({ clientId: 'runnel-compat-plat-producer', serializers: stringSerializers, ...common(), ...options })
}

export function newConsumer (groupId, options = {}) {
  return new Consumer({
    clientId: 'runnel-compat-plat-consumer',
    groupId,
    deserializers: stringDeserializers,
    maxWaitTime: FETCH_WAIT_MS,
    heartbeatInterval: HEARTBEAT_INTERVAL_MS,
    sessionTimeout: SESSION_TIMEOUT_MS,
    rebalanceTimeout: REBALANCE_TIMEOUT_MS,
    ...common(),
    ...options,
  })
}

/** Closes any client; producers and consumers also close their open streams (`force`). */
export function closeClient (client) {
  return (client instanceof Admin ? client.close() : client.close(true)).catch(() => {})
}

/** Runs `fn(client)` and closes the client whatever happens. */
export async function using (client, fn) {
  try {
    return await fn(client)
  } finally {
    await closeClient(client)
  }
}

export async function createTopic (name, partitions = 1, configs = []) {
  return using(newAdmin(), admin => admin.createTopics({ topics: [name], partitions, replicas: 1, configs }))
}

/** `count` string messages `${prefix}-${i}` with key `k${i % keys}`, to `topic`. */
export function messages (topic, prefix, count, extra = () => ({})) {
  return Array.from({ length: count }, (_, i) => ({ topic, key: `k${i % 5}`, value: `${prefix}-${i}`, ...extra(i) }))
}

/**
 * Collects messages from `stream` until `count` have arrived, then keeps listening SETTLE_MS
 * more so that extra deliveries are seen too; `onMessage` runs on each. Rejects on a stream
 * error or when `count` have not arrived in `timeoutMs`.
 */
export function collect (stream, count, { timeoutMs = CONSUME_TIMEOUT_MS, onMessage = () => {} } = {}) {
  return new Promise((resolve, reject) => {
    const got = []
    let settle = null
    const done = (error) => {
      clearTimeout(timer)
      clearTimeout(settle)
      stream.off('data', onData)
      stream.off('error', onError)
      if (error) reject(error)
      else resolve(got)
    }
    const timer = setTimeout(() => done(new Error(`${got.length} of ${count} messages in ${timeoutMs} ms`)), timeoutMs)
    const onData = message => {
      got.push(message)
      onMessage(message)
      if (got.length === count) settle = setTimeout(() => done(null), SETTLE_MS)
    }
    const onError = error => done(error)
    stream.on('data', onData)
    stream.on('error', onError)
  })
}

/** The partitions of `topic` a consumer holds now, sorted. */
export function assignedPartitions (consumer, topic) {
  const assignment = (consumer.assignments || []).find(a => a.topic === topic)
  return assignment ? [...assignment.partitions].sort((a, b) => a - b) : []
}

/** Waits until the stream has looked up its start offsets (it emits 'offsets' each time). */
export function offsetsReady (stream, timeoutMs = OPERATION_TIMEOUT_MS) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no start offsets in ${timeoutMs} ms`)), timeoutMs)
    stream.once('offsets', () => { clearTimeout(timer); resolve() })
  })
}

/** Rejects unless `promise` fails with the Kafka error `apiId` (e.g. 'MESSAGE_TOO_LARGE'). */
export async function rejectsWithKafkaError (promise, apiId) {
  try {
    await promise
  } catch (error) {
    if (typeof error.findBy === 'function' && error.findBy('apiId', apiId)) return error
    throw new Error(`expected Kafka error ${apiId}, got ${error.code}: ${error.message} ${JSON.stringify(error.errors?.map(e => e.apiId ?? e.message))}`)
  }
  throw new Error(`expected Kafka error ${apiId}, the call succeeded`)
}
