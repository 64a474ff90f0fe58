#!/usr/bin/env python3
"""One consumer-group member in its own process, driven by tests/compat/groups/test_groups.py.

    member.py --client confluent|kafka-python --bootstrap HOST:PORT --topic T --group G

It subscribes with the `range` assignor, consumes, and commits what it consumed synchronously
after every poll. It prints one JSON object per line on stdout, flushed at once:

    {"event": "assigned", "partitions": [0, 3]}          the full assignment after a rebalance
    {"event": "consumed", "batch": N, "records": [[partition, offset, "value"], ...]}
    {"event": "committed", "batch": N} / {"event": "commit_failed", "batch": N, "error": "…"}
    {"event": "closed"}

"consumed" is printed before the commit, so a record whose batch has no "committed" line may
be delivered again to another member (at-least-once); every other record must not be.
SIGTERM closes the consumer (LeaveGroup) and exits 0; the test SIGKILLs it to simulate a crash.
"""

import argparse
import json
import signal
import sys
import time

SESSION_TIMEOUT_MS = 6_000
HEARTBEAT_INTERVAL_MS = 500
POLL_TIMEOUT_S = 0.2
POLL_RECORDS_MAX = 500
RUN_TIME_MAX_S = 300  # a forgotten member ends by itself

stopping = False


def emit(**event):
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def on_sigterm(_signum, _frame):
    global stopping
    stopping = True


def run_confluent(args):
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "partition.assignment.strategy": "range",
        "session.timeout.ms": SESSION_TIMEOUT_MS,
        "heartbeat.interval.ms": HEARTBEAT_INTERVAL_MS,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })

    def assigned(_consumer, partitions):
        emit(event="assigned", partitions=sorted(tp.partition for tp in partitions))

    consumer.subscribe([args.topic], on_assign=assigned)
    batch = 0
    deadline = time.monotonic() + RUN_TIME_MAX_S
    while not stopping and time.monotonic() < deadline:
        messages = [m for m in consumer.consume(POLL_RECORDS_MAX, timeout=POLL_TIMEOUT_S) if m.error() is None]
        if not messages:
            continue
        batch += 1
        emit(event="consumed", batch=batch,
             records=[[m.partition(), m.offset(), m.value().decode()] for m in messages])
        next_offsets = {}
        for m in messages:
            next_offsets[m.partition()] = max(next_offsets.get(m.partition(), 0), m.offset() + 1)
        try:
            consumer.commit(offsets=[TopicPartition(args.topic, p, o) for p, o in next_offsets.items()],
                            asynchronous=False)
            emit(event="committed", batch=batch)
        except KafkaException as err:
            emit(event="commit_failed", batch=batch, error=str(err))
    consumer.close()
    emit(event="closed")


def run_kafka_python(args):
    from kafka import KafkaConsumer, TopicPartition
    from kafka.consumer.subscription_state import ConsumerRebalanceListener
    from kafka.coordinator.assignors.range import RangePartitionAssignor
    from kafka.errors import KafkaError
    from kafka.structs import OffsetAndMetadata

    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        partition_assignment_strategy=[RangePartitionAssignor],
        session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            pass

        def on_partitions_assigned(self, assigned):
            emit(event="assigned", partitions=sorted(tp.partition for tp in assigned))

    consumer.subscribe([args.topic], listener=Listener())
    batch = 0
    deadline = time.monotonic() + RUN_TIME_MAX_S
    while not stopping and time.monotonic() < deadline:
        polled = consumer.poll(timeout_ms=int(POLL_TIMEOUT_S * 1000), max_records=POLL_RECORDS_MAX)
        messages = [m for records in polled.values() for m in records]
        if not messages:
            continue
        batch += 1
        emit(event="consumed", batch=batch,
             records=[[m.partition, m.offset, m.value.decode()] for m in messages])
        next_offsets = {}
        for m in messages:
            next_offsets[m.partition] = max(next_offsets.get(m.partition, 0), m.offset + 1)
        try:
            consumer.commit({TopicPartition(args.topic, p): OffsetAndMetadata(o, "", -1)
                             for p, o in next_offsets.items()})
            emit(event="committed", batch=batch)
        except KafkaError as err:
            emit(event="commit_failed", batch=batch, error=str(err))
    consumer.close()
    emit(event="closed")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--client", choices=["confluent", "kafka-python"], required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, on_sigterm)
    {"confluent": run_confluent, "kafka-python": run_kafka_python}[args.client](args)


if __name__ == "__main__":
    main()
