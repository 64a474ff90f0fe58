"""kafka-python (pure Python client) against a live Runnel broker.

Run by tests/compat/run_compat.py with RUNNEL_BOOTSTRAP pointing at a fresh broker. The tests
run in file order and share one topic: create, produce with every codec, consume back,
offsets by time, end offsets, delete. A step whose input is missing skips with the reason.
"""

import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import TopicAlreadyExistsError
from kafka.partitioner.default import murmur2

import compat_common as cc

# Bounds on every wait, so a broken broker fails the suite fast instead of hanging it.
CLIENT_TIMEOUTS = {
    "request_timeout_ms": 10_000,
    "reconnect_backoff_max_ms": 1_000,
    "bootstrap_timeout_ms": 10_000,
}
TIMEOUT_MS = int(cc.OPERATION_TIMEOUT_S * 1000)
# kafka-python's name for "no compression" is None.
CODEC_SETTING = {"none": None, "gzip": "gzip", "snappy": "snappy", "lz4": "lz4", "zstd": "zstd"}


class State:
    """What the ordered tests hand each other."""

    topic = cc.unique_topic("kafka-python")
    base_ts_ms = cc.base_timestamp_ms()
    created = False
    sent = {}  # codec -> [Message]
    consumed = None  # [Consumed], filled once


def admin():
    return KafkaAdminClient(bootstrap_servers=cc.bootstrap(), **CLIENT_TIMEOUTS)


def plain_consumer():
    """A consumer with no group: manual assignment only, nothing is ever committed."""
    return KafkaConsumer(
        bootstrap_servers=cc.bootstrap(),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **CLIENT_TIMEOUTS,
    )


def all_sent():
    return [m for codec in cc.CODECS for m in State.sent.get(codec, [])]


def partitions():
    return [TopicPartition(State.topic, p) for p in range(cc.PARTITIONS)]


def require_created():
    if not State.created:
        pytest.skip("topic creation failed (see test_create_topic)")


def require_all_sent():
    require_created()
    missing = [c for c in cc.CODECS if c not in State.sent]
    if missing:
        pytest.skip(f"produce failed for {missing}: offsets would be ambiguous")


def test_create_topic():
    client = admin()
    try:
        client.create_topics(
            {State.topic: {"num_partitions": cc.PARTITIONS, "replication_factor": 1}},
            timeout_ms=TIMEOUT_MS,
        )
        client.wait_for_topics([State.topic], timeout_ms=TIMEOUT_MS)
        (described,) = client.describe_topics([State.topic])
        assert described["error_code"] == 0
        assert sorted(p["partition_index"] for p in described["partitions"]) == list(range(cc.PARTITIONS))
        assert State.topic in client.list_topics()
    finally:
        client.close()
    State.created = True


def test_create_existing_topic_fails():
    require_created()
    client = admin()
    try:
        with pytest.raises(TopicAlreadyExistsError):
            client.create_topics(
                {State.topic: {"num_partitions": cc.PARTITIONS, "replication_factor": 1}},
                timeout_ms=TIMEOUT_MS,
            )
    finally:
        client.close()


@pytest.mark.parametrize("codec", cc.CODECS)
def test_produce(codec):
    require_created()
    producer = KafkaProducer(
        bootstrap_servers=cc.bootstrap(),
        compression_type=CODEC_SETTING[codec],
        # Let several records share a batch so compression covers more than one record.
        linger_ms=20,
        max_block_ms=TIMEOUT_MS,
        **CLIENT_TIMEOUTS,
    )
    messages = cc.make_messages(codec, State.base_ts_ms)
    try:
        futures = [
            (m, producer.send(State.topic, key=m.key, value=m.value, headers=m.headers, timestamp_ms=m.timestamp_ms))
            for m in messages
        ]
        producer.flush(timeout=cc.CONSUME_TIMEOUT_S)
        for m, future in futures:
            meta = future.get(timeout=cc.OPERATION_TIMEOUT_S)
            m.partition, m.offset = meta.partition, meta.offset
    finally:
        producer.close(timeout=cc.OPERATION_TIMEOUT_S)
    State.sent[codec] = messages


def test_partitioner_is_the_clients():
    """kafka-python's default partitioner is the Java client's: murmur2 of the key, positive,
    modulo the partition count. The broker must keep the partition the client picked."""
    require_all_sent()
    sent = all_sent()
    assert cc.key_partition_problems(sent) == []
    for m in sent:
        assert m.partition == (murmur2(m.key) & 0x7FFFFFFF) % cc.PARTITIONS, m


def test_acknowledged_offsets_are_dense():
    require_all_sent()
    assert cc.offset_problems(all_sent()) == []


def consume_all():
    """Read every partition from the beginning by manual assignment (no group, no commits)."""
    if State.consumed is not None:
        return State.consumed
    consumer = plain_consumer()
    want = len(all_sent())
    got = []
    try:
        consumer.assign(partitions())
        consumer.seek_to_beginning()
        deadline = time.monotonic() + cc.CONSUME_TIMEOUT_S
        while len(got) < want and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=1000).values():
                for r in records:
                    got.append(cc.Consumed(r.partition, r.offset, r.key, r.value, r.headers, r.timestamp))
    finally:
        consumer.close(autocommit=False)
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
    consumer = plain_consumer()
    try:
        for label, target in cc.timestamp_targets(sent, State.base_ts_ms).items():
            answer = consumer.offsets_for_times({tp: target for tp in partitions()}, timeout_ms=TIMEOUT_MS)
            for tp in partitions():
                want = cc.expected_offset_for_time(sent, tp.partition, target)
                got = answer.get(tp)
                got = None if got is None else (got.offset, got.timestamp)
                assert got == want, f"{label} (ts {target}) p{tp.partition}"
    finally:
        consumer.close(autocommit=False)


def test_beginning_and_end_offsets():
    require_all_sent()
    ends = cc.end_offsets(all_sent())
    consumer = plain_consumer()
    try:
        begin = consumer.beginning_offsets(partitions(), timeout_ms=TIMEOUT_MS)
        end = consumer.end_offsets(partitions(), timeout_ms=TIMEOUT_MS)
    finally:
        consumer.close(autocommit=False)
    assert {tp.partition: o for tp, o in begin.items()} == {p: 0 for p in range(cc.PARTITIONS)}
    assert {tp.partition: o for tp, o in end.items()} == ends


def test_consumer_group_subscribe_and_commit():
    require_all_sent()
    ends = cc.end_offsets(all_sent())
    consumer = KafkaConsumer(
        State.topic,
        bootstrap_servers=cc.bootstrap(),
        group_id=cc.unique_topic("group"),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6_000,
        **CLIENT_TIMEOUTS,
    )
    got = 0
    try:
        deadline = time.monotonic() + cc.CONSUME_TIMEOUT_S
        while got < sum(ends.values()) and time.monotonic() < deadline:
            got += sum(len(records) for records in consumer.poll(timeout_ms=1000).values())
        assert got == sum(ends.values())
        consumer.commit()
        assert {tp.partition: consumer.committed(tp) for tp in partitions()} == ends
    finally:
        consumer.close(autocommit=False)


def test_idempotent_producer_default():
    """kafka-python 3's default producer is idempotent (it needs InitProducerId). Runs after
    the offset checks: it appends to the topic."""
    require_created()
    producer = KafkaProducer(bootstrap_servers=cc.bootstrap(), max_block_ms=TIMEOUT_MS, **CLIENT_TIMEOUTS)
    try:
        # One key, so one partition: its acknowledged offsets must be dense.
        futures = [producer.send(State.topic, key=b"idempotent", value=str(i).encode())
                   for i in range(cc.IDEMPOTENT_MESSAGES)]
        producer.flush(timeout=cc.CONSUME_TIMEOUT_S)
        metadata = [future.get(timeout=cc.OPERATION_TIMEOUT_S) for future in futures]
    finally:
        producer.close(timeout=cc.OPERATION_TIMEOUT_S)
    assert len({m.partition for m in metadata}) == 1
    cc.assert_dense([m.offset for m in metadata])


def test_describe_log_dirs_lists_the_topics_partitions_with_their_sizes():
    """DescribeLogDirs, as kafka-log-dirs.sh and admin UIs read topic sizes."""
    require_all_sent()
    ends = cc.end_offsets(all_sent())
    client = admin()
    try:
        (broker,) = client.describe_log_dirs({State.topic: list(range(cc.PARTITIONS))})
    finally:
        client.close()
    (log_dir,) = broker["log_dirs"]
    assert log_dir["error_code"] == 0
    assert log_dir["log_dir"].startswith("/")
    (topic,) = log_dir["topics"]
    assert topic["name"] == State.topic
    sizes = {p["partition_index"]: p["partition_size"] for p in topic["partitions"]}
    assert sorted(sizes) == list(range(cc.PARTITIONS))
    for p, size in sizes.items():
        # Each record takes at least its value's bytes; an empty partition takes none.
        assert (size > 0) == (ends.get(p, 0) > 0), f"p{p}: {size} bytes, end {ends.get(p, 0)}"


def test_acls_are_disabled_without_an_authorizer():
    from kafka.admin import ACLFilter, ACLOperation, ACLPermissionType, ResourcePatternFilter
    from kafka.admin import ACLResourcePatternType, ResourceType
    from kafka.errors import SecurityDisabledError

    client = admin()
    try:
        with pytest.raises(SecurityDisabledError):
            client.describe_acls(ACLFilter(
                principal=None, host="*", operation=ACLOperation.ANY,
                permission_type=ACLPermissionType.ANY,
                resource_pattern=ResourcePatternFilter(
                    ResourceType.TOPIC, None, ACLResourcePatternType.ANY)))
    finally:
        client.close()


def test_leader_election_is_never_needed():
    """An existing partition already has its only replica as leader: ELECTION_NOT_NEEDED
    (preferred and unclean), a missing one UNKNOWN_TOPIC_OR_PARTITION."""
    from kafka.errors import ElectionNotNeededError, UnknownTopicOrPartitionError

    require_created()
    client = admin()
    try:
        for election_type in (0, 1):
            response = client.elect_leaders(
                election_type, {State.topic: [0, cc.PARTITIONS]}, timeout_ms=TIMEOUT_MS,
                raise_errors=False)
            codes = {(result.topic, partition.partition_id): partition.error_code
                     for result in response.replica_election_results
                     for partition in result.partition_result}
            assert codes == {
                (State.topic, 0): ElectionNotNeededError.errno,
                (State.topic, cc.PARTITIONS): UnknownTopicOrPartitionError.errno,
            }, (election_type, codes)
    finally:
        client.close()


def test_partition_reassignments_have_nowhere_to_go():
    """One broker: nothing is ever being reassigned; [0] (this broker alone) is each
    partition's replica set already, any other set is INVALID_REPLICA_ASSIGNMENT, and a
    cancel finds NO_REASSIGNMENT_IN_PROGRESS."""
    from kafka.errors import InvalidReplicationAssignmentError, NoReassignmentInProgressError

    require_created()
    client = admin()
    try:
        assert client.list_partition_reassignments(timeout_ms=TIMEOUT_MS) == {}
        assert client.list_partition_reassignments({State.topic: [0, 1]}, timeout_ms=TIMEOUT_MS) == {}
        first, second = TopicPartition(State.topic, 0), TopicPartition(State.topic, 1)
        results = client.alter_partition_reassignments({first: [0], second: [0, 1]},
                                                       timeout_ms=TIMEOUT_MS)
        assert results == {first: None, second: InvalidReplicationAssignmentError}, results
        results = client.alter_partition_reassignments({first: None}, timeout_ms=TIMEOUT_MS)
        assert results == {first: NoReassignmentInProgressError}, results
    finally:
        client.close()


def test_scram_credentials_do_not_exist():
    """No SASL, so no SCRAM users: describing all finds none, a named user has none, and
    storing a credential is refused with the reason."""
    from kafka.admin import ScramMechanism, UserScramCredentialUpsertion

    client = admin()
    try:
        assert client.describe_user_scram_credentials() == {}
        described = client.describe_user_scram_credentials(["alice"])
        assert described["alice"]["credential_infos"] == []
        assert "no SCRAM credentials" in described["alice"]["error"], described
        refused = client.alter_user_scram_credentials(
            [UserScramCredentialUpsertion("alice", ScramMechanism.SCRAM_SHA_256, b"secret")])
        assert "no SASL" in refused["alice"], refused
    finally:
        client.close()


def test_a_many_partition_consumer_fetches_on_a_session():
    """kafka-python keeps a KIP-227 fetch session per broker: after its first (full) fetch
    it names only the partitions whose position moved and reads the others from the
    session. Records produced in rounds to a few partitions at a time arrive once each, in
    order, and the broker holds the session (its metrics) whose epoch the client advanced."""
    topic = cc.unique_topic("kafka-python-sessions")
    partitions_count = 24
    client = admin()
    try:
        client.create_topics({topic: {"num_partitions": partitions_count, "replication_factor": 1}}, timeout_ms=TIMEOUT_MS)
        client.wait_for_topics([topic], timeout_ms=TIMEOUT_MS)
    finally:
        client.close()
    producer = KafkaProducer(bootstrap_servers=cc.bootstrap(), max_block_ms=TIMEOUT_MS, **CLIENT_TIMEOUTS)
    consumer = plain_consumer()
    tps = [TopicPartition(topic, p) for p in range(partitions_count)]
    sent = {p: [] for p in range(partitions_count)}
    got = {p: [] for p in range(partitions_count)}
    try:
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        rounds = 6
        for round_no in range(rounds):
            for p in range(round_no % 3, partitions_count, 5):
                value = f"round {round_no} partition {p}".encode()
                producer.send(topic, value=value, partition=p)
                sent[p].append(value)
            producer.flush(timeout=cc.OPERATION_TIMEOUT_S)
            expected = sum(len(v) for v in sent.values())
            deadline = time.monotonic() + cc.CONSUME_TIMEOUT_S
            while sum(len(v) for v in got.values()) < expected and time.monotonic() < deadline:
                for tp, records in consumer.poll(timeout_ms=200).items():
                    got[tp.partition].extend(r.value for r in records)
        # A little longer: nothing more may come.
        for tp, records in consumer.poll(timeout_ms=500).items():
            got[tp.partition].extend(r.value for r in records)
        assert got == sent
        # Earlier consumers' sessions stay until evicted: at least this one's.
        assert (cc.metric("runnel_fetch_sessions") or 1) >= 1
        assert (cc.metric("runnel_fetch_session_partitions") or partitions_count) >= partitions_count
        handlers = getattr(consumer._fetcher, "_session_handlers", {})
        epochs = [h.next_metadata.epoch for h in handlers.values()]
        assert epochs and max(epochs) > rounds, f"session epochs {epochs}"
    finally:
        consumer.close(autocommit=False)
        producer.close(timeout=cc.OPERATION_TIMEOUT_S)


def test_dynamic_broker_config_through_both_alter_apis():
    """KIP-226: this broker's dynamic `log.retention.ms` (the BROKER resource named by its id;
    kafka-python, like confluent-kafka, refuses the cluster-wide "" itself), set through
    IncrementalAlterConfigs and through the older AlterConfigs, is what a topic without an
    override describes, as DYNAMIC_BROKER_CONFIG; a DELETE restores the topic's value from
    before. Own topic; the setting is removed on the way out."""
    from kafka.admin._configs import ConfigResource, ConfigResourceType

    topic = cc.unique_topic("kafka-python-dynamic")
    client = admin()
    try:
        client.create_topics({topic: {"num_partitions": 1, "replication_factor": 1}}, timeout_ms=TIMEOUT_MS)
        client.wait_for_topics([topic], timeout_ms=TIMEOUT_MS)
        node_id = str(client.describe_cluster()["brokers"][0]["broker_id"])

        def alter(configs, incremental):
            resource = ConfigResource(ConfigResourceType.BROKER, node_id, configs)
            result = client.alter_configs([resource], raise_on_unknown=False, incremental=incremental)
            assert result == {"broker": {node_id: "OK"}}, result

        def retention():
            resource = ConfigResource(ConfigResourceType.TOPIC, topic, ["retention.ms"])
            described = client.describe_configs([resource], config_filter="all")
            entry = described["topic"][topic]["retention.ms"]
            return entry["value"], entry["config_source"]

        before = retention()
        assert before[1] in ("DEFAULT_CONFIG", "STATIC_BROKER_CONFIG"), before
        try:
            for incremental, value in ((True, "987654321"), (False, "876543210")):
                alter({"log.retention.ms": value}, incremental)
                assert retention() == (value, "DYNAMIC_BROKER_CONFIG")
        finally:
            alter({"log.retention.ms": ("DELETE", None)}, True)
        assert retention() == before
        client.delete_topics([topic], timeout_ms=TIMEOUT_MS)
    finally:
        client.close()


def test_delete_topic():
    require_created()
    client = admin()
    try:
        client.delete_topics([State.topic], timeout_ms=TIMEOUT_MS)
        gone = cc.wait_until(lambda: State.topic not in client.list_topics())
    finally:
        client.close()
    assert gone, f"{State.topic} still listed after DeleteTopics"
