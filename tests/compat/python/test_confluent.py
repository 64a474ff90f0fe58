"""confluent-kafka-python (librdkafka) against a live Runnel broker.

Run by tests/compat/run_compat.py with RUNNEL_BOOTSTRAP pointing at a fresh broker. The tests
run in file order and share one topic: create, produce with every codec, consume back,
offsets by time, watermarks, delete. A step whose input is missing skips with the reason.
"""

import threading
import time
import zlib

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import AclOperation, AdminClient, NewTopic, OffsetSpec

import compat_common as cc

# librdkafka's own knobs that bound every wait, so a broken broker fails fast.
CLIENT_TIMEOUTS = {
    "socket.timeout.ms": 10_000,
    "socket.connection.setup.timeout.ms": 10_000,
    "reconnect.backoff.max.ms": 1_000,
}


class State:
    """What the ordered tests hand each other."""

    topic = cc.unique_topic("confluent")
    base_ts_ms = cc.base_timestamp_ms()
    created = False
    sent = {}  # codec -> [Message]
    consumed = None  # [Consumed], filled once


def admin():
    return AdminClient({"bootstrap.servers": cc.bootstrap(), **CLIENT_TIMEOUTS})


def all_sent():
    return [m for codec in cc.CODECS for m in State.sent.get(codec, [])]


def require_created():
    if not State.created:
        pytest.skip("topic creation failed (see test_create_topic)")


def require_all_sent():
    require_created()
    missing = [c for c in cc.CODECS if c not in State.sent]
    if missing:
        pytest.skip(f"produce failed for {missing}: offsets would be ambiguous")


def topic_metadata(client):
    md = client.list_topics(timeout=cc.OPERATION_TIMEOUT_S)
    return md.topics.get(State.topic)


def test_create_topic():
    client = admin()
    futures = client.create_topics(
        [NewTopic(State.topic, num_partitions=cc.PARTITIONS, replication_factor=1)],
        operation_timeout=cc.OPERATION_TIMEOUT_S,
        request_timeout=cc.OPERATION_TIMEOUT_S,
    )
    futures[State.topic].result(timeout=cc.OPERATION_TIMEOUT_S)
    md = cc.wait_until(lambda: topic_metadata(client))
    assert md is not None, f"{State.topic} not in metadata after CreateTopics"
    assert md.error is None, f"metadata error for new topic: {md.error}"
    assert sorted(md.partitions) == list(range(cc.PARTITIONS))
    for p in md.partitions.values():
        assert p.leader >= 0, f"partition {p.id} has no leader"
    State.created = True


def test_create_existing_topic_fails():
    require_created()
    client = admin()  # keep a reference: a collected client cancels its futures
    futures = client.create_topics(
        [NewTopic(State.topic, num_partitions=cc.PARTITIONS, replication_factor=1)],
        request_timeout=cc.OPERATION_TIMEOUT_S,
    )
    with pytest.raises(KafkaException) as err:
        futures[State.topic].result(timeout=cc.OPERATION_TIMEOUT_S)
    assert err.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS


@pytest.mark.parametrize("codec", cc.CODECS)
def test_produce(codec):
    require_created()
    producer = Producer(
        {
            "bootstrap.servers": cc.bootstrap(),
            "compression.type": codec,
            # Let several records share a batch so compression covers more than one record.
            "linger.ms": 20,
            "message.timeout.ms": 20_000,
            **CLIENT_TIMEOUTS,
        }
    )
    messages = cc.make_messages(codec, State.base_ts_ms)
    errors = []

    def on_delivery(err, msg, m):
        if err is not None:
            errors.append(f"{m}: {err}")
            return
        m.partition, m.offset = msg.partition(), msg.offset()

    for m in messages:
        producer.produce(
            State.topic,
            key=m.key,
            value=m.value,
            headers=m.headers,
            timestamp=m.timestamp_ms,
            on_delivery=lambda err, msg, m=m: on_delivery(err, msg, m),
        )
    remaining = producer.flush(timeout=cc.CONSUME_TIMEOUT_S)
    assert remaining == 0, f"{remaining} messages still unacknowledged"
    assert not errors, "delivery failed:\n" + "\n".join(errors[:10])
    State.sent[codec] = messages


def test_partitioner_is_the_clients():
    """librdkafka's default `consistent_random` partitioner: CRC-32 of the key modulo the
    partition count. The broker must keep the partition the client picked."""
    require_all_sent()
    sent = all_sent()
    assert cc.key_partition_problems(sent) == []
    for m in sent:
        assert m.partition == zlib.crc32(m.key) % cc.PARTITIONS, m


def test_acknowledged_offsets_are_dense():
    require_all_sent()
    assert cc.offset_problems(all_sent()) == []


def consume_all():
    """Read every partition from the beginning by manual assignment (no group, no commits)."""
    if State.consumed is not None:
        return State.consumed
    consumer = Consumer(
        {
            "bootstrap.servers": cc.bootstrap(),
            # The Python client refuses to start without one; assign() never joins it.
            "group.id": "compat-confluent-assign-only",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            **CLIENT_TIMEOUTS,
        }
    )
    want = len(all_sent())
    got = []
    errors = []
    try:
        consumer.assign([TopicPartition(State.topic, p, OFFSET_BEGINNING) for p in range(cc.PARTITIONS)])
        deadline = time.monotonic() + cc.CONSUME_TIMEOUT_S
        while len(got) < want and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=500, timeout=1.0):
                if msg.error() is not None:
                    errors.append(str(msg.error()))
                    continue
                _, ts = msg.timestamp()
                got.append(cc.Consumed(msg.partition(), msg.offset(), msg.key(), msg.value(), msg.headers(), ts))
    finally:
        consumer.close()
    assert not errors, "consumer errors:\n" + "\n".join(errors[:10])
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
    consumed = consume_all()
    assert len(consumed) == len(all_sent())


def offsets_for_times_consumer():
    return Consumer(
        {
            "bootstrap.servers": cc.bootstrap(),
            "group.id": "compat-confluent-offsets",
            "enable.auto.commit": False,
            **CLIENT_TIMEOUTS,
        }
    )


def test_offsets_for_times():
    require_all_sent()
    sent = all_sent()
    consumer = offsets_for_times_consumer()
    try:
        for label, target in cc.timestamp_targets(sent, State.base_ts_ms).items():
            query = [TopicPartition(State.topic, p, target) for p in range(cc.PARTITIONS)]
            answer = consumer.offsets_for_times(query, timeout=cc.OPERATION_TIMEOUT_S)
            for tp in answer:
                assert tp.error is None, f"{label} p{tp.partition}: {tp.error}"
                want = cc.expected_offset_for_time(sent, tp.partition, target)
                # librdkafka reports "no such message" as offset -1 (OFFSET_END).
                want_offset = -1 if want is None else want[0]
                assert tp.offset == want_offset, f"{label} (ts {target}) p{tp.partition}"
    finally:
        consumer.close()


def test_watermarks():
    require_all_sent()
    ends = cc.end_offsets(all_sent())
    consumer = offsets_for_times_consumer()
    try:
        for p in range(cc.PARTITIONS):
            low, high = consumer.get_watermark_offsets(
                TopicPartition(State.topic, p), timeout=cc.OPERATION_TIMEOUT_S, cached=False
            )
            assert (low, high) == (0, ends[p]), f"p{p}"
    finally:
        consumer.close()


def test_admin_list_offsets():
    """The admin API's ListOffsets: earliest, latest and by timestamp."""
    require_all_sent()
    sent = all_sent()
    ends = cc.end_offsets(sent)
    target = cc.timestamp_targets(sent, State.base_ts_ms)["exact-mid-batch"]
    specs = {}
    for p in range(cc.PARTITIONS):
        specs[(p, "earliest")] = OffsetSpec.earliest()
        specs[(p, "latest")] = OffsetSpec.latest()
        specs[(p, "time")] = OffsetSpec.for_timestamp(target)
    client = admin()
    for (p, kind), spec in specs.items():
        tp = TopicPartition(State.topic, p)
        futures = client.list_offsets({tp: spec}, request_timeout=cc.OPERATION_TIMEOUT_S)
        info = next(iter(futures.values())).result(timeout=cc.OPERATION_TIMEOUT_S)
        if kind == "earliest":
            want = 0
        elif kind == "latest":
            want = ends[p]
        else:
            hit = cc.expected_offset_for_time(sent, p, target)
            want = -1 if hit is None else hit[0]
        assert info.offset == want, f"p{p} {kind}"


def test_consumer_group_subscribe_and_commit():
    require_all_sent()
    ends = cc.end_offsets(all_sent())
    consumer = Consumer(
        {
            "bootstrap.servers": cc.bootstrap(),
            "group.id": cc.unique_topic("group"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6_000,
            **CLIENT_TIMEOUTS,
        }
    )
    got = 0
    try:
        consumer.subscribe([State.topic])
        deadline = time.monotonic() + cc.CONSUME_TIMEOUT_S
        while got < sum(ends.values()) and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=500, timeout=1.0):
                assert msg.error() is None, str(msg.error())
                got += 1
        assert got == sum(ends.values())
        consumer.commit(asynchronous=False)
        committed = consumer.committed(
            [TopicPartition(State.topic, p) for p in range(cc.PARTITIONS)], timeout=cc.OPERATION_TIMEOUT_S
        )
        assert {tp.partition: tp.offset for tp in committed} == ends
    finally:
        consumer.close()


class CooperativeMember:
    """A consumer with `cooperative-sticky` (KIP-429) that records each incremental assign
    and revoke librdkafka hands its callbacks, and what it consumed."""

    def __init__(self, topic, group):
        self.lock = threading.Lock()  # the callbacks run on the member's polling thread
        self.owned = set()
        self.revoked = []  # every revoke callback's partitions, in order
        self.seen = []  # (partition, offset) consumed
        self.failed_commits = 0
        self.consumer = Consumer(
            {
                "bootstrap.servers": cc.bootstrap(),
                "group.id": group,
                "partition.assignment.strategy": "cooperative-sticky",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "session.timeout.ms": 6_000,
                "heartbeat.interval.ms": 500,
                **CLIENT_TIMEOUTS,
            }
        )
        self.consumer.subscribe([topic], on_assign=self.on_assign, on_revoke=self.on_revoke)

    def on_assign(self, _consumer, partitions):
        with self.lock:
            self.owned |= {tp.partition for tp in partitions}

    def on_revoke(self, consumer, partitions):
        gone = {tp.partition for tp in partitions}
        with self.lock:
            self.revoked.append(gone)
            self.owned -= gone

    def owned_now(self):
        with self.lock:
            return set(self.owned)

    def poll(self):
        msg = self.consumer.poll(0.1)
        if msg is not None and msg.error() is None:
            self.seen.append((msg.partition(), msg.offset()))
            # Each record's offset is committed before the next poll, so a partition that
            # moves on is resumed by its next owner just past what this member consumed.
            try:
                self.consumer.commit(message=msg, asynchronous=False)
            except KafkaException as err:
                # A commit racing a rebalance carries the generation the member had: Kafka
                # answers ILLEGAL_GENERATION once the join has completed, and
                # REBALANCE_IN_PROGRESS while the assignment is handed out; so does Runnel.
                race = (KafkaError.ILLEGAL_GENERATION, KafkaError.REBALANCE_IN_PROGRESS)
                if err.args[0].code() not in race:
                    raise
                self.failed_commits += 1


def test_cooperative_sticky_group_moves_only_the_partitions_it_must():
    """librdkafka's incremental cooperative rebalancing (KIP-429) over JoinGroup/SyncGroup: a
    second member takes half the partitions while the first keeps the rest without giving
    them up; when it leaves, its partitions come back to the first, which again revokes
    nothing. Every record is consumed once."""
    topic = cc.unique_topic("cooperative")
    partitions = 6
    client = admin()
    client.create_topics([NewTopic(topic, partitions, 1)])[topic].result(timeout=cc.OPERATION_TIMEOUT_S)
    producer = Producer({"bootstrap.servers": cc.bootstrap(), **CLIENT_TIMEOUTS})
    for i in range(60):
        producer.produce(topic, value=str(i).encode(), partition=i % partitions)
    assert producer.flush(timeout=cc.OPERATION_TIMEOUT_S) == 0

    group = cc.unique_topic("cooperative-group")
    first = CooperativeMember(topic, group)
    second = None
    try:

        def settled(members, owned_each):
            # Each member polls on a thread of its own, as separate processes would: a member
            # whose synchronous commit waits behind its own JoinGroup (a connection's requests
            # are answered in order, by Kafka too) must not stop the polls of the member that
            # join is waiting for — one thread polling both stalled here for good, once.
            stop = threading.Event()

            def polling(member):
                while not stop.is_set():
                    member.poll()

            threads = [threading.Thread(target=polling, args=(m,), daemon=True) for m in members]
            for thread in threads:
                thread.start()
            try:
                deadline = time.monotonic() + cc.CONSUME_TIMEOUT_S
                while time.monotonic() < deadline:
                    owned = [m.owned_now() for m in members]
                    if [len(o) for o in owned] == owned_each and set().union(*owned) == set(range(partitions)):
                        return
                    time.sleep(0.05)
                pytest.fail(f"the group never settled on {owned_each}: {owned}")
            finally:
                stop.set()
                for thread in threads:
                    thread.join(timeout=cc.CONSUME_TIMEOUT_S)

        settled([first], [partitions])
        assert first.revoked == []
        kept = set(first.owned)
        second = CooperativeMember(topic, group)
        settled([first, second], [partitions // 2, partitions // 2])
        # Only what the second member took was revoked from the first (eagerly, everything).
        assert [r for r in first.revoked if r] == [kept - first.owned]
        assert second.revoked in ([], [set()])

        revoked_before = len([r for r in first.revoked if r])
        second.consumer.close()
        settled([first], [partitions])
        assert len([r for r in first.revoked if r]) == revoked_before
        # Drain what is left, then check once-only consumption.
        deadline = time.monotonic() + cc.CONSUME_TIMEOUT_S
        while len(first.seen) + len(second.seen) < 60 and time.monotonic() < deadline:
            first.poll()
        seen = first.seen + second.seen
        assert len(set(seen)) == 60
        # A commit lost to a rebalance race can leave its record to the partition's next
        # owner: at most one record read twice per failed commit.
        assert len(seen) - 60 <= first.failed_commits + second.failed_commits
    finally:
        first.consumer.close()
        client.delete_topics([topic])


def test_idempotent_producer():
    """librdkafka with enable.idempotence=true (InitProducerId, sequences). Runs after the
    offset checks: it appends to the topic."""
    require_created()
    producer = Producer({"bootstrap.servers": cc.bootstrap(), "enable.idempotence": True, **CLIENT_TIMEOUTS})
    errors = []
    delivered = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            delivered.append((msg.partition(), msg.offset()))

    for i in range(cc.IDEMPOTENT_MESSAGES):
        producer.produce(State.topic, key=b"idempotent", value=str(i).encode(), on_delivery=on_delivery)
    try:
        remaining = producer.flush(timeout=cc.CONSUME_TIMEOUT_S)
    except KafkaException as err:  # a fatal producer error (e.g. InitProducerId refused)
        pytest.fail(f"flush raised {err}")
    assert remaining == 0
    assert errors == []
    # One key, so one partition: its acknowledged offsets must be dense.
    assert len({partition for partition, _ in delivered}) == 1
    cc.assert_dense([offset for _, offset in delivered])


def test_acls_are_disabled_without_an_authorizer():
    """CreateAcls and DeleteAcls get SECURITY_DISABLED, as from a Kafka broker with no
    authorizer; DescribeAcls gets it too (kafka-python raises it), which this librdkafka
    reports as no ACLs."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation,
                                       AclPermissionType, ResourcePatternType, ResourceType)

    client = admin()
    any_acl = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                               AclOperation.ANY, AclPermissionType.ANY)
    describe = client.describe_acls(any_acl, request_timeout=cc.OPERATION_TIMEOUT_S)
    assert describe.result(timeout=cc.OPERATION_TIMEOUT_S) == []
    binding = AclBinding(ResourceType.TOPIC, "t", ResourcePatternType.LITERAL, "User:alice", "*",
                         AclOperation.READ, AclPermissionType.ALLOW)
    futures = client.create_acls([binding], request_timeout=cc.OPERATION_TIMEOUT_S)
    with pytest.raises(KafkaException) as raised:
        futures[binding].result(timeout=cc.OPERATION_TIMEOUT_S)
    assert raised.value.args[0].code() == KafkaError.SECURITY_DISABLED
    futures = client.delete_acls([any_acl], request_timeout=cc.OPERATION_TIMEOUT_S)
    with pytest.raises(KafkaException) as raised:
        futures[any_acl].result(timeout=cc.OPERATION_TIMEOUT_S)
    assert raised.value.args[0].code() == KafkaError.SECURITY_DISABLED


def test_transactional_producer_fails_at_once():
    """Runnel has no transactions: init_transactions must fail at once with a fatal error
    that says so, not time out (librdkafka retried the INVALID_REQUEST answer to its
    transaction-coordinator lookup until the call's timeout, then said "retry")."""
    producer = Producer({"bootstrap.servers": cc.bootstrap(), "transactional.id": "runnel-compat-tx",
                         **CLIENT_TIMEOUTS})
    started = time.monotonic()
    with pytest.raises(KafkaException) as raised:
        producer.init_transactions(30)
    error = raised.value.args[0]
    assert time.monotonic() - started < 10, "init_transactions waited for its timeout"
    assert error.fatal(), error
    assert error.code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, error
    assert "transactions" in error.str(), error


def test_leader_election_is_never_needed():
    """Runnel's one broker leads every partition as its only replica: a preferred or unclean
    election of an existing partition gets ELECTION_NOT_NEEDED, a missing one
    UNKNOWN_TOPIC_OR_PART, as from Kafka for partitions already led by their preferred
    replica."""
    from confluent_kafka import ElectionType

    require_created()
    client = admin()
    # No request_timeout: confluent-kafka 2.16's elect_leaders raises SystemError on any
    # keyword argument (a bug in its C binding); the result's timeout bounds the wait.
    for election_type in (ElectionType.PREFERRED, ElectionType.UNCLEAN):
        asked = [TopicPartition(State.topic, 0), TopicPartition(State.topic, cc.PARTITIONS)]
        results = client.elect_leaders(election_type, asked).result(timeout=cc.OPERATION_TIMEOUT_S)
        codes = {(tp.topic, tp.partition): error.code() for tp, error in results.items()}
        assert codes == {
            (State.topic, 0): KafkaError.ELECTION_NOT_NEEDED,
            (State.topic, cc.PARTITIONS): KafkaError.UNKNOWN_TOPIC_OR_PART,
        }, (election_type, codes)
        # All partitions: Kafka leaves out those whose election was not needed.
        everything = client.elect_leaders(election_type, None)
        assert everything.result(timeout=cc.OPERATION_TIMEOUT_S) == {}


def test_scram_credentials_do_not_exist():
    """No SASL, so no SCRAM users: all users is none, a named one RESOURCE_NOT_FOUND as from
    Kafka for a user without credentials, and storing one UNSUPPORTED_SASL_MECHANISM."""
    from confluent_kafka.admin import (ScramCredentialInfo, ScramMechanism,
                                       UserScramCredentialUpsertion)

    client = admin()
    everyone = client.describe_user_scram_credentials(request_timeout=cc.OPERATION_TIMEOUT_S)
    assert everyone.result(timeout=cc.OPERATION_TIMEOUT_S) == {}
    futures = client.describe_user_scram_credentials(["alice"],
                                                     request_timeout=cc.OPERATION_TIMEOUT_S)
    with pytest.raises(KafkaException) as raised:
        futures["alice"].result(timeout=cc.OPERATION_TIMEOUT_S)
    assert raised.value.args[0].code() == KafkaError.RESOURCE_NOT_FOUND
    upsertion = UserScramCredentialUpsertion(
        "alice", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192), b"secret")
    futures = client.alter_user_scram_credentials([upsertion],
                                                  request_timeout=cc.OPERATION_TIMEOUT_S)
    with pytest.raises(KafkaException) as raised:
        futures["alice"].result(timeout=cc.OPERATION_TIMEOUT_S)
    assert raised.value.args[0].code() == KafkaError.UNSUPPORTED_SASL_MECHANISM
    assert "no SASL" in raised.value.args[0].str()


def test_describe_topics_and_cluster_with_authorized_operations():
    """librdkafka's describe_topics / describe_cluster ask Metadata (v8+) for the authorized
    operations; without an authorizer every operation that applies is allowed."""
    require_created()
    client = admin()
    futures = client.describe_topics(
        TopicCollection([State.topic]),
        include_authorized_operations=True,
        request_timeout=cc.OPERATION_TIMEOUT_S,
    )
    described = futures[State.topic].result(timeout=cc.OPERATION_TIMEOUT_S)
    assert described.name == State.topic
    assert not described.is_internal
    assert len(described.partitions) == cc.PARTITIONS
    assert AclOperation.READ in described.authorized_operations
    assert AclOperation.WRITE in described.authorized_operations
    cluster = client.describe_cluster(
        include_authorized_operations=True, request_timeout=cc.OPERATION_TIMEOUT_S
    ).result(timeout=cc.OPERATION_TIMEOUT_S)
    assert len(cluster.nodes) == 1
    assert AclOperation.DESCRIBE in cluster.authorized_operations


def test_dynamic_broker_default_config():
    """KIP-226: this broker's dynamic topic default, set by incremental_alter_configs on the
    BROKER resource named by its id, is what a topic without an override describes, with the
    source DYNAMIC_BROKER_CONFIG; deleting it restores the value from before. (The cluster-wide
    default, resource "", is covered by tests/tests/dynamic_broker_configs.rs: confluent-kafka
    refuses an empty resource name before sending.) Own topic, and the default is restored on
    the way out, so the other tests do not see it."""
    from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource,
                                       ConfigSource, ResourceType)

    client = admin()
    topic = cc.unique_topic("confluent-dynamic")
    futures = client.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)],
                                   operation_timeout=cc.OPERATION_TIMEOUT_S,
                                   request_timeout=cc.OPERATION_TIMEOUT_S)
    futures[topic].result(timeout=cc.OPERATION_TIMEOUT_S)
    node_id = str(client.describe_cluster().result(timeout=cc.OPERATION_TIMEOUT_S).nodes[0].id)

    def alter(broker, op, value=None):
        entry = ConfigEntry("log.retention.ms", value, incremental_operation=op)
        resource = ConfigResource(ResourceType.BROKER, broker, incremental_configs=[entry])
        done = client.incremental_alter_configs([resource], request_timeout=cc.OPERATION_TIMEOUT_S)
        done[resource].result(timeout=cc.OPERATION_TIMEOUT_S)

    def retention():
        resource = ConfigResource(ResourceType.TOPIC, topic)
        described = client.describe_configs([resource], request_timeout=cc.OPERATION_TIMEOUT_S)
        entry = described[resource].result(timeout=cc.OPERATION_TIMEOUT_S)["retention.ms"]
        return entry.value, ConfigSource(entry.source)

    before = retention()
    assert before[1] not in (ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG,
                             ConfigSource.DYNAMIC_BROKER_CONFIG), before
    try:
        alter(node_id, AlterConfigOpType.SET, "987654321")
        assert retention() == ("987654321", ConfigSource.DYNAMIC_BROKER_CONFIG)
    finally:
        alter(node_id, AlterConfigOpType.DELETE)
    assert retention() == before
    client.delete_topics([topic], operation_timeout=cc.OPERATION_TIMEOUT_S,
                         request_timeout=cc.OPERATION_TIMEOUT_S)[topic].result(
        timeout=cc.OPERATION_TIMEOUT_S)


def test_delete_topic():
    require_created()
    client = admin()
    futures = client.delete_topics([State.topic], operation_timeout=cc.OPERATION_TIMEOUT_S,
                                   request_timeout=cc.OPERATION_TIMEOUT_S)
    futures[State.topic].result(timeout=cc.OPERATION_TIMEOUT_S)
    gone = cc.wait_until(lambda: topic_metadata(client) is None)
    assert gone, f"{State.topic} still listed after DeleteTopics"
