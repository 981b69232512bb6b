#!/usr/bin/env bash
# A number from a client weir did not write: Debian's librdkafka source, its
# examples/rdkafka_performance built against the system librdkafka, producing and then
# consuming 100-byte records on a fresh one-broker weir. `weir perf produce` and
# `weir perf consume` run against the same broker in the same run, so the two clients
# compare as a ratio on this shared, noisy machine.
#
#   bench/scripts/rdkafka_performance.sh [records]      (default 5,000,000)
#
# Needs root for apt (a deb-src entry for bookworm is added when missing). The built
# tool is kept under ${WEIR_CACHE:-~/.cache/weir}/librdkafka.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
records=${1:-5000000}
bin=${WEIR_BIN:-target/release/weir}
[ -x "$bin" ] || cargo build --release --bin weir
cache=${WEIR_CACHE:-$HOME/.cache/weir}/librdkafka
tool=$cache/rdkafka_performance

if [ ! -x "$tool" ]; then
    export DEBIAN_FRONTEND=noninteractive
    if ! grep -rqs "^Types: deb-src" /etc/apt/sources.list.d/ && ! grep -qs "^deb-src" /etc/apt/sources.list; then
        cat > /etc/apt/sources.list.d/weir-deb-src.sources <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
        apt-get update -qq
    fi
    dpkg -s librdkafka-dev gcc make >/dev/null 2>&1 || apt-get install -y -qq librdkafka-dev gcc make >/dev/null
    mkdir -p "$cache"
    (cd "$cache" && apt-get source -qq --download-only librdkafka)
    src=$(find "$cache" -maxdepth 1 -name 'librdkafka_*.orig.tar.gz' | head -1)
    tar -C "$cache" -xzf "$src"
    dir=$(find "$cache" -maxdepth 1 -type d -name 'librdkafka-*' | head -1)
    # configure writes the config.h the example's internal headers include; the tool
    # itself links against the system's librdkafka (the one kcat and pip's wheels use).
    (cd "$dir" && ./configure --disable-ssl --disable-gssapi --disable-zstd >/dev/null)
    gcc -O2 -I"$dir/src" "$dir/examples/rdkafka_performance.c" -o "$tool" -lrdkafka -lpthread -lm
fi

work=$(mktemp -d)
# The broker dies of the kill: its status must not become the script's (set -e).
trap 'kill -9 $broker 2>/dev/null; wait $broker 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" broker --override "log.dirs=$work/data" --override "listeners=PLAINTEXT://127.0.0.1:$port" \
    > "$work/stdout" 2> "$work/stderr" &
broker=$!
until grep -q "weir broker ready" "$work/stdout" 2>/dev/null; do sleep 0.05; done
"$bin" topics --bootstrap-server "127.0.0.1:$port" --create --topic rdk --partitions 1 >/dev/null
"$bin" topics --bootstrap-server "127.0.0.1:$port" --create --topic own --partitions 1 >/dev/null

echo "== rdkafka_performance -P ($records x 100 B, acks=1, linger.ms=5, batch.num.messages=10000)"
"$tool" -P -t rdk -p 0 -b "127.0.0.1:$port" -s 100 -c "$records" -a 1 -q \
    -X linger.ms=5 -X batch.num.messages=10000 -X queue.buffering.max.messages=1000000 2>&1 | tail -3
echo "== weir perf produce (same records, acks=1, linger.ms=5, batch.size=262144)"
"$bin" perf produce --topic own --num-records "$records" --record-size 100 --throughput -1 \
    --producer-props "bootstrap.servers=127.0.0.1:$port" acks=1 linger.ms=5 batch.size=262144 | tail -1
echo "== rdkafka_performance -C (the $records records from the beginning)"
"$tool" -C -t rdk -p 0 -b "127.0.0.1:$port" -o beginning -c "$records" -q 2>&1 | tail -3
echo "== weir perf consume (the same count)"
"$bin" perf consume --bootstrap-server "127.0.0.1:$port" --topic own --messages "$records" | tail -1
