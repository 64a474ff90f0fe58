// Shared helpers of kafkats.test.mjs: kafka-ts clients with bounded timeouts, unique names,
// bounded waits over its callback consumer, and low-level requests that give back the decoded
// response even when kafka-ts turns an error code in it into a thrown KafkaTSApiError.
// A broken broker must fail a test, never hang the suite.
import { randomBytes } from 'node:crypto'
import { createRequire } from 'node:module'
import { API, KafkaTSApiError, createKafkaClient, setLogger } from 'kafka-ts'

export { assertKeysStayAndOffsetsDense, byValue, sorted, waitUntil } from './compat_util.mjs'

// kafka-ts exports no raw connection; its dist/ is plain CommonJS, so the class is reachable.
const require = createRequire(import.meta.url)
const { Connection } = require('kafka-ts/dist/connection')

export const BOOTSTRAP = process.env.RUNNEL_BOOTSTRAP || '127.0.0.1:9092'
const [HOST, PORT] = [BOOTSTRAP.slice(0, BOOTSTRAP.lastIndexOf(':')), Number(BOOTSTRAP.slice(BOOTSTRAP.lastIndexOf(':') + 1))]
export const REQUEST_TIMEOUT_MS = 10000
const CONNECT_TIMEOUT_MS = 5000
export const CONSUME_TIMEOUT_MS = 20000
// After the expected messages have arrived, how long to keep listening for extra ones.
export const SETTLE_MS = 500
const FETCH_WAIT_MS = 300
export const SESSION_TIMEOUT_MS = 10000
const REBALANCE_TIMEOUT_MS = 10000

// kafka-ts logs JSON lines to stdout by default; keep only errors, on stderr.
const quiet = () => {}
setLogger({ debug: quiet, info: quiet, warn: quiet, error: (message, meta) => console.error('kafka-ts:', message, meta ?? '') })

export const client = createKafkaClient({
  clientId: 'runnel-compat-kafka-ts',
  bootstrapServers: [{ host: HOST, port: PORT }],
  requestTimeout: REQUEST_TIMEOUT_MS,
  connectTimeout: CONNECT_TIMEOUT_MS,
})

// The Kafka error codes the tests expect (org.apache.kafka.common.protocol.Errors).
export const ERROR = Object.freeze({
  NONE: 0,
  OFFSET_OUT_OF_RANGE: 1,
  UNKNOWN_TOPIC_OR_PARTITION: 3,
  TOPIC_ALREADY_EXISTS: 36,
  INVALID_PARTITIONS: 37,
  INVALID_REPLICATION_FACTOR: 38,
  INVALID_REPLICA_ASSIGNMENT: 39,
  INVALID_CONFIG: 40,
  INVALID_REQUEST: 42,
  SECURITY_DISABLED: 54,
  LOG_DIR_NOT_FOUND: 57,
  GROUP_ID_NOT_FOUND: 69,
  FETCH_SESSION_ID_NOT_FOUND: 70,
  FENCED_INSTANCE_ID: 82,
  ELECTION_NOT_NEEDED: 84,
  NO_REASSIGNMENT_IN_PROGRESS: 85,
  RESOURCE_NOT_FOUND: 91,
  UNKNOWN_TOPIC_ID: 100,
  TRANSACTIONAL_ID_NOT_FOUND: 105,
  MISMATCHED_ENDPOINT_TYPE: 114,
  UNSUPPORTED_ENDPOINT_TYPE: 115,
})

/** A name no other test (or run against the same broker) uses. */
export function uniq (what) {
  return `kts-${what}-${randomBytes(4).toString('hex')}`
}

/** Runs `fn(cluster)` on a connected low-level cluster and disconnects whatever happens. */
export async function withCluster (fn) {
  const cluster = client.createCluster()
  await cluster.connect()
  try {
    return await fn(cluster)
  } finally {
    await cluster.disconnect().catch(() => {})
  }
}

/**
 * Sends `body` as `api` at the version kafka-ts negotiates and returns the decoded response.
 * kafka-ts throws a KafkaTSApiError for a non-zero error code in most responses; the error
 * carries the whole decoded response, which is what the tests check.
 */
export async function request (cluster, api, body) {
  try {
    return await cluster.sendRequest(api, body)
  } catch (error) {
    if (error instanceof KafkaTSApiError) return error.response
    throw error
  }
}

/** The version kafka-ts sends `api` at against a broker advertising `range` (its fallbacks). */
export function negotiatedVersion (api, range) {
  for (let candidate = api; candidate; candidate = candidate.fallback) {
    if (candidate.apiVersion >= range.minVersion && candidate.apiVersion <= range.maxVersion) return candidate.apiVersion
  }
  return null
}

/** A bare connection that skips kafka-ts's version check (no ApiVersions exchange). */
export async function rawConnection () {
  const connection = new Connection({
    clientId: 'runnel-compat-kafka-ts-raw',
    connection: { host: HOST, port: PORT },
    ssl: null,
    requestTimeout: REQUEST_TIMEOUT_MS,
    connectTimeout: CONNECT_TIMEOUT_MS,
  })
  await connection.connect()
  return connection
}

export async function createTopic (name, partitions = 1, configs = []) {
  return withCluster(async cluster => {
    const response = await cluster.sendRequest(API.CREATE_TOPICS, {
      topics: [{ name, numPartitions: partitions, replicationFactor: 1, assignments: [], configs }],
      timeoutMs: REQUEST_TIMEOUT_MS,
      validateOnly: false,
    })
    return response.topics[0]
  })
}

/** Sends `msgs` with a new producer, closed afterwards. */
export async function produce (msgs, options = {}) {
  const producer = client.createProducer(options)
  try {
    await producer.send(msgs)
  } finally {
    await producer.close().catch(() => {})
  }
}

/** `count` messages `${prefix}-${i}` with key `k${i % 5}`, to `topic`. */
export function messages (topic, prefix, count, extra = () => ({})) {
  return Array.from({ length: count }, (_, i) => ({ topic, key: `k${i % 5}`, value: `${prefix}-${i}`, ...extra(i) }))
}

/**
 * Starts a consumer on `topics` that collects every message into `got` (and hands each batch
 * to `onBatch`). Returns `{ consumer, got, waitFor(count) }`; `waitFor` resolves once `count`
 * messages have arrived plus SETTLE_MS, or rejects after CONSUME_TIMEOUT_MS.
 */
export async function startCollecting (topics, options = {}, onBatch = () => {}) {
  const got = []
  const waiters = []
  const consumer = await client.startConsumer({
    topics,
    maxWaitMs: FETCH_WAIT_MS,
    sessionTimeoutMs: SESSION_TIMEOUT_MS,
    rebalanceTimeoutMs: REBALANCE_TIMEOUT_MS,
    ...options,
    onBatch: batch => {
      got.push(...batch)
      onBatch(batch)
      for (const w of waiters) w()
    },
  })
  const waitFor = count => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${got.length} of ${count} messages in ${CONSUME_TIMEOUT_MS} ms`)), CONSUME_TIMEOUT_MS)
    const check = () => {
      if (got.length < count) return
      clearTimeout(timer)
      waiters.splice(waiters.indexOf(check), 1)
      setTimeout(() => resolve(got), SETTLE_MS)
    }
    waiters.push(check)
    check()
  })
  return { consumer, got, waitFor }
}

/** The first `count` messages of `topic`, read from its start without a group. */
export async function readFromStart (topic, count) {
  const { consumer, waitFor } = await startCollecting([topic], { fromBeginning: true })
  try {
    return await waitFor(count)
  } finally {
    await consumer.close().catch(() => {})
  }
}

/** The partitions of `topic` a consumer holds now, sorted (kafka-ts keeps them internally). */
export function assignedPartitions (consumer, topic) {
  const assignment = consumer.metadata?.getAssignment?.() ?? {}
  return [...(assignment[topic] ?? [])].sort((a, b) => a - b)
}
