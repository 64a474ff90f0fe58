#!/usr/bin/env bash
# kcat (librdkafka's command-line client) against a live Runnel broker.
#
#   RUNNEL_BOOTSTRAP=127.0.0.1:9092 tests/compat/kcat.sh
#
# kcat has no admin API: the topic is auto-created by the first produce (the broker's default
# partition count), and deletion is not tested here. kcat cannot set per-message timestamps
# either: it sends librdkafka's CreateTime, which is checked to lie inside the produce window.
# Prints one line per test ("ok - …", "not ok - …", "skip - …") and closes with
# "kcat: N passed, M failed, K skipped"; exits non-zero on any failure.
set -uo pipefail

BOOTSTRAP=${RUNNEL_BOOTSTRAP:-127.0.0.1:9092}
KCAT=${KCAT:-kcat}
TOPIC="compat-kcat-$(head -c 5 /dev/urandom | od -An -tx1 | tr -d ' \n')"
CODECS=(none gzip snappy lz4 zstd)
MESSAGES_PER_CODEC=50
KEYS_PER_CODEC=7
# Every kcat call is bounded: a broken broker must fail the suite, not hang it.
CALL_TIMEOUT_S=30
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

passed=0
failed=0
skipped=0

kc() {
    timeout "$CALL_TIMEOUT_S" "$KCAT" -b "$BOOTSTRAP" -m 10 -q \
        -X socket.timeout.ms=10000 -X reconnect.backoff.max.ms=1000 "$@"
}

now_ms() { date +%s%3N; }

# run_test NAME FUNCTION: a test passes when its function returns 0; its output is shown on
# failure only.
run_test() {
    local name=$1 fn=$2
    if "$fn" >"$WORK/out" 2>&1; then
        echo "ok - $name"
        passed=$((passed + 1))
    else
        echo "not ok - $name"
        sed 's/^/    /' "$WORK/out" | head -40
        failed=$((failed + 1))
    fi
}

skip_test() {
    echo "skip - $1 # $2"
    skipped=$((skipped + 1))
}

expect_eq() { # WHAT WANT GOT
    if [[ "$2" != "$3" ]]; then
        echo "$1: want '$2', got '$3'"
        return 1
    fi
}

# The lines one codec's producer sends, "key:value", and what consuming them prints.
input_lines() {
    local codec=$1 i j filler
    for ((i = 0; i < MESSAGES_PER_CODEC; i++)); do
        filler=""
        for ((j = 0; j < (i * 13) % 40; j++)); do filler+=abcdefgh; done
        echo "$codec-key-$((i % KEYS_PER_CODEC)):$codec value $i $filler"
    done
}

test_metadata() {
    kc -L >"$WORK/metadata" || return 1
    grep -q "broker" "$WORK/metadata" || { cat "$WORK/metadata"; return 1; }
}

produce_codec() {
    local codec=$1 start end
    start=$(now_ms)
    # Partition 0 explicitly: offsets are then known whatever the default partition count.
    input_lines "$codec" | kc -P -t "$TOPIC" -p 0 -K : -z "$codec" \
        -H "codec=$codec" -H "dup=first" -H "dup=second" -X linger.ms=20 || return 1
    end=$(now_ms)
    echo "$codec $start $end" >>"$WORK/windows"
}

for codec in "${CODECS[@]}"; do
    eval "test_produce_$codec() { produce_codec $codec; }"
done

consume_all() {
    [[ -s "$WORK/consumed" ]] && return 0
    kc -C -t "$TOPIC" -o beginning -e -f '%p|%o|%T|%k|%s|%h\n' >"$WORK/consumed"
}

# Everything but the timestamp must match exactly; the timestamp must be the producer's
# CreateTime, inside the window in which that codec's producer ran.
test_consume_roundtrip() {
    consume_all || return 1
    local offset=0 codec
    : >"$WORK/expected"
    for codec in "${CODECS[@]}"; do
        input_lines "$codec" | while IFS= read -r line; do
            echo "0|$offset|${line%%:*}|${line#*:}|codec=$codec,dup=first,dup=second"
            offset=$((offset + 1))
        done >>"$WORK/expected"
        offset=$((offset + MESSAGES_PER_CODEC))
    done
    cut -d'|' -f1,2,4- "$WORK/consumed" >"$WORK/consumed-no-ts"
    diff -u "$WORK/expected" "$WORK/consumed-no-ts" | cut -c1-160 | head -30
    cmp -s "$WORK/expected" "$WORK/consumed-no-ts"
}

test_timestamps_are_create_time() {
    consume_all || return 1
    local codec start end
    while read -r codec start end; do
        awk -F'|' -v c="$codec" -v s="$start" -v e="$end" '
            index($4, c "-key-") == 1 && ($3 < s || $3 > e) { print "offset " $2 " ts " $3 " outside " s ".." e; bad = 1 }
            END { exit bad }' "$WORK/consumed" || return 1
    done <"$WORK/windows"
}

# The first offset whose timestamp is >= TARGET, from what was consumed (-1: none).
expected_offset_for() {
    awk -F'|' -v t="$1" '$3 >= t { print $2; found = 1; exit } END { if (!found) print -1 }' "$WORK/consumed"
}

test_query_offset_by_timestamp() {
    consume_all || return 1
    local target want got last
    # A message in the middle of the gzip producer's run, then just after it, then after all.
    target=$(awk -F'|' '$2 == 75 { print $3 }' "$WORK/consumed")
    last=$(awk -F'|' 'END { print $3 }' "$WORK/consumed")
    for target in "$target" "$((target + 1))" "$((last + 1))"; do
        want=$(expected_offset_for "$target")
        got=$(kc -Q -t "$TOPIC:0:$target" | sed -n 's/.*offset \(-\{0,1\}[0-9]*\).*/\1/p')
        expect_eq "kcat -Q $TOPIC:0:$target" "$want" "$got" || return 1
    done
}

test_consume_from_timestamp() {
    consume_all || return 1
    local target want got
    target=$(awk -F'|' '$2 == 75 { print $3 }' "$WORK/consumed")
    want=$(expected_offset_for "$target")
    got=$(kc -C -t "$TOPIC" -o "s@$target" -c 1 -e -f '%o\n')
    expect_eq "first offset of -o s@$target" "$want" "$got"
}

test_watermarks() {
    local total=$((MESSAGES_PER_CODEC * ${#CODECS[@]})) low high
    # kcat -Q takes Kafka's special timestamps: -2 is the log start, -1 the end.
    low=$(kc -Q -t "$TOPIC:0:-2" | sed -n 's/.*offset \([0-9]*\).*/\1/p')
    high=$(kc -Q -t "$TOPIC:0:-1" | sed -n 's/.*offset \([0-9]*\).*/\1/p')
    expect_eq "low watermark" 0 "$low" && expect_eq "high watermark" "$total" "$high"
}

test_group_consume() {
    local total=$((MESSAGES_PER_CODEC * ${#CODECS[@]})) got
    got=$(kc -G "compat-kcat-group-$RANDOM" -o beginning -e -f '%o\n' "$TOPIC" | wc -l)
    expect_eq "messages read by the group consumer" "$total" "$got"
}

test_topic_listed() {
    kc -L -t "$TOPIC" >"$WORK/topic-md" || return 1
    grep -q "topic \"$TOPIC\" with 1 partitions" "$WORK/topic-md" || { cat "$WORK/topic-md"; return 1; }
}

command -v "$KCAT" >/dev/null || { echo "not ok - kcat installed"; echo "kcat: 0 passed, 1 failed, 0 skipped"; exit 1; }
echo "# kcat $("$KCAT" -V 2>&1 | sed -n 's/^Version //p') against $BOOTSTRAP, topic $TOPIC"
run_test "metadata (-L)" test_metadata
for codec in "${CODECS[@]}"; do
    run_test "produce $MESSAGES_PER_CODEC keyed messages with headers, -z $codec (auto-creates topic)" "test_produce_$codec"
done
run_test "auto-created topic is listed with the default partition count" test_topic_listed
run_test "consume from beginning: partition, offset, key, value, headers" test_consume_roundtrip
run_test "timestamps are the producer's CreateTime" test_timestamps_are_create_time
run_test "query offset by timestamp (-Q t:p:ts)" test_query_offset_by_timestamp
run_test "consume from timestamp (-o s@ts)" test_consume_from_timestamp
run_test "low and high watermarks (-Q t:p:-2/-1)" test_watermarks
run_test "balanced consumer group (-G) reads everything" test_group_consume
skip_test "delete topic" "kcat has no admin API"

echo "kcat: $passed passed, $failed failed, $skipped skipped"
[[ $failed -eq 0 ]]
