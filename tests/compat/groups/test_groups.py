"""Consumer groups with real clients, each member its own process (issue 4's client tests).

For each client (confluent-kafka/librdkafka, kafka-python, KafkaJS), on a 6-partition topic:
three members share 2 partitions each; a member that closes (LeaveGroup) hands its partitions
over within the rebalance; a member that is SIGKILLed hands them over after the session
timeout; every produced message is consumed, and none twice except a killed or refused
commit's batch (at-least-once); committed offsets equal the end offsets; the admin API lists
and describes the group; after a broker restart a new member resumes from the committed
offsets. The suite starts its own broker (tests/compat/run_compat.py's `Broker`) so it can
restart it: RUNNEL_BROKER_BIN names the binary.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

HERE = os.path.dirname(os.path.abspath(__file__))
COMPAT = os.path.dirname(HERE)
sys.path[:0] = [COMPAT, os.path.join(COMPAT, "python")]
from compat_common import wait_until  # noqa: E402
from run_compat import own_broker  # noqa: E402

PARTITIONS = 6
MEMBERS = 3
MESSAGES_PER_ROUND = 120
# Bounds on every wait (the session timeout is 6 s; the first rebalance waits 1 s).
ASSIGN_TIMEOUT_S = 45.0
CONSUME_TIMEOUT_S = 45.0
OPERATION_TIMEOUT_S = 15.0
# A clean leave must rebalance quickly; CI machines are noisy, so the test bound is loose and
# the measured figure is printed (BENCHMARKS.md has the benchmark).
CLEAN_LEAVE_REBALANCE_BOUND_S = 15.0
MEMBER_STOP_TIMEOUT_S = 20.0

CLIENTS = {
    "confluent": lambda args: [sys.executable, os.path.join(HERE, "member.py"), "--client", "confluent", *args],
    "kafka-python": lambda args: [sys.executable, os.path.join(HERE, "member.py"), "--client", "kafka-python", *args],
    "kafkajs": lambda args: ["node", os.path.join(COMPAT, "node", "group_member.js"), *args],
}


class Member:
    """A member process and everything it reported on stdout."""

    def __init__(self, client, bootstrap, topic, group):
        self.name = client
        self.lock = threading.Lock()
        self.assignments = []  # every "assigned" event, in order
        self.batches = {}  # batch number -> [(partition, offset, value)]
        self.committed = set()  # batch numbers whose commit succeeded
        self.lines = []
        argv = CLIENTS[client](["--bootstrap", bootstrap, "--topic", topic, "--group", group])
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=COMPAT, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.lock:
                self.lines.append(line.rstrip())
                try:
                    event = json.loads(line)
                except ValueError:
                    continue  # a client library's own log line
                kind = event.get("event")
                if kind == "assigned":
                    self.assignments.append(event["partitions"])
                elif kind == "consumed":
                    self.batches[event["batch"]] = [tuple(r) for r in event["records"]]
                elif kind == "committed":
                    self.committed.add(event["batch"])

    def assignment(self):
        with self.lock:
            return self.assignments[-1] if self.assignments else None

    def records(self, committed_only=False):
        with self.lock:
            return [r for n, batch in self.batches.items() for r in batch
                    if not committed_only or n in self.committed]

    def stop(self):
        """SIGTERM: the client closes (LeaveGroup)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=MEMBER_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(timeout=5)

    def kill(self):
        """SIGKILL: no LeaveGroup; the broker must notice by the session timeout."""
        self.proc.kill()
        self.proc.wait()
        self.reader.join(timeout=5)

    def log(self):
        with self.lock:
            return "\n".join(self.lines[-30:])


@pytest.fixture(scope="module")
def broker():
    with own_broker("runnel-groups-", ["--group-initial-rebalance-delay-ms", "1000"]) as holder:
        yield holder


class Topic:
    """A fresh 6-partition topic and what was produced to it (value -> partition)."""

    def __init__(self, bootstrap, name):
        self.bootstrap, self.name, self.sent, self.seq = bootstrap, name, {}, 0
        admin = AdminClient({"bootstrap.servers": bootstrap})
        futures = admin.create_topics([NewTopic(name, num_partitions=PARTITIONS, replication_factor=1)],
                                      operation_timeout=OPERATION_TIMEOUT_S)
        futures[name].result(timeout=OPERATION_TIMEOUT_S)

    def produce(self, count):
        producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 5})
        for _ in range(count):
            value, partition = f"v-{self.seq}", self.seq % PARTITIONS
            producer.produce(self.name, value=value.encode(), partition=partition)
            self.sent[value] = partition
            self.seq += 1
        assert producer.flush(OPERATION_TIMEOUT_S) == 0

    def end_offsets(self):
        ends = {p: 0 for p in range(PARTITIONS)}
        for partition in self.sent.values():
            ends[partition] += 1
        return ends


def consumed_values(members):
    return {value for m in members for (_, _, value) in m.records()}


def wait_consumed_all(topic, members):
    ok = wait_until(lambda: set(topic.sent) <= consumed_values(members), CONSUME_TIMEOUT_S, 0.1)
    missing = set(topic.sent) - consumed_values(members)
    assert ok, f"{len(missing)} never consumed, e.g. {sorted(missing)[:5]}\n" + \
        "\n".join(f"--- {m.name}:\n{m.log()}" for m in members)


def wait_balanced(members, per_member):
    def balanced():
        got = [m.assignment() for m in members]
        if any(a is None or len(a) != per_member for a in got):
            return False
        return sorted(p for a in got for p in a) == list(range(PARTITIONS))
    ok = wait_until(balanced, ASSIGN_TIMEOUT_S, 0.1)
    assert ok, f"assignments {[m.assignment() for m in members]}, want {per_member} each of all {PARTITIONS}\n" + \
        "\n".join(f"--- {m.name}:\n{m.log()}" for m in members)


def duplicate_problems(members):
    """A value delivered twice is fine only if an earlier delivery's batch was not committed."""
    deliveries = {}
    for m in members:
        committed = {r for r in m.records(committed_only=True)}
        for record in m.records():
            deliveries.setdefault(record[2], []).append(record in committed)
    return [f"{value} delivered {len(d)} times, {sum(d)} of them committed"
            for value, d in deliveries.items() if len(d) > 1 and sum(d) > 1]


def group_admin_view(bootstrap, group, topic):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    listed = admin.list_consumer_groups(request_timeout=OPERATION_TIMEOUT_S).result()
    ids = {g.group_id for g in listed.valid}
    described = admin.describe_consumer_groups([group], request_timeout=OPERATION_TIMEOUT_S)[group].result()
    request = [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(PARTITIONS)])]
    offsets = admin.list_consumer_group_offsets(request, request_timeout=OPERATION_TIMEOUT_S)[group].result()
    return ids, described, {tp.partition: tp.offset for tp in offsets.topic_partitions}


@pytest.mark.parametrize("client", list(CLIENTS))
def test_group_rebalances_commits_and_resumes(broker, client):
    bootstrap = broker["broker"].bootstrap
    tag = f"{client}-{os.urandom(4).hex()}"
    topic, group = Topic(bootstrap, f"groups-{tag}"), f"group-{tag}"
    topic.produce(MESSAGES_PER_ROUND)
    members = [Member(client, bootstrap, topic.name, group) for _ in range(MEMBERS)]
    try:
        wait_balanced(members, PARTITIONS // MEMBERS)
        wait_consumed_all(topic, members)

        # A clean leave: the other two take over its partitions within the rebalance.
        started = time.monotonic()
        members[0].stop()
        wait_balanced(members[1:], PARTITIONS // (MEMBERS - 1))
        print(f"{client}: clean leave rebalanced in {time.monotonic() - started:.2f} s")
        assert time.monotonic() - started < CLEAN_LEAVE_REBALANCE_BOUND_S
        topic.produce(MESSAGES_PER_ROUND)
        wait_consumed_all(topic, members)

        # A crash: the broker notices by the session timeout.
        started = time.monotonic()
        members[1].kill()
        wait_balanced(members[2:], PARTITIONS)
        print(f"{client}: killed member's partitions moved after {time.monotonic() - started:.2f} s")
        topic.produce(MESSAGES_PER_ROUND)
        wait_consumed_all(topic, members)
        assert duplicate_problems(members) == []

        # Committed offsets are the consumed positions; the admin API shows the group.
        survivor = members[2]
        ok = wait_until(lambda: not survivor.batches or max(survivor.batches) in survivor.committed, OPERATION_TIMEOUT_S, 0.1)
        assert ok, "the survivor's last commit never completed"
        ids, described, committed = group_admin_view(bootstrap, group, topic.name)
        assert group in ids
        assert len(described.members) == 1, described.members
        assigned = sorted(tp.partition for tp in described.members[0].assignment.topic_partitions)
        assert assigned == list(range(PARTITIONS))
        assert committed == topic.end_offsets()
        survivor.stop()
    finally:
        for m in members:
            m.stop()

    # After a restart a new member resumes from the committed offsets: only new messages.
    before = set(topic.sent)
    broker["broker"] = broker["broker"].restart()
    assert broker["broker"].start_error is None, broker["broker"].start_error
    topic.produce(MESSAGES_PER_ROUND // 2)
    resumed = Member(client, bootstrap, topic.name, group)
    try:
        wait_consumed_all(topic, members + [resumed])
        again = {value for (_, _, value) in resumed.records()} & before
        assert again == set(), f"{len(again)} already-committed messages consumed again after restart"
    finally:
        resumed.stop()
