#!/bin/bash
# Webhook benchmark (issue 15): delivery latency at 1,000 events/s to a
# local receiver through the release binary (tests/bench/wh_load.c: test
# calls paced at that rate, the receiver in the same program), compared in
# the same run with the bare library (wh_latency.c: the sender in process),
# and the RSS a backlog of 1,000,000 undelivered events costs (seeded into
# the store by tools/wh-seed). The driver is webhooks_bench.py. Prints a
# markdown report and writes it to docs/bench/webhooks.md. Run with
# `make bench`, on an otherwise idle machine (the report gives the load
# average); takes about 3 minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
BAZEL=${BAZEL:-bazel}
"$BAZEL" build --config=release //server:wa-gateway //tests/fakewa:fakewa-server \
    //tools/wh-seed //tests/bench:wh-latency //tests/bench:wh-load >/dev/null 2>&1
BIN=$("$BAZEL" info --config=release bazel-bin 2>/dev/null)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mkdir -p docs/bench
/usr/bin/python3 tests/bench/webhooks_bench.py --gw "$BIN/server/wa-gateway" \
    --fakewa "$BIN/tests/fakewa/fakewa-server" --seed "$BIN/tools/wh-seed/wh-seed" --latency "$BIN/tests/bench/wh-latency" \
    --load "$BIN/tests/bench/wh-load" \
    --tmp "$T" --out docs/bench/webhooks.md
