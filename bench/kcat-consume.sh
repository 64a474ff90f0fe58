#!/usr/bin/env bash
# A third-party consumer's catch-up read: bench/kcat-consume.sh TAG DIR (DIR holds runnel-broker and runnel-bench)
# Starts the broker from DIR on a random loopback port with a temp dir and a 4 GiB page-cache budget, fills topic k
# (8 partitions) with 2 M messages of 1000 B by runnel-bench, then times kcat (librdkafka) reading all of it back;
# prints GB/s and the broker's CPU-s per GB of the read.
set -u
TAG=$1; DIR=$2
D=$(mktemp -d /tmp/abdata.XXXX); PORT=$((20000 + RANDOM % 20000))
MESSAGES=2000000; GB=$(python3 -c "print($MESSAGES * 1000 / 1e9)")
$DIR/runnel-broker --data-dir $D --listen 127.0.0.1:$PORT --http-listen 127.0.0.1:$((PORT+1)) --log-page-cache-bytes 4294967296 >/dev/null 2>&1 & BP=$!
for i in $(seq 50); do (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
tick=$(getconf CLK_TCK)
$DIR/runnel-bench produce --bootstrap 127.0.0.1:$PORT --topic k --partitions 8 --messages $MESSAGES --quiet --json >/dev/null
t0=$(date +%s.%N); c0=$(awk '{print $14+$15}' /proc/$BP/stat)
n=$(kcat -C -b 127.0.0.1:$PORT -t k -o beginning -e -q -f 'x\n' -X fetch.max.bytes=52428800 | wc -l)
t1=$(date +%s.%N); c1=$(awk '{print $14+$15}' /proc/$BP/stat)
kill $BP; wait $BP 2>/dev/null; rm -rf $D
if [ "$n" != "$MESSAGES" ]; then echo "$TAG: kcat read $n of $MESSAGES messages"; exit 1; fi
python3 -c "print('$TAG', '$n msgs', round($GB/($t1-$t0),3), 'GB/s', 'broker cpu-s/GB', round(($c1-$c0)/$tick/$GB,3))"
