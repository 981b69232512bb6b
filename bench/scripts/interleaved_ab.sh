#!/usr/bin/env bash
# Interleaved A/B of two weir binaries under the same produce load: two brokers (or,
# with --cluster, two local 3-node clusters and a replication-factor-3 topic) run side
# by side and take turns (A B, B A, A B, ...), so the machine's drifting speed hits
# both alike. Before every run the page cache is written back and dropped, because on
# this VM fresh page-cache pages cost several times more CPU once the guest has used
# memory the host reclaimed (bench/RESULTS.md, "Session 9"). Needs root for that.
#
#   bench/scripts/interleaved_ab.sh OLD_BIN NEW_BIN [rounds] [records] [acks]
#   bench/scripts/interleaved_ab.sh --cluster OLD_BIN NEW_BIN [rounds] [records] [acks]
#
# Each line: label, records/s, and for single brokers the broker's CPU-s per GB
# ingested (all its threads, io_uring workers included), user CPU-s per GB, context
# switches and page faults per MB. Compare medians.
set -euo pipefail
cluster=false
if [ "${1:-}" = "--cluster" ]; then cluster=true; shift; fi
a=$(realpath "$1"); b=$(realpath "$2"); rounds=${3:-6}; records=${4:-3000000}; acks=${5:-1}
[ "$(id -u)" = 0 ] || { echo "needs root (drops the page cache before each run)" >&2; exit 1; }
work=$(mktemp -d -p "${WEIR_AB_DIR:-/tmp}")
pids=()
trap 'kill ${pids[*]} 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start() { # bin label -> sets port_<label>, pid_<label>
    local bin=$1 label=$2 port
    if $cluster; then
        port=$((20000 + RANDOM % 20000))
        "$bin" local-cluster --base-port "$port" --dir "$work/$label" > "$work/$label.log" 2>&1 &
    else
        port=$(free_port)
        WEIR_NUM_PARTITIONS=6 "$bin" broker --override "listeners=PLAINTEXT://127.0.0.1:$port" \
            --override "log.dirs=$work/$label" > "$work/$label.log" 2>&1 &
    fi
    pids+=($!)
    printf -v "port_$label" %s "$port"
    printf -v "pid_$label" %s "$!"
}
start "$a" A
start "$b" B
sleep 5
if $cluster; then
    "$a" topics --bootstrap-server "127.0.0.1:$port_A" --create --topic ab --partitions 6 --replication-factor 3 >/dev/null
    "$b" topics --bootstrap-server "127.0.0.1:$port_B" --create --topic ab --partitions 6 --replication-factor 3 >/dev/null
    sleep 2
fi

sum_threads() { awk "{s += $2} END {print s}" /proc/"$1"/task/*/stat; }
switches() { cat /proc/"$1"/task/*/status | awk '/ctxt_switches/ {s += $2} END {print s}'; }
run() { # label
    local label=$1 port pid
    port=port_$label; port=${!port}; pid=pid_$label; pid=${!pid}
    sync; echo 1 > /proc/sys/vm/drop_caches
    local cpu0 user0 csw0 flt0 out
    if ! $cluster; then
        cpu0=$(sum_threads "$pid" '$14+$15'); user0=$(sum_threads "$pid" '$14')
        csw0=$(switches "$pid"); flt0=$(awk '{print $10}' /proc/"$pid"/stat)
    fi
    out=$("$a" perf produce --topic ab --num-records "$records" --record-size 100 --throughput -1 \
        --producer-props "bootstrap.servers=127.0.0.1:$port" acks="$acks" batch.size=262144 linger.ms=5 | tail -1)
    local rate; rate=$(echo "$out" | awk '{print int($4)}')
    if $cluster; then
        echo "$label records/s=$rate"
    else
        local gb mb hz
        gb=$(echo "$records * 100 / 10^9" | bc -l); mb=$(echo "$records * 100 / 10^6" | bc -l); hz=$(getconf CLK_TCK)
        printf '%s records/s=%s cpu_s_per_gb=%.2f user_s_per_gb=%.2f switches_per_mb=%.1f faults_per_mb=%.1f\n' \
            "$label" "$rate" \
            "$(echo "($(sum_threads "$pid" '$14+$15') - $cpu0) / $hz / $gb" | bc -l)" \
            "$(echo "($(sum_threads "$pid" '$14') - $user0) / $hz / $gb" | bc -l)" \
            "$(echo "($(switches "$pid") - $csw0) / $mb" | bc -l)" \
            "$(echo "($(awk '{print $10}' /proc/"$pid"/stat) - $flt0) / $mb" | bc -l)"
    fi
}
run A > /dev/null; run B > /dev/null   # warm-up: topic creation, first segments
for round in $(seq "$rounds"); do
    if (( round % 2 )); then run A; run B; else run B; run A; fi
done
