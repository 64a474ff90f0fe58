"""A broker killed with SIGKILL mid-stream loses nothing it acknowledged (real clients).

The broker process is killed (no clean shutdown, no clean-shutdown marker) while a real Kafka
producer (confluent-kafka / librdkafka) streams to it, three times in a row, each time
restarted on the same data directory and ports; the producer keeps running through the
outages and retries. A process crash leaves the kernel's page cache intact, so every record
acknowledged with acks=1 must survive it as well as every record acknowledged with acks=all
(acks=1 risks only what an operating-system crash or power cut takes with the page cache;
`broker/src/log/tests/power_loss.rs` covers that). Checked after the last restart, reading
every partition from its start: each acknowledged record is at the offset its acknowledgement
named, offsets have no gaps, nothing is in the log that was not sent, and the idempotent
producer left no duplicate. (librdkafka's own retries across these kills did not, in our
runs, resend a batch the killed broker had stored — the check also passed with the broker's
producer-state rebuild switched off — so the rebuild is proven by
`broker/tests/crash_durability.rs`, which resends the batch in flight at each kill itself.)
Committed group offsets, created topics and deleted topics survive a kill as well. The suite starts its own broker
(tests/compat/run_compat.py's `Broker`): RUNNEL_BROKER_BIN names the binary.
"""

import os
import sys
import threading
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

HERE = os.path.dirname(os.path.abspath(__file__))
COMPAT = os.path.dirname(HERE)
sys.path[:0] = [COMPAT, os.path.join(COMPAT, "python")]
from compat_common import wait_until  # noqa: E402
from run_compat import own_broker  # noqa: E402

PARTITIONS = 4
KILLS = 3
# Acknowledgements the producer must collect between two kills, so each kill lands while it
# streams (and the restarted broker is shown taking writes again).
ACKED_BETWEEN_KILLS = 20_000
# Bounds on every wait.
PROGRESS_TIMEOUT_S = 60.0
OPERATION_TIMEOUT_S = 15.0
FLUSH_TIMEOUT_S = 90.0
READ_TIMEOUT_S = 90.0
# What the broker logs when it starts on data that was not shut down cleanly.
UNCLEAN_LINE = "unclean shutdown: scanning logs past their recovery points"
# How long a killed broker stays down: the producer's requests fail and are retried meanwhile.
DOWN_S = 0.5


@pytest.fixture
def broker():
    with own_broker("runnel-crash-") as holder:
        yield holder


def kill_and_restart(holder):
    """SIGKILL, a short outage, then a new broker on the same data and ports, which must
    report the unclean shutdown (the log file is appended to by every start: one such line
    per kill so far)."""
    kills = holder.get("kills", 0) + 1
    new = holder["broker"].restart(kill=True, down_s=DOWN_S)
    holder["broker"], holder["kills"] = new, kills
    assert new.start_error is None, f"restart after SIGKILL: {new.start_error}\n{new.log_tail()}"
    assert wait_until(lambda: new.log_text().count(UNCLEAN_LINE) >= kills, OPERATION_TIMEOUT_S), \
        "the restarted broker did not report an unclean shutdown"
    return new


def create_topic(bootstrap, name, partitions=PARTITIONS):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)],
                                  operation_timeout=OPERATION_TIMEOUT_S)
    futures[name].result(timeout=OPERATION_TIMEOUT_S)


class StreamingProducer:
    """A producer thread sending numbered values round-robin over the partitions until told
    to stop; records every acknowledgement (partition, offset, value) and every failure."""

    def __init__(self, bootstrap, topic, config):
        self.topic = topic
        self.producer = Producer({
            "bootstrap.servers": bootstrap,
            "linger.ms": 2,
            # Long enough to outlive every outage: a record is retried until the broker is
            # back, never given up on.
            "message.timeout.ms": 120_000,
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 200,
            **config,
        })
        self.lock = threading.Lock()
        self.acked = []  # (partition, offset, value)
        self.failed = []  # (value, error)
        self.sent = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _delivered(self, err, msg):
        with self.lock:
            if err is None:
                self.acked.append((msg.partition(), msg.offset(), msg.value().decode()))
            else:
                self.failed.append((msg.value().decode(), str(err)))

    def _run(self):
        while not self.stopping.is_set():
            value = f"v{self.sent}"
            try:
                self.producer.produce(self.topic, value=value.encode(), partition=self.sent % PARTITIONS,
                                      on_delivery=self._delivered)
            except BufferError:
                self.producer.poll(0.01)  # the local queue is full: let deliveries drain
                continue
            self.sent += 1
            self.producer.poll(0)

    def acked_count(self):
        with self.lock:
            return len(self.acked)

    def wait_for_more_acks(self, count, what):
        target = self.acked_count() + count
        ok = wait_until(lambda: self.acked_count() >= target or self.failed, PROGRESS_TIMEOUT_S, 0.05)
        assert not self.failed, f"deliveries failed {what}: {self.failed[:3]}"
        assert ok, f"only {self.acked_count()} of {target} acknowledgements {what}"

    def finish(self):
        self.stopping.set()
        self.thread.join()
        left = self.producer.flush(FLUSH_TIMEOUT_S)
        assert left == 0, f"{left} records still unacknowledged after {FLUSH_TIMEOUT_S} s"


def read_all(bootstrap, topic):
    """Every partition from its start to its high watermark: {partition: {offset: value}}."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-reader",
                         "enable.auto.commit": False, "fetch.max.bytes": 8 << 20})
    try:
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=OPERATION_TIMEOUT_S)[1]
                for p in range(PARTITIONS)}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        log = {p: {} for p in range(PARTITIONS)}
        deadline = time.monotonic() + READ_TIMEOUT_S
        while any(len(log[p]) < ends[p] for p in range(PARTITIONS)) and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=10_000, timeout=0.5):
                if msg.error():
                    assert msg.error().code() == KafkaError._PARTITION_EOF, msg.error()
                    continue
                log[msg.partition()][msg.offset()] = msg.value().decode()
        return log, ends
    finally:
        consumer.close()


def check_log(log, ends, acked, sent, idempotent):
    for p in range(PARTITIONS):
        offsets = sorted(log[p])
        assert offsets == list(range(ends[p])), \
            f"partition {p}: read {len(offsets)} records for a high watermark of {ends[p]} (gaps or a short read)"
    lost = [(p, o, v) for (p, o, v) in acked if log[p].get(o) != v]
    assert not lost, f"{len(lost)} of {len(acked)} acknowledged records missing or moved, e.g. " + \
        ", ".join(f"{v} acknowledged at {p}@{o}, found {log[p].get(o)!r}" for p, o, v in lost[:3])
    values = [v for p in range(PARTITIONS) for v in log[p].values()]
    strange = [v for v in values if not (v.startswith("v") and v[1:].isdigit() and int(v[1:]) < sent)]
    assert not strange, f"records that were never sent: {strange[:5]}"
    if idempotent:
        assert len(set(values)) == len(values), \
            f"{len(values) - len(set(values))} duplicates across the restarts with an idempotent producer"


@pytest.mark.parametrize("acks", ["all", "1"])
def test_acknowledged_records_survive_sigkill(broker, acks):
    bootstrap = broker["broker"].bootstrap
    topic = f"crash-acks-{acks}"
    create_topic(bootstrap, topic)
    # acks=all with idempotence (librdkafka's retries keep their sequence numbers, so the
    # broker must rebuild each producer's state from the log after the kill); acks=1 plain.
    config = {"acks": "all", "enable.idempotence": True} if acks == "all" else {"acks": "1"}
    producer = StreamingProducer(bootstrap, topic, config)
    try:
        producer.wait_for_more_acks(ACKED_BETWEEN_KILLS, "before the first kill")
        for kill in range(1, KILLS + 1):
            started = time.monotonic()
            restarted = kill_and_restart(broker)
            producer.wait_for_more_acks(1, f"after kill {kill}")
            print(f"acks={acks}: kill {kill}: the first acknowledgement {time.monotonic() - started:.2f} s "
                  f"after the kill ({DOWN_S} s of it down)")
            producer.wait_for_more_acks(ACKED_BETWEEN_KILLS, f"after kill {kill}")
    finally:
        producer.finish()
    assert not producer.failed, f"deliveries failed: {producer.failed[:3]}"
    log, ends = read_all(restarted.bootstrap, topic)
    check_log(log, ends, producer.acked, producer.sent, idempotent=acks == "all")
    print(f"acks={acks}: {len(producer.acked)} acknowledged of {producer.sent} sent, "
          f"{sum(ends.values())} in the log after {KILLS} kills")


def test_committed_offsets_and_topics_survive_sigkill(broker):
    bootstrap = broker["broker"].bootstrap
    kept, dropped, group = "crash-kept", "crash-dropped", "crash-group"
    create_topic(bootstrap, kept)
    create_topic(bootstrap, dropped, partitions=1)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "1", "linger.ms": 2})
    for i in range(400):
        producer.produce(kept, value=f"m{i}".encode(), partition=i % PARTITIONS)
    assert producer.flush(OPERATION_TIMEOUT_S) == 0
    committed = {0: 7, 1: 100, 2: 0, 3: 55}
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    consumer.commit(offsets=[TopicPartition(kept, p, o) for p, o in committed.items()], asynchronous=False)
    consumer.close()
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.delete_topics([dropped], operation_timeout=OPERATION_TIMEOUT_S)[dropped].result(timeout=OPERATION_TIMEOUT_S)
    created_last = "crash-created-last"
    create_topic(bootstrap, created_last, partitions=2)

    restarted = kill_and_restart(broker)

    admin = AdminClient({"bootstrap.servers": restarted.bootstrap})
    topics = admin.list_topics(timeout=OPERATION_TIMEOUT_S).topics
    assert kept in topics and created_last in topics, sorted(topics)
    assert len(topics[created_last].partitions) == 2
    assert dropped not in topics, "a topic deleted before the kill came back"
    consumer = Consumer({"bootstrap.servers": restarted.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        got = consumer.committed([TopicPartition(kept, p) for p in range(PARTITIONS)], timeout=OPERATION_TIMEOUT_S)
        assert {tp.partition: tp.offset for tp in got} == committed
        ends = {p: consumer.get_watermark_offsets(TopicPartition(kept, p), timeout=OPERATION_TIMEOUT_S)[1]
                for p in range(PARTITIONS)}
        assert ends == {p: 100 for p in range(PARTITIONS)}
    finally:
        consumer.close()
