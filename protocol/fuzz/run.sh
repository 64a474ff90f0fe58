#!/usr/bin/env bash
# Builds the fuzz targets with libFuzzer instrumentation on the stable toolchain (the same
# rustc flags cargo-fuzz passes, unlocked by RUSTC_BOOTSTRAP=1; no cargo-fuzz install
# needed) and runs each for a bounded time on a scratch copy of its corpus, so the
# committed seeds stay small. Crashes land in protocol/fuzz/artifacts/<target>/.
#   protocol/fuzz/run.sh [seconds per target, default 60] [target ...]
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(batch_parse records_decompress request_decode)
fi
triple="$(rustc -vV | sed -n 's/^host: //p')"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/../../target}/fuzz"
RUSTC_BOOTSTRAP=1 RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks" \
    cargo build --release --target "$triple" --bins
for target in "${targets[@]}"; do
    work="$(mktemp -d)"
    cp -r "corpus/$target/." "$work/"
    mkdir -p "artifacts/$target"
    echo "== $target: ${seconds}s"
    "$CARGO_TARGET_DIR/$triple/release/$target" "$work" -max_total_time="$seconds" \
        -rss_limit_mb=2048 -max_len=65536 -artifact_prefix="artifacts/$target/" -print_final_stats=1
    rm -rf "$work"
done
