#!/usr/bin/env python3
"""Checks the Grafana dashboards against a live broker scraped by a real Prometheus.

    .venv/bin/python tests/dashboards/check_dashboards.py [--broker target/release/runnel-broker]
                                                           [--prometheus prometheus]

1. Starts `runnel-broker` on free loopback ports with a temporary data directory.
2. Runs a workload with confluent-kafka: a 3-partition topic, 300 records (acks=all), a
   consumer group that reads part of them and commits (so it lags, in records and in
   seconds), a failing CreateTopics (so an error code is counted), then keeps producing a
   record every 100 ms so rates and latency quantiles have fresh samples.
3. Starts Prometheus (the binary, not the distribution's service) on a free port with a
   generated config scraping the broker every second and a temporary TSDB directory; waits
   until it holds enough scrapes for the `rate()` windows.
4. For every template variable of every dashboard, evaluates its `label_values(...)` query
   and picks the workload's value; for every `expr` of every panel (variables substituted)
   runs an instant query and requires at least one sample that is a number (not NaN).
5. Requires every `runnel_*` metric name the dashboards use to be one the broker exports,
   and every panel to use the provisioned datasource uid.

Closes with `dashboards: N passed, M failed` and exits non-zero on any failure. Every process
it started is stopped. Standard library plus confluent-kafka (from .venv).
"""

import argparse
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DASHBOARDS = os.path.join(ROOT, "grafana", "dashboards")
DATASOURCE_FILE = os.path.join(ROOT, "grafana", "provisioning", "datasources", "prometheus.yaml")
TOPIC = "dash-orders"
GROUP = "dash-billing"
RECORDS = 300
CONSUMED_MIN = 50
START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 10
WORKLOAD_TIMEOUT_S = 60
SCRAPES_MIN = 12          # one per second: enough for a 10 s rate window
SCRAPE_WAIT_TIMEOUT_S = 60
RATE_INTERVAL = "10s"     # what $__rate_interval becomes (4 × the 1 s scrape, plus margin)
HTTP_TIMEOUT_S = 10


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url):
    with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as response:
        return response.read().decode("utf-8")


def wait_until(what, check, timeout_s, proc=None):
    deadline = time.monotonic() + timeout_s
    last_error = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with status {proc.returncode}")
        try:
            if check():
                return
        except (OSError, ValueError, KeyError) as e:
            last_error = e
        time.sleep(0.2)
    raise RuntimeError(f"{what}: not within {timeout_s} s ({last_error})")


class Process:
    """A child process with its output in a log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name, argv, log_path):
        self.name, self.log_path = name, log_path
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def tail(self, lines=30):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:])


# --- the workload ---------------------------------------------------------------------------

def run_workload(bootstrap, stop_event):
    """Topic, records, a lagging consumer group, an error. Returns the background producer
    thread (it keeps producing until `stop_event`) and the still-open consumer."""
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 4})
    for future in admin.create_topics([NewTopic(TOPIC, num_partitions=3)], operation_timeout=10).values():
        future.result(timeout=WORKLOAD_TIMEOUT_S)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "log_level": 4})
    old_ms = int(time.time() * 1000) - 120_000  # records stamped two minutes ago: lag seconds > 0
    for i in range(RECORDS):
        producer.produce(TOPIC, key=f"k{i % 7}".encode(), value=f"v{i}".encode(), timestamp=old_ms + i)
    if producer.flush(WORKLOAD_TIMEOUT_S) != 0:
        raise RuntimeError("workload: records not acknowledged")

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, "log_level": 4})
    consumer.subscribe([TOPIC])
    consumed = 0
    deadline = time.monotonic() + WORKLOAD_TIMEOUT_S
    while consumed < CONSUMED_MIN and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            consumed += 1
    if consumed < CONSUMED_MIN:
        raise RuntimeError(f"workload: consumed only {consumed} records")
    consumer.commit(asynchronous=False)

    # An error the broker counts by code: the topic exists already.
    for future in admin.create_topics([NewTopic(TOPIC, num_partitions=3)], operation_timeout=10).values():
        try:
            future.result(timeout=WORKLOAD_TIMEOUT_S)
        except Exception:  # noqa: BLE001 - TOPIC_ALREADY_EXISTS is the point
            pass

    def keep_producing():
        n = 0
        while not stop_event.is_set():
            producer.produce(TOPIC, value=f"tick{n}".encode())
            producer.poll(0)
            n += 1
            stop_event.wait(0.1)
        producer.flush(STOP_TIMEOUT_S)

    thread = threading.Thread(target=keep_producing, daemon=True)
    thread.start()
    return thread, consumer


# --- Prometheus -----------------------------------------------------------------------------

class Prometheus:
    def __init__(self, binary, workdir, target):
        self.port = free_port()
        config = os.path.join(workdir, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: runnel\n    static_configs:\n"
                    f"      - targets: ['{target}']\n")
        self.process = Process("prometheus", [
            binary, f"--config.file={config}", f"--storage.tsdb.path={os.path.join(workdir, 'tsdb')}",
            f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1h",
        ], os.path.join(workdir, "prometheus.log"))
        self.base = f"http://127.0.0.1:{self.port}"
        wait_until("Prometheus ready", lambda: http_get(f"{self.base}/-/ready") is not None,
                   START_TIMEOUT_S, self.process.proc)

    def api(self, path, **params):
        url = f"{self.base}/api/v1/{path}?{urllib.parse.urlencode(params, doseq=True)}"
        body = json.loads(http_get(url))
        if body.get("status") != "success":
            raise ValueError(f"{path}: {body}")
        return body["data"]

    def query(self, expr):
        return self.api("query", query=expr)["result"]

    def wait_for_scrapes(self):
        def enough():
            result = self.query('count_over_time(up{job="runnel"}[1m])')
            up = self.query('up{job="runnel"}')
            return (result and float(result[0]["value"][1]) >= SCRAPES_MIN
                    and up and up[0]["value"][1] == "1")
        wait_until(f"{SCRAPES_MIN} successful scrapes", enough, SCRAPE_WAIT_TIMEOUT_S, self.process.proc)

    def stop(self):
        self.process.stop()


# --- the checks -----------------------------------------------------------------------------

class Results:
    def __init__(self):
        self.passed, self.failed = 0, 0

    def check(self, ok, label, detail=""):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL {label}" + (f": {detail}" if detail else ""))


def panels_of(dashboard):
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # panels inside collapsed rows


def substitute(expr, variables):
    expr = expr.replace("$__rate_interval", RATE_INTERVAL).replace("${__rate_interval}", RATE_INTERVAL)
    expr = expr.replace("$__interval", "1s").replace("${__interval}", "1s")
    for name, value in variables.items():
        expr = expr.replace("${" + name + "}", value).replace("$" + name, value)
    return expr


def resolve_variables(dashboard, prometheus, results, preferred):
    """Evaluates each `label_values(selector, label)` variable; returns name -> value."""
    values = {}
    for var in dashboard.get("templating", {}).get("list", []):
        query = var.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        label = f"{dashboard['uid']}: variable ${var['name']}"
        match = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\)\s*", query or "")
        if not match:
            results.check(False, label, f"not a label_values() query: {query!r}")
            continue
        selector = substitute(match.group(1), values)
        series = prometheus.api("series", **{"match[]": selector, "start": time.time() - 300, "end": time.time()})
        found = sorted({s[match.group(2)] for s in series if match.group(2) in s})
        results.check(bool(found), label, f"{query} returned no values")
        if found:
            values[var["name"]] = preferred.get(var["name"]) if preferred.get(var["name"]) in found else found[0]
    return values


def has_number(result):
    for sample in result:
        value = sample.get("value", [None, "NaN"])[1]
        if value not in ("NaN", "+Inf", "-Inf"):
            return True
    return False


def check_dashboard(path, prometheus, exported, datasource_uid, results):
    dashboard = json.load(open(path))
    name = os.path.basename(path)
    variables = resolve_variables(dashboard, prometheus, results, {"topic": TOPIC, "group": GROUP})
    used = set()
    for panel in panels_of(dashboard):
        if panel.get("type") == "row":
            continue
        title = f"{name}: panel {panel.get('title')!r}"
        ds = panel.get("datasource") or {}
        results.check(ds.get("uid") == datasource_uid, f"{title} datasource", f"uid {ds.get('uid')!r}")
        targets = panel.get("targets", [])
        results.check(bool(targets), f"{title} has queries")
        for target in targets:
            expr = substitute(target["expr"], variables)
            used.update(re.findall(r"\brunnel_[a-z0-9_]+", target["expr"]))
            try:
                result = prometheus.query(expr)
                results.check(has_number(result), f"{title} {expr}", f"no numeric sample in {result[:3]}")
            except (OSError, ValueError) as e:
                results.check(False, f"{title} {expr}", str(e))
    for metric in sorted(used):
        results.check(metric in exported, f"{name}: metric {metric} exported by the broker")
    return len(used)


def exported_names(page):
    names = set()
    for line in page.splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--broker", default=os.path.join(ROOT, "target", "release", "runnel-broker"))
    parser.add_argument("--prometheus", default=shutil.which("prometheus") or "prometheus")
    parser.add_argument("--dashboards", default=DASHBOARDS, help="directory of dashboard JSON files")
    args = parser.parse_args()

    datasource_uid = re.search(r"uid:\s*(\S+)", open(DATASOURCE_FILE).read()).group(1)
    workdir = tempfile.mkdtemp(prefix="runnel-dashboards-")
    results = Results()
    broker = prometheus = consumer = producer_thread = None
    stop_event = threading.Event()
    try:
        kafka_port, http_port = free_port(), free_port()
        broker = Process("broker", [args.broker, "--data-dir", os.path.join(workdir, "data"),
                                    "--listen", f"127.0.0.1:{kafka_port}",
                                    "--http-listen", f"127.0.0.1:{http_port}"],
                         os.path.join(workdir, "broker.log"))
        wait_until("broker /readyz", lambda: http_get(f"http://127.0.0.1:{http_port}/readyz") is not None,
                   START_TIMEOUT_S, broker.proc)
        producer_thread, consumer = run_workload(f"127.0.0.1:{kafka_port}", stop_event)
        prometheus = Prometheus(args.prometheus, workdir, f"127.0.0.1:{http_port}")
        prometheus.wait_for_scrapes()
        exported = exported_names(http_get(f"http://127.0.0.1:{http_port}/metrics"))
        for path in sorted(glob.glob(os.path.join(args.dashboards, "*.json"))):
            used = check_dashboard(path, prometheus, exported, datasource_uid, results)
            print(f"{os.path.basename(path)}: {used} metric names")
    except Exception as e:  # noqa: BLE001 - any setup failure is one failed check, reported
        results.check(False, "setup", f"{type(e).__name__}: {e}")
        for process in (broker, prometheus.process if prometheus else None):
            if process is not None:
                print(f"--- {process.name} log tail ---\n{process.tail()}")
    finally:
        stop_event.set()
        if producer_thread is not None:
            producer_thread.join(STOP_TIMEOUT_S)
        if consumer is not None:
            consumer.close()
        for stoppable in (prometheus, broker):
            if stoppable is not None:
                stoppable.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"dashboards: {results.passed} passed, {results.failed} failed")
    return 1 if results.failed or not results.passed else 0


if __name__ == "__main__":
    sys.exit(main())
