#!/bin/bash
# Cluster benchmark: three nodes of the release binary `make run` starts on
# one throwaway PostgreSQL (tests/pg/pgtmp.sh, torn down on every exit),
# CLUSTER_BENCH_SESSIONS (default 60) linked sessions over wss:// against
# tests/fakewa: what forwarding a command to the owner adds (pairing-code
# and reconnect, sent to the owner and to another node, interleaved, on
# kept-alive connections), failover after kill -9 of a node, and the
# per-session downtime of a drain (SIGTERM). The driver is cluster_bench.py.
# Prints a markdown table and writes it to docs/bench/cluster.md. Run with
# `make bench`; takes about 75 seconds.
set -euo pipefail
cd "$(dirname "$0")/../.."
BAZEL=${BAZEL:-bazel}
"$BAZEL" build --config=release //server:wa-gateway //tests/fakewa:fakewa-server >/dev/null 2>&1
BIN=$("$BAZEL" info --config=release bazel-bin 2>/dev/null)
ulimit -n "$(ulimit -Hn)"
T=$(mktemp -d)
PGDIR=
cleanup() {
    [ -n "$PGDIR" ] && tests/pg/pgtmp.sh stop "$PGDIR"
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# PostgreSQL on CPU 1 with the driver and the fake server; the nodes on CPU 0
out=$(taskset -c 1 tests/pg/pgtmp.sh start)
PGDIR=$(printf '%s\n' "$out" | sed -n 's/^PGTMP_DIR=//p')
URL=$(printf '%s\n' "$out" | sed -n 's/^PGTMP_URL=//p')
[ -n "$PGDIR" ] && [ -n "$URL" ] || { echo "cluster_bench: PostgreSQL did not start" >&2; exit 1; }
mkdir -p docs/bench
STORE_URL=$URL /usr/bin/python3 tests/bench/cluster_bench.py --gw "$BIN/server/wa-gateway" \
    --fakewa "$BIN/tests/fakewa/fakewa-server" --tmp "$T" --out docs/bench/cluster.md
