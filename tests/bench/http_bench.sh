#!/bin/bash
# HTTP routes vs the usual stack, in one run on this machine: wa-gateway's
# status and qr routes against (a) a single Node/Express + qrcode process
# serving the same routes (tests/bench/peer, pinned npm versions) and (b) a
# minimal libh2o program returning fixed bytes (the ceiling for "nothing but
# HTTP"). The server runs on CPU 0, the load generator on CPU 1 (taskset).
# wrk for HTTP/1.1, h2load for HTTP/2 (cleartext). wa-gateway is the binary
# `make run` starts (--config=release). On a machine with few cores the load
# generator saturates its core first, so besides req/s each HTTP/1.1 run
# records the server's CPU share (its utime + stime in /proc/PID/stat over
# the run, divided by the run's wall time) and reports req/s per server
# core (req/s / CPU share), the figure compared with libh2o. Prints a
# markdown table and writes it to docs/bench/http.md. Run with `make bench`
# (BENCH_SECONDS, BENCH_ROUNDS).
set -euo pipefail
cd "$(dirname "$0")/../.."
DUR=${BENCH_SECONDS:-5}
BAZEL=${BAZEL:-bazel}
"$BAZEL" build --config=release //server:wa-gateway //tests/bench:h2o-min //tests/fakewa:fakewa-server >/dev/null 2>&1
BIN=$("$BAZEL" info --config=release bazel-bin 2>/dev/null)
(cd tests/bench/peer && [ -d node_modules ] || npm ci --no-audit --no-fund >/dev/null)
T=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$T"; }
trap cleanup EXIT
. tests/bench/lib.sh

bench_fakewa --qr-first-ms 3600000


# start NAME PORT CMD...: starts a server on CPU 0 and prints "PID MS", MS
# the time from exec to its first 200 on /healthz (first200.py polls from
# CPU 1 every 0.5 ms over a raw socket)
start() {
    local port=$2
    shift 2
    taskset -c 1 /usr/bin/python3 tests/bench/first200.py "$port" /healthz taskset -c 0 "$@"
}

# cpu_ticks PID: the process's utime + stime in clock ticks (fields 14 and
# 15 of /proc/PID/stat, counted after the command name's closing paren)
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
HZ=$(getconf CLK_TCK)

# wrk_run URL PID: prints "req/s p50_ms p99_ms cpu_share" (cpu_share: the
# server's CPU seconds per wall second during the run; 1.0 = one core)
wrk_run() {
    local c0 c1 t0 t1
    c0=$(cpu_ticks "$2")
    t0=$(date +%s.%N)
    taskset -c 1 wrk -t1 -c64 -d"${DUR}s" --latency "$1" >"$T/wrk" 2>&1
    t1=$(date +%s.%N)
    c1=$(cpu_ticks "$2")
    local rps p50 p99 share
    rps=$(awk '/Requests\/sec/ {print $2}' "$T/wrk")
    p50=$(awk '$1=="50%" {print $2}' "$T/wrk")
    p99=$(awk '$1=="99%" {print $2}' "$T/wrk")
    share=$(awk -v c="$((c1 - c0))" -v hz="$HZ" -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%.3f", c / hz / (t1 - t0) }')
    echo "$rps $p50 $p99 $share"
}

h2_run() {
    taskset -c 1 h2load -D "$DUR" -c 64 -m 10 -t 1 "$1" >"$T/h2" 2>&1 || true
    awk '/^finished in/ {for (i=1;i<=NF;i++) if ($i ~ /req\/s/) {print $(i-1); exit}}' "$T/h2"
}

declare -A R
ROUNDS=${BENCH_ROUNDS:-3}
median() { tr ' ' '\n' | { grep -v '^$' || true; } | sort -g | awk '{v[NR] = $1} END {print (NR ? v[int((NR + 1) / 2)] : 0)}'; }
# to_ms VALUE: wrk's "482.00us" / "1.34ms" / "1.2s" as milliseconds
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.2f", n }'; }

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
R[ours,pid]=$pid
sleep 1
# the exact bodies, for the libh2o program to serve the same bytes
curl -fsS "http://127.0.0.1:$P1/api/whatsapp/status" -o "$T/status.json"
curl -fsS "http://127.0.0.1:$P1/api/whatsapp/qr" -o "$T/qr.json"
read -r pid ms < <(start node $P2 env PORT=$P2 node tests/bench/peer/server.js)
PIDS+=("$pid")
R[node,first]=$ms
R[node,pid]=$pid
read -r pid ms < <(start h2o $P3 "$BIN/tests/bench/h2o-min" $P3 "$T/status.json" "$T/qr.json")
PIDS+=("$pid")
R[h2o,first]=$ms
R[h2o,pid]=$pid
R[ours,port]=$P1 R[node,port]=$P2 R[h2o,port]=$P3
sleep 1
for s in ours node h2o; do R[$s,idle]=$(rss_kb "${R[$s,pid]}"); done

# Rounds interleave the servers (ours, node, h2o, ours, ...) so that drift in
# this machine's speed hits all of them alike; each figure is the median.
for route in status qr; do
    for ((r = 0; r < ROUNDS; r++)); do
        for s in ours node h2o; do
            read -r rps p50 p99 share < <(wrk_run "http://127.0.0.1:${R[$s,port]}/api/whatsapp/$route" "${R[$s,pid]}")
            R[$s,$route,rps]+="$rps "
            R[$s,$route,share]+="$share "
            R[$s,$route,core]+="$(awk -v r="$rps" -v c="$share" 'BEGIN { printf "%.0f", (c > 0 ? r / c : 0) }') "
            R[$s,$route,p50]+="$(to_ms "$p50") "
            R[$s,$route,p99]+="$(to_ms "$p99") "
            [ $route = status ] && R[$s,load]=$(rss_kb "${R[$s,pid]}")
            if [ $s != node ]; then
                R[$s,$route,h2]+="$(h2_run "http://127.0.0.1:${R[$s,port]}/api/whatsapp/$route") "
            fi
        done
    done
done
for s in ours node h2o; do
    for route in status qr; do
        for m in rps p50 p99 h2 share core; do R[$s,$route,$m]=$(echo "${R[$s,$route,$m]:-}" | median); done
    done
done

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
    echo "Each figure is the median of $ROUNDS rounds; the rounds interleave the three servers."
    echo
    echo "| server | status req/s | p50 ms | p99 ms | qr req/s | p50 ms | p99 ms | status h2 req/s | qr h2 req/s | idle RSS | RSS under load | first 200 |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
    for s in ours node h2o; do
        name=$s
        [ $s = ours ] && name="wa-gateway"
        [ $s = node ] && name="Node/Express 5 + qrcode"
        [ $s = h2o ] && name="minimal libh2o"
        h2s=${R[$s,status,h2]} h2q=${R[$s,qr,h2]}
        [ $s = node ] && h2s="- (no h2c)" && h2q="-"
        echo "| $name | ${R[$s,status,rps]} | ${R[$s,status,p50]} | ${R[$s,status,p99]} | ${R[$s,qr,rps]} | ${R[$s,qr,p50]} | ${R[$s,qr,p99]} | $h2s | $h2q | $(( ${R[$s,idle]} / 1024 )) MB | $(( ${R[$s,load]} / 1024 )) MB | ${R[$s,first]} ms |"
    done
    echo
    echo "| ratio (wa-gateway / other) | status h1 | qr h1 | status h2 | qr h2 |"
    echo "|---|---|---|---|---|"
    echo "| vs node | $(ratio "${R[ours,status,rps]}" "${R[node,status,rps]}") | $(ratio "${R[ours,qr,rps]}" "${R[node,qr,rps]}") | - | - |"
    echo "| vs h2o | $(ratio "${R[ours,status,rps]}" "${R[h2o,status,rps]}") | $(ratio "${R[ours,qr,rps]}" "${R[h2o,qr,rps]}") | $(ratio "${R[ours,status,h2]}" "${R[h2o,status,h2]}") | $(ratio "${R[ours,qr,h2]}" "${R[h2o,qr,h2]}") |"
    echo
    echo "Per server core (HTTP/1.1): req/s divided by the server's CPU share during the run (its utime + stime from /proc/PID/stat over the run's wall time; 1.00 = one core busy). With the load generator on the only other core, raw req/s measure the load generator; these figures measure the server."
    echo
    echo "| server | status CPU share | status req/s per core | qr CPU share | qr req/s per core |"
    echo "|---|---|---|---|---|"
    for s in ours node h2o; do
        name=$s
        [ $s = ours ] && name="wa-gateway (make run's build)"
        [ $s = node ] && name="Node/Express 5 + qrcode"
        [ $s = h2o ] && name="minimal libh2o"
        echo "| $name | ${R[$s,status,share]} | ${R[$s,status,core]} | ${R[$s,qr,share]} | ${R[$s,qr,core]} |"
    done
    echo
    echo "| per server core, wa-gateway / minimal libh2o (target >= 0.80) | status | qr |"
    echo "|---|---|---|"
    echo "| HTTP/1.1 | $(ratio "${R[ours,status,core]}" "${R[h2o,status,core]}") | $(ratio "${R[ours,qr,core]}" "${R[h2o,qr,core]}") |"
} | tee "$T/table.md"
mkdir -p docs/bench
cp "$T/table.md" docs/bench/http.md
