// @platformatic/kafka against a live Runnel broker, with node's built-in test runner.
//
// Run by tests/compat/run_compat.py with RUNNEL_BOOTSTRAP pointing at a fresh broker (started
// with its defaults: auto-create on, max.message.bytes 1 MiB + 12). @platformatic/kafka is an
// independent pure-JS client that negotiates each API's newest version both sides support.
// Every test uses its own topic and group, so tests are independent of each other's outcome.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import zlib from 'node:zlib'
import {
  ConfigResourceTypes, FindCoordinatorKeyTypes, IncrementalAlterConfigOperationTypes, ProduceAcks,
} from '@platformatic/kafka'
import {
  BOOTSTRAP, assertKeysStayAndOffsetsDense, assignedPartitions, byValue, closeClient, collect, createTopic, messages, newAdmin, newConsumer, newProducer,
  offsetsReady, rejectsWithKafkaError, sorted, uniq, using, waitUntil,
} from './platformatic_helpers.mjs'

const MANY_MESSAGES = 300
const GROUP_PARTITIONS = 4
const TOO_LARGE_BYTES = 2 * 1024 * 1024 // over the default max.message.bytes (1 MiB + 12)
// DescribeConfigs config sources (Kafka's DescribeConfigsResponse.ConfigSource).
const SOURCE_DYNAMIC_TOPIC = 1
const SOURCE_DEFAULT = 5

/** The first `count` messages of `topic`, read from its start by a consumer of a new group. */
function readFromStart (topic, count) {
  return using(newConsumer(uniq('read')), async consumer =>
    collect(await consumer.consume({ topics: [topic], mode: 'earliest', autocommit: false }), count))
}

/** Produces `msgs` and returns every message read back from the start of `topic`. */
async function roundTrip (topic, msgs, sendOptions = {}) {
  await using(newProducer(), producer => producer.send({ messages: msgs, ...sendOptions }))
  return readFromStart(topic, msgs.length)
}

// --- producer ------------------------------------------------------------------------------
// Each consumer joins a new group, which waits out the broker's initial rebalance delay
// (group.initial.rebalance.delay.ms; run_compat.py starts this suite's broker with 0, Kafka's
// default is 3 s): these tests run side by side either way.
describe('producer', { concurrency: true }, () => {
  test('produce one message with key and headers, consume it back', async () => {
    const topic = uniq('single')
    await createTopic(topic)
    const before = BigInt(Date.now())
    const [got] = await roundTrip(topic, [{ topic, key: 'the-key', value: 'the-value', headers: { h1: 'v1', h2: '' } }])
    assert.equal(got.key, 'the-key')
    assert.equal(got.value, 'the-value')
    assert.equal(got.topic, topic)
    assert.equal(got.partition, 0)
    assert.equal(got.offset, 0n)
    assert.deepEqual([...got.headers.entries()], [['h1', 'v1'], ['h2', '']])
    assert.ok(got.timestamp >= before - 1000n && got.timestamp <= BigInt(Date.now()) + 1000n, `timestamp ${got.timestamp}`)
  })

  test('produce many messages over 3 partitions: keys keep their partition, offsets dense', async () => {
    const topic = uniq('many')
    await createTopic(topic, 3)
    const msgs = messages(topic, 'many', MANY_MESSAGES)
    const got = await roundTrip(topic, msgs)
    assert.deepEqual(byValue(got), byValue(msgs))
    assertKeysStayAndOffsetsDense(got, 3)
  })

  test('produce to explicit partitions; the result reports each base offset', async () => {
    const topic = uniq('explicit')
    await createTopic(topic, 3)
    const msgs = messages(topic, 'exp', 30, i => ({ partition: i % 3 }))
    await using(newProducer(), async producer => {
      const first = await producer.send({ messages: msgs })
      assert.deepEqual(first.offsets.map(o => [o.partition, o.offset]).sort(), [[0, 0n], [1, 0n], [2, 0n]])
      const again = await producer.send({ messages: [{ topic, value: 'last', partition: 2 }] })
      assert.deepEqual(again.offsets.map(o => [o.topic, o.partition, o.offset]), [[topic, 2, 10n]])
    })
    const got = await readFromStart(topic, 31)
    for (const m of got) {
      const expected = m.value === 'last' ? 2 : Number(m.value.split('-')[1]) % 3
      assert.equal(m.partition, expected, `${m.value}`)
    }
  })

  test('acks 0, 1 and all (-1) each deliver', async () => {
    const topic = uniq('acks')
    await createTopic(topic)
    await using(newProducer(), async producer => {
      const none = await producer.send({ messages: messages(topic, 'acks0', 5), acks: ProduceAcks.NO_RESPONSE })
      assert.equal(none.offsets, undefined, 'acks=0 has no response to report offsets from')
      const leader = await producer.send({ messages: messages(topic, 'acks1', 5), acks: ProduceAcks.LEADER })
      assert.deepEqual(leader.offsets.map(o => o.offset), [5n])
      const all = await producer.send({ messages: messages(topic, 'acksall', 5), acks: ProduceAcks.ALL })
      assert.deepEqual(all.offsets.map(o => o.offset), [10n])
    })
    const got = await readFromStart(topic, 15)
    assert.deepEqual(got.map(m => m.value.replace(/-\d+$/, '')), [...Array(5).fill('acks0'), ...Array(5).fill('acks1'), ...Array(5).fill('acksall')])
  })

  test('idempotent producer: a producer id, sequences accepted across batches, no duplicates', async () => {
    const topic = uniq('idem')
    await createTopic(topic, 2)
    await using(newProducer({ idempotent: true, acks: ProduceAcks.ALL }), async producer => {
      for (let batch = 0; batch < 5; batch++) {
        await producer.send({ messages: messages(topic, `idem${batch}`, 10, i => ({ partition: i % 2 })) })
      }
      assert.ok(producer.producerId >= 0n, `producer id ${producer.producerId}`)
      assert.ok(producer.producerEpoch >= 0, `producer epoch ${producer.producerEpoch}`)
    })
    const got = await readFromStart(topic, 50)
    assert.equal(new Set(got.map(m => m.value)).size, 50)
    for (const p of [0, 1]) {
      const offsets = got.filter(m => m.partition === p).map(m => m.offset)
      assert.deepEqual(offsets, offsets.map((_, i) => BigInt(i)))
    }
  })

  for (const codec of ['none', 'gzip', 'snappy', 'lz4', 'zstd']) {
    // The client compresses zstd with node:zlib's zstdCompressSync, which exists from Node 22.15
    // (and 23.8); on an older Node it throws UnsupportedCompressionError before sending.
    const skip = codec === 'zstd' && typeof zlib.zstdCompressSync !== 'function'
      ? `@platformatic/kafka's zstd uses node:zlib zstdCompressSync, absent in Node ${process.version}`
      : false
    test(`compression ${codec}: produce and consume round trip`, { skip }, async () => {
      const topic = uniq(`codec-${codec}`)
      await createTopic(topic)
      const msgs = messages(topic, `${codec} ${'x'.repeat(200)}`, 40, i => ({ headers: { i: String(i) } }))
      const got = await roundTrip(topic, msgs, { compression: codec })
      assert.deepEqual(got.map(m => m.value), msgs.map(m => m.value))
      assert.deepEqual(got.map(m => m.headers.get('i')), msgs.map((_, i) => String(i)))
      assert.deepEqual(got.map(m => m.offset), msgs.map((_, i) => BigInt(i)))
    })
  }

  test('producer stream (asStream) delivers every message it is written', async () => {
    const topic = uniq('pstream')
    await createTopic(topic)
    await using(newProducer(), async producer => {
      const stream = producer.asStream({ batchSize: 7, batchTime: 20 })
      for (const m of messages(topic, 'ps', 25)) stream.write(m)
      await stream.close()
    })
    const got = await readFromStart(topic, 25)
    assert.deepEqual(got.map(m => m.value), messages(topic, 'ps', 25).map(m => m.value))
  })
})

// --- consumer ------------------------------------------------------------------------------

test('consume from latest sees only messages produced after it started', async () => {
  const topic = uniq('latest')
  await createTopic(topic)
  await using(newProducer(), async producer => {
    await producer.send({ messages: messages(topic, 'old', 5) })
    await using(newConsumer(uniq('latest')), async consumer => {
      const stream = await consumer.consume({ topics: [topic], mode: 'latest', autocommit: false })
      await offsetsReady(stream)
      const receiving = collect(stream, 5)
      await producer.send({ messages: messages(topic, 'new', 5) })
      const got = await receiving
      assert.deepEqual(got.map(m => m.value), messages(topic, 'new', 5).map(m => m.value))
      assert.deepEqual(got.map(m => m.offset), [5n, 6n, 7n, 8n, 9n])
    })
  })
})

test('commit, close, and a new member resumes from the committed offset', async () => {
  const topic = uniq('resume')
  const group = uniq('resume')
  await createTopic(topic)
  await using(newProducer(), producer => producer.send({ messages: messages(topic, 'r', 20) }))
  await using(newConsumer(group), async consumer => {
    const stream = await consumer.consume({ topics: [topic], mode: 'committed', fallbackMode: 'earliest', autocommit: false })
    const got = await collect(stream, 20)
    await got[9].commit()
    const committed = await consumer.listCommittedOffsets({ topics: [{ topic, partitions: [0] }] })
    assert.deepEqual(committed.get(topic), [10n])
    const lag = await consumer.getLag({ topics: [topic] })
    assert.deepEqual(lag.get(topic), [10n])
  })
  await using(newConsumer(group), async consumer => {
    const stream = await consumer.consume({ topics: [topic], mode: 'committed', fallbackMode: 'earliest', autocommit: false })
    const got = await collect(stream, 10)
    assert.deepEqual(got.map(m => m.offset), Array.from({ length: 10 }, (_, i) => BigInt(10 + i)))
  })
})

test('autocommit commits what was consumed', async () => {
  const topic = uniq('autocommit')
  const group = uniq('autocommit')
  await createTopic(topic)
  await using(newProducer(), producer => producer.send({ messages: messages(topic, 'a', 12) }))
  await using(newConsumer(group), async consumer => {
    const stream = await consumer.consume({ topics: [topic], mode: 'earliest', autocommit: 100 })
    await collect(stream, 12)
    const committed = await waitUntil(async () => {
      const offsets = await consumer.listCommittedOffsets({ topics: [{ topic, partitions: [0] }] })
      return offsets.get(topic)[0] === 12n && offsets
    })
    assert.ok(committed, 'autocommit did not commit offset 12')
  })
})

test('manual mode starts at the given offset (seek)', async () => {
  const topic = uniq('seek')
  await createTopic(topic, 2)
  await using(newProducer(), producer => producer.send({ messages: messages(topic, 's', 20, i => ({ partition: i % 2 })) }))
  await using(newConsumer(uniq('seek')), async consumer => {
    const stream = await consumer.consume({
      topics: [topic],
      mode: 'manual',
      offsets: [{ topic, partition: 0, offset: 7n }, { topic, partition: 1, offset: 9n }],
      autocommit: false,
    })
    const got = await collect(stream, 4)
    assert.deepEqual(got.filter(m => m.partition === 0).map(m => m.offset), [7n, 8n, 9n])
    assert.deepEqual(got.filter(m => m.partition === 1).map(m => m.offset), [9n])
  })
})

test('consumer listOffsets: earliest, latest and by timestamp', async () => {
  const topic = uniq('offsets')
  await createTopic(topic)
  const baseMs = BigInt(Date.now() - 3600 * 1000)
  await using(newProducer(), producer =>
    producer.send({ messages: messages(topic, 't', 10, i => ({ timestamp: baseMs + BigInt(i) * 1000n })) }))
  await using(newConsumer(uniq('offsets')), async consumer => {
    assert.deepEqual((await consumer.listOffsets({ topics: [topic], timestamp: -2n })).get(topic), [0n])
    assert.deepEqual((await consumer.listOffsets({ topics: [topic], timestamp: -1n })).get(topic), [10n])
    assert.deepEqual((await consumer.listOffsets({ topics: [topic], timestamp: baseMs + 4500n })).get(topic), [5n])
    const withTs = await consumer.listOffsetsWithTimestamps({ topics: [topic], timestamp: baseMs + 3000n })
    assert.deepEqual(withTs.get(topic).get(0), { offset: 3n, timestamp: baseMs + 3000n })
  })
})

test('a group of two splits the partitions; a leave hands them over without loss or duplicates', async () => {
  const topic = uniq('group2')
  const group = uniq('group2')
  await createTopic(topic, GROUP_PARTITIONS)
  const seen = [] // [member, partition, value]
  const commits = []
  const options = { topics: [topic], mode: 'committed', fallbackMode: 'earliest', autocommit: false }
  const a = newConsumer(group)
  const b = newConsumer(group)
  const producer = newProducer()
  try {
    const streamA = await a.consume(options)
    await waitUntil(() => assignedPartitions(a, topic).length === GROUP_PARTITIONS)
    const streamB = await b.consume(options)
    const split = await waitUntil(() => {
      const pa = assignedPartitions(a, topic)
      const pb = assignedPartitions(b, topic)
      return pa.length > 0 && pb.length > 0 && pa.length + pb.length === GROUP_PARTITIONS && [pa, pb]
    }, 15000)
    assert.ok(split, `not split: a=${assignedPartitions(a, topic)} b=${assignedPartitions(b, topic)}`)
    assert.deepEqual(sorted([...split[0], ...split[1]]), [0, 1, 2, 3])
    const track = member => m => { seen.push([member, m.partition, m.value]); commits.push(m.commit()) }
    const first = messages(topic, 'g1', 40, i => ({ partition: i % GROUP_PARTITIONS }))
    const gotA = collect(streamA, first.filter(m => split[0].includes(m.partition)).length, { onMessage: track('a') })
    const gotB = collect(streamB, first.filter(m => split[1].includes(m.partition)).length, { onMessage: track('b') })
    await producer.send({ messages: first })
    await Promise.all([gotA, gotB])
    await Promise.all(commits)
    for (const [member, partition] of seen) {
      assert.ok(split[member === 'a' ? 0 : 1].includes(partition), `${member} got partition ${partition}`)
    }
    await b.close(true) // LeaveGroup: a takes all partitions at the committed offsets
    assert.ok(await waitUntil(() => assignedPartitions(a, topic).length === GROUP_PARTITIONS, 15000), 'a did not take over')
    const second = messages(topic, 'g2', 40, i => ({ partition: i % GROUP_PARTITIONS }))
    const gotAfter = collect(streamA, 40, { onMessage: track('a') })
    await producer.send({ messages: second })
    await gotAfter
    assert.deepEqual(sorted(seen.map(s => s[2])), sorted([...first, ...second].map(m => m.value)))
  } finally {
    await Promise.all([a, b, producer].map(closeClient))
  }
})

// --- admin ---------------------------------------------------------------------------------

test('createTopics with configs, metadata, listTopics; an existing name is refused', async () => {
  const topic = uniq('create')
  await using(newAdmin(), async admin => {
    const configs = [{ name: 'retention.ms', value: '3600000' }, { name: 'cleanup.policy', value: 'compact' }]
    const [created] = await admin.createTopics({ topics: [topic], partitions: 3, replicas: 1, configs })
    assert.equal(created.name, topic)
    assert.equal(created.partitions, 3)
    assert.equal(created.replicas, 1)
    assert.equal(created.configuration['retention.ms'], '3600000')
    assert.equal(created.configuration['cleanup.policy'], 'compact')
    const metadata = await admin.metadata({ topics: [topic] })
    const described = metadata.topics.get(topic)
    assert.equal(described.partitionsCount, 3)
    assert.equal(described.id, created.id)
    for (const p of described.partitions) assert.ok(metadata.brokers.has(p.leader), `leader ${p.leader}`)
    assert.deepEqual([...metadata.brokers.values()].map(b => `${b.host}:${b.port}`), [BOOTSTRAP])
    assert.ok((await admin.listTopics()).includes(topic))
    await rejectsWithKafkaError(admin.createTopics({ topics: [topic], partitions: 1, replicas: 1 }), 'TOPIC_ALREADY_EXISTS')
  })
})

test('createPartitions grows a topic and the new partition takes messages', async () => {
  const topic = uniq('grow')
  await createTopic(topic, 2)
  await using(newAdmin(), async admin => {
    await admin.createPartitions({ topics: [{ name: topic, count: 4 }] })
    const metadata = await admin.metadata({ topics: [topic], forceUpdate: true })
    assert.equal(metadata.topics.get(topic).partitionsCount, 4)
    await rejectsWithKafkaError(admin.createPartitions({ topics: [{ name: topic, count: 3 }] }), 'INVALID_PARTITIONS')
  })
  const got = await roundTrip(topic, [{ topic, value: 'on-3', partition: 3 }])
  assert.deepEqual(got.map(m => [m.partition, m.offset, m.value]), [[3, 0n, 'on-3']])
})

test('deleteTopics removes the topic from listTopics and metadata', async () => {
  const topic = uniq('delete')
  await createTopic(topic)
  await using(newAdmin(), async admin => {
    await admin.deleteTopics({ topics: [topic] })
    assert.ok(await waitUntil(async () => !(await admin.listTopics()).includes(topic)), 'still listed')
    await assert.rejects(admin.metadata({ topics: [topic], forceUpdate: true }), /Unknown topic/)
    await rejectsWithKafkaError(admin.deleteTopics({ topics: [topic] }), 'UNKNOWN_TOPIC_OR_PARTITION')
  })
})

test('listGroups, describeGroups, deleteGroups of a live and then empty group', async () => {
  const topic = uniq('groups')
  const group = uniq('groups')
  await createTopic(topic, 2)
  await using(newAdmin(), async admin => {
    await using(newConsumer(group), async consumer => {
      await consumer.consume({ topics: [topic], mode: 'earliest', autocommit: false })
      assert.ok(await waitUntil(() => assignedPartitions(consumer, topic).length === 2), 'no assignment')
      const listed = await admin.listGroups()
      assert.equal(listed.get(group)?.state, 'STABLE')
      assert.equal(listed.get(group)?.protocolType, 'consumer')
      const described = (await admin.describeGroups({ groups: [group] })).get(group)
      assert.equal(described.state, 'STABLE')
      assert.equal(described.protocolType, 'consumer')
      assert.equal(described.members.size, 1)
      const [member] = described.members.values()
      assert.equal(member.id, consumer.memberId)
      assert.equal(member.clientId, 'runnel-compat-plat-consumer')
      assert.deepEqual(member.metadata.topics, [topic])
      assert.deepEqual(member.assignments.get(topic).partitions.sort(), [0, 1])
      await rejectsWithKafkaError(admin.deleteGroups({ groups: [group] }), 'NON_EMPTY_GROUP')
    })
    const empty = await waitUntil(async () => (await admin.describeGroups({ groups: [group] })).get(group).state === 'EMPTY')
    assert.ok(empty, 'group not EMPTY after its only member closed')
    assert.equal((await admin.listGroups({ states: ['EMPTY'] })).get(group)?.state, 'EMPTY')
    await admin.deleteGroups({ groups: [group] })
    assert.equal((await admin.listGroups()).has(group), false)
  })
})

test('describing an unknown group gives state DEAD with no members', async () => {
  await using(newAdmin(), async admin => {
    const group = uniq('nogroup')
    const described = (await admin.describeGroups({ groups: [group] })).get(group)
    assert.equal(described.state, 'DEAD')
    assert.equal(described.members.size, 0)
    await rejectsWithKafkaError(admin.deleteGroups({ groups: [group] }), 'GROUP_ID_NOT_FOUND')
  })
})

test('listConsumerGroupOffsets, alterConsumerGroupOffsets, deleteConsumerGroupOffsets', async () => {
  const topic = uniq('groupoffsets')
  const group = uniq('groupoffsets')
  await createTopic(topic, 2)
  await using(newProducer(), producer => producer.send({ messages: messages(topic, 'o', 20, i => ({ partition: i % 2 })) }))
  await using(newAdmin(), async admin => {
    const partitionOffsets = [{ partition: 0, offset: 3n }, { partition: 1, offset: 8n }]
    await admin.alterConsumerGroupOffsets({ groupId: group, topics: [{ name: topic, partitionOffsets }] })
    const list = async () => {
      const [listed] = await admin.listConsumerGroupOffsets({ groups: [group] })
      assert.equal(listed.groupId, group)
      const t = listed.topics.find(x => x.name === topic)
      return t ? t.partitions.map(p => [p.partitionIndex, p.committedOffset]).sort() : []
    }
    assert.deepEqual(await list(), [[0, 3n], [1, 8n]])
    await admin.deleteConsumerGroupOffsets({ groupId: group, topics: [{ name: topic, partitionIndexes: [0] }] })
    assert.deepEqual(await list(), [[1, 8n]])
  })
  await using(newConsumer(group), async consumer => {
    const stream = await consumer.consume({ topics: [topic], mode: 'committed', fallbackMode: 'earliest', autocommit: false })
    const got = await collect(stream, 10 + 2)
    assert.deepEqual(got.filter(m => m.partition === 1).map(m => m.offset), [8n, 9n])
    assert.equal(got.filter(m => m.partition === 0).length, 10, 'partition 0 restarts from earliest')
  })
})

test('admin listOffsets and deleteRecords move the log start', async () => {
  const topic = uniq('deleterecords')
  await createTopic(topic)
  await using(newProducer(), producer => producer.send({ messages: messages(topic, 'd', 10) }))
  await using(newAdmin(), async admin => {
    const offsetAt = async timestamp => {
      const [t] = await admin.listOffsets({ topics: [{ name: topic, partitions: [{ partitionIndex: 0, timestamp }] }] })
      return t.partitions[0].offset
    }
    assert.equal(await offsetAt(-2n), 0n)
    assert.equal(await offsetAt(-1n), 10n)
    const [deleted] = await admin.deleteRecords({ topics: [{ name: topic, partitions: [{ partition: 0, offset: 4n }] }] })
    assert.deepEqual(deleted.partitions, [{ partition: 0, lowWatermark: 4n }])
    assert.equal(await offsetAt(-2n), 4n)
  })
  const got = await readFromStart(topic, 6)
  assert.deepEqual(got.map(m => m.offset), [4n, 5n, 6n, 7n, 8n, 9n])
})

test('describeConfigs, alterConfigs (replaces all) and incrementalAlterConfigs (one key)', async () => {
  const topic = uniq('configs')
  await createTopic(topic, 1, [{ name: 'cleanup.policy', value: 'compact' }])
  await using(newAdmin(), async admin => {
    const describe = async () => {
      const [d] = await admin.describeConfigs({
        resources: [{ resourceType: ConfigResourceTypes.TOPIC, resourceName: topic, configurationKeys: ['cleanup.policy', 'retention.ms'] }],
      })
      return Object.fromEntries(d.configs.map(c => [c.name, [c.value, c.configSource]]))
    }
    assert.deepEqual(await describe(), { 'cleanup.policy': ['compact', SOURCE_DYNAMIC_TOPIC], 'retention.ms': ['604800000', SOURCE_DEFAULT] })
    // AlterConfigs sets the whole dynamic config: cleanup.policy, not named, goes back to its default.
    await admin.alterConfigs({ resources: [{ resourceType: ConfigResourceTypes.TOPIC, resourceName: topic, configs: [{ name: 'retention.ms', value: '60000' }] }] })
    assert.deepEqual(await describe(), { 'cleanup.policy': ['delete', SOURCE_DEFAULT], 'retention.ms': ['60000', SOURCE_DYNAMIC_TOPIC] })
    await admin.incrementalAlterConfigs({
      resources: [{
        resourceType: ConfigResourceTypes.TOPIC,
        resourceName: topic,
        configs: [
          { name: 'cleanup.policy', value: 'compact,delete', configOperation: IncrementalAlterConfigOperationTypes.SET },
          { name: 'retention.ms', configOperation: IncrementalAlterConfigOperationTypes.DELETE },
        ],
      }],
    })
    assert.deepEqual(await describe(), { 'cleanup.policy': ['compact,delete', SOURCE_DYNAMIC_TOPIC], 'retention.ms': ['604800000', SOURCE_DEFAULT] })
    const [broker] = (await admin.metadata({})).brokers.keys()
    const [brokerConfigs] = await admin.describeConfigs({
      resources: [{ resourceType: ConfigResourceTypes.BROKER, resourceName: String(broker), configurationKeys: [] }],
    })
    assert.ok(brokerConfigs.configs.length > 0, 'broker has no configs to describe')
  })
})

test('findCoordinator names this broker; describeLogDirs sizes a written partition', async () => {
  const topic = uniq('logdirs')
  await createTopic(topic, 2)
  await using(newProducer(), producer => producer.send({ messages: messages(topic, 'l', 10, () => ({ partition: 1 })) }))
  await using(newAdmin(), async admin => {
    const group = uniq('coordinator')
    const [coordinator] = await admin.findCoordinator({ keyType: FindCoordinatorKeyTypes.GROUP, keys: [group] })
    assert.equal(coordinator.key, group)
    assert.equal(`${coordinator.host}:${coordinator.port}`, BOOTSTRAP)
    const [broker] = await admin.describeLogDirs({ topics: [{ name: topic, partitions: [0, 1] }] })
    assert.equal(broker.broker, coordinator.nodeId)
    assert.equal(broker.results.length, 1, 'one data directory')
    const [dir] = broker.results
    assert.ok(dir.logDir.length > 0)
    assert.ok(dir.totalBytes >= dir.usableBytes && dir.usableBytes > 0n, `${dir.totalBytes} ${dir.usableBytes}`)
    const sizes = Object.fromEntries(dir.topics.find(t => t.name === topic).partitions.map(p => [p.partitionIndex, p.partitionSize]))
    assert.equal(sizes[0], 0n)
    assert.ok(sizes[1] > 0n, `partition 1 holds ${sizes[1]} bytes`)
  })
})

// --- error paths ---------------------------------------------------------------------------

test('unknown topic: refused without auto-create, created with it (the broker allows it)', async () => {
  const topic = uniq('unknown')
  await using(newProducer(), producer =>
    assert.rejects(producer.send({ messages: [{ topic, value: 'x' }] }), /Unknown topic/))
  await using(newAdmin(), async admin => assert.equal((await admin.listTopics()).includes(topic), false))
  const auto = uniq('autocreate')
  await using(newProducer({ autocreateTopics: true }), producer => producer.send({ messages: [{ topic: auto, value: 'made' }] }))
  await using(newAdmin(), async admin => {
    const metadata = await admin.metadata({ topics: [auto] })
    assert.equal(metadata.topics.get(auto).partitionsCount, 1, 'auto-created topics get 1 partition')
  })
  const got = await readFromStart(auto, 1)
  assert.equal(got[0].value, 'made')
})

test('a message over max.message.bytes fails with MESSAGE_TOO_LARGE; the topic stays usable', async () => {
  const topic = uniq('toolarge')
  await createTopic(topic)
  await using(newProducer(), async producer => {
    await rejectsWithKafkaError(producer.send({ messages: [{ topic, value: 'x'.repeat(TOO_LARGE_BYTES) }] }), 'MESSAGE_TOO_LARGE')
    const ok = await producer.send({ messages: [{ topic, value: 'small' }] })
    assert.deepEqual(ok.offsets.map(o => o.offset), [0n])
  })
})
