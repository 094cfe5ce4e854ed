#!/bin/bash
# `make demo`: the whole flow without a phone or internet. Starts the fake
# WhatsApp server and wa-gateway pointed at it (URL and root key wired
# automatically, QR printed in the terminal too), prints the page's address
# and commands to try, and stops both on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
BAZEL=${BAZEL:-bazel}
PORT=${PORT:-3000}
GRPC_PORT=${GRPC_PORT:-50051}
DATA_DIR=${DATA_DIR:-./data-demo}
"$BAZEL" build //server:wa-gateway //tests/fakewa:fakewa-server
fwout=$(mktemp)
./bazel-bin/tests/fakewa/fakewa-server --server-ping-ms 10000 >"$fwout" &
FW=$!
GW=
cleanup() {
    [ -n "$GW" ] && kill "$GW" 2>/dev/null && wait "$GW" 2>/dev/null
    kill "$FW" 2>/dev/null
    wait "$FW" 2>/dev/null
    rm -f "$fwout"
}
trap cleanup EXIT INT TERM
for _ in $(seq 1 50); do [ -s "$fwout" ] && break; sleep 0.1; done
line=$(head -1 "$fwout")
WA_URL=$(echo "$line" | sed -n 's/.*WA_URL=\([^ ]*\).*/\1/p')
WA_ROOT_KEY=$(echo "$line" | sed -n 's/.*WA_ROOT_KEY=\([^ ]*\).*/\1/p')
CONTROL=$(echo "$line" | sed -n 's/.*CONTROL=\([^ ]*\).*/\1/p')
[ -n "$CONTROL" ] || { echo "demo: the fake WhatsApp server did not start" >&2; exit 1; }
export WA_URL WA_ROOT_KEY
cat <<MSG

  wa-gateway demo (fake WhatsApp server at $WA_URL)

  Open  http://127.0.0.1:$PORT/  and press "Simulate phone scan".

  Try:
    curl -s localhost:$PORT/api/whatsapp/status
    curl -sN localhost:$PORT/api/whatsapp/events
    curl -s 'localhost:$PORT/api/whatsapp/qr?format=raw' | curl -s -X POST --data-binary @- $CONTROL/scan
    curl -s -X POST --data-binary logged_out $CONTROL/fault     # the phone unlinks us
    curl -s -X POST localhost:$PORT/api/whatsapp/reconnect
    buf curl --protocol grpc --http2-prior-knowledge --list-services http://127.0.0.1:$GRPC_PORT
    faults: drop stall garbage restart logged_out replaced server_error outdated banned

  Ctrl-C stops both.

MSG
./bazel-bin/server/wa-gateway --port "$PORT" --grpc-port "$GRPC_PORT" --data-dir "$DATA_DIR" \
    --demo-control-url "$CONTROL" --qr-terminal &
GW=$!
wait "$GW"
