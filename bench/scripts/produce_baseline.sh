#!/usr/bin/env bash
# Baseline for the single-node broker: start-up time to ready, and one librdkafka
# producer (kcat) of 100-byte records, reporting records/s and the broker's own
# CPU-seconds per GB ingested (utime+stime from /proc/PID/stat).
#
#   bench/scripts/produce_baseline.sh [records]     (default 2,000,000)
#   KCAT_OPTS="-X enable.idempotence=true" bench/scripts/produce_baseline.sh   (extra producer settings)
#
# The machine is shared and noisy: compare runs made back to back, as ratios.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
records=${1:-2000000}
bin=${WEIR_BIN:-target/release/weir}
[ -x "$bin" ] || cargo build --release --bin weir
command -v kcat >/dev/null || { echo "needs kcat (apt-get install kcat)" >&2; exit 1; }

work=$(mktemp -d)
trap 'kill -9 $broker 2>/dev/null && wait $broker 2>/dev/null; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 - "$records" > "$work/input" <<'PY'
import sys
line = ("x" * 100 + "\n").encode()
sys.stdout.buffer.write(line * int(sys.argv[1]))
PY

start=$(date +%s.%N)
"$bin" broker --override "log.dirs=$work/data" --override "listeners=PLAINTEXT://127.0.0.1:$port" \
    > "$work/stdout" 2> "$work/stderr" &
broker=$!
until grep -q "weir broker ready" "$work/stdout" 2>/dev/null; do sleep 0.005; done
ready=$(date +%s.%N)

kcat -b "127.0.0.1:$port" -L -t perf >/dev/null 2>&1   # auto-creates the topic
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$broker/stat"; }
cpu_before=$(cpu)
t0=$(date +%s.%N)
kcat -b "127.0.0.1:$port" -P -t perf -p 0 -l "$work/input" \
    -X acks=1 -X linger.ms=5 -X batch.num.messages=10000 -X queue.buffering.max.messages=1000000 \
    ${KCAT_OPTS:-}
t1=$(date +%s.%N)
cpu_after=$(cpu)
logged=$(kcat -b "127.0.0.1:$port" -Q -t perf:0:-1 2>/dev/null | awk '{print $NF}')

python3 - "$start" "$ready" "$t0" "$t1" "$cpu_before" "$cpu_after" "$ticks" "$records" "$logged" <<'PY'
import sys
start, ready, t0, t1 = map(float, sys.argv[1:5])
cpu_before, cpu_after, ticks, records = map(float, sys.argv[5:9])
logged = sys.argv[9]
seconds = t1 - t0
gigabytes = records * 100 / 1e9
cpu_seconds = (cpu_after - cpu_before) / ticks
print(f"start-up to ready: {(ready - start) * 1000:.0f} ms")
print(f"kcat producer: {records:.0f} records of 100 B in {seconds:.2f} s = {records / seconds:,.0f} records/s "
      f"({records * 100 / seconds / 2**20:.1f} MiB/s payload); log end offset {logged}")
print(f"broker CPU: {cpu_seconds:.2f} s = {cpu_seconds / gigabytes:.2f} CPU-seconds per GB of payload")
PY
