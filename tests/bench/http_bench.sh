#!/bin/bash
# HTTP routes vs the usual stack, in one run on this machine: wa-gateway's
# status and qr routes against (a) a single Node/Express + qrcode process
# serving the same routes (tests/bench/peer, pinned npm versions) and (b) a
# minimal libh2o program returning fixed bytes (the ceiling for "nothing but
# HTTP"). The server runs on CPU 0, the load generator on CPU 1 (taskset).
# wrk for HTTP/1.1, h2load for HTTP/2 (cleartext). Prints a markdown table
# and writes it to docs/bench/http.md. Run with `make bench`.
set -euo pipefail
cd "$(dirname "$0")/../.."
DUR=${BENCH_SECONDS:-10}
BAZEL=${BAZEL:-bazel}
"$BAZEL" build --config=release //server:wa-gateway //tests/bench:h2o-min //tests/fakewa:fakewa-server >/dev/null 2>&1
BIN=$("$BAZEL" info --config=release bazel-bin 2>/dev/null)
(cd tests/bench/peer && [ -d node_modules ] || npm ci --no-audit --no-fund >/dev/null)
T=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$T"; }
trap cleanup EXIT

"$BIN/tests/fakewa/fakewa-server" --qr-first-ms 3600000 >"$T/fw" 2>/dev/null &
PIDS+=($!)
for _ in $(seq 50); do [ -s "$T/fw" ] && break; sleep 0.1; done
WA_URL=$(sed -n 's/.*WA_URL=\([^ ]*\).*/\1/p' "$T/fw")
WA_ROOT_KEY=$(sed -n 's/.*WA_ROOT_KEY=\([^ ]*\).*/\1/p' "$T/fw")
export WA_URL WA_ROOT_KEY

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
now_ms() { date +%s%3N; }

# start NAME PORT CMD...: starts a server on CPU 0 and prints "PID MS", MS
# the time from exec to its first 200 on /healthz (first200.py polls from
# CPU 1 every 0.5 ms over a raw socket)
start() {
    local port=$2
    shift 2
    taskset -c 1 /usr/bin/python3 tests/bench/first200.py "$port" /healthz taskset -c 0 "$@"
}

# wrk_run URL: prints "req/s p50_ms p99_ms"
wrk_run() {
    taskset -c 1 wrk -t1 -c64 -d"${DUR}s" --latency "$1" >"$T/wrk" 2>&1
    local rps p50 p99
    rps=$(awk '/Requests\/sec/ {print $2}' "$T/wrk")
    p50=$(awk '$1=="50%" {print $2}' "$T/wrk")
    p99=$(awk '$1=="99%" {print $2}' "$T/wrk")
    echo "$rps $p50 $p99"
}

h2_run() {
    taskset -c 1 h2load -D "$DUR" -c 64 -m 10 -t 1 "$1" >"$T/h2" 2>&1 || true
    awk '/^finished in/ {for (i=1;i<=NF;i++) if ($i ~ /req\/s/) {print $(i-1); exit}}' "$T/h2"
}

declare -A R
bench() { # bench LABEL PID STATUS_URL QR_URL
    local label=$1 pid=$2
    R[$label,idle]=$(rss_kb "$pid")
    read -r R[$label,s_rps] R[$label,s_p50] R[$label,s_p99] < <(wrk_run "$3")
    R[$label,load]=$(rss_kb "$pid")
    read -r R[$label,q_rps] R[$label,q_p50] R[$label,q_p99] < <(wrk_run "$4")
    R[$label,s_h2]=$(h2_run "$3")
    R[$label,q_h2]=$(h2_run "$4")
}

P1=3301 P2=3302 P3=3303
# first start creates the store; the figure reported is a restart's
read -r pid ms < <(start ours $P1 "$BIN/server/wa-gateway" --port $P1 --grpc-port 3311 --data-dir "$T/data")
PIDS+=("$pid")
R[ours,first_fresh]=$ms
sleep 1
kill "$pid"
while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
read -r pid ms < <(start ours $P1 "$BIN/server/wa-gateway" --port $P1 --grpc-port 3311 --data-dir "$T/data")
PIDS+=("$pid")
R[ours,first]=$ms
sleep 1
# the exact bodies, for the libh2o program to serve the same bytes
curl -fsS "http://127.0.0.1:$P1/api/whatsapp/status" -o "$T/status.json"
curl -fsS "http://127.0.0.1:$P1/api/whatsapp/qr" -o "$T/qr.json"
bench ours "$pid" "http://127.0.0.1:$P1/api/whatsapp/status" "http://127.0.0.1:$P1/api/whatsapp/qr"
read -r pid ms < <(start node $P2 env PORT=$P2 node tests/bench/peer/server.js)
PIDS+=("$pid")
R[node,first]=$ms
sleep 1
bench node "$pid" "http://127.0.0.1:$P2/api/whatsapp/status" "http://127.0.0.1:$P2/api/whatsapp/qr"
read -r pid ms < <(start h2o $P3 "$BIN/tests/bench/h2o-min" $P3 "$T/status.json" "$T/qr.json")
PIDS+=("$pid")
R[h2o,first]=$ms
sleep 1
bench h2o "$pid" "http://127.0.0.1:$P3/api/whatsapp/status" "http://127.0.0.1:$P3/api/whatsapp/qr"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
{
    echo "# HTTP routes: wa-gateway vs Node/Express + qrcode vs minimal libh2o"
    echo
    echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(uname -sr)."
    echo "Server on CPU 0, load generator on CPU 1; wrk -t1 -c64 -d${DUR}s (HTTP/1.1), h2load -c64 -m10 -D${DUR} (HTTP/2 cleartext)."
    echo "wa-gateway and the libh2o program are release builds; the gateway is in QR_READY with the fake WhatsApp server."
    echo "The libh2o program serves the very bodies wa-gateway returned (status $(wc -c <"$T/status.json") bytes, qr $(wc -c <"$T/qr.json") bytes) with the same Content-Type and Cache-Control."
    echo "First 200: from exec to the first 200 on /healthz (tests/bench/first200.py); wa-gateway restarted on its existing store (first start, creating the store: ${R[ours,first_fresh]} ms)."
    echo
    echo "| server | status req/s | p50 | p99 | qr req/s | p50 | p99 | status h2 req/s | qr h2 req/s | idle RSS | RSS under load | first 200 |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
    for s in ours node h2o; do
        name=$s
        [ $s = ours ] && name="wa-gateway"
        [ $s = node ] && name="Node/Express 5 + qrcode"
        [ $s = h2o ] && name="minimal libh2o"
        echo "| $name | ${R[$s,s_rps]} | ${R[$s,s_p50]} | ${R[$s,s_p99]} | ${R[$s,q_rps]} | ${R[$s,q_p50]} | ${R[$s,q_p99]} | ${R[$s,s_h2]} | ${R[$s,q_h2]} | $(( ${R[$s,idle]} / 1024 )) MB | $(( ${R[$s,load]} / 1024 )) MB | ${R[$s,first]} ms |"
    done
    echo
    echo "| ratio (wa-gateway / other) | status h1 | qr h1 | status h2 | qr h2 |"
    echo "|---|---|---|---|---|"
    for s in node h2o; do
        echo "| vs $s | $(ratio "${R[ours,s_rps]}" "${R[$s,s_rps]}") | $(ratio "${R[ours,q_rps]}" "${R[$s,q_rps]}") | $(ratio "${R[ours,s_h2]}" "${R[$s,s_h2]}") | $(ratio "${R[ours,q_h2]}" "${R[$s,q_h2]}") |"
    done
} | tee "$T/table.md"
mkdir -p docs/bench
cp "$T/table.md" docs/bench/http.md
