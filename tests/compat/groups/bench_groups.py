#!/usr/bin/env python3
"""Consumer-group figures for BENCHMARKS.md (issue 4), against a fresh release broker.

    .venv/bin/python tests/compat/groups/bench_groups.py [--members 10] [--partitions 100]

1. Clean-leave rebalance: MEMBERS member processes (librdkafka via member.py, then KafkaJS via
   group_member.js) share a PARTITIONS-partition topic; one is stopped with SIGTERM (it sends
   LeaveGroup); the figure is the time from the signal until every remaining member reports
   an assignment that together covers all partitions. Repeated --rounds times per client.
2. OffsetCommit throughput with acks on disk (every commit is fsynced before it is answered):
   synchronous commits from one librdkafka consumer, then from --writers consumers at once
   (group commit lets one fsync cover several), beside a raw append + fdatasync loop on the
   same data directory (the disk's limit for one writer).
"""

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
from confluent_kafka import Consumer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from run_compat import Broker  # noqa: E402
from test_groups import ROOT, Member, wait_until  # noqa: E402

SETTLE_TIMEOUT_S = 120.0


def settled(members, partitions):
    got = [m.assignment() for m in members]
    return all(a is not None for a in got) and sorted(p for a in got for p in a) == list(range(partitions))


def leave_rounds(client, bootstrap, members_n, partitions, rounds):
    topic = f"bench-groups-{client}-{os.urandom(3).hex()}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic].result(15)
    members = [Member(client, bootstrap, topic, f"bench-{topic}") for _ in range(members_n + rounds)]
    times = []
    try:
        if not wait_until(lambda: settled(members, partitions), SETTLE_TIMEOUT_S):
            raise SystemExit(f"{client}: group never settled: {[m.assignment() for m in members]}")
        alive = list(members)
        for _ in range(rounds):
            time.sleep(2)  # let heartbeats settle
            leaving = alive.pop(0)
            before = {id(m): len(m.assignments) for m in alive}
            started = time.monotonic()
            leaving.stop()
            ok = wait_until(lambda: all(len(m.assignments) > before[id(m)] for m in alive)
                            and settled(alive, partitions), SETTLE_TIMEOUT_S)
            if not ok:
                raise SystemExit(f"{client}: no rebalance after a leave")
            times.append(time.monotonic() - started)
    finally:
        for m in members:
            m.stop()
    return times


def commit_rate(bootstrap, topic, writers, seconds):
    counts = [0] * writers

    def run(i):
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-commit-{i}-{os.urandom(3).hex()}"})
        deadline = time.monotonic() + seconds
        offset = 0
        while time.monotonic() < deadline:
            offset += 1
            consumer.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
            counts[i] += 1
        consumer.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(writers)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.monotonic() - started)


def fsync_rate(directory, seconds):
    """The disk's own limit for the commit path: 100-byte append + fdatasync, one at a time."""
    path = os.path.join(directory, "fsync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    count, started = 0, time.monotonic()
    try:
        while time.monotonic() - started < seconds:
            os.write(fd, b"x" * 100)
            os.fdatasync(fd)
            count += 1
    finally:
        os.close(fd)
        os.unlink(path)
    return count / (time.monotonic() - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", default=os.path.join(ROOT, "target", "release", "runnel-broker"))
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--partitions", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--commit-seconds", type=float, default=10.0)
    args = parser.parse_args()
    broker = Broker(args.broker, tempfile.mkdtemp(prefix="runnel-bench-groups-"))
    if broker.start_error:
        raise SystemExit(broker.start_error)
    try:
        print(f"clean leave -> all {args.partitions} partitions reassigned, {args.members} members, "
              f"{args.rounds} rounds")
        for client in ("confluent", "kafkajs"):
            times = leave_rounds(client, broker.bootstrap, args.members, args.partitions, args.rounds)
            print(f"  {client:<10} median {statistics.median(times):.3f} s  max {max(times):.3f} s  "
                  f"({', '.join(f'{t:.3f}' for t in times)})")
        topic = f"bench-commits-{os.urandom(3).hex()}"
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})  # must outlive the future
        admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(15)
        one = commit_rate(broker.bootstrap, topic, 1, args.commit_seconds)
        many = commit_rate(broker.bootstrap, topic, args.writers, args.commit_seconds)
        raw = fsync_rate(broker.data_dir, args.commit_seconds)
        print(f"OffsetCommit (sync, fsynced): 1 writer {one:.0f}/s, {args.writers} writers {many:.0f}/s; "
              f"raw append+fdatasync {raw:.0f}/s -> ratios {one / raw:.2f} and {many / raw:.2f}")
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
