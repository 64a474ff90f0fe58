"""What every Python compat suite shares: the broker address, the messages it produces, and
the checks it runs on what comes back. The suites differ only in the client library they
drive, so the data and the expectations live here once.

A message is identified by (codec, index); the consume side finds that id again from the
`codec` and `idx` headers, or from the key and value when a message has no headers.
"""

import os
import time
import urllib.request
import uuid

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
MESSAGES_PER_CODEC = 50
PARTITIONS = 3
# Distinct keys per codec: fewer than messages, so every key is sent several times and the
# "same key, same partition" rule is really exercised.
KEYS_PER_CODEC = 7
# Timestamps are spaced so that a lookup by timestamp has exactly one right answer.
TIMESTAMP_STEP_MS = 1_000
CODEC_TIMESTAMP_SPAN_MS = 100_000
# Bounds on every wait: the broker under test may be broken, the suite must still end.
OPERATION_TIMEOUT_S = 15.0
CONSUME_TIMEOUT_S = 30.0
# Records the idempotent-producer tests send (InitProducerId, producer sequences).
IDEMPOTENT_MESSAGES = 20


def assert_dense(offsets):
    """Acknowledged offsets of one partition's records are distinct and consecutive: each
    record was stored exactly once."""
    ordered = sorted(offsets)
    assert ordered == list(range(ordered[0], ordered[0] + len(ordered))), ordered


def bootstrap():
    """The broker under test, as `host:port` (set by tests/compat/run_compat.py)."""
    return os.environ.get("RUNNEL_BOOTSTRAP", "127.0.0.1:9092")


def metric(name):
    """The value of the unlabelled series `name` on the broker's `/metrics` (its HTTP address
    set by tests/compat/run_compat.py as RUNNEL_HTTP), or None where it is not set."""
    http = os.environ.get("RUNNEL_HTTP")
    if not http:
        return None
    with urllib.request.urlopen(f"http://{http}/metrics", timeout=OPERATION_TIMEOUT_S) as page:
        for line in page.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"/metrics has no {name}")


def unique_topic(suite):
    return f"compat-{suite}-{uuid.uuid4().hex[:10]}"


def base_timestamp_ms():
    """An hour ago, whole seconds: recent enough that no retention policy touches it."""
    return (int(time.time()) - 3600) * 1000


class Message:
    """One message as the producer sends it, and what the broker acknowledged for it."""

    def __init__(self, codec, index, base_ts_ms):
        codec_no = CODECS.index(codec)
        self.codec = codec
        self.index = index
        self.key = f"{codec}-key-{index % KEYS_PER_CODEC}".encode()
        # Sizes vary (and repeat) so that batches compress and span several sizes.
        filler = "abcdefgh" * ((index * 13) % 40)
        self.value = None if index == 24 else f"{codec} value {index} {filler}".encode()
        if index % 10 == 0:
            self.headers = []
        else:
            self.headers = [
                ("codec", codec.encode()),
                ("idx", str(index).encode()),
                ("bin", bytes([0, 255, index])),
                ("dup", b"first"),
                ("dup", b"second"),
                ("empty", b""),
            ]
        self.timestamp_ms = base_ts_ms + codec_no * CODEC_TIMESTAMP_SPAN_MS + index * TIMESTAMP_STEP_MS
        # Filled from the delivery report.
        self.partition = None
        self.offset = None

    @property
    def ident(self):
        return (self.codec, self.index)

    def __repr__(self):
        return f"Message({self.codec}#{self.index} p{self.partition}@{self.offset})"


def make_messages(codec, base_ts_ms):
    return [Message(codec, i, base_ts_ms) for i in range(MESSAGES_PER_CODEC)]


def normalize_headers(headers):
    """Clients return no headers as None or []; header values as bytes or None."""
    if not headers:
        return []
    return [(k, b"" if v is None else bytes(v)) for k, v in headers]


def ident_of(key, value):
    """Recover (codec, index) from a consumed message's key and value."""
    codec = key.decode().split("-key-")[0]
    if value is None:
        return (codec, 24)
    return (codec, int(value.decode().split(" ")[2]))


class Consumed:
    """A consumed message, in client-neutral form."""

    def __init__(self, partition, offset, key, value, headers, timestamp_ms):
        self.partition = partition
        self.offset = offset
        self.key = None if key is None else bytes(key)
        self.value = None if value is None else bytes(value)
        self.headers = normalize_headers(headers)
        self.timestamp_ms = timestamp_ms


def compare(sent, consumed):
    """Every difference between what was acknowledged and what came back, as text lines."""
    problems = []
    by_ident = {}
    for c in consumed:
        ident = ident_of(c.key, c.value)
        if ident in by_ident:
            problems.append(f"{ident} consumed twice (p{c.partition}@{c.offset})")
        by_ident[ident] = c
    for m in sent:
        c = by_ident.pop(m.ident, None)
        if c is None:
            problems.append(f"{m} never consumed")
            continue
        for field, want, got in (
            ("key", m.key, c.key),
            ("value", m.value, c.value),
            ("headers", m.headers, c.headers),
            ("timestamp", m.timestamp_ms, c.timestamp_ms),
            ("partition", m.partition, c.partition),
            ("offset", m.offset, c.offset),
        ):
            if want != got:
                problems.append(f"{m} {field}: sent {want!r}, consumed {got!r}")
    for ident, c in by_ident.items():
        problems.append(f"unexpected extra message {ident} p{c.partition}@{c.offset}")
    return problems


def key_partition_problems(sent):
    """The client's partitioner must put every message with one key in one partition."""
    seen = {}
    problems = []
    for m in sent:
        first = seen.setdefault(m.key, m.partition)
        if first != m.partition:
            problems.append(f"key {m.key!r} went to p{first} and p{m.partition}")
    return problems


def offset_problems(sent):
    """Offsets the broker acknowledged must be 0..n-1 in each partition, no gap, no repeat."""
    problems = []
    for p in range(PARTITIONS):
        got = sorted(m.offset for m in sent if m.partition == p)
        if got != list(range(len(got))):
            problems.append(f"p{p} offsets are {got}, want 0..{len(got) - 1}")
    return problems


def end_offsets(sent):
    return {p: sum(1 for m in sent if m.partition == p) for p in range(PARTITIONS)}


def expected_offset_for_time(sent, partition, target_ms):
    """Kafka's rule: the earliest offset whose timestamp is >= target; None when there is none."""
    hits = [m for m in sent if m.partition == partition and m.timestamp_ms >= target_ms]
    if not hits:
        return None
    first = min(hits, key=lambda m: m.offset)
    return (first.offset, first.timestamp_ms)


def timestamp_targets(sent, base_ts_ms):
    """Targets for offsets-by-time: before everything, the exact timestamp of a message in the
    middle of a compressed batch, a millisecond after it, and after everything."""
    middle = next(m for m in sent if m.ident == ("gzip", 25))
    last = max(m.timestamp_ms for m in sent)
    return {
        "before-all": base_ts_ms - 1,
        "exact-mid-batch": middle.timestamp_ms,
        "between": middle.timestamp_ms + 1,
        "after-all": last + 1,
    }


def wait_until(predicate, timeout_s=OPERATION_TIMEOUT_S, interval_s=0.2):
    """Poll `predicate` until it returns a truthy value or the time runs out; returns it."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if result or time.monotonic() >= deadline:
            return result
        time.sleep(interval_s)
