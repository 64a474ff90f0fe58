#!/usr/bin/env python3
"""Runs every third-party client suite against its own fresh Runnel broker and counts results.

    tests/compat/run_compat.py [--broker target/release/runnel-broker] [--suite NAME ...]
    tests/compat/run_compat.py --bootstrap 127.0.0.1:9092   # against a broker you started

For each suite: a new data directory, two free loopback ports, `runnel-broker --data-dir …
--listen … --http-listen …`, a wait until the Kafka port accepts, the suite (bounded in time),
then the broker is stopped. Each suite's own pass/fail/skip counts are read from its report
(JUnit XML for pytest, TAP for node:test, the closing line for kcat.sh and go/run.sh).
Closes with `compat: N passed, M failed` and exits non-zero on any failure. Standard library
only.
"""

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COMPAT = os.path.join(ROOT, "tests", "compat")
SUITE_TIMEOUT_S = 240
BROKER_START_TIMEOUT_S = 30
BROKER_STOP_TIMEOUT_S = 10
BROKER_LOG_TAIL_LINES = 40


class Counts:
    def __init__(self, passed=0, failed=0, skipped=0):
        self.passed, self.failed, self.skipped = passed, failed, skipped

    def add(self, other):
        self.passed += other.passed
        self.failed += other.failed
        self.skipped += other.skipped

    def __str__(self):
        return f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped"


# --- reading each runner's report -----------------------------------------------------------

def junit_counts(path):
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    total = Counts()
    for s in suites:
        tests, failures, errors, skipped = (int(s.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
        total.add(Counts(tests - failures - errors - skipped, failures + errors, skipped))
    return total


def tap_counts(path):
    text = open(path, encoding="utf-8", errors="replace").read()

    def summary(word):
        found = re.findall(rf"^# {word} (\d+)$", text, re.M)
        return int(found[-1]) if found else 0

    return Counts(summary("pass"), summary("fail") + summary("cancelled"), summary("skipped") + summary("todo"))


def closing_line_counts(path):
    text = open(path, encoding="utf-8", errors="replace").read()
    found = re.findall(r"^\w+: (\d+) passed, (\d+) failed(?:, (\d+) skipped)?$", text, re.M)
    passed, failed, skipped = found[-1]
    return Counts(int(passed), int(failed), int(skipped or 0))


# --- the suites -----------------------------------------------------------------------------

def suites(args, report_dir):
    """name -> (argv, working directory, report file, report reader)."""
    def pytest(name, path, *extra):
        """`path` is relative to tests/compat/."""
        report = os.path.join(report_dir, f"{name}.xml")
        argv = [args.python, "-m", "pytest", os.path.join(COMPAT, path), "-v", "-rs", *extra,
                "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning", f"--junitxml={report}", "-o", "junit_family=xunit2"]
        return argv, COMPAT, report, junit_counts

    def closing_line(name, script):
        """A script that prints one line per test and a closing count line (kcat.sh's contract)."""
        log = os.path.join(report_dir, f"{name}.log")
        return ["bash", "-c", f'set -o pipefail; bash "{script}" | tee "{log}"'], ROOT, log, closing_line_counts

    def node_test(name, test_file):
        """A node:test file in tests/compat/node/, its results also written as TAP."""
        tap = os.path.join(report_dir, f"{name}.tap")
        return (["node", "--test", "--test-reporter=spec", "--test-reporter-destination=stdout",
                 "--test-reporter=tap", f"--test-reporter-destination={tap}", test_file],
                os.path.join(COMPAT, "node"), tap, tap_counts)

    return {
        "kcat": closing_line("kcat", os.path.join(COMPAT, "kcat.sh")),
        "confluent-kafka": pytest("confluent-kafka", "python/test_confluent.py"),
        "kafka-python": pytest("kafka-python", "python/test_kafka_python.py"),
        "aiokafka": pytest("aiokafka", "python/test_aiokafka.py"),
        "compaction": pytest("compaction", "python/test_compaction.py"),
        "kafkajs": node_test("kafkajs", "kafkajs.test.js"),
        # @platformatic/kafka: an independent pure-JS client using recent API versions.
        "platformatic": node_test("platformatic", "platformatic.test.mjs"),
        # kafka-ts: a from-scratch TypeScript client; its low-level API sends every API we advertise.
        "kafka-ts": node_test("kafka-ts", "kafkats.test.mjs"),
        # sarama and kafka-go, built offline from Debian's Go packages (tests/compat/go/run.sh).
        "go": closing_line("go", os.path.join(COMPAT, "go", "run.sh")),
        # -s: the suite prints the rebalance times each client saw.
        "groups": pytest("groups", "groups/test_groups.py", "-s"),
        # SIGKILLs its broker mid-stream and restarts it: nothing acknowledged may be lost.
        "crash": pytest("crash", "crash/test_crash.py", "-s"),
    }


# Suites that start (and restart) their own broker from RUNNEL_BROKER_BIN.
OWN_BROKER_SUITES = {"groups", "crash"}

# The other suites' brokers skip a new group's initial rebalance delay (3 s by default, as
# Kafka's `group.initial.rebalance.delay.ms`; test set-ups of Kafka set it to 0 the same way):
# most group tests wait it out once per group, ~25 s of platformatic's 47. These keep the
# default, so real clients still meet a JoinGroup that answers 3 s later.
DEFAULT_REBALANCE_DELAY_SUITES = {"kcat", "confluent-kafka", "kafkajs"}
NO_REBALANCE_DELAY_ARGS = ["--group-initial-rebalance-delay-ms", "0"]


# --- the broker -----------------------------------------------------------------------------

def free_ports(count):
    """`count` distinct free loopback ports: all sockets are held until every port is chosen
    (one at a time, the OS could hand the same port out twice)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def wait_for_port(port, proc, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"broker exited with status {proc.returncode} before listening"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return None
        except OSError:
            time.sleep(0.1)
    return f"Kafka port {port} not accepting after {timeout_s} s"


class Broker:
    """A runnel-broker process with its own data directory and log file."""

    def __init__(self, binary, workdir, ports=None, extra_args=()):
        """`ports` (kafka, http) reuses a stopped broker's ports: a restart on the same data."""
        self.binary, self.workdir, self.extra_args = binary, workdir, list(extra_args)
        self.data_dir = os.path.join(workdir, "data")
        self.log_path = os.path.join(workdir, "broker.log")
        self.kafka_port, self.http_port = ports or free_ports(2)
        env = dict(os.environ)
        # The broker logs why it closed a connection at debug: that line explains most failures.
        env.setdefault("RUST_LOG", "info,runnel_broker=debug")
        env.setdefault("NO_COLOR", "1")  # plain log lines, quoted in the report
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [binary, "--data-dir", self.data_dir, "--listen", f"127.0.0.1:{self.kafka_port}",
             "--http-listen", f"127.0.0.1:{self.http_port}", *self.extra_args],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
        )
        self.start_error = wait_for_port(self.kafka_port, self.proc, BROKER_START_TIMEOUT_S)

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.kafka_port}"

    def stop(self):
        """Stops the broker; returns how it had ended if it died on its own."""
        died = None if self.proc.poll() is None else f"broker died during the suite (status {self.proc.returncode})"
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=BROKER_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return died

    def restart(self, kill=False, down_s=0.0):
        """Stops this broker — SIGTERM, or with `kill` SIGKILL (no clean shutdown) — and,
        `down_s` later, starts a new one on the same data and ports."""
        if kill:
            self.proc.kill()
            self.proc.wait()
            self.log.close()
        else:
            self.stop()
        time.sleep(down_s)
        return Broker(self.binary, self.workdir, (self.kafka_port, self.http_port), self.extra_args)

    def log_text(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def log_tail(self):
        """The log's last lines, after its `Error:` lines (a failed start's reason comes
        before a backtrace longer than the tail)."""
        lines = self.log_text().splitlines(keepends=True)
        errors = [line for line in lines if line.startswith("Error:")]
        return "".join(errors + lines[-BROKER_LOG_TAIL_LINES:])


# --- for the suites that start their own broker (OWN_BROKER_SUITES) ------------------------

@contextlib.contextmanager
def own_broker(prefix, extra_args=()):
    """A broker on a new temp data directory, from RUNNEL_BROKER_BIN (else the release build),
    for a suite that stops, kills or restarts it: yields `{"broker": Broker}`, whose entry the
    suite replaces as it restarts the broker. The last one is stopped and the directory
    removed at the end."""
    binary = os.environ.get("RUNNEL_BROKER_BIN", os.path.join(ROOT, "target", "release", "runnel-broker"))
    workdir = tempfile.mkdtemp(prefix=prefix)
    holder = {"broker": Broker(binary, workdir, extra_args=extra_args)}
    try:
        assert holder["broker"].start_error is None, holder["broker"].start_error
        yield holder
    finally:
        holder["broker"].stop()
        shutil.rmtree(workdir, ignore_errors=True)


# --- running --------------------------------------------------------------------------------

def run_suite(name, spec, bootstrap, http=""):
    argv, cwd, report, read_report = spec
    env = dict(os.environ, RUNNEL_BOOTSTRAP=bootstrap, RUNNEL_HTTP=http)
    started = time.monotonic()
    try:
        status = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, timeout=SUITE_TIMEOUT_S).returncode
    except subprocess.TimeoutExpired:
        print(f"!! {name}: timed out after {SUITE_TIMEOUT_S} s")
        status = None
    except OSError as err:
        print(f"!! {name}: cannot start {argv[0]}: {err}")
        status = None
    try:
        counts = read_report(report)
    except (OSError, ET.ParseError, IndexError, ValueError) as err:
        print(f"!! {name}: no usable report ({err})")
        counts = Counts()
    if status != 0 and counts.failed == 0:
        counts.failed = 1  # the runner itself failed: count it, whatever it had passed
    print(f"== {name}: {counts} ({time.monotonic() - started:.1f} s)")
    return counts


# A port chosen free can still be taken (by another process's outgoing connection) before
# the broker binds it: such a start is tried again on fresh ports, at most this many times.
BROKER_START_ATTEMPTS = 3


def start_broker(binary, workroot, name):
    """A broker on fresh ports and data; another try when its port was taken meanwhile."""
    extra_args = [] if name in DEFAULT_REBALANCE_DELAY_SUITES else NO_REBALANCE_DELAY_ARGS
    for attempt in range(1, BROKER_START_ATTEMPTS + 1):
        workdir = tempfile.mkdtemp(prefix=f"{name}-", dir=workroot)
        broker = Broker(binary, workdir, extra_args=extra_args)
        if not (broker.start_error and "Address already in use" in broker.log_text()):
            return broker
        broker.stop()
        print(f"-- {name}: a port was taken before the broker bound it (try {attempt}); new ports")
    return broker


def run_with_broker(name, spec, binary, workroot):
    broker = start_broker(binary, workroot, name)
    try:
        if broker.start_error:
            print(f"!! {name}: {broker.start_error}")
            counts = Counts(failed=1)
        else:
            delay = " (no initial rebalance delay)" if broker.extra_args else ""
            print(f"== {name}: broker at {broker.bootstrap} (http {broker.http_port}), data {broker.data_dir}{delay}")
            counts = run_suite(name, spec, broker.bootstrap, f"127.0.0.1:{broker.http_port}")
    finally:
        died = broker.stop()
    if died and not broker.start_error:
        print(f"!! {name}: {died}")
        counts.failed += 1
    if counts.failed:
        print(f"-- last lines of the broker log ({broker.log_path}):\n{broker.log_tail()}")
    return counts


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", default=os.path.join(ROOT, "target", "release", "runnel-broker"))
    parser.add_argument("--bootstrap", help="use this running broker instead of starting one per suite")
    parser.add_argument("--python", default=os.path.join(ROOT, ".venv", "bin", "python"))
    parser.add_argument("--suite", action="append", help="run only this suite (repeatable)")
    parser.add_argument("--keep", action="store_true", help="keep broker data directories and logs")
    return parser.parse_args()


def main():
    sys.stdout.reconfigure(line_buffering=True)  # keep our lines in order with the suites' output
    args = parse_args()
    workroot = tempfile.mkdtemp(prefix="runnel-compat-")
    all_suites = suites(args, workroot)
    chosen = args.suite or list(all_suites)
    unknown = [s for s in chosen if s not in all_suites]
    if unknown:
        sys.exit(f"unknown suite(s) {unknown}; known: {list(all_suites)}")
    total = Counts()
    try:
        for name in chosen:
            sys.stdout.flush()
            if name in OWN_BROKER_SUITES:
                os.environ["RUNNEL_BROKER_BIN"] = os.path.abspath(args.broker)
                total.add(run_suite(name, all_suites[name], ""))
            elif args.bootstrap:
                total.add(run_suite(name, all_suites[name], args.bootstrap))
            else:
                total.add(run_with_broker(name, all_suites[name], args.broker, workroot))
    finally:
        if args.keep:
            print(f"broker data and logs kept in {workroot}")
        else:
            shutil.rmtree(workroot, ignore_errors=True)
    if total.skipped:
        print(f"compat: {total.skipped} skipped (see the reasons above)")
    print(f"compat: {total.passed} passed, {total.failed} failed")
    sys.exit(1 if total.failed else 0)


if __name__ == "__main__":
    main()
