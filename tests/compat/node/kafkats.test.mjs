// kafka-ts (1.5.0) against a live Runnel broker, with node's built-in test runner.
//
// Run by tests/compat/run_compat.py with RUNNEL_BOOTSTRAP pointing at a fresh broker (started
// with its defaults). kafka-ts is a from-scratch TypeScript client that sends every request at
// the newest version both sides support. This file holds the high-level producer and consumer
// tests; kafkats_api.mjs (imported at the end) sends every API Runnel advertises through the
// low-level `cluster.sendRequest`. Every test uses its own topic and group.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import zlib from 'node:zlib'
import { createRequire } from 'node:module'
import {
  ERROR, SESSION_TIMEOUT_MS, assertKeysStayAndOffsetsDense, assignedPartitions, byValue, createTopic, messages, produce, readFromStart, sorted,
  startCollecting, uniq, waitUntil, BOOTSTRAP,
} from './kafkats_helpers.mjs'

const MANY_MESSAGES = 300
const GROUP_PARTITIONS = 4

// --- producer ------------------------------------------------------------------------------
describe('producer', { concurrency: true }, () => {
  test('send one message with key and headers, consume it back', async () => {
    const topic = uniq('single')
    await createTopic(topic)
    const before = BigInt(Date.now())
    await produce([{ topic, key: 'the-key', value: 'the-value', headers: { h1: 'v1', h2: '' } }])
    const [got] = await readFromStart(topic, 1)
    assert.equal(got.key, 'the-key')
    assert.equal(got.value, 'the-value')
    assert.equal(got.topic, topic)
    assert.equal(got.partition, 0)
    assert.equal(got.offset, 0n)
    assert.deepEqual(got.headers, { h1: 'v1', h2: '' })
    assert.ok(got.timestamp >= before - 1000n && got.timestamp <= BigInt(Date.now()) + 1000n, `timestamp ${got.timestamp}`)
  })

  test('send many messages over 3 partitions: keys keep their partition, offsets dense', async () => {
    const topic = uniq('many')
    await createTopic(topic, 3)
    const msgs = messages(topic, 'many', MANY_MESSAGES)
    await produce(msgs)
    const got = await readFromStart(topic, MANY_MESSAGES)
    assert.deepEqual(byValue(got), byValue(msgs))
    assertKeysStayAndOffsetsDense(got, 3)
  })

  test('send to explicit partitions, null key and null value', async () => {
    const topic = uniq('explicit')
    await createTopic(topic, 3)
    const msgs = messages(topic, 'exp', 30, i => ({ partition: i % 3 }))
    await produce([...msgs, { topic, partition: 2, key: null, value: null }])
    const got = await readFromStart(topic, 31)
    for (const m of got) {
      if (m.value === null) {
        assert.deepEqual([m.partition, m.offset, m.key], [2, 10n, null])
        continue
      }
      assert.equal(m.partition, Number(m.value.split('-')[1]) % 3, `${m.value}`)
    }
  })

  test('sends from one producer are idempotent: sequences continue across calls', async () => {
    const topic = uniq('idem')
    await createTopic(topic, 2)
    await produce(Array.from({ length: 5 }, (_, batch) => messages(topic, `idem${batch}`, 10, i => ({ partition: i % 2 }))).flat())
    const got = await readFromStart(topic, 50)
    assert.equal(new Set(got.map(m => m.value)).size, 50)
  })

  // kafka-ts's producer never compresses (every batch it writes has attributes 0); its fetch
  // path decompresses gzip, snappy, lz4 and zstd. So the batches are written by KafkaJS with
  // each codec and read back by kafka-ts.
  for (const codec of ['gzip', 'snappy', 'lz4', 'zstd']) {
    const skip = codec === 'zstd' && typeof zlib.zstdDecompress !== 'function'
      ? `kafka-ts decompresses zstd with node:zlib zstdDecompress, absent in Node ${process.version}`
      : false
    test(`compression ${codec}: a compressed batch is consumed back`, { skip }, async () => {
      const topic = uniq(`codec-${codec}`)
      await createTopic(topic)
      const values = Array.from({ length: 40 }, (_, i) => `${codec} ${'x'.repeat(200)} ${i}`)
      await kafkajsProduce(topic, values, codec)
      const got = await readFromStart(topic, values.length)
      assert.deepEqual(got.map(m => m.value), values)
      assert.deepEqual(got.map(m => m.offset), values.map((_, i) => BigInt(i)))
      assert.deepEqual(got.map(m => m.headers.i), values.map((_, i) => String(i)))
    })
  }
})

/** Writes `values` to partition 0 of `topic` in one KafkaJS batch compressed with `codec`. */
async function kafkajsProduce (topic, values, codec) {
  const require = createRequire(import.meta.url)
  const { Kafka, logLevel, CompressionTypes, CompressionCodecs } = require('kafkajs')
  CompressionCodecs[CompressionTypes.Snappy] = require('kafkajs-snappy')
  const lz4js = require('lz4js')
  CompressionCodecs[CompressionTypes.LZ4] = () => ({
    async compress (encoder) { return Buffer.from(lz4js.compress(encoder.buffer)) },
    async decompress (buffer) { return Buffer.from(lz4js.decompress(buffer)) },
  })
  const { ZstdCodec } = require('zstd-codec')
  const zstd = await new Promise(resolve => ZstdCodec.run(z => resolve(new z.Streaming())))
  CompressionCodecs[CompressionTypes.ZSTD] = () => ({
    async compress (encoder) { return Buffer.from(zstd.compress(encoder.buffer, 3)) },
    async decompress (buffer) { return Buffer.from(zstd.decompress(buffer)) },
  })
  const types = { gzip: CompressionTypes.GZIP, snappy: CompressionTypes.Snappy, lz4: CompressionTypes.LZ4, zstd: CompressionTypes.ZSTD }
  const kafka = new Kafka({ clientId: 'runnel-compat-kafka-ts-codec', brokers: [BOOTSTRAP], logLevel: logLevel.ERROR })
  const producer = kafka.producer()
  await producer.connect()
  try {
    await producer.send({
      topic,
      compression: types[codec],
      messages: values.map((value, i) => ({ value, partition: 0, headers: { i: String(i) } })),
    })
  } finally {
    await producer.disconnect()
  }
}

// --- consumer groups -----------------------------------------------------------------------
describe('consumer groups', { concurrency: true }, () => {
  test('two members split the partitions; each message is delivered once', async () => {
    const topic = uniq('split')
    const groupId = uniq('split-group')
    await createTopic(topic, GROUP_PARTITIONS)
    const a = await startCollecting([topic], { groupId, fromBeginning: true })
    const b = await startCollecting([topic], { groupId, fromBeginning: true })
    try {
      const split = await waitUntil(() => {
        const [pa, pb] = [assignedPartitions(a.consumer, topic), assignedPartitions(b.consumer, topic)]
        return pa.length > 0 && pb.length > 0 && pa.length + pb.length === GROUP_PARTITIONS ? [pa, pb] : null
      }, 3 * SESSION_TIMEOUT_MS)
      assert.ok(split, `assignments ${assignedPartitions(a.consumer, topic)} / ${assignedPartitions(b.consumer, topic)}`)
      assert.deepEqual(sorted([...split[0], ...split[1]]), [0, 1, 2, 3])
      const msgs = messages(topic, 'split', 40, i => ({ partition: i % GROUP_PARTITIONS }))
      await produce(msgs)
      await waitUntil(() => a.got.length + b.got.length >= msgs.length, 20000)
      assert.deepEqual(byValue([...a.got, ...b.got]), byValue(msgs))
      for (const m of a.got) assert.ok(split[0].includes(m.partition), `a got partition ${m.partition}`)
      for (const m of b.got) assert.ok(split[1].includes(m.partition), `b got partition ${m.partition}`)
    } finally {
      await Promise.all([a.consumer.close(), b.consumer.close()])
    }
  })

  test('offsets committed on close; a restarted member resumes after them', async () => {
    const topic = uniq('resume')
    const groupId = uniq('resume-group')
    await createTopic(topic)
    await produce(messages(topic, 'first', 10))
    const first = await startCollecting([topic], { groupId, fromBeginning: true })
    try {
      await first.waitFor(10)
    } finally {
      await first.consumer.close()
    }
    await produce(messages(topic, 'second', 10))
    const second = await startCollecting([topic], { groupId, fromBeginning: true })
    try {
      const got = await second.waitFor(10)
      assert.deepEqual(got.map(m => m.value), messages(topic, 'second', 10).map(m => m.value))
      assert.equal(got[0].offset, 10n)
    } finally {
      await second.consumer.close()
    }
  })

  test('static membership: a member restarted with its groupInstanceId keeps its partitions', async () => {
    const topic = uniq('static')
    const groupId = uniq('static-group')
    await createTopic(topic, GROUP_PARTITIONS)
    const options = id => ({ groupId, groupInstanceId: id, fromBeginning: true })
    const a = await startCollecting([topic], options('member-a'))
    let b = await startCollecting([topic], options('member-b'))
    try {
      const both = () => [assignedPartitions(a.consumer, topic), assignedPartitions(b.consumer, topic)]
      const split = await waitUntil(() => {
        const [pa, pb] = both()
        return pa.length > 0 && pb.length > 0 && pa.length + pb.length === GROUP_PARTITIONS ? [pa, pb] : null
      }, 3 * SESSION_TIMEOUT_MS)
      assert.ok(split, `assignments ${both()}`)
      await b.consumer.close()
      b = await startCollecting([topic], options('member-b'))
      const after = await waitUntil(() => (assignedPartitions(b.consumer, topic).length > 0 ? both() : null), SESSION_TIMEOUT_MS)
      assert.deepEqual(after, split, 'the restarted static member got other partitions')
      const msgs = messages(topic, 'static', 20, i => ({ partition: i % GROUP_PARTITIONS }))
      await produce(msgs)
      await waitUntil(() => a.got.length + b.got.length >= msgs.length, 20000)
      assert.deepEqual(byValue([...a.got, ...b.got]), byValue(msgs))
    } finally {
      await Promise.all([a.consumer.close(), b.consumer.close()])
    }
  })

  test('static membership: a second consumer with the same groupInstanceId fences the first', async () => {
    const topic = uniq('fence')
    const groupId = uniq('fence-group')
    await createTopic(topic, 2)
    const options = { groupId, groupInstanceId: 'member-x', fromBeginning: true }
    const old = await startCollecting([topic], options)
    let fenced = null
    old.consumer.on('heartbeatError', error => { fenced ??= error.errorCode })
    await waitUntil(() => assignedPartitions(old.consumer, topic).length === 2, 3 * SESSION_TIMEOUT_MS)
    const replacement = await startCollecting([topic], options)
    try {
      await waitUntil(() => fenced !== null, SESSION_TIMEOUT_MS)
      assert.equal(fenced, ERROR.FENCED_INSTANCE_ID, 'the replaced member was not fenced')
      assert.deepEqual(await waitUntil(() => assignedPartitions(replacement.consumer, topic).length === 2 && assignedPartitions(replacement.consumer, topic)), [0, 1])
    } finally {
      await Promise.all([old.consumer.close(), replacement.consumer.close()])
    }
  })
})

await import('./kafkats_api.mjs')
