#!/usr/bin/env bash
# The one command that runs every test: Rust unit/property/end-to-end tests, bounded
# fuzzing, then the third-party Kafka client compatibility suites. Installs what those need
# when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== install test dependencies (kcat, .venv, tests/compat/node)"
./scripts/install-test-deps.sh

echo "== cargo test (workspace)"
cargo test --workspace --all-targets --release

# libFuzzer, bounded: every target (the protocol ones and the broker's segment_recovery) in
# one instrumented binary, each for RUNNEL_FUZZ_SECONDS (25 s here; longer runs locally;
# RUNNEL_FUZZ_BROKER=0 skips the broker build). A crash, hang or out-of-memory fails the run
# and prints the path of the input that did it (protocol/fuzz/artifacts/<target>/).
echo "== fuzz: libFuzzer targets, ${RUNNEL_FUZZ_SECONDS:-25} s each"
RUNNEL_FUZZ_BROKER="${RUNNEL_FUZZ_BROKER:-1}" RUNNEL_FUZZ_SECONDS="${RUNNEL_FUZZ_SECONDS:-25}" \
    protocol/fuzz/run.sh

# Each suite gets its own fresh broker on free loopback ports (tests/compat/run_compat.py);
# the runner closes with "compat: N passed, M failed" and exits non-zero on any failure.
echo "== compat: real Kafka clients against runnel-broker"
# The broker binary is the one `cargo test --all-targets` built above for the broker's own
# end-to-end tests. A separate `cargo build --bins` compiled the whole graph again (2.5 min
# from a clean clone): without the dev-dependencies, shared crates (serde, syn) get other
# features; nothing of ours changes.
test -x target/release/runnel-broker || { echo "cargo test built no target/release/runnel-broker"; exit 1; }
.venv/bin/python tests/compat/run_compat.py --broker target/release/runnel-broker

# A real Prometheus scrapes a fresh broker under a consumer-group workload; every panel query
# of every Grafana dashboard must return data, and every metric name they use must be one the
# broker exports. Closes with "dashboards: N passed, M failed"; non-zero on any failure.
echo "== dashboards: Grafana panel queries through a real Prometheus"
.venv/bin/python tests/dashboards/check_dashboards.py --broker target/release/runnel-broker
