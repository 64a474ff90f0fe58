// One KafkaJS consumer-group member in its own process, driven by
// tests/compat/groups/test_groups.py. Same stdout protocol as tests/compat/groups/member.py:
//
//   node group_member.js --bootstrap HOST:PORT --topic T --group G
//
// One JSON object per line: {"event":"assigned","partitions":[…]} after every rebalance,
// {"event":"consumed","batch":N,"records":[[p,offset,"value"],…]} before committing them,
// then {"event":"committed","batch":N} or {"event":"commit_failed",…}; {"event":"closed"}.
// KafkaJS's default assigner is round-robin; with 6 partitions and 3 members every member
// gets 2 whichever the assignor. SIGTERM disconnects (LeaveGroup) and exits 0.
'use strict'

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'
const { Kafka, logLevel } = require('kafkajs')

const SESSION_TIMEOUT_MS = 6000
const HEARTBEAT_INTERVAL_MS = 500
const REBALANCE_TIMEOUT_MS = 10000
// KafkaJS's disconnect waits for the in-flight long-poll Fetch before it sends LeaveGroup;
// its default wait (5 s) would be most of a measured "clean leave" time.
const FETCH_MAX_WAIT_MS = 500
const RUN_TIME_MAX_MS = 300000 // a forgotten member ends by itself

function arg (name) {
  const at = process.argv.indexOf(`--${name}`)
  if (at < 0 || at + 1 >= process.argv.length) throw new Error(`missing --${name}`)
  return process.argv[at + 1]
}

function emit (event) { process.stdout.write(JSON.stringify(event) + '\n') }

async function main () {
  const topic = arg('topic')
  const kafka = new Kafka({ clientId: 'runnel-compat-member', brokers: [arg('bootstrap')], logLevel: logLevel.NOTHING })
  const consumer = kafka.consumer({
    groupId: arg('group'),
    sessionTimeout: SESSION_TIMEOUT_MS,
    heartbeatInterval: HEARTBEAT_INTERVAL_MS,
    rebalanceTimeout: REBALANCE_TIMEOUT_MS,
    maxWaitTimeInMs: FETCH_MAX_WAIT_MS,
  })
  consumer.on(consumer.events.GROUP_JOIN, e => {
    emit({ event: 'assigned', partitions: (e.payload.memberAssignment[topic] || []).slice().sort((a, b) => a - b) })
  })
  let stopping = false
  const stop = async () => {
    if (stopping) return
    stopping = true
    await consumer.disconnect()
    emit({ event: 'closed' })
    process.exit(0)
  }
  process.on('SIGTERM', stop)
  setTimeout(stop, RUN_TIME_MAX_MS).unref()
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  let batchNo = 0
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    eachBatch: async ({ batch, resolveOffset }) => {
      if (stopping || batch.messages.length === 0) return
      const n = ++batchNo
      emit({ event: 'consumed', batch: n, records: batch.messages.map(m => [batch.partition, Number(m.offset), m.value.toString()]) })
      const last = batch.messages[batch.messages.length - 1]
      try {
        await consumer.commitOffsets([{ topic, partition: batch.partition, offset: String(Number(last.offset) + 1) }])
        emit({ event: 'committed', batch: n })
      } catch (err) {
        emit({ event: 'commit_failed', batch: n, error: String(err) })
      }
      resolveOffset(last.offset)
    },
  })
}

main().catch(err => { emit({ event: 'error', error: String(err) }); process.exit(1) })
