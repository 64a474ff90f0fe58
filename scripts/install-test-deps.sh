#!/usr/bin/env bash
# Installs what the third-party client suites (tests/compat/) need, from Debian's packages,
# PyPI and npm only. Idempotent, and fast when everything is present: `apt-get update` runs
# once and only if a package is missing; the venv and node_modules are rebuilt only when
# their pinned lists change (a hash of each list is stamped inside what it built).
#
#   kcat                      Debian package
#   prometheus                Debian package (tests/dashboards/check_dashboards.py runs the
#                             binary itself; the package's service is not used)
#   go, sarama, kafka-go      Debian packages golang-go, golang-github-shopify-sarama-dev,
#                             golang-github-segmentio-kafka-go-dev (sources under
#                             /usr/share/gocode; tests/compat/go/run.sh builds offline); gcc
#                             for cgo (sarama's zstd binding links the system libzstd)
#   .venv/                    tests/compat/python/requirements.txt (binary wheels only)
#   tests/compat/node/        npm ci from package-lock.json: kafkajs (+ snappy, lz4, zstd codec
#                             packages), @platformatic/kafka (its wasm-utils and
#                             dynamic-buffer ask for Node >= 22.19 in `engines`, a warning only:
#                             they run on Node 20) and kafka-ts (no dependencies, no `engines`;
#                             plain CommonJS in dist/, no build step)
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

# --- Debian packages: a command and the package that provides it --------------------------
missing=()
command -v kcat >/dev/null || missing+=(kcat)
command -v prometheus >/dev/null || missing+=(prometheus)
command -v python3 >/dev/null || missing+=(python3)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if command -v python3 >/dev/null && ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    missing+=(python3-venv)
fi
command -v go >/dev/null || missing+=(golang-go)
command -v gcc >/dev/null || missing+=(gcc)
[[ -d /usr/share/gocode/src/github.com/Shopify/sarama ]] || missing+=(golang-github-shopify-sarama-dev)
[[ -d /usr/share/gocode/src/github.com/segmentio/kafka-go ]] || missing+=(golang-github-segmentio-kafka-go-dev)
if ((${#missing[@]})); then
    echo "install-test-deps: apt-get install ${missing[*]}"
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

stamp_ok() { # STAMP_FILE SOURCE_FILE: true when STAMP_FILE holds SOURCE_FILE's hash
    [[ -f "$1" ]] && [[ "$(cat "$1")" == "$(sha256sum "$2" | cut -d' ' -f1)" ]]
}
write_stamp() { sha256sum "$2" | cut -d' ' -f1 >"$1"; }

# --- Python venv ----------------------------------------------------------------------------
REQS=tests/compat/python/requirements.txt
VENV_STAMP=.venv/.requirements.sha256
if ! .venv/bin/python -c 'import sys' 2>/dev/null; then
    echo "install-test-deps: creating .venv"
    rm -rf .venv
    python3 -m venv .venv
fi
if ! stamp_ok "$VENV_STAMP" "$REQS"; then
    echo "install-test-deps: pip install -r $REQS"
    # Binary wheels only: confluent-kafka's manylinux wheel carries librdkafka, so nothing
    # is compiled here; a missing wheel fails loudly instead of starting a C build.
    .venv/bin/python -m pip install -q --disable-pip-version-check --only-binary=:all: -r "$REQS"
    write_stamp "$VENV_STAMP" "$REQS"
fi

# --- Node packages --------------------------------------------------------------------------
NODE_DIR=tests/compat/node
NODE_STAMP=$NODE_DIR/node_modules/.package-lock.sha256
if ! stamp_ok "$NODE_STAMP" "$NODE_DIR/package-lock.json"; then
    echo "install-test-deps: npm ci in $NODE_DIR"
    (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error)
    write_stamp "$NODE_STAMP" "$NODE_DIR/package-lock.json"
fi

echo "install-test-deps: kcat $(kcat -V 2>&1 | sed -n 's/^Version \([^ ]*\).*/\1/p'), $(.venv/bin/python --version), node $(node --version), prometheus $(prometheus --version 2>&1 | sed -n 's/^prometheus, version \([^ ]*\).*/\1/p'), $(go version | cut -d' ' -f3)"
