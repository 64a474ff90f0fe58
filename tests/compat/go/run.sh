#!/usr/bin/env bash
# Builds the Go client suite offline from Debian's Go packages (GOPATH mode, no module proxy)
# and runs it against the broker at $RUNNEL_BOOTSTRAP. The binary and Go's build cache live
# under $CARGO_TARGET_DIR (or target/)/go-compat, so a second run rebuilds nothing.
# Prints what the suite prints: one line per test, closing with "go: N passed, M failed, K
# skipped". Arguments go to the suite (-run REGEXP, -unsupported).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
OUT="${CARGO_TARGET_DIR:-$ROOT/target}/go-compat"
# Debian installs the sources of golang-github-shopify-sarama-dev and
# golang-github-segmentio-kafka-go-dev (and their dependencies) here.
GOCODE=/usr/share/gocode

fail_setup() {
    echo "not ok - $1"
    echo "go: 0 passed, 1 failed, 0 skipped"
    exit 1
}

command -v go >/dev/null || fail_setup "go toolchain installed (scripts/install-test-deps.sh)"
for pkg in github.com/Shopify/sarama github.com/segmentio/kafka-go; do
    [[ -d "$GOCODE/src/$pkg" ]] || fail_setup "$pkg in $GOCODE (scripts/install-test-deps.sh)"
done

mkdir -p "$OUT"
# The DataDog/zstd binding calls a zstd function its header marks deprecated: quiet that.
if ! (cd "$HERE" && GO111MODULE=off GOPATH="$GOCODE" GOPROXY=off GOFLAGS= \
        GOCACHE="$OUT/cache" CGO_CFLAGS="-O2 -Wno-deprecated-declarations" \
        go build -o "$OUT/runnel-go-compat" .); then
    fail_setup "go build of tests/compat/go"
fi
exec "$OUT/runnel-go-compat" "$@"
