// KafkaJS against a live Runnel broker, with node's built-in test runner.
//
// Run by tests/compat/run_compat.py with RUNNEL_BOOTSTRAP pointing at a fresh broker. The
// top-level tests run in file order and share one topic: create, produce with every codec,
// read back, offsets by timestamp, end offsets, delete. A step whose input is missing skips.
//
// KafkaJS has no manual partition assignment: its consumer always joins a group. The
// field-by-field read-back goes through KafkaJS's own cluster/broker layer (the same Fetch
// encoder, record-batch decoder and codecs its consumer uses); the group consumer test reads
// everything through a real consumer group. Multi-member group behaviour (rebalances on leave
// and on a killed member, restart) is in tests/compat/groups/.
'use strict'

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { randomBytes } = require('node:crypto')

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'
const { Kafka, logLevel, CompressionTypes, CompressionCodecs, Partitioners } = require('kafkajs')
const SnappyCodec = require('kafkajs-snappy')
const lz4js = require('lz4js')
const { ZstdCodec } = require('zstd-codec')

const BOOTSTRAP = process.env.RUNNEL_BOOTSTRAP || '127.0.0.1:9092'
const CODECS = ['none', 'gzip', 'snappy', 'lz4', 'zstd']
const COMPRESSION = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
  zstd: CompressionTypes.ZSTD,
}
const MESSAGES_PER_CODEC = 50
const PARTITIONS = 3
const KEYS_PER_CODEC = 7
const TIMESTAMP_STEP_MS = 1000
const CODEC_TIMESTAMP_SPAN_MS = 100000
// Bounds on every wait: a broken broker must fail the suite, not hang it.
const OPERATION_TIMEOUT_MS = 15000
const CONSUME_TIMEOUT_MS = 30000
const FETCH_MAX_BYTES = 1024 * 1024
const IDEMPOTENT_MESSAGES = 20

// --- codecs: KafkaJS ships gzip; the others are plug-ins. The official lz4/zstd plug-ins
// need native builds, so these two adapters use pure-JS/wasm packages instead.
const Lz4Codec = () => ({
  async compress (encoder) { return Buffer.from(lz4js.compress(encoder.buffer)) },
  async decompress (buffer) { return Buffer.from(lz4js.decompress(buffer)) },
})
const zstdReady = new Promise(resolve => ZstdCodec.run(zstd => resolve(new zstd.Streaming())))
const ZstdCodecAdapter = () => ({
  async compress (encoder) { return Buffer.from((await zstdReady).compress(encoder.buffer, 3)) },
  async decompress (buffer) { return Buffer.from((await zstdReady).decompress(buffer)) },
})
CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec
CompressionCodecs[CompressionTypes.LZ4] = Lz4Codec
CompressionCodecs[CompressionTypes.ZSTD] = ZstdCodecAdapter

const kafka = new Kafka({
  clientId: 'runnel-compat-kafkajs',
  brokers: [BOOTSTRAP],
  logLevel: logLevel.ERROR,
  connectionTimeout: 5000,
  requestTimeout: 10000,
  retry: { retries: 3, initialRetryTime: 200, maxRetryTime: 2000 },
})

const state = {
  topic: `compat-kafkajs-${randomBytes(5).toString('hex')}`,
  baseTsMs: (Math.floor(Date.now() / 1000) - 3600) * 1000,
  created: false,
  sent: {}, // codec -> [message]
  consumed: null,
}

// --- the messages (the same shape as tests/compat/python/compat_common.py)
function makeMessages (codec) {
  const codecNo = CODECS.indexOf(codec)
  const out = []
  for (let i = 0; i < MESSAGES_PER_CODEC; i++) {
    const filler = 'abcdefgh'.repeat((i * 13) % 40)
    const headers = i % 10 === 0
      ? []
      : [['codec', Buffer.from(codec)], ['idx', Buffer.from(String(i))], ['bin', Buffer.from([0, 255, i])],
          ['dup', Buffer.from('first')], ['dup', Buffer.from('second')], ['empty', Buffer.alloc(0)]]
    out.push({
      codec,
      index: i,
      key: Buffer.from(`${codec}-key-${i % KEYS_PER_CODEC}`),
      value: i === 24 ? null : Buffer.from(`${codec} value ${i} ${filler}`),
      headers,
      timestampMs: state.baseTsMs + codecNo * CODEC_TIMESTAMP_SPAN_MS + i * TIMESTAMP_STEP_MS,
      partition: null,
      offset: null,
    })
  }
  return out
}

// KafkaJS headers are an object; a repeated key carries an array of values.
function toKafkaJsHeaders (pairs) {
  const obj = {}
  for (const [k, v] of pairs) {
    if (k in obj) obj[k] = [].concat(obj[k], v)
    else obj[k] = v
  }
  return obj
}

function fromKafkaJsHeaders (obj) {
  const pairs = []
  for (const [k, v] of Object.entries(obj || {})) {
    for (const one of [].concat(v)) pairs.push([k, one == null ? Buffer.alloc(0) : Buffer.from(one)])
  }
  return pairs
}

function identOf (key, value) {
  const codec = key.toString().split('-key-')[0]
  if (value === null) return `${codec}#24`
  return `${codec}#${value.toString().split(' ')[2]}`
}

function allSent () {
  return CODECS.flatMap(c => state.sent[c] || [])
}

function endOffsets (sent) {
  const ends = {}
  for (let p = 0; p < PARTITIONS; p++) ends[p] = sent.filter(m => m.partition === p).length
  return ends
}

function expectedOffsetForTime (sent, partition, targetMs) {
  const hits = sent.filter(m => m.partition === partition && m.timestampMs >= targetMs)
  if (hits.length === 0) return null
  return Math.min(...hits.map(m => m.offset))
}

function timestampTargets (sent) {
  const middle = sent.find(m => m.codec === 'gzip' && m.index === 25)
  const last = Math.max(...sent.map(m => m.timestampMs))
  return {
    'before-all': state.baseTsMs - 1,
    'exact-mid-batch': middle.timestampMs,
    between: middle.timestampMs + 1,
    'after-all': last + 1,
  }
}

async function withAdmin (fn) {
  const admin = kafka.admin()
  await admin.connect()
  try {
    return await fn(admin)
  } finally {
    await admin.disconnect()
  }
}

function requireCreated (t) {
  if (!state.created) { t.skip('topic creation failed (see "create topic")'); return false }
  return true
}

function requireAllSent (t) {
  if (!requireCreated(t)) return false
  const missing = CODECS.filter(c => !state.sent[c])
  if (missing.length) { t.skip(`produce failed for ${missing}`); return false }
  return true
}

async function waitUntil (predicate, timeoutMs = OPERATION_TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const result = await predicate()
    if (result || Date.now() >= deadline) return result
    await new Promise(resolve => setTimeout(resolve, 200))
  }
}

test('create topic with 3 partitions', async () => {
  await withAdmin(async admin => {
    const created = await admin.createTopics({
      topics: [{ topic: state.topic, numPartitions: PARTITIONS, replicationFactor: 1 }],
      waitForLeaders: true,
      timeout: OPERATION_TIMEOUT_MS,
    })
    assert.equal(created, true, 'createTopics reported the topic as already there')
    const { topics } = await admin.fetchTopicMetadata({ topics: [state.topic] })
    assert.equal(topics.length, 1)
    assert.deepEqual(topics[0].partitions.map(p => p.partitionId).sort(), [0, 1, 2])
    for (const p of topics[0].partitions) assert.ok(p.leader >= 0, `partition ${p.partitionId} has no leader`)
    assert.ok((await admin.listTopics()).includes(state.topic))
  })
  state.created = true
})

test('creating an existing topic reports it exists', async t => {
  if (!requireCreated(t)) return
  await withAdmin(async admin => {
    // KafkaJS answers false (instead of throwing) for TOPIC_ALREADY_EXISTS.
    const created = await admin.createTopics({
      topics: [{ topic: state.topic, numPartitions: PARTITIONS, replicationFactor: 1 }],
      timeout: OPERATION_TIMEOUT_MS,
    })
    assert.equal(created, false)
  })
})

test('ACLs: DescribeAcls answers SECURITY_DISABLED, as Kafka without an authorizer', async () => {
  const { AclResourceTypes, AclOperationTypes, AclPermissionTypes, ResourcePatternTypes } =
    require('kafkajs')
  await withAdmin(async admin => {
    await assert.rejects(
      admin.describeAcls({
        resourceType: AclResourceTypes.ANY,
        resourcePatternType: ResourcePatternTypes.ANY,
        operation: AclOperationTypes.ANY,
        permissionType: AclPermissionTypes.ANY,
      }),
      error => error.type === 'SECURITY_DISABLED' || (error.cause && error.cause.type === 'SECURITY_DISABLED')
    )
  })
})

for (const codec of CODECS) {
  test(`produce 50 keyed messages with headers and timestamps, compression ${codec}`, async t => {
    if (!requireCreated(t)) return
    const producer = kafka.producer({ allowAutoTopicCreation: false })
    await producer.connect()
    const messages = makeMessages(codec)
    try {
      const reply = await producer.send({
        topic: state.topic,
        compression: COMPRESSION[codec],
        acks: -1,
        timeout: OPERATION_TIMEOUT_MS,
        messages: messages.map(m => ({
          key: m.key,
          value: m.value,
          headers: toKafkaJsHeaders(m.headers),
          timestamp: String(m.timestampMs),
        })),
      })
      assignOffsets(messages, reply)
    } finally {
      await producer.disconnect()
    }
    state.sent[codec] = messages
  })
}

// KafkaJS sends one batch per partition, in message order, and reports each batch's base
// offset: a message's offset is the base plus its rank among the batch's messages.
function assignOffsets (messages, reply) {
  const partitioner = Partitioners.DefaultPartitioner()
  const partitionMetadata = [0, 1, 2].map(partitionId => ({ partitionId, leader: 0 }))
  const base = {}
  for (const r of reply) {
    assert.equal(r.errorCode, 0, `partition ${r.partition} error ${r.errorCode}`)
    base[r.partition] = Number(r.baseOffset)
  }
  const rank = {}
  for (const m of messages) {
    m.partition = partitioner({ topic: state.topic, partitionMetadata, message: { key: m.key } })
    assert.ok(m.partition in base, `no produce result for partition ${m.partition}`)
    rank[m.partition] = (rank[m.partition] || 0)
    m.offset = base[m.partition] + rank[m.partition]++
  }
}

test('acknowledged offsets are dense per partition', async t => {
  if (!requireAllSent(t)) return
  const sent = allSent()
  for (let p = 0; p < PARTITIONS; p++) {
    const offsets = sent.filter(m => m.partition === p).map(m => m.offset).sort((a, b) => a - b)
    assert.deepEqual(offsets, offsets.map((_, i) => i), `partition ${p}`)
  }
})

// Manual "assignment": fetch each partition from offset 0 through KafkaJS's broker layer.
async function fetchAll () {
  if (state.consumed) return state.consumed
  const cluster = createCluster()
  await cluster.connect()
  try {
    await cluster.addTargetTopic(state.topic)
    await cluster.refreshMetadata()
    const want = allSent().length
    const next = { 0: 0, 1: 0, 2: 0 }
    const got = []
    const deadline = Date.now() + CONSUME_TIMEOUT_MS
    while (got.length < want && Date.now() < deadline) {
      const leaders = cluster.findLeaderForPartitions(state.topic, [0, 1, 2])
      for (const [nodeId, partitions] of Object.entries(leaders)) {
        const broker = await cluster.findBroker({ nodeId })
        const response = await broker.fetch({
          maxWaitTime: 200,
          topics: [{
            topic: state.topic,
            partitions: partitions.map(partition => ({ partition, fetchOffset: String(next[partition]), maxBytes: FETCH_MAX_BYTES })),
          }],
        })
        collect(response, next, got)
      }
    }
    state.consumed = got
    return got
  } finally {
    await cluster.disconnect()
  }
}

function collect (response, next, got) {
  for (const { partitions } of response.responses) {
    for (const part of partitions) {
      assert.equal(part.errorCode, 0, `fetch partition ${part.partition} error ${part.errorCode}`)
      for (const msg of part.messages) {
        const offset = Number(msg.offset)
        if (offset < next[part.partition] || msg.isControlRecord) continue
        got.push({
          partition: part.partition,
          offset,
          key: msg.key,
          value: msg.value,
          headers: fromKafkaJsHeaders(msg.headers),
          timestampMs: Number(msg.timestamp),
        })
        next[part.partition] = offset + 1
      }
    }
  }
}

// KafkaJS keeps its cluster factory behind a symbol; the consumer builds its own the same way.
function createCluster () {
  const sym = Object.getOwnPropertySymbols(kafka).find(s => s.description === 'private:Kafka:createCluster')
  return kafka[sym]({ allowAutoTopicCreation: false })
}

function compare (sent, consumed) {
  const problems = []
  const byIdent = new Map()
  for (const c of consumed) {
    const ident = identOf(c.key, c.value)
    if (byIdent.has(ident)) problems.push(`${ident} consumed twice`)
    byIdent.set(ident, c)
  }
  for (const m of sent) {
    const ident = `${m.codec}#${m.index}`
    const c = byIdent.get(ident)
    byIdent.delete(ident)
    if (!c) { problems.push(`${ident} never consumed`); continue }
    const show = v => (v === null ? 'null' : JSON.stringify(v))
    const fields = [
      ['key', m.key, c.key], ['value', m.value, c.value], ['headers', m.headers, c.headers],
      ['timestamp', m.timestampMs, c.timestampMs], ['partition', m.partition, c.partition],
      ['offset', m.offset, c.offset],
    ]
    for (const [name, want, got] of fields) {
      if (show(want) !== show(got)) problems.push(`${ident} ${name}: sent ${show(want)}, consumed ${show(got)}`)
    }
  }
  for (const ident of byIdent.keys()) problems.push(`unexpected extra message ${ident}`)
  return problems
}

for (const codec of CODECS) {
  test(`read back every field, compression ${codec}`, async t => {
    if (!state.sent[codec]) { t.skip(`produce with ${codec} failed`); return }
    const consumed = (await fetchAll()).filter(c => identOf(c.key, c.value).startsWith(`${codec}#`))
    assert.deepEqual(compare(state.sent[codec], consumed), [])
  })
}

test('read back nothing extra', async t => {
  if (!requireAllSent(t)) return
  assert.equal((await fetchAll()).length, allSent().length)
})

test('fetchTopicOffsetsByTimestamp', async t => {
  if (!requireAllSent(t)) return
  const sent = allSent()
  const ends = endOffsets(sent)
  await withAdmin(async admin => {
    for (const [label, target] of Object.entries(timestampTargets(sent))) {
      const answer = await admin.fetchTopicOffsetsByTimestamp(state.topic, target)
      for (const { partition, offset } of answer) {
        // KafkaJS turns "no such message" into the partition's end offset.
        const want = expectedOffsetForTime(sent, partition, target) ?? ends[partition]
        assert.equal(Number(offset), want, `${label} (ts ${target}) partition ${partition}`)
      }
    }
  })
})

test('fetchTopicOffsets (low and high watermarks)', async t => {
  if (!requireAllSent(t)) return
  const ends = endOffsets(allSent())
  await withAdmin(async admin => {
    const offsets = await admin.fetchTopicOffsets(state.topic)
    const got = Object.fromEntries(offsets.map(o => [o.partition, [Number(o.low), Number(o.high)]]))
    assert.deepEqual(got, Object.fromEntries([0, 1, 2].map(p => [p, [0, ends[p]]])))
  })
})

test('consumer group reads everything from the beginning', async t => {
  if (!requireAllSent(t)) return
  const want = allSent().length
  const consumer = kafka.consumer({ groupId: `compat-kafkajs-${randomBytes(4).toString('hex')}` })
  await consumer.connect()
  try {
    await consumer.subscribe({ topics: [state.topic], fromBeginning: true })
    const seen = []
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`only ${seen.length} of ${want} messages`)), CONSUME_TIMEOUT_MS)
      consumer.run({
        autoCommit: false,
        eachMessage: async ({ partition, message }) => {
          seen.push({ partition, offset: Number(message.offset) })
          if (seen.length >= want) { clearTimeout(timer); resolve() }
        },
      }).catch(reject)
    })
    assert.equal(seen.length, want)
  } finally {
    await consumer.disconnect()
  }
})

// Runs after the offset checks: it appends to the topic.
test('idempotent producer (InitProducerId, sequences) stores each message once', async t => {
  if (!requireCreated(t)) return
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false })
  await producer.connect()
  const offsets = []
  try {
    // One key, so one partition: its acknowledged offsets must be dense.
    for (let i = 0; i < IDEMPOTENT_MESSAGES; i++) {
      const [meta] = await producer.send({ topic: state.topic, messages: [{ key: 'idempotent', value: String(i) }] })
      assert.equal(meta.errorCode, 0)
      offsets.push({ partition: meta.partition, offset: Number(meta.baseOffset) })
    }
  } finally {
    await producer.disconnect()
  }
  assert.equal(new Set(offsets.map(o => o.partition)).size, 1)
  const first = offsets[0].offset
  assert.deepEqual(offsets.map(o => o.offset), offsets.map((_, i) => first + i))
})

test('a transactional producer fails at once: Runnel has no transactions', async () => {
  // The transaction-coordinator lookup is refused (TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
  // KafkaJS reports it as a coordinator it cannot find, and must not retry until a timeout.
  const producer = kafka.producer({ transactionalId: 'runnel-compat-tx', idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  const started = Date.now()
  try {
    await assert.rejects(producer.transaction(), error => error.retriable === false)
  } finally {
    await producer.disconnect()
  }
  assert.ok(Date.now() - started < 10_000, 'the transaction waited for a timeout')
})

test('delete topic', async t => {
  if (!requireCreated(t)) return
  await withAdmin(async admin => {
    await admin.deleteTopics({ topics: [state.topic], timeout: OPERATION_TIMEOUT_MS })
    const gone = await waitUntil(async () => !(await admin.listTopics()).includes(state.topic))
    assert.ok(gone, `${state.topic} still listed after deleteTopics`)
  })
})
