#!/bin/bash
# Webhook benchmark (issue 15): delivery latency (event stored -> receiver
# got it) at 1,000 events/s to a local receiver, and the RSS a backlog of
# 1,000,000 undelivered events costs (seeded into the store by
# tools/wh-seed). The driver is webhooks_bench.py. Prints a markdown report
# and writes it to docs/bench/webhooks.md. Run with `make bench`; takes
# about 2 minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
BAZEL=${BAZEL:-bazel}
"$BAZEL" build --config=release //server:wa-gateway //tests/fakewa:fakewa-server \
    //tools/wh-seed //tests/bench:wh-latency >/dev/null 2>&1
BIN=$("$BAZEL" info --config=release bazel-bin 2>/dev/null)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mkdir -p docs/bench
/usr/bin/python3 tests/bench/webhooks_bench.py --gw "$BIN/server/wa-gateway" \
    --fakewa "$BIN/tests/fakewa/fakewa-server" --seed "$BIN/tools/wh-seed/wh-seed" --latency "$BIN/tests/bench/wh-latency" \
    --tmp "$T" --out docs/bench/webhooks.md
