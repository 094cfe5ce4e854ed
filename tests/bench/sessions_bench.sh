#!/bin/bash
# Sessions benchmark (issue 14): the release binary `make run` starts, with
# SESSIONS_N (default 1,000) idle linked sessions over wss:// against
# tests/fakewa (a test CA made here with openssl, one account per scan):
# marginal RSS per session, idle CPU, cold start (time, connection rate,
# no QR), create -> first QR and GET /api/sessions latencies, and the
# transport's share (conn-mem). The driver is sessions_bench.py. Prints a
# markdown table and writes it to docs/bench/sessions.md. Run with
# `make bench`; takes about 6 minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
BAZEL=${BAZEL:-bazel}
"$BAZEL" build --config=release //server:wa-gateway //tests/fakewa:fakewa-server \
    //tests/bench:conn-mem >/dev/null 2>&1
BIN=$("$BAZEL" info --config=release bazel-bin 2>/dev/null)
ulimit -n "$(ulimit -Hn)"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mkdir -p docs/bench
/usr/bin/python3 tests/bench/sessions_bench.py --gw "$BIN/server/wa-gateway" \
    --fakewa "$BIN/tests/fakewa/fakewa-server" --conn-mem "$BIN/tests/bench/conn-mem" \
    --tmp "$T" --out docs/bench/sessions.md
