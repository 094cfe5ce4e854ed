#!/bin/bash
# Fan-out benchmark: how fast every subscriber hears about a change.
# N concurrent SSE subscribers (default 1,000 and 10,000) on
#   - wa-gateway, while its session goes through pairing flows driven by
#     tests/fakewa (simulated scan -> CONNECTED, reconnect -> new QR, ...),
#   - the Node/Express peer's SSE endpoint (tests/bench/peer),
#   - a bare epoll broadcaster (tests/bench/sse_bcast.c, the floor),
# and 1,000 gRPC WatchStatus streams on wa-gateway. Servers run on CPU 0,
# subscribers and the driver on CPU 1. Per event: delivery latency from the
# change (changedMs in the event) to its arrival at each subscriber, events
# lost, server RSS per subscriber. Prints a markdown table and writes it to
# docs/bench/fanout.md. Run with `make bench` (never by make test).
# FANOUT_SSE_NS="1000 10000", FANOUT_GRPC_N=1000, FANOUT_ROUNDS=5 (pairing
# rounds on wa-gateway; the peers get the same number of changes),
# FANOUT_REPEAT=3 (the whole sequence is run that many times, interleaving
# the servers; each row is the run with the median p99).
set -euo pipefail
cd "$(dirname "$0")/../.."
BAZEL=${BAZEL:-bazel}
SSE_NS=${FANOUT_SSE_NS:-"1000 10000"}
GRPC_N=${FANOUT_GRPC_N:-1000}
ROUNDS=${FANOUT_ROUNDS:-5}
REPEAT=${FANOUT_REPEAT:-3}
PY=/usr/bin/python3
"$BAZEL" build --config=release //server:wa-gateway //tests/fakewa:fakewa-server \
    //tests/bench:sse-load //tests/bench:sse-bcast >/dev/null 2>&1
BIN=$("$BAZEL" info --config=release bazel-bin 2>/dev/null)
(cd tests/bench/peer && [ -d node_modules ] || npm ci --no-audit --no-fund >/dev/null)
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge 30000 ] || ulimit -n 65536 2>/dev/null || true
T=$(mktemp -d)
PIDS=()
cleanup() {
    exec 3>&- 2>/dev/null || true
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT
. tests/bench/lib.sh

field() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }
wait_http() { for _ in $(seq 300); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done; return 1; }

# load CLIENT-ARGS...: starts a subscriber client on CPU 1 fed by fd 3;
# waits for its "ready" line (2 minutes at most)
load() {
    rm -f "$T/in" "$T/out"
    mkfifo "$T/in"
    taskset -c 1 "$@" <"$T/in" >"$T/out" 2>"$T/load.err" &
    LOAD_PID=$!
    PIDS+=("$LOAD_PID")
    exec 3>"$T/in"
    for _ in $(seq 1200); do
        grep -q '^ready' "$T/out" 2>/dev/null && return 0
        kill -0 "$LOAD_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "fanout: subscribers did not get ready: $(cat "$T/load.err")" >&2
    return 1
}

# finish K: tells the client how many changes were made, waits for it to
# end and sets RESULT to its result line (not in a subshell: fd 3 and the
# client are this shell's)
finish() {
    echo "$1" >&3
    exec 3>&-
    wait "$LOAD_PID" || true
    RESULT=$(grep '^result' "$T/out" || echo "result subs=0 errors=? events=0 lost=? gaps=? order_errors=? p50_ms=- p99_ms=- max_ms=-")
}

# a row of the table from a result line
KEYS=()
declare -A RUNS=()
row() { # NAME N RSS_BEFORE RSS_AFTER K RESULT
    local r=$6 kv
    declare -A v=()
    for kv in ${r#result }; do v[${kv%%=*}]=${kv#*=}; done
    local per
    per=$(awk -v a="$3" -v b="$4" -v n="$2" 'BEGIN { printf "%.1f", (b - a) / n }')
    local key="$1,$2"
    [ -n "${RUNS[$key]:-}" ] || KEYS+=("$key")
    RUNS[$key]+="${v[p99_ms]}	| $1 | $2 | $5 | ${v[events]} | ${v[lost]} | ${v[errors]} | ${v[p50_ms]} | ${v[p99_ms]} | ${v[max_ms]} | $(($3 / 1024)) MB | $(($4 / 1024)) MB | $per KB |
"
}
declare -A P99=()
OURS_K=$((ROUNDS * 5))

# --- wa-gateway ------------------------------------------------------------
bench_fakewa --qr-first-ms 3600000 --qr-next-ms 3600000
GP=3321 GG=3322
B="http://127.0.0.1:$GP"

# one pairing round: scan the QR -> CONNECTED; reconnect -> a new QR
pairing_round() {
    local raw
    raw=$(curl -fsS "$B/api/whatsapp/qr?format=raw")
    curl -fsS -o /dev/null -X POST --data-binary "$raw" "$CONTROL/scan"
    wait_state "$B/api/whatsapp/status" CONNECTED
    sleep 0.2
    curl -fsS -o /dev/null -X POST "$B/api/whatsapp/reconnect"
    wait_state "$B/api/whatsapp/status" QR_READY
    sleep 0.2
}

# ours_run LABEL CLIENT-ARGS...: fresh gateway, subscribers, pairing rounds
ours_run() {
    local label=$1 n=$2
    shift 2
    rm -rf "$T/data"
    # 10,000 subscribers: above the default connection and stream caps
    QR_FIRST_MS=3600000 QR_NEXT_MS=3600000 MAX_CONNECTIONS=20000 GRPC_MAX_STREAMS=20000 \
        taskset -c 0 "$BIN/server/wa-gateway" --port $GP \
        --grpc-port $GG --data-dir "$T/data" 2>"$T/gw.err" &
    local gw=$!
    PIDS+=("$gw")
    wait_http "$B/healthz"
    wait_state "$B/api/whatsapp/status" QR_READY
    sleep 0.5
    local before after seq0 seq1
    before=$(rss_kb "$gw")
    load "$@"
    after=$(rss_kb "$gw")
    seq0=$(curl -fs "$B/api/whatsapp/status" | field seq)
    for _ in $(seq "$ROUNDS"); do pairing_round; done
    sleep 0.5
    seq1=$(curl -fs "$B/api/whatsapp/status" | field seq)
    OURS_K=$((seq1 - seq0))
    finish $OURS_K
    row "$label" "$n" "$before" "$after" $((seq1 - seq0)) "$RESULT"
    kill "$gw"
    wait "$gw" 2>/dev/null || true
}

# peer_run LABEL N PORT PID CLIENT-ARGS...: as many changes as wa-gateway
# made (OURS_K), by POST /bench/change, in pairs 0.2 s apart like the
# pairing rounds' bursts
peer_run() {
    local label=$1 n=$2 port=$3 pid=$4
    shift 4
    local before after
    before=$(rss_kb "$pid")
    load "$@"
    after=$(rss_kb "$pid")
    local k=$OURS_K i
    for ((i = 0; i < k; i++)); do
        curl -fsS -o /dev/null -X POST "http://127.0.0.1:$port/bench/change"
        [ $((i % 2)) = 1 ] && sleep 0.2
    done
    sleep 0.5
    finish "$k"
    row "$label" "$n" "$before" "$after" "$k" "$RESULT"
}

for ((rep = 0; rep < REPEAT; rep++)); do
    for n in $SSE_NS; do
        ours_run "wa-gateway SSE" "$n" "$BIN/tests/bench/sse-load" --port $GP --path /api/whatsapp/events --n "$n"
    done
    ours_run "wa-gateway gRPC WatchStatus" "$GRPC_N" $PY tests/bench/grpc_watch_load.py --port $GG --n "$GRPC_N"

    # --- Node/Express peer -------------------------------------------------------
    NP=3323
    for n in $SSE_NS; do
        PORT=$NP taskset -c 0 node tests/bench/peer/server.js >/dev/null 2>&1 &
        np=$!
        PIDS+=("$np")
        wait_http "http://127.0.0.1:$NP/healthz"
        sleep 0.5
        peer_run "Node/Express 5 SSE" "$n" $NP "$np" "$BIN/tests/bench/sse-load" --port $NP --path /api/whatsapp/events --n "$n"
        kill "$np"
        wait "$np" 2>/dev/null || true
    done

    # --- bare epoll broadcaster -----------------------------------------------------
    BP=3324
    for n in $SSE_NS; do
        taskset -c 0 "$BIN/tests/bench/sse-bcast" $BP >/dev/null 2>&1 &
        bp=$!
        PIDS+=("$bp")
        wait_http "http://127.0.0.1:$BP/healthz"
        sleep 0.2
        peer_run "bare epoll broadcaster" "$n" $BP "$bp" "$BIN/tests/bench/sse-load" --port $BP --path /events --n "$n"
        kill "$bp"
        wait "$bp" 2>/dev/null || true
    done
done

# the run with the median p99 of each scenario
ROWS=()
for key in "${KEYS[@]}"; do
    runs=$(printf '%s' "${RUNS[$key]}" | sort -t'	' -k1,1g)
    n=$(printf '%s\n' "$runs" | grep -c .)
    pick=$(printf '%s\n' "$runs" | sed -n "$(((n + 1) / 2))p")
    ROWS+=("${pick#*	}")
    P99[$key]=${pick%%	*}
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
{
    echo "# Fan-out: wa-gateway vs Node/Express SSE vs a bare epoll broadcaster"
    echo
    echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(uname -sr)."
    echo "Server on CPU 0; subscribers (tests/bench/sse_load.c, one epoll thread; gRPC: grpc_watch_load.py, Python grpc.aio) and driver on CPU 1."
    echo "wa-gateway: release build, $ROUNDS pairing rounds with tests/fakewa (scan -> CONNECTED, POST reconnect -> new QR), every state change counted by seq."
    echo "Peers: the same number of changes by POST /bench/change, in pairs 0.2 s apart."
    echo "The whole sequence ran $REPEAT times, interleaving the servers; each row is the run with the median p99 (all p99s: $(for key in "${KEYS[@]}"; do printf '%s %s; ' "$key" "$(printf '%s' "${RUNS[$key]}" | cut -f1 | sort -g | tr '\n' ' ')"; done))."
    echo "Latency: arrival at the subscriber minus the change's changedMs (the same clock)."
    echo
    echo "| server | subscribers | changes | events delivered | lost | errors | p50 ms | p99 ms | max ms | RSS before | RSS with subscribers | RSS per subscriber |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
    for r in "${ROWS[@]}"; do echo "$r"; done
    echo
    echo "| p99 ratio (wa-gateway / bare broadcaster) | $(for n in $SSE_NS; do printf '%s subscribers | ' "$n"; done)"
    echo "|---|$(for n in $SSE_NS; do printf -- '---|'; done)"
    echo "| SSE | $(for n in $SSE_NS; do printf '%s | ' "$(ratio "${P99["wa-gateway SSE,$n"]:-0}" "${P99["bare epoll broadcaster,$n"]:-0}")"; done)"
} | tee "$T/table.md"
mkdir -p docs/bench
cp "$T/table.md" docs/bench/fanout.md
