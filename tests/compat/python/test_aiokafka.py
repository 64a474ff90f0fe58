"""aiokafka (asyncio client with its own protocol and group code) against a live Runnel broker.

Run by tests/compat/run_compat.py with RUNNEL_BOOTSTRAP pointing at a fresh broker. The tests
run in file order and share one topic: create, produce with every codec, consume back,
offsets by time, end offsets, groups, admin, delete. A second small topic takes the appends
(acks, batches, idempotence) so the first one's offsets stay exact. A step whose input is
missing skips with the reason. Each test is synchronous and drives its client with
`asyncio.run`, bounded by a timeout.
"""

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic, RecordsToDelete
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import (
    InvalidPartitionsError,
    InvalidReplicationFactorError,
    InvalidTopicError,
    KafkaConnectionError,
    KafkaError,
    TopicAlreadyExistsError,
    TransactionalIdAuthorizationFailed,
    for_code,
)
from aiokafka.partitioner import murmur2

import compat_common as cc

# Bounds on every wait, so a broken broker fails the suite fast instead of hanging it.
CLIENT_TIMEOUTS = {"request_timeout_ms": 10_000, "retry_backoff_ms": 100}
# Group timings short enough for the suite's time budget (the broker allows 6 s and more).
GROUP_TIMINGS = {"session_timeout_ms": 6_000, "heartbeat_interval_ms": 500, "rebalance_timeout_ms": 10_000}
TEST_TIMEOUT_S = 45.0
# aiokafka's name for "no compression" is None.
CODEC_SETTING = {"none": None, "gzip": "gzip", "snappy": "snappy", "lz4": "lz4", "zstd": "zstd"}
# Records each append test writes to the side topic.
SIDE_MESSAGES = 10


class State:
    """What the ordered tests hand each other."""

    topic = cc.unique_topic("aiokafka")
    side_topic = cc.unique_topic("aiokafka-side")
    group = cc.unique_topic("aiokafka-group")
    base_ts_ms = cc.base_timestamp_ms()
    created = False
    sent = {}  # codec -> [Message]
    consumed = None  # [Consumed], filled once
    group_committed = None  # {partition: offset} the group test committed


def run(coro):
    """Runs one test's coroutine; a hang fails the test instead of the whole suite."""
    return asyncio.run(asyncio.wait_for(coro, TEST_TIMEOUT_S))


def all_sent():
    return [m for codec in cc.CODECS for m in State.sent.get(codec, [])]


def partitions(topic=None):
    return [TopicPartition(topic or State.topic, p) for p in range(cc.PARTITIONS)]


def require_created():
    if not State.created:
        pytest.skip("topic creation failed (see test_create_topic)")


def require_all_sent():
    require_created()
    missing = [c for c in cc.CODECS if c not in State.sent]
    if missing:
        pytest.skip(f"produce failed for {missing}: offsets would be ambiguous")


class Started:
    """`async with Started(client)`: start() on entry, stop()/close() on exit."""

    def __init__(self, client):
        self.client = client

    async def __aenter__(self):
        await self.client.start()
        return self.client

    async def __aexit__(self, *exc):
        if isinstance(self.client, AIOKafkaAdminClient):
            await self.client.close()
        else:
            await self.client.stop()


def admin():
    return Started(AIOKafkaAdminClient(bootstrap_servers=cc.bootstrap(), **CLIENT_TIMEOUTS))


def producer(**config):
    return Started(AIOKafkaProducer(bootstrap_servers=cc.bootstrap(), **CLIENT_TIMEOUTS, **config))


def plain_consumer():
    """A consumer with no group: manual assignment only, nothing is ever committed."""
    return Started(AIOKafkaConsumer(bootstrap_servers=cc.bootstrap(), group_id=None, enable_auto_commit=False,
                                    auto_offset_reset="earliest", **CLIENT_TIMEOUTS))


def group_consumer(group, listener=None, **config):
    consumer = AIOKafkaConsumer(bootstrap_servers=cc.bootstrap(), group_id=group, enable_auto_commit=False,
                                auto_offset_reset="earliest", **CLIENT_TIMEOUTS, **GROUP_TIMINGS, **config)
    consumer.subscribe([State.topic], listener=listener)
    return Started(consumer)


def topic_error_classes(response):
    """CreateTopics' per-topic outcome: name -> error class (None when created)."""
    return {name: (for_code(code) if code else None) for name, code, *_ in response.topic_errors}


# --- admin: create -------------------------------------------------------------------------

def test_create_topic():
    async def main():
        async with admin() as client:
            response = await client.create_topics(
                [NewTopic(State.topic, cc.PARTITIONS, 1), NewTopic(State.side_topic, 1, 1)])
            assert topic_error_classes(response) == {State.topic: None, State.side_topic: None}
            (described,) = await client.describe_topics([State.topic])
            assert described["error_code"] == 0
            assert sorted(p["partition"] for p in described["partitions"]) == list(range(cc.PARTITIONS))
            assert State.topic in await client.list_topics()

    run(main())
    State.created = True


def test_create_existing_or_invalid_topic_fails():
    require_created()

    async def main():
        async with admin() as client:
            response = await client.create_topics([
                NewTopic(State.topic, cc.PARTITIONS, 1),
                NewTopic("not a valid name!", 1, 1),
                NewTopic(State.topic + "-zero", 0, 1),
                NewTopic(State.topic + "-rf3", 1, 3),
            ])
            assert topic_error_classes(response) == {
                State.topic: TopicAlreadyExistsError,
                "not a valid name!": InvalidTopicError,
                State.topic + "-zero": InvalidPartitionsError,
                State.topic + "-rf3": InvalidReplicationFactorError,
            }

    run(main())


# --- produce --------------------------------------------------------------------------------

@pytest.mark.parametrize("codec", cc.CODECS)
def test_produce(codec):
    require_created()
    messages = cc.make_messages(codec, State.base_ts_ms)

    async def main():
        # Let several records share a batch so compression covers more than one record.
        async with producer(acks="all", compression_type=CODEC_SETTING[codec], linger_ms=20) as p:
            futures = [await p.send(State.topic, key=m.key, value=m.value, headers=m.headers,
                                    timestamp_ms=m.timestamp_ms) for m in messages]
            for m, future in zip(messages, futures):
                meta = await future
                m.partition, m.offset = meta.partition, meta.offset

    run(main())
    State.sent[codec] = messages


def test_partitioner_is_the_clients():
    """aiokafka's default partitioner is the Java client's: murmur2 of the key, positive,
    modulo the partition count. The broker must keep the partition the client picked."""
    require_all_sent()
    sent = all_sent()
    assert cc.key_partition_problems(sent) == []
    for m in sent:
        assert m.partition == (murmur2(m.key) & 0x7FFFFFFF) % cc.PARTITIONS, m


def test_acknowledged_offsets_are_dense():
    require_all_sent()
    assert cc.offset_problems(all_sent()) == []


# --- consume by assignment ------------------------------------------------------------------

def consume_all():
    """Read every partition from the beginning by manual assignment (no group, no commits)."""
    if State.consumed is not None:
        return State.consumed
    want = len(all_sent())
    got = []

    async def main():
        async with plain_consumer() as consumer:
            consumer.assign(partitions())
            await consumer.seek_to_beginning()
            deadline = time.monotonic() + cc.CONSUME_TIMEOUT_S
            while len(got) < want and time.monotonic() < deadline:
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    for r in records:
                        got.append(cc.Consumed(r.partition, r.offset, r.key, r.value, r.headers, r.timestamp))

    run(main())
    State.consumed = got
    return got


@pytest.mark.parametrize("codec", cc.CODECS)
def test_consume_roundtrip(codec):
    if codec not in State.sent:
        pytest.skip(f"produce with {codec} failed")
    consumed = [c for c in consume_all() if cc.ident_of(c.key, c.value)[0] == codec]
    problems = cc.compare(State.sent[codec], consumed)
    assert problems == [], "\n".join(problems[:20])


def test_consume_nothing_extra():
    require_all_sent()
    assert len(consume_all()) == len(all_sent())


def test_offsets_for_times():
    require_all_sent()
    sent = all_sent()

    async def main():
        async with plain_consumer() as consumer:
            for label, target in cc.timestamp_targets(sent, State.base_ts_ms).items():
                answer = await consumer.offsets_for_times({tp: target for tp in partitions()})
                for tp in partitions():
                    want = cc.expected_offset_for_time(sent, tp.partition, target)
                    got = answer.get(tp)
                    got = None if got is None else (got.offset, got.timestamp)
                    assert got == want, f"{label} (ts {target}) p{tp.partition}"

    run(main())


def test_beginning_and_end_offsets():
    require_all_sent()
    ends = cc.end_offsets(all_sent())

    async def main():
        async with plain_consumer() as consumer:
            return await consumer.beginning_offsets(partitions()), await consumer.end_offsets(partitions())

    begin, end = run(main())
    assert {tp.partition: o for tp, o in begin.items()} == {p: 0 for p in range(cc.PARTITIONS)}
    assert {tp.partition: o for tp, o in end.items()} == ends


def test_seek_and_position():
    """seek to an offset inside a compressed batch, seek_to_end, seek_to_beginning: the
    position follows, and the next record read is the one sought."""
    require_all_sent()
    ends = cc.end_offsets(all_sent())
    p = max(ends, key=ends.get)
    tp = TopicPartition(State.topic, p)
    middle = ends[p] // 2

    async def main():
        async with plain_consumer() as consumer:
            consumer.assign([tp])
            consumer.seek(tp, middle)
            assert await consumer.position(tp) == middle
            records = (await consumer.getmany(tp, timeout_ms=5000, max_records=1)).get(tp, [])
            assert [r.offset for r in records] == [middle]
            await consumer.seek_to_end(tp)
            assert await consumer.position(tp) == ends[p]
            assert consumer.highwater(tp) in (None, ends[p])
            await consumer.seek_to_beginning(tp)
            assert await consumer.position(tp) == 0

    run(main())


# --- appends to the side topic: acks, batches, idempotence ---------------------------------

def side_end_offset():
    async def main():
        async with plain_consumer() as consumer:
            tp = TopicPartition(State.side_topic, 0)
            return (await consumer.end_offsets([tp]))[tp]

    return run(main())


@pytest.mark.parametrize("acks", [0, 1, "all"])
def test_acks(acks):
    """Every acks setting stores every record once; acks=0 gets no offsets back."""
    require_created()
    before = side_end_offset()

    async def main():
        async with producer(acks=acks) as p:
            return [await p.send_and_wait(State.side_topic, value=f"acks {acks} {i}".encode(), partition=0)
                    for i in range(SIDE_MESSAGES)]

    metadata = run(main())
    if acks == 0:
        # aiokafka resolves an acks=0 send with None: there is no answer to read one from.
        assert metadata == [None] * SIDE_MESSAGES, metadata
        # Nothing tells an acks=0 producer when the broker appended: wait for the end offset.
        assert cc.wait_until(lambda: side_end_offset() == before + SIDE_MESSAGES), side_end_offset()
    else:
        assert [m.offset for m in metadata] == list(range(before, before + SIDE_MESSAGES))
        assert side_end_offset() == before + SIDE_MESSAGES


def test_send_batch():
    """create_batch/send_batch: one batch of records with headers, acknowledged with its base
    offset, read back record by record."""
    require_created()
    tp = TopicPartition(State.side_topic, 0)
    ts_ms = cc.base_timestamp_ms()

    async def main():
        async with producer(acks="all", compression_type="zstd") as p:
            batch = p.create_batch()
            for i in range(SIDE_MESSAGES):
                assert batch.append(key=b"batch", value=str(i).encode(), timestamp=ts_ms + i,
                                    headers=[("i", str(i).encode())]) is not None
            meta = await (await p.send_batch(batch, State.side_topic, partition=0))
        async with plain_consumer() as consumer:
            consumer.assign([tp])
            consumer.seek(tp, meta.offset)
            got = []
            deadline = time.monotonic() + cc.OPERATION_TIMEOUT_S
            while len(got) < SIDE_MESSAGES and time.monotonic() < deadline:
                got += (await consumer.getmany(tp, timeout_ms=1000)).get(tp, [])
        return meta, got

    meta, got = run(main())
    assert meta.partition == 0
    assert [r.offset for r in got] == list(range(meta.offset, meta.offset + SIDE_MESSAGES))
    assert [(r.key, r.value, r.timestamp, list(r.headers)) for r in got] == [
        (b"batch", str(i).encode(), ts_ms + i, [("i", str(i).encode())]) for i in range(SIDE_MESSAGES)]


def test_idempotent_producer():
    """enable_idempotence=True (InitProducerId, sequences): offsets dense, each record once."""
    require_created()

    async def main():
        async with producer(enable_idempotence=True, linger_ms=5) as p:
            futures = [await p.send(State.side_topic, key=b"idempotent", value=str(i).encode())
                       for i in range(cc.IDEMPOTENT_MESSAGES)]
            return [await f for f in futures]

    metadata = run(main())
    assert len({m.partition for m in metadata}) == 1
    cc.assert_dense([m.offset for m in metadata])


# --- consumer groups ------------------------------------------------------------------------

class Recorder(ConsumerRebalanceListener):
    """Every assign and revoke the group coordinator hands this member, in order."""

    def __init__(self):
        self.events = []

    async def on_partitions_revoked(self, revoked):
        # aiokafka calls this before every join, the first too (with nothing to revoke).
        if revoked:
            self.events.append(("revoked", sorted(tp.partition for tp in revoked)))

    async def on_partitions_assigned(self, assigned):
        self.events.append(("assigned", sorted(tp.partition for tp in assigned)))


async def poll_until(consumers, predicate, got=None):
    """getmany on every consumer (each must poll to take part in a rebalance) until
    `predicate()` (a function or a coroutine function) holds; the records read are added to
    `got` by partition."""
    async def holds():
        result = predicate()
        return (await result) if asyncio.iscoroutine(result) else result

    deadline = time.monotonic() + cc.CONSUME_TIMEOUT_S
    while not await holds() and time.monotonic() < deadline:
        for consumer in consumers:
            for tp, records in (await consumer.getmany(timeout_ms=200)).items():
                if got is not None:
                    got.setdefault(tp.partition, []).extend(r.offset for r in records)
    return await holds()


def owned(consumer):
    return sorted(tp.partition for tp in consumer.assignment())


def test_group_members_share_partitions_and_commit():
    """Two members of one group split the partitions (a rebalance: the first gives some up),
    read every record between them (a partition that moved is read again from the start:
    nothing was committed yet), commit, and the one left takes all partitions when the
    other leaves on stop."""
    require_all_sent()
    ends = cc.end_offsets(all_sent())
    first_events, second_events = Recorder(), Recorder()

    async def main():
        got = {}
        async with group_consumer(State.group, first_events) as first:
            assert await poll_until([first], lambda: owned(first) == list(range(cc.PARTITIONS)), got)
            async with group_consumer(State.group, second_events) as second:
                def split():
                    a, b = owned(first), owned(second)
                    return a and b and sorted(a + b) == list(range(cc.PARTITIONS))

                assert await poll_until([first, second], split, got), (owned(first), owned(second))

                async def all_read():
                    """Each owner is at its partitions' ends (a partition that moved is read
                    again from the start: nothing was committed yet)."""
                    at_end = [await c.position(tp) == ends[tp.partition]
                              for c in (first, second) for tp in c.assignment()]
                    return all(at_end) and len(at_end) == cc.PARTITIONS

                assert await poll_until([first, second], all_read, got), got
                assert {p: sorted(set(got.get(p, []))) for p in ends} == {p: list(range(e)) for p, e in ends.items()}
                await first.commit()
                await second.commit()
            # `second` stopped: it left the group, so `first` gets every partition back.
            assert await poll_until([first], lambda: owned(first) == list(range(cc.PARTITIONS)))
            committed = {tp.partition: await first.committed(tp) for tp in partitions()}
        return got, committed

    got, committed = run(main())
    assert committed == ends
    assert first_events.events[0] == ("assigned", list(range(cc.PARTITIONS))), first_events.events
    assert ("revoked", list(range(cc.PARTITIONS))) in first_events.events, first_events.events
    # aiokafka's stop leaves the group without calling on_partitions_revoked.
    assert [kind for kind, _ in second_events.events] == ["assigned"], second_events.events
    assert first_events.events[-1] == ("assigned", list(range(cc.PARTITIONS))), first_events.events
    State.group_committed = committed


def test_new_member_resumes_from_committed_offsets():
    """A commit of chosen offsets, then a new member of the group starts reading there."""
    if State.group_committed is None:
        pytest.skip("the group test did not commit")
    resume_at = {p: end // 2 for p, end in State.group_committed.items()}

    async def main():
        async with group_consumer(State.group) as consumer:
            assert await poll_until([consumer], lambda: owned(consumer) == list(range(cc.PARTITIONS)))
            await consumer.commit({TopicPartition(State.topic, p): o for p, o in resume_at.items()})
        async with group_consumer(State.group) as consumer:
            got = {}
            assert await poll_until([consumer], lambda: owned(consumer) == list(range(cc.PARTITIONS)))
            for tp in partitions():
                assert await consumer.committed(tp) == resume_at[tp.partition]
            want = {p: State.group_committed[p] - o for p, o in resume_at.items()}
            assert await poll_until([consumer], lambda: {p: len(got.get(p, [])) for p in want} == want, got)
            return got

    got = run(main())
    for p, offsets in got.items():
        assert offsets[0] == resume_at[p], (p, offsets[:5])


def test_static_member_keeps_its_assignment_across_a_restart():
    """group_instance_id: a static member's stop sends no LeaveGroup, so the group keeps it
    (still Stable, the member listed with its instance id); started again with the same id
    before its session times out, it takes its old place without a rebalance (same
    generation, KIP-345) and gets the same partitions back."""
    require_all_sent()
    group = cc.unique_topic("aiokafka-static")

    async def one_run():
        async with group_consumer(group, group_instance_id="static-1") as consumer:
            assert await poll_until([consumer], lambda: owned(consumer) == list(range(cc.PARTITIONS)))
            return consumer._coordinator.generation, owned(consumer)

    async def describe():
        async with admin() as client:
            (described,) = await client.describe_consumer_groups([group])
            (described_group,) = described.groups
            return described_group

    async def main():
        first = await one_run()
        between = await describe()
        started = time.monotonic()
        second = await one_run()
        return first, between, second, time.monotonic() - started

    first, between, second, restart_s = run(main())
    error_code, _, state, _, _, members = between[:6]
    assert (error_code, state) == (0, "Stable"), between
    # aiokafka's DescribeGroups version predates the instance id (v4): one member it is,
    # from this host, written as Kafka writes it.
    (member,) = members
    assert member[2] == "/127.0.0.1", member
    assert second == first, (first, second)
    # A rejoin that waited for the old member's session to time out would take 6 s.
    assert restart_s < 5, restart_s


def test_pattern_subscription_follows_a_new_topic():
    """subscribe(pattern=...), as Faust-style apps use it: a topic created later that matches
    shows up in the metadata refresh, the member rejoins, gets its partition and reads it."""
    require_created()
    prefix = cc.unique_topic("aiokafka-pattern")
    first, later = f"{prefix}-a", f"{prefix}-b"

    async def main():
        async with admin() as client:
            response = await client.create_topics([NewTopic(first, 1, 1)])
            assert topic_error_classes(response) == {first: None}
            consumer = AIOKafkaConsumer(bootstrap_servers=cc.bootstrap(), group_id=f"{prefix}-group",
                                        enable_auto_commit=False, auto_offset_reset="earliest",
                                        metadata_max_age_ms=500, **CLIENT_TIMEOUTS, **GROUP_TIMINGS)
            consumer.subscribe(pattern=f"^{prefix}-.*")
            async with Started(consumer):
                assert await poll_until([consumer], lambda: consumer.assignment() == {TopicPartition(first, 0)})
                response = await client.create_topics([NewTopic(later, 1, 1)])
                assert topic_error_classes(response) == {later: None}
                async with producer(acks="all") as p:
                    await p.send_and_wait(later, b"for the pattern")
                got = {}
                both = {TopicPartition(first, 0), TopicPartition(later, 0)}
                assert await poll_until([consumer], lambda: consumer.assignment() == both and got, got), got
            await client.delete_topics([first, later])

    run(main())


def test_pattern_subscription_survives_a_deleted_topic():
    pytest.skip("not run: aiokafka 0.14.0 retries the revoke-time offset commit of a deleted "
                "topic's partitions for ever (UNKNOWN_TOPIC_OR_PARTITION is retriable to it; "
                "aiokafka issue 1095), so the member never rejoins; Kafka answers that commit "
                "with the same error")


# --- admin: groups, configs, partitions, records -------------------------------------------

def test_admin_groups():
    if State.group_committed is None:
        pytest.skip("the group test did not commit")

    async def main():
        async with admin() as client:
            listed = await client.list_consumer_groups()
            # One group: aiokafka misreads all but the first of several (see below).
            (described,) = await client.describe_consumer_groups([State.group])
            offsets = await client.list_consumer_group_offsets(State.group)
        return listed, described, offsets

    listed, described, offsets = run(main())
    assert (State.group, "consumer") in [tuple(g[:2]) for g in listed], listed
    (group,) = described.groups
    error_code, group_id, state = group[:3]
    assert (error_code, group_id, state) == (0, State.group, "Empty"), group
    resume_at = {p: end // 2 for p, end in State.group_committed.items()}
    assert {tp.partition: o.offset for tp, o in offsets.items() if tp.topic == State.topic} == resume_at


async def describe_two_groups():
    """DescribeGroups for the group the tests committed in and a group that never existed,
    in one request (aiokafka asks the highest version it knows, v3)."""
    async with admin() as client:
        (described,) = await client.describe_consumer_groups([State.group, "compat-aiokafka-no-such-group"])
    return {g[1]: (g[0], g[2], g[3]) for g in described.groups}


TWO_GROUPS_WANTED = {
    State.group: (0, "Empty", "consumer"),
    # Kafka's classic coordinator: an unknown group is Dead, without an error, before v6.
    "compat-aiokafka-no-such-group": (0, "Dead", ""),
}


def test_describe_two_groups_with_the_v3_schema(monkeypatch):
    """Runnel's DescribeGroups v3 answer for two groups, read with v3's own schema (see the
    next test for why aiokafka's must be replaced)."""
    from aiokafka.protocol import admin as protocol

    if State.group_committed is None:
        pytest.skip("the group test did not commit")
    monkeypatch.setattr(protocol.DescribeGroupsRequest_v3, "RESPONSE_TYPE", protocol.DescribeGroupsResponse_v3)
    assert run(describe_two_groups()) == TWO_GROUPS_WANTED


def test_describe_two_groups_as_aiokafka_reads_them():
    if State.group_committed is None:
        pytest.skip("the group test did not commit")
    try:
        got = run(describe_two_groups())
    except KafkaConnectionError as err:  # the misread answer ran past its end
        got = err
    if got != TWO_GROUPS_WANTED:
        pytest.skip("aiokafka 0.14.0 reads DescribeGroups v3 answers with the v2 schema "
                    "(DescribeGroupsRequest_v3.RESPONSE_TYPE), which lacks authorized_operations: "
                    f"every group after the first is misread ({got!r}); the v3 schema reads them right")


def test_describe_and_alter_configs():
    require_created()
    resource = ConfigResource(ConfigResourceType.TOPIC, State.side_topic)

    async def describe(client):
        (response,) = await client.describe_configs([resource])
        (result,) = response.resources
        error_code, _, _, _, entries = result[:5]
        assert error_code == 0, result
        return {entry[0]: entry[1] for entry in entries}

    async def main():
        async with admin() as client:
            before = await describe(client)
            altered = ConfigResource(ConfigResourceType.TOPIC, State.side_topic, {"retention.ms": "3600000"})
            (response,) = await client.alter_configs([altered])
            assert [r[0] for r in response.resources] == [0], response
            return before, await describe(client)

    before, after = run(main())
    assert before["retention.ms"] == "604800000", before
    assert before["cleanup.policy"] == "delete", before
    assert after["retention.ms"] == "3600000", after


def test_create_partitions():
    require_created()

    async def main():
        async with admin() as client:
            await client.create_partitions({State.side_topic: NewPartitions(2)})
            with pytest.raises(InvalidPartitionsError):
                await client.create_partitions({State.side_topic: NewPartitions(1)})
            (described,) = await client.describe_topics([State.side_topic])
            return sorted(p["partition"] for p in described["partitions"])

    assert run(main()) == [0, 1]


def test_delete_records():
    """delete_records moves the log start offset: the low watermark comes back, and the
    beginning offset and a consumer from the beginning follow it."""
    require_all_sent()
    tp = TopicPartition(State.topic, 0)
    cut = cc.end_offsets(all_sent())[0] // 2

    async def main():
        async with admin() as client:
            result = await client.delete_records({tp: RecordsToDelete(cut)})
        async with plain_consumer() as consumer:
            consumer.assign([tp])
            begin = await consumer.beginning_offsets([tp])
            await consumer.seek_to_beginning(tp)
            return result, begin, await consumer.position(tp)

    result, begin, position = run(main())
    assert result == {tp: cut}
    assert begin == {tp: cut}
    assert position == cut


# --- transactions: not supported ------------------------------------------------------------

def test_transactional_producer_fails_at_once():
    """Runnel has no transactions: a producer with a transactional_id must fail to start at
    once with TRANSACTIONAL_ID_AUTHORIZATION_FAILED, not hang until a timeout."""
    started = time.monotonic()

    async def main():
        p = AIOKafkaProducer(bootstrap_servers=cc.bootstrap(), transactional_id="runnel-compat-aiokafka-tx",
                             **CLIENT_TIMEOUTS)
        try:
            await asyncio.wait_for(p.start(), 20)
            async with p.transaction():
                await p.send_and_wait(State.side_topic, b"never")
        finally:
            await p.stop()

    with pytest.raises(KafkaError) as raised:
        run(main())
    assert time.monotonic() - started < 10, "the transactional producer waited for its timeout"
    assert isinstance(raised.value, TransactionalIdAuthorizationFailed), repr(raised.value)


# --- admin: delete --------------------------------------------------------------------------

def test_delete_topics():
    require_created()

    async def main():
        async with admin() as client:
            response = await client.delete_topics([State.topic, State.side_topic])
            assert [code for _, code, *_ in response.topic_error_codes] == [0, 0], response
            deadline = time.monotonic() + cc.OPERATION_TIMEOUT_S
            while time.monotonic() < deadline:
                listed = await client.list_topics()
                if State.topic not in listed and State.side_topic not in listed:
                    return True
                await asyncio.sleep(0.2)
            return False

    assert run(main()), "topics still listed after DeleteTopics"
