#!/usr/bin/env bash
# Builds `runnel-fuzz` — every fuzz target in one libFuzzer binary (fuzz_targets/main.rs) —
# on the stable toolchain (RUSTC_BOOTSTRAP=1 unlocks the per-crate coverage flags in
# Cargo.toml; no cargo-fuzz install needed) and runs each target for a bounded time on a
# scratch copy of its corpus, so the committed seeds stay small.
#
#   protocol/fuzz/run.sh [seconds per target] [target ...]
#
# Seconds: the argument, else $RUNNEL_FUZZ_SECONDS, else 60. Targets: the arguments, else
# the protocol targets, plus segment_recovery when RUNNEL_FUZZ_BROKER=1. segment_recovery
# needs the `broker` feature (the whole broker in the instrumented build), turned on
# automatically when it is asked for.
#
# Exit status 1 when any target crashed, hung (-timeout) or ran out of memory; the input
# that did it is kept in protocol/fuzz/artifacts/<target>/ and its path printed. The last
# run's libFuzzer output is in artifacts/<target>/fuzz.log.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-${RUNNEL_FUZZ_SECONDS:-60}}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(batch_parse records_decompress request_decode)
    if [ "${RUNNEL_FUZZ_BROKER:-0}" = 1 ]; then
        targets+=(segment_recovery)
    fi
fi
features=()
for target in "${targets[@]}"; do
    if [ "$target" = segment_recovery ]; then
        features=(--features broker)
    fi
done

target_dir="${CARGO_TARGET_DIR:-$PWD/../../target}"
echo "== fuzz: building runnel-fuzz ${features[*]}"
started=$SECONDS
RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$target_dir" \
    cargo build --profile fuzz --bin runnel-fuzz "${features[@]}"
echo "== fuzz: built in $((SECONDS - started)) s"
binary="$target_dir/fuzz/runnel-fuzz"

failed=()
for target in "${targets[@]}"; do
    work="$(mktemp -d)"
    cp -r "corpus/$target/." "$work/"
    mkdir -p "artifacts/$target"
    log="artifacts/$target/fuzz.log"
    status=0
    RUNNEL_FUZZ_TARGET="$target" "$binary" "$work" -max_total_time="$seconds" -timeout=10 \
        -rss_limit_mb=2048 -max_len=65536 -artifact_prefix="artifacts/$target/" \
        -print_final_stats=1 >"$log" 2>&1 || status=$?
    rm -rf "$work"
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" || true)"
    coverage="$(grep -o 'cov: [0-9]*' "$log" | sed -n '1p;$p' | tr -d 'cov: ' | paste -sd' ' || true)"
    echo "fuzz: $target: ${runs:-?} executions in ${seconds} s, coverage (edges) ${coverage// / -> }, exit status $status"
    if [ "$status" -ne 0 ]; then
        failed+=("$target")
        tail -n 40 "$log"
        grep -h 'Test unit written to' "$log" | sed "s|written to |written to $PWD/|" || true
    fi
done
if [ ${#failed[@]} -ne 0 ]; then
    echo "fuzz: FAILED: ${failed[*]}; reproduce with RUNNEL_FUZZ_TARGET=<target> $binary <artifact>"
    exit 1
fi
echo "fuzz: ${#targets[@]} targets, no crash"
