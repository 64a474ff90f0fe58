// kafka-ts's low-level API against Runnel: every API Runnel advertises is sent through
// `cluster.sendRequest(API.X, …)` at the version kafka-ts negotiates, and each response must
// decode and carry the error codes Kafka 4.0 gives on a single-broker cluster. Imported by
// kafkats.test.mjs (one node:test file per suite in run_compat.py).
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { API } from 'kafka-ts'
import {
  ERROR, REQUEST_TIMEOUT_MS, createTopic, negotiatedVersion, produce, rawConnection, request, uniq, withCluster,
} from './kafkats_helpers.mjs'

// DescribeConfigs: resource type TOPIC; config sources DYNAMIC_TOPIC_CONFIG and DEFAULT_CONFIG.
const TOPIC_RESOURCE = 2
const BROKER_RESOURCE = 4
const SOURCE_DYNAMIC_TOPIC = 1
const SOURCE_DEFAULT = 5
const EARLIEST_TIMESTAMP = -2n
const LATEST_TIMESTAMP = -1n
const MAX_TIMESTAMP = -3n
const ZERO_UUID = '0'.repeat(32) // kafka-ts keeps UUIDs as 32 hex digits

// Every API Runnel advertises, by the name of kafka-ts's constant. The test checks that
// ApiVersions lists exactly these and that kafka-ts finds a version for each.
const ADVERTISED = {
  0: 'PRODUCE', 1: 'FETCH', 2: 'LIST_OFFSETS', 3: 'METADATA', 8: 'OFFSET_COMMIT', 9: 'OFFSET_FETCH',
  10: 'FIND_COORDINATOR', 11: 'JOIN_GROUP', 12: 'HEARTBEAT', 13: 'LEAVE_GROUP', 14: 'SYNC_GROUP',
  15: 'DESCRIBE_GROUPS', 16: 'LIST_GROUPS', 18: 'API_VERSIONS', 19: 'CREATE_TOPICS', 20: 'DELETE_TOPICS',
  21: 'DELETE_RECORDS', 22: 'INIT_PRODUCER_ID', 23: 'OFFSET_FOR_LEADER_EPOCH', 29: 'DESCRIBE_ACLS',
  30: 'CREATE_ACLS', 31: 'DELETE_ACLS', 32: 'DESCRIBE_CONFIGS', 33: 'ALTER_CONFIGS', 34: 'ALTER_REPLICA_LOG_DIRS',
  35: 'DESCRIBE_LOG_DIRS', 37: 'CREATE_PARTITIONS', 42: 'DELETE_GROUPS', 43: 'ELECT_LEADERS',
  44: 'INCREMENTAL_ALTER_CONFIGS', 45: 'ALTER_PARTITION_REASSIGNMENTS', 46: 'LIST_PARTITION_REASSIGNMENTS',
  47: 'OFFSET_DELETE', 48: 'DESCRIBE_CLIENT_QUOTAS', 49: 'ALTER_CLIENT_QUOTAS', 50: 'DESCRIBE_USER_SCRAM_CREDENTIALS',
  51: 'ALTER_USER_SCRAM_CREDENTIALS', 60: 'DESCRIBE_CLUSTER', 61: 'DESCRIBE_PRODUCERS', 65: 'DESCRIBE_TRANSACTIONS',
  66: 'LIST_TRANSACTIONS', 75: 'DESCRIBE_TOPIC_PARTITIONS',
}
// APIs kafka-ts implements that Runnel does not advertise: transactions writes, SASL,
// delegation tokens, KIP-848 and share groups, quorum and features.
const NOT_ADVERTISED = [
  'ADD_PARTITIONS_TO_TXN', 'ADD_OFFSETS_TO_TXN', 'END_TXN', 'TXN_OFFSET_COMMIT', 'SASL_HANDSHAKE',
  'SASL_AUTHENTICATE', 'CREATE_DELEGATION_TOKEN', 'CONSUMER_GROUP_HEARTBEAT', 'CONSUMER_GROUP_DESCRIBE',
  'SHARE_GROUP_HEARTBEAT', 'SHARE_FETCH', 'DESCRIBE_QUORUM', 'UPDATE_FEATURES', 'GET_TELEMETRY_SUBSCRIPTIONS',
]

const topicConfig = (name, resourceName, keys) => ({
  resources: [{ resourceType: TOPIC_RESOURCE, resourceName, configurationKeys: keys }],
  includeSynonyms: false,
  includeDocumentation: false,
})
const configsByName = response => Object.fromEntries(response.results[0].configs.map(c => [c.name, c]))

/** ListOffsets for partition 0 of `topic` at `timestamp`. */
async function listOffset (cluster, topic, timestamp) {
  const response = await request(cluster, API.LIST_OFFSETS, {
    replicaId: -1, isolationLevel: 0, timeoutMs: REQUEST_TIMEOUT_MS,
    topics: [{ name: topic, partitions: [{ partitionIndex: 0, currentLeaderEpoch: -1, timestamp }] }],
  })
  return response.topics[0].partitions[0]
}

async function metadataOf (cluster, topic) {
  return request(cluster, API.METADATA, { topics: [{ id: null, name: topic }], allowTopicAutoCreation: false })
}

describe('low-level API', { concurrency: true }, () => {
  test('ApiVersions lists exactly the advertised APIs and kafka-ts negotiates each', t => withCluster(async cluster => {
    const { errorCode, versions } = await cluster.sendRequest(API.API_VERSIONS, {})
    assert.equal(errorCode, ERROR.NONE)
    assert.deepEqual(versions.map(v => v.apiKey).sort((a, b) => a - b), Object.keys(ADVERTISED).map(Number))
    const negotiated = {}
    for (const range of versions) {
      const name = ADVERTISED[range.apiKey]
      negotiated[name] = negotiatedVersion(API[name], range)
      assert.ok(negotiated[name] !== null, `no common version for ${name} ${range.minVersion}-${range.maxVersion}`)
    }
    t.diagnostic(`negotiated: ${Object.entries(negotiated).map(([name, v]) => `${name} v${v}`).join(', ')}`)
    // Fetch by topic id (v13+), which the Fetch test below relies on.
    assert.ok(negotiated.FETCH >= 13, `Fetch v${negotiated.FETCH}`)
  }))

  test('APIs Runnel does not advertise: kafka-ts refuses to send them; sent anyway, the broker closes', () => withCluster(async cluster => {
    for (const name of NOT_ADVERTISED) {
      await assert.rejects(cluster.sendRequest(API[name], {}), /Broker does not support API/, name)
    }
    // Kafka's SocketServer closes the connection on a request for an API that is not enabled.
    const connection = await rawConnection()
    try {
      await assert.rejects(connection.sendRequest(API.DESCRIBE_QUORUM, { topics: [] }), /closed/i)
    } finally {
      await connection.disconnect().catch(() => {})
    }
  }))

  test('Metadata: topic id, leader and epoch; unknown topic; lookup by id', () => withCluster(async cluster => {
    const topic = uniq('meta')
    await createTopic(topic, 2)
    const response = await metadataOf(cluster, topic)
    assert.equal(response.brokers.length, 1)
    const [broker] = response.brokers
    assert.equal(response.controllerId, broker.nodeId)
    const [t] = response.topics
    assert.deepEqual([t.errorCode, t.name, t.isInternal], [ERROR.NONE, topic, false])
    assert.notEqual(t.topicId, ZERO_UUID)
    assert.deepEqual(t.partitions.map(p => [p.partitionIndex, p.errorCode, p.leaderId, p.replicaNodes, p.isrNodes]),
      [0, 1].map(i => [i, ERROR.NONE, broker.nodeId, [broker.nodeId], [broker.nodeId]]))
    const unknown = await metadataOf(cluster, uniq('no-such-topic'))
    assert.equal(unknown.topics[0].errorCode, ERROR.UNKNOWN_TOPIC_OR_PARTITION)
    // Metadata v12 looks topics up by id; an unknown id has no name (null).
    const byId = id => request(cluster, API.METADATA, { topics: [{ id, name: null }], allowTopicAutoCreation: false })
    assert.deepEqual((await byId(t.topicId)).topics.map(x => [x.errorCode, x.name]), [[ERROR.NONE, topic]])
    const unknownId = '0a1b2c3d000040008000000000000003'
    assert.deepEqual((await byId(unknownId)).topics.map(x => [x.errorCode, x.name, x.topicId]), [[ERROR.UNKNOWN_TOPIC_ID, null, unknownId]])
  }))

  test('CreateTopics with configs; duplicate, bad config and replication factor 3 refused', () => withCluster(async cluster => {
    const topic = uniq('create')
    const create = (name, extra = {}) => request(cluster, API.CREATE_TOPICS, {
      topics: [{ name, numPartitions: 2, replicationFactor: 1, assignments: [], configs: [{ name: 'retention.ms', value: '3600000' }], ...extra }],
      timeoutMs: REQUEST_TIMEOUT_MS, validateOnly: false,
    })
    const created = (await create(topic)).topics[0]
    assert.deepEqual([created.errorCode, created._numPartitions, created._replicationFactor], [ERROR.NONE, 2, 1])
    assert.equal(created.configs.find(c => c.name === 'retention.ms')?.value, '3600000')
    assert.equal((await create(topic)).topics[0].errorCode, ERROR.TOPIC_ALREADY_EXISTS)
    assert.equal((await create(uniq('badcfg'), { configs: [{ name: 'retention.ms', value: 'soon' }] })).topics[0].errorCode, ERROR.INVALID_CONFIG)
    assert.equal((await create(uniq('rf3'), { replicationFactor: 3 })).topics[0].errorCode, ERROR.INVALID_REPLICATION_FACTOR)
    const dryRun = uniq('validate-only')
    const validated = await request(cluster, API.CREATE_TOPICS, {
      topics: [{ name: dryRun, numPartitions: 1, replicationFactor: 1, assignments: [], configs: [] }], timeoutMs: REQUEST_TIMEOUT_MS, validateOnly: true,
    })
    assert.equal(validated.topics[0].errorCode, ERROR.NONE)
    assert.equal((await metadataOf(cluster, dryRun)).topics[0].errorCode, ERROR.UNKNOWN_TOPIC_OR_PARTITION, 'validateOnly created the topic')
  }))

  test('DescribeConfigs, IncrementalAlterConfigs and AlterConfigs on a topic', () => withCluster(async cluster => {
    const topic = uniq('configs')
    await createTopic(topic, 1, [{ name: 'cleanup.policy', value: 'compact' }])
    const describe = () => request(cluster, API.DESCRIBE_CONFIGS, topicConfig(topic, topic, ['cleanup.policy', 'retention.ms']))
    let configs = configsByName(await describe())
    assert.deepEqual([configs['cleanup.policy'].value, configs['cleanup.policy'].configSource], ['compact', SOURCE_DYNAMIC_TOPIC])
    assert.equal(configs['retention.ms'].configSource, SOURCE_DEFAULT)
    const alter = (name, configOperation, value) => request(cluster, API.INCREMENTAL_ALTER_CONFIGS, {
      resources: [{ resourceType: TOPIC_RESOURCE, resourceName: topic, configs: [{ name, configOperation, value }] }], validateOnly: false,
    })
    assert.equal((await alter('retention.ms', 0, '7200000')).responses[0].errorCode, ERROR.NONE)
    assert.equal((await alter('no.such.config', 0, '1')).responses[0].errorCode, ERROR.INVALID_CONFIG)
    configs = configsByName(await describe())
    assert.deepEqual([configs['retention.ms'].value, configs['retention.ms'].configSource], ['7200000', SOURCE_DYNAMIC_TOPIC])
    assert.equal((await alter('cleanup.policy', 1, null)).responses[0].errorCode, ERROR.NONE)
    configs = configsByName(await describe())
    assert.deepEqual([configs['cleanup.policy'].value, configs['cleanup.policy'].configSource], ['delete', SOURCE_DEFAULT])
    // AlterConfigs replaces the whole set: retention.ms goes back to its default.
    const altered = await request(cluster, API.ALTER_CONFIGS, {
      resources: [{ resourceType: TOPIC_RESOURCE, resourceName: topic, configs: [{ name: 'segment.ms', value: '600000' }] }], validateOnly: false,
    })
    assert.equal(altered.responses[0].errorCode, ERROR.NONE)
    configs = configsByName(await request(cluster, API.DESCRIBE_CONFIGS, topicConfig(topic, topic, ['segment.ms', 'retention.ms'])))
    assert.deepEqual([configs['segment.ms'].value, configs['retention.ms'].configSource], ['600000', SOURCE_DEFAULT])
    const unknown = await request(cluster, API.DESCRIBE_CONFIGS, topicConfig(topic, uniq('no-such-topic'), null))
    assert.equal(unknown.results[0].errorCode, ERROR.UNKNOWN_TOPIC_OR_PARTITION)
    const brokerId = (await metadataOf(cluster, topic)).brokers[0].nodeId
    const broker = await request(cluster, API.DESCRIBE_CONFIGS, {
      resources: [{ resourceType: BROKER_RESOURCE, resourceName: String(brokerId), configurationKeys: ['log.retention.ms'] }], includeSynonyms: false,
    })
    assert.equal(broker.results[0].errorCode, ERROR.NONE)
    assert.deepEqual(broker.results[0].configs.map(c => c.name), ['log.retention.ms'])
  }))

  test('CreatePartitions grows a topic; shrinking is refused', () => withCluster(async cluster => {
    const topic = uniq('grow')
    await createTopic(topic, 1)
    const grow = count => request(cluster, API.CREATE_PARTITIONS, { topics: [{ name: topic, count, assignments: null }], timeoutMs: REQUEST_TIMEOUT_MS, validateOnly: false })
    assert.equal((await grow(3)).results[0].errorCode, ERROR.NONE)
    assert.equal((await metadataOf(cluster, topic)).topics[0].partitions.length, 3)
    assert.equal((await grow(2)).results[0].errorCode, ERROR.INVALID_PARTITIONS)
  }))

  test('ListOffsets, DeleteRecords and OffsetForLeaderEpoch', () => withCluster(async cluster => {
    const topic = uniq('offsets')
    await createTopic(topic)
    await produce(Array.from({ length: 5 }, (_, i) => ({ topic, partition: 0, value: `v${i}`, timestamp: 1000n + BigInt(i) })))
    assert.equal((await listOffset(cluster, topic, EARLIEST_TIMESTAMP)).offset, 0n)
    assert.equal((await listOffset(cluster, topic, LATEST_TIMESTAMP)).offset, 5n)
    const max = await listOffset(cluster, topic, MAX_TIMESTAMP)
    assert.deepEqual([max.offset, max.timestamp], [4n, 1004n])
    assert.equal((await listOffset(cluster, topic, 1002n)).offset, 2n)
    const del = offset => request(cluster, API.DELETE_RECORDS, { topics: [{ name: topic, partitions: [{ partitionIndex: 0, offset }] }], timeoutMs: REQUEST_TIMEOUT_MS })
    const deleted = (await del(3n)).topics[0].partitions[0]
    assert.deepEqual([deleted.errorCode, deleted.lowWatermark], [ERROR.NONE, 3n])
    assert.equal((await listOffset(cluster, topic, EARLIEST_TIMESTAMP)).offset, 3n)
    assert.equal((await del(9n)).topics[0].partitions[0].errorCode, ERROR.OFFSET_OUT_OF_RANGE)
    // -1 means "up to the high watermark" (Kafka's DeleteRecordsRequest.HIGH_WATERMARK).
    assert.equal((await del(-1n)).topics[0].partitions[0].lowWatermark, 5n)
    const noPartition = await request(cluster, API.LIST_OFFSETS, {
      replicaId: -1, isolationLevel: 0, timeoutMs: REQUEST_TIMEOUT_MS,
      topics: [{ name: topic, partitions: [{ partitionIndex: 5, currentLeaderEpoch: -1, timestamp: LATEST_TIMESTAMP }] }],
    })
    assert.equal(noPartition.topics[0].partitions[0].errorCode, ERROR.UNKNOWN_TOPIC_OR_PARTITION)
    const epoch = (await metadataOf(cluster, topic)).topics[0].partitions[0].leaderEpoch
    const end = await request(cluster, API.OFFSET_FOR_LEADER_EPOCH, {
      replicaId: -1, topics: [{ topic, partitions: [{ partition: 0, currentLeaderEpoch: -1, leaderEpoch: epoch }] }],
    })
    assert.deepEqual([end.topics[0].partitions[0].errorCode, end.topics[0].partitions[0].endOffset], [ERROR.NONE, 5n])
  }))

  test('Fetch at the negotiated version (17: topic ids); unknown topic id', () => withCluster(async cluster => {
    const topic = uniq('fetch')
    await createTopic(topic)
    await produce([{ topic, partition: 0, key: 'k', value: 'fetched' }])
    const topicId = (await metadataOf(cluster, topic)).topics[0].topicId
    const fetch = (id, partition = {}) => request(cluster, API.FETCH, {
      maxWaitMs: 100, minBytes: 1, maxBytes: 1 << 20, isolationLevel: 0, sessionId: 0, sessionEpoch: -1, rackId: '', forgottenTopicsData: [],
      topics: [{ topicId: id, topicName: topic, partitions: [{ partition: 0, currentLeaderEpoch: -1, fetchOffset: 0n, lastFetchedEpoch: -1, logStartOffset: -1n, partitionMaxBytes: 1 << 20, ...partition }] }],
    })
    const response = await fetch(topicId)
    const [partition] = response.responses[0].partitions
    assert.deepEqual([partition.errorCode, partition.highWatermark], [ERROR.NONE, 1n])
    assert.equal(partition.records[0].records[0].value, 'fetched')
    const unknown = await fetch('0a1b2c3d000040008000000000000001')
    assert.equal(unknown.responses[0].partitions[0].errorCode, ERROR.UNKNOWN_TOPIC_ID)
    const outOfRange = await fetch(topicId, { fetchOffset: 99n })
    assert.equal(outOfRange.responses[0].partitions[0].errorCode, ERROR.OFFSET_OUT_OF_RANGE)
    const noPartition = await fetch(topicId, { partition: 5 })
    assert.equal(noPartition.responses[0].partitions[0].errorCode, ERROR.UNKNOWN_TOPIC_OR_PARTITION)
    // An incremental fetch in a session the broker does not hold (Kafka's FetchSessionCache).
    const noSession = await request(cluster, API.FETCH, {
      maxWaitMs: 10, minBytes: 1, maxBytes: 1 << 20, isolationLevel: 0, sessionId: 123, sessionEpoch: 1, rackId: '', forgottenTopicsData: [], topics: [],
    })
    assert.equal(noSession.errorCode, ERROR.FETCH_SESSION_ID_NOT_FOUND)
  }))
})

await import('./kafkats_api_groups.mjs')
