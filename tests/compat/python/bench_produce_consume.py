"""Throughput with a real client: confluent-kafka (librdkafka) producing N 1 KiB messages to an
8-partition topic as fast as it can (acks=1), then one consumer reading them all back by
manual assignment. Prints messages/s and MB/s for both. Not part of the test run.

    .venv/bin/python tests/compat/python/bench_produce_consume.py --bootstrap 127.0.0.1:9092 -n 200000
"""

import argparse
import os
import sys
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

PARTITIONS = 8
MESSAGE_BYTES = 1024
# librdkafka's local queue: large enough to keep the pipe full, small enough to bound memory.
QUEUE_MAX_MESSAGES = 500_000
TIMEOUT_S = 60.0


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", default=os.environ.get("RUNNEL_BOOTSTRAP", "127.0.0.1:9092"))
    parser.add_argument("-n", "--messages", type=int, default=200_000)
    parser.add_argument("--compression", default="none", choices=["none", "gzip", "snappy", "lz4", "zstd"])
    parser.add_argument("--keep-topic", action="store_true", help="do not delete the topic afterwards")
    return parser.parse_args()


def report(what, count, seconds):
    mb = count * MESSAGE_BYTES / 1e6
    print(f"{what}: {count} msgs in {seconds:.2f} s = {count / seconds:,.0f} msgs/s, {mb / seconds:,.1f} MB/s")


def create_topic(admin, topic):
    futures = admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
    futures[topic].result(timeout=TIMEOUT_S)


def produce(args, topic):
    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "acks": 1,
            "compression.type": args.compression,
            "linger.ms": 5,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": QUEUE_MAX_MESSAGES,
        }
    )
    payload = os.urandom(MESSAGE_BYTES // 2).hex().encode()
    failed = 0

    def on_delivery(err, _msg):
        nonlocal failed
        if err is not None:
            failed += 1

    start = time.perf_counter()
    for i in range(args.messages):
        while True:
            try:
                producer.produce(topic, value=payload, partition=i % PARTITIONS, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)  # local queue full: let deliveries drain it
        if i % 10_000 == 0:
            producer.poll(0)
    left = producer.flush(TIMEOUT_S)
    seconds = time.perf_counter() - start
    if left or failed:
        sys.exit(f"produce: {left} undelivered, {failed} failed")
    report("produce", args.messages, seconds)


def consume(args, topic):
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "fetch.max.bytes": 50 * 1024 * 1024,
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    got = 0
    start = time.perf_counter()
    deadline = time.monotonic() + TIMEOUT_S
    while got < args.messages and time.monotonic() < deadline:
        for msg in consumer.consume(num_messages=10_000, timeout=1.0):
            if msg.error() is None:
                got += 1
    seconds = time.perf_counter() - start
    consumer.close()
    if got < args.messages:
        sys.exit(f"consume: only {got} of {args.messages} within {TIMEOUT_S} s")
    report("consume", got, seconds)


def main():
    args = parse_args()
    topic = f"bench-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    create_topic(admin, topic)
    try:
        produce(args, topic)
        consume(args, topic)
    finally:
        if not args.keep_topic:
            admin.delete_topics([topic])[topic].result(timeout=TIMEOUT_S)


if __name__ == "__main__":
    main()
