// kafka-ts's low-level API against Runnel, continued: group offsets and group admin, cluster
// and log-dir descriptions, producer and transaction state, ACLs, quotas, SCRAM and
// reassignments — each at the version kafka-ts negotiates, each checked against the error codes
// Kafka 4.0 gives on a single-broker cluster. Imported by kafkats_api.mjs.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { API } from 'kafka-ts'
import { ERROR, REQUEST_TIMEOUT_MS, createTopic, produce, request, uniq, withCluster } from './kafkats_helpers.mjs'

// AclBindingFilter "any" values (ResourceType/PatternType/AclOperation/AclPermissionType ANY).
const ACL_ANY = 1
const ACL_PATTERN_ANY = 1
const GROUP_KEY_TYPE = 0
const SCRAM_SHA_256 = 1

/** Commits `offset` for partition 0 of `topic` as a group with no members (generation -1). */
function commit (cluster, groupId, topic, offset) {
  return request(cluster, API.OFFSET_COMMIT, {
    groupId, generationIdOrMemberEpoch: -1, memberId: '', groupInstanceId: null,
    topics: [{ name: topic, topicId: '0'.repeat(32), partitions: [{ partitionIndex: 0, committedOffset: offset, committedLeaderEpoch: -1, committedMetadata: 'meta' }] }],
  })
}

function offsetFetch (cluster, groupId, topic) {
  return request(cluster, API.OFFSET_FETCH, {
    groups: [{ groupId, topics: [{ name: topic, topicId: '0'.repeat(32), partitionIndexes: [0] }] }], requireStable: true,
  })
}

const brokerId = async cluster => (await request(cluster, API.DESCRIBE_CLUSTER, { includeClusterAuthorizedOperations: false })).brokers[0].brokerId

describe('low-level API: groups and cluster', { concurrency: true }, () => {
  test('OffsetCommit, OffsetFetch, FindCoordinator, DescribeGroups, ListGroups, OffsetDelete, DeleteGroups', () => withCluster(async cluster => {
    const topic = uniq('goffsets')
    const groupId = uniq('goffsets-group')
    await createTopic(topic)
    await produce([{ topic, partition: 0, value: 'a' }, { topic, partition: 0, value: 'b' }])
    const coordinator = (await request(cluster, API.FIND_COORDINATOR, { keyType: GROUP_KEY_TYPE, keys: [groupId] })).coordinators[0]
    assert.deepEqual([coordinator.key, coordinator.errorCode, coordinator.nodeId], [groupId, ERROR.NONE, await brokerId(cluster)])
    assert.equal((await commit(cluster, groupId, topic, 2n)).topics[0].partitions[0].errorCode, ERROR.NONE)
    const fetched = (await offsetFetch(cluster, groupId, topic)).groups[0]
    assert.equal(fetched.errorCode, ERROR.NONE)
    const [p] = fetched.topics[0].partitions
    assert.deepEqual([p.errorCode, p.committedOffset, p.committedMetadata], [ERROR.NONE, 2n, 'meta'])
    const described = (await request(cluster, API.DESCRIBE_GROUPS, { groups: [groupId], includeAuthorizedOperations: false })).groups[0]
    assert.deepEqual([described.errorCode, described.groupState, described.members.length], [ERROR.NONE, 'Empty', 0])
    const listed = await request(cluster, API.LIST_GROUPS, { statesFilter: ['Empty'], typesFilter: [] })
    assert.equal(listed.errorCode, ERROR.NONE)
    assert.ok(listed.groups.some(g => g.groupId === groupId && g.groupState === 'Empty'), 'group not listed as Empty')
    const offsetDelete = await request(cluster, API.OFFSET_DELETE, { groupId, topics: [{ name: topic, partitions: [{ partitionIndex: 0 }] }] })
    assert.deepEqual([offsetDelete.errorCode, offsetDelete.topics[0].partitions[0].errorCode], [ERROR.NONE, ERROR.NONE])
    assert.equal((await offsetFetch(cluster, groupId, topic)).groups[0].topics[0].partitions[0].committedOffset, -1n)
    const unknownDelete = await request(cluster, API.OFFSET_DELETE, { groupId: uniq('no-group'), topics: [{ name: topic, partitions: [{ partitionIndex: 0 }] }] })
    assert.equal(unknownDelete.errorCode, ERROR.GROUP_ID_NOT_FOUND)
    const unknownGroup = uniq('no-group')
    const neverCommitted = (await offsetFetch(cluster, unknownGroup, topic)).groups[0]
    assert.deepEqual([neverCommitted.errorCode, neverCommitted.topics[0].partitions[0].committedOffset], [ERROR.NONE, -1n])
    // DescribeGroups below v6 reports an unknown group as Dead with no error (v6+: ERROR.GROUP_ID_NOT_FOUND).
    const dead = (await request(cluster, API.DESCRIBE_GROUPS, { groups: [unknownGroup], includeAuthorizedOperations: false })).groups[0]
    assert.deepEqual([dead.errorCode, dead.groupState], [ERROR.NONE, 'Dead'])
    assert.equal((await commit(cluster, groupId, uniq('no-such-topic'), 1n)).topics[0].partitions[0].errorCode, ERROR.UNKNOWN_TOPIC_OR_PARTITION)
    const deleteGroup = () => request(cluster, API.DELETE_GROUPS, { groupsNames: [groupId] })
    assert.equal((await deleteGroup()).results[0].errorCode, ERROR.NONE)
    assert.equal((await deleteGroup()).results[0].errorCode, ERROR.GROUP_ID_NOT_FOUND)
  }))

  test('DescribeCluster, DescribeLogDirs and AlterReplicaLogDirs', () => withCluster(async cluster => {
    const topic = uniq('logdirs')
    await createTopic(topic)
    await produce([{ topic, partition: 0, value: 'x'.repeat(100) }])
    const described = await request(cluster, API.DESCRIBE_CLUSTER, { includeClusterAuthorizedOperations: false })
    assert.equal(described.errorCode, ERROR.NONE)
    assert.ok(described.clusterId.length > 0)
    assert.equal(described.brokers.length, 1)
    assert.equal(described.controllerId, described.brokers[0].brokerId)
    // Kafka's AuthHelper.computeDescribeClusterResponse on a broker listener: controllers (2)
    // are the wrong endpoint type here, 3 is no endpoint type at all.
    for (const [endpointType, errorCode] of [[2, ERROR.MISMATCHED_ENDPOINT_TYPE], [3, ERROR.UNSUPPORTED_ENDPOINT_TYPE]]) {
      const wrong = await request(cluster, API.DESCRIBE_CLUSTER, { includeClusterAuthorizedOperations: false, endpointType })
      assert.deepEqual([wrong.errorCode, wrong.brokers], [errorCode, []], `endpoint type ${endpointType}`)
    }
    const dirs = await request(cluster, API.DESCRIBE_LOG_DIRS, { topics: [{ topic, partitions: [0] }] })
    assert.equal(dirs.errorCode, ERROR.NONE)
    assert.equal(dirs.results.length, 1)
    const [dir] = dirs.results
    assert.equal(dir.errorCode, ERROR.NONE)
    const [partition] = dir.topics.find(t => t.name === topic).partitions
    assert.ok(partition.partitionSize >= 100n, `partition size ${partition.partitionSize}`)
    const alter = path => request(cluster, API.ALTER_REPLICA_LOG_DIRS, { dirs: [{ path, topics: [{ name: topic, partitions: [0] }] }] })
    assert.equal((await alter(dir.logDir)).results[0].partitions[0].errorCode, ERROR.NONE)
    assert.equal((await alter('/no/such/log/dir')).results[0].partitions[0].errorCode, ERROR.LOG_DIR_NOT_FOUND)
  }))

  test('DescribeTopicPartitions pages with a cursor; unknown topic', () => withCluster(async cluster => {
    const topic = uniq('dtp')
    await createTopic(topic, 3)
    const describe = (topics, cursor = null) => request(cluster, API.DESCRIBE_TOPIC_PARTITIONS, { topics, responsePartitionLimit: 2, cursor })
    const first = await describe([{ name: topic }])
    assert.deepEqual(first.topics[0].partitions.map(p => [p.partitionIndex, p.errorCode]), [[0, ERROR.NONE], [1, ERROR.NONE]])
    assert.deepEqual(first.nextCursor, { topicName: topic, partitionIndex: 2, tags: first.nextCursor?.tags })
    const second = await describe([{ name: topic }], { topicName: topic, partitionIndex: 2 })
    assert.deepEqual(second.topics[0].partitions.map(p => p.partitionIndex), [2])
    assert.equal(second.nextCursor, null)
    const unknown = await describe([{ name: uniq('no-such-topic') }])
    assert.equal(unknown.topics[0].errorCode, ERROR.UNKNOWN_TOPIC_OR_PARTITION)
  }))

  test('DescribeProducers shows the idempotent producer; InitProducerId hands out ids', () => withCluster(async cluster => {
    const topic = uniq('producers')
    await createTopic(topic)
    await produce([0, 1, 2].map(i => ({ topic, partition: 0, value: `p${i}` })))
    const described = await request(cluster, API.DESCRIBE_PRODUCERS, { topics: [{ name: topic, partitionIndexes: [0, 7] }] })
    const [p0, p7] = described.topics[0].partitions
    assert.equal(p0.errorCode, ERROR.NONE)
    assert.equal(p0.activeProducers.length, 1)
    assert.deepEqual([p0.activeProducers[0].lastSequence, p0.activeProducers[0].currentTxnStartOffset], [2, -1n])
    assert.equal(p7.errorCode, ERROR.UNKNOWN_TOPIC_OR_PARTITION)
    const init = await request(cluster, API.INIT_PRODUCER_ID, { transactionalId: null, transactionTimeoutMs: 60000, producerId: -1n, producerEpoch: -1 })
    assert.equal(init.errorCode, ERROR.NONE)
    assert.ok(init.producerId >= 0n && init.producerId !== p0.activeProducers[0].producerId, `producer id ${init.producerId}`)
    assert.equal(init.producerEpoch, 0)
  }))

  test('DescribeTransactions and ListTransactions with no transactions', () => withCluster(async cluster => {
    const described = await request(cluster, API.DESCRIBE_TRANSACTIONS, { transactionalIds: ['kts-no-such-txn'] })
    assert.equal(described.transactionStates[0].errorCode, ERROR.TRANSACTIONAL_ID_NOT_FOUND)
    const listed = await request(cluster, API.LIST_TRANSACTIONS, { stateFilters: [], producerIdFilters: [], durationFilter: -1n })
    assert.deepEqual([listed.errorCode, listed.transactionStates], [ERROR.NONE, []])
  }))

  test('ElectLeaders, ListPartitionReassignments and AlterPartitionReassignments on one broker', () => withCluster(async cluster => {
    const topic = uniq('elect')
    await createTopic(topic)
    const id = await brokerId(cluster)
    const elect = await request(cluster, API.ELECT_LEADERS, { electionType: 0, topicPartitions: [{ topic, partitions: [0] }], timeoutMs: REQUEST_TIMEOUT_MS })
    assert.equal(elect.errorCode, ERROR.NONE)
    assert.equal(elect.replicaElectionResults[0].partitionResult[0].errorCode, ERROR.ELECTION_NOT_NEEDED)
    const listed = await request(cluster, API.LIST_PARTITION_REASSIGNMENTS, { timeoutMs: REQUEST_TIMEOUT_MS, topics: null })
    assert.deepEqual([listed.errorCode, listed.topics], [ERROR.NONE, []])
    const reassign = replicas => request(cluster, API.ALTER_PARTITION_REASSIGNMENTS, {
      timeoutMs: REQUEST_TIMEOUT_MS, allowReplicationFactorChange: true, topics: [{ name: topic, partitions: [{ partitionIndex: 0, replicas }] }],
    })
    const partitionError = response => [response.errorCode, response.responses[0].partitions[0].errorCode]
    assert.deepEqual(partitionError(await reassign([id])), [ERROR.NONE, ERROR.NONE])
    assert.deepEqual(partitionError(await reassign([id + 1])), [ERROR.NONE, ERROR.INVALID_REPLICA_ASSIGNMENT])
    assert.deepEqual(partitionError(await reassign(null)), [ERROR.NONE, ERROR.NO_REASSIGNMENT_IN_PROGRESS])
  }))

  test('ACL APIs answer ERROR.SECURITY_DISABLED (no authorizer configured)', () => withCluster(async cluster => {
    const filter = { resourceTypeFilter: ACL_ANY, resourceNameFilter: null, patternTypeFilter: ACL_PATTERN_ANY, principalFilter: null, hostFilter: null, operation: ACL_ANY, permissionType: ACL_ANY }
    assert.equal((await request(cluster, API.DESCRIBE_ACLS, filter)).errorCode, ERROR.SECURITY_DISABLED)
    const created = await request(cluster, API.CREATE_ACLS, {
      creations: [{ resourceType: 2, resourceName: 'kts-acl', resourcePatternType: 3, principal: 'User:kts', host: '*', operation: 2, permissionType: 3 }],
    })
    assert.equal(created.results[0].errorCode, ERROR.SECURITY_DISABLED)
    assert.equal((await request(cluster, API.DELETE_ACLS, { filters: [filter] })).filterResults[0].errorCode, ERROR.SECURITY_DISABLED)
  }))

  test('client quotas and SCRAM credentials: describe empty, alter refused, delete unknown', () => withCluster(async cluster => {
    const quotas = await request(cluster, API.DESCRIBE_CLIENT_QUOTAS, { components: [], strict: false })
    assert.deepEqual([quotas.errorCode, quotas.entries], [ERROR.NONE, []])
    const altered = await request(cluster, API.ALTER_CLIENT_QUOTAS, {
      entries: [{ entity: [{ entityType: 'client-id', entityName: 'kts-quota' }], ops: [{ key: 'producer_byte_rate', value: 1024, remove: false }] }], validateOnly: true,
    })
    // Kafka 4.0 would accept this (ERROR.NONE). Runnel enforces no quotas and by design refuses to
    // record one (broker/src/api/alter_client_quotas.rs), with ERROR.INVALID_REQUEST.
    assert.equal(altered.entries[0].errorCode, ERROR.INVALID_REQUEST)
    const scram = await request(cluster, API.DESCRIBE_USER_SCRAM_CREDENTIALS, { users: null })
    assert.deepEqual([scram.errorCode, scram.results], [ERROR.NONE, []])
    const deleted = await request(cluster, API.ALTER_USER_SCRAM_CREDENTIALS, { deletions: [{ name: 'kts-nobody', mechanism: SCRAM_SHA_256 }], upsertions: [] })
    assert.equal(deleted.results[0].errorCode, ERROR.RESOURCE_NOT_FOUND)
  }))

  test('DeleteTopics by name; again, and by unknown topic id', () => withCluster(async cluster => {
    const topic = uniq('delete')
    await createTopic(topic)
    const del = topics => request(cluster, API.DELETE_TOPICS, { topics, timeoutMs: REQUEST_TIMEOUT_MS })
    assert.equal((await del([{ name: topic, topicId: null }])).responses[0].errorCode, ERROR.NONE)
    assert.equal((await del([{ name: topic, topicId: null }])).responses[0].errorCode, ERROR.UNKNOWN_TOPIC_OR_PARTITION)
    assert.equal((await del([{ name: null, topicId: '0a1b2c3d000040008000000000000002' }])).responses[0].errorCode, ERROR.UNKNOWN_TOPIC_ID)
  }))
})
