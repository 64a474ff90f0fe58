"""Log compaction seen through a real client (confluent-kafka-python / librdkafka).

Run by tests/compat/run_compat.py against a fresh broker (its cleaner looks for dirty logs
every second). A compacted topic with small segments is written in rounds by a zstd and a
gzip producer while the cleaner runs; a consumer from the beginning then sees exactly the
latest value of every key, at its original offset, in offset order; tombstoned keys are
still readable as tombstones until `delete.retention.ms` has passed, then gone. Null keys
are refused with INVALID_RECORD.
"""

import os
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import compat_common as cc

KEYS = 40
TOMBSTONED_KEYS = 8  # keys 0..7 end with a tombstone
ROUNDS = 12
VALUE_FILLER_BYTES = 200
SEGMENT_BYTES = 8192
DELETE_RETENTION_MS = 3_000
# Distinct-key records written after the data so that it all sits in sealed segments (the
# cleaner never touches the active one).
FILLER_RECORDS = 80
COMPACTION_TIMEOUT_S = 40.0


def create_topic(topic, configs):
    client = AdminClient({"bootstrap.servers": cc.bootstrap()})  # must outlive the future
    client.create_topics([NewTopic(topic, 1, 1, config=configs)])[topic].result(cc.OPERATION_TIMEOUT_S)


def producer(codec):
    return Producer({"bootstrap.servers": cc.bootstrap(), "compression.type": codec, "linger.ms": 2})


def produce(p, topic, records):
    """records: [(key, value or None)]; returns the acknowledged offsets, in order."""
    offsets, errors = [], []

    def report(err, msg):
        (errors if err else offsets).append(err or msg.offset())

    for key, value in records:
        p.produce(topic, key=key.encode(), value=None if value is None else value.encode(),
                  partition=0, on_delivery=report)
    assert p.flush(cc.OPERATION_TIMEOUT_S) == 0
    assert errors == [], errors
    return offsets


def read_all(topic):
    """Everything from the beginning to the high watermark: [(offset, key, value)]."""
    consumer = Consumer({"bootstrap.servers": cc.bootstrap(), "group.id": f"{topic}-reader",
                         "enable.auto.commit": False})
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=cc.OPERATION_TIMEOUT_S)
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        out = []
        deadline = time.monotonic() + cc.CONSUME_TIMEOUT_S
        while (not out or out[-1][0] < high - 1) and time.monotonic() < deadline:
            for m in consumer.consume(500, timeout=0.5):
                if m.error() is None:
                    key = m.key().decode()
                    out.append((m.offset(), key, None if m.value() is None else m.value().decode()))
        return out
    finally:
        consumer.close()


def filler():
    """Random hex: compresses about 2:1, so the segments really fill up and roll."""
    return os.urandom(VALUE_FILLER_BYTES // 2).hex()


def value(key, round_no):
    return f"k{key}:r{round_no}:" + filler()


def test_compaction_while_writing_keeps_the_latest_value_per_key():
    topic = cc.unique_topic("compaction")
    configs = {"cleanup.policy": "compact", "segment.bytes": str(SEGMENT_BYTES),
               "min.cleanable.dirty.ratio": "0.01", "min.compaction.lag.ms": "0",
               "delete.retention.ms": str(DELETE_RETENTION_MS)}
    create_topic(topic, configs)
    producers = {"zstd": producer("zstd"), "gzip": producer("gzip")}
    latest = {}  # key -> (offset, value or None)
    written = 0
    for round_no in range(ROUNDS):
        codec = "zstd" if round_no % 2 == 0 else "gzip"
        last = round_no == ROUNDS - 1
        records = [(f"key-{k}", None if last and k < TOMBSTONED_KEYS else value(k, round_no)) for k in range(KEYS)]
        for (key, v), offset in zip(records, produce(producers[codec], topic, records)):
            latest[key] = (offset, v)
        written += len(records)
        time.sleep(0.3)  # the cleaner (1 s backoff) runs while the rounds are written
    produce(producers["zstd"], topic, [(f"filler-{i}", filler()) for i in range(FILLER_RECORDS)])

    def compacted_view():
        seen = read_all(topic)
        return seen if len([r for r in seen if r[1].startswith("key-")]) == KEYS else None

    seen = cc.wait_until(compacted_view, COMPACTION_TIMEOUT_S, interval_s=1.0)
    last_view = read_all(topic)
    assert seen, (f"the data keys never came down to one record each: {len(last_view)} records, "
                  f"{len([r for r in last_view if r[1].startswith('key-')])} of data keys, written {written}")
    offsets = [r[0] for r in seen]
    assert offsets == sorted(set(offsets)), "offsets must stay unique and in order"
    got = {key: (offset, v) for offset, key, v in seen if key.startswith("key-")}
    assert got == latest, "every key's latest value (or tombstone) at its original offset"
    assert offsets[-1] + 1 >= written + FILLER_RECORDS and len(seen) < written, "gaps where records went"

    # Kafka's horizon: a tombstone goes once the clean section has a segment at least
    # delete.retention.ms newer than the tombstone's; the log must keep being written (and
    # cleaned) for that, so every look writes another round of filler first.
    time.sleep(DELETE_RETENTION_MS / 1000)
    rounds = iter(range(1_000))

    def tombstones_gone():
        n = next(rounds)
        produce(producers["gzip"], topic, [(f"filler{n}-{i}", filler()) for i in range(FILLER_RECORDS)])
        seen = read_all(topic)
        keys = {key for _, key, _ in seen if key.startswith("key-")}
        return seen if keys == {f"key-{k}" for k in range(TOMBSTONED_KEYS, KEYS)} else None

    seen = cc.wait_until(tombstones_gone, COMPACTION_TIMEOUT_S, interval_s=1.0)
    assert seen, "tombstoned keys still present after delete.retention.ms"
    got = {key: (offset, v) for offset, key, v in seen if key.startswith("key-")}
    assert got == {k: v for k, v in latest.items() if v[1] is not None}


def test_null_keys_are_refused_on_a_compacted_topic():
    topic = cc.unique_topic("compaction-nullkey")
    create_topic(topic, {"cleanup.policy": "compact"})
    p = Producer({"bootstrap.servers": cc.bootstrap(), "retries": 0, "message.timeout.ms": 10_000})
    errors = []
    p.produce(topic, value=b"no key", partition=0, on_delivery=lambda err, msg: errors.append(err))
    p.flush(cc.OPERATION_TIMEOUT_S)
    assert len(errors) == 1 and errors[0] is not None, errors
    assert errors[0].code() == KafkaError.INVALID_RECORD, errors[0]
