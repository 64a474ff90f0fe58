#!/usr/bin/env bash
# A/B of two builds on produce: bench/ab-produce.sh TAG BROKER BENCH  (env SECS=8 ACKS=1 PARTS=8 EXTRA="more bench flags")
# Alternate two builds run by run (pairs in both orders: the first run of a pair tends to win).
# Starts the broker on a random loopback port with a temp dir, runs produce --bootstrap, prints MiB/s and CPU-s/GB per process
set -u
TAG=$1; BROKER=$2; BENCH=$3
SECS=${SECS:-8}; ACKS=${ACKS:-1}; PARTS=${PARTS:-8}
D=$(mktemp -d /tmp/abdata.XXXX)
PORT=$((20000 + RANDOM % 20000)); HPORT=$((PORT+1))
$BROKER --data-dir $D --listen 127.0.0.1:$PORT --http-listen 127.0.0.1:$HPORT >/dev/null 2>&1 &
BP=$!
for i in $(seq 50); do (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
tick=$(getconf CLK_TCK)
b0=$(awk '{print $14+$15}' /proc/$BP/stat)
OUT=$( { /usr/bin/time -f "%U %S" $BENCH produce --bootstrap 127.0.0.1:$PORT --acks $ACKS --partitions $PARTS --seconds $SECS --json --quiet ${EXTRA:-}; } 2>"$D.time" )
b1=$(awk '{print $14+$15}' /proc/$BP/stat)
kill $BP; wait $BP 2>/dev/null; rm -rf $D
if [ -z "$OUT" ]; then echo "$TAG: the bench failed (port $PORT):"; cat "$D.time"; rm -f "$D.time"; exit 1; fi
python3 - "$TAG" "$OUT" "$(tail -1 "$D.time")" $(( b1-b0 )) $tick <<'PY'
import json,sys
tag,out,t,bt,tick=sys.argv[1],json.loads(sys.argv[2]),sys.argv[3].split(),int(sys.argv[4]),int(sys.argv[5])
p=out['produce']; bps=p['bytes_per_second']; secs=p['seconds']
gb=bps*secs/1e9
bc=bt/tick; cc=float(t[0])+float(t[1])
print(f"{tag:5} {bps/2**20:8.1f} MiB/s  {bps/1e9:.3f} GB/s  cpu/GB broker {bc/gb:.3f} bench {cc/gb:.3f} total {(bc+cc)/gb:.3f}")
PY
rm -f "$D.time"
