#!/bin/bash
# Footprint benchmark: wa-gateway (release build) with one linked session
# (paired with tests/fakewa's simulated phone), idle but connected, so only
# keepalives run. Reports RSS (total, and the private anonymous part), where
# the resident memory is (by mapping), threads, and CPU time and wake-ups
# over FOOTPRINT_SECONDS (default 60). Prints a markdown table and writes it
# to docs/bench/footprint.md. Run with `make bench`.
set -euo pipefail
cd "$(dirname "$0")/../.."
BAZEL=${BAZEL:-bazel}
SECS=${FOOTPRINT_SECONDS:-60}
"$BAZEL" build --config=release //server:wa-gateway //tests/fakewa:fakewa-server >/dev/null 2>&1
BIN=$("$BAZEL" info --config=release bazel-bin 2>/dev/null)
T=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$T"; }
trap cleanup EXIT
. tests/bench/lib.sh

bench_fakewa
P=3331
B="http://127.0.0.1:$P"
S="$B/api/whatsapp/status"

taskset -c 0 "$BIN/server/wa-gateway" --port $P --grpc-port 3332 --data-dir "$T/data" 2>"$T/gw.err" &
GW=$!
PIDS+=("$GW")
wait_state "$S" QR_READY
curl -fsS -o /dev/null -X POST --data-binary "$(curl -fsS "$B/api/whatsapp/qr?format=raw")" "$CONTROL/scan"
wait_state "$S" CONNECTED
sleep 5 # settle: pre-key upload, first keepalive

kb() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$GW/smaps_rollup"; }
cpu_ns() { cat /proc/"$GW"/task/*/schedstat | awk '{s += $1} END {printf "%.0f", s}'; }
ctxsw() { cat /proc/"$GW"/task/*/status | awk '/^voluntary_ctxt_switches/ {s += $2} END {print s}'; }
RSS=$(kb Rss)
ANON=$(kb Anonymous)
PRIV_DIRTY=$(kb Private_Dirty)
THREADS=$(ls /proc/$GW/task | wc -l)
TOP=$(awk '/^[0-9a-f]+-[0-9a-f]+ / {name = ($6 == "" ? "[anonymous]" : $6)} /^Rss:/ {rss[name] += $2}
    END {for (n in rss) print rss[n], n}' "/proc/$GW/smaps" | sort -rn | head -8 |
    awk '{n = $2; sub(".*/", "", n); printf "%s%s %.1f MB", (NR > 1 ? ", " : ""), n, $1 / 1024}')
c0=$(cpu_ns)
w0=$(ctxsw)
sleep "$SECS"
c1=$(cpu_ns)
w1=$(ctxsw)
[ "$(state_at "$S")" = CONNECTED ] || { echo "footprint: the session left CONNECTED" >&2; exit 1; }
CPU_MS=$(awk -v a="$c0" -v b="$c1" 'BEGIN {printf "%.1f", (b - a) / 1e6}')
CPU_PCT=$(awk -v a="$c0" -v b="$c1" -v s="$SECS" 'BEGIN {printf "%.4f", (b - a) / 1e9 / s * 100}')
WAKE=$(awk -v a="$w0" -v b="$w1" -v s="$SECS" 'BEGIN {printf "%.2f", (b - a) / s}')
{
    echo "# Footprint: one linked session, idle-connected"
    echo
    echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(uname -sr)."
    echo "wa-gateway release build on CPU 0, linked to tests/fakewa's simulated phone, keepalive every ${KEEPALIVE_MS:-25000} ms; measured over ${SECS} s."
    echo
    echo "| RSS | of which anonymous | private dirty | threads | CPU over ${SECS} s | CPU share | wake-ups/s |"
    echo "|---|---|---|---|---|---|---|"
    echo "| $((RSS / 1024)).$(((RSS % 1024) * 10 / 1024)) MB | $((ANON / 1024)).$(((ANON % 1024) * 10 / 1024)) MB | $((PRIV_DIRTY / 1024)).$(((PRIV_DIRTY % 1024) * 10 / 1024)) MB | $THREADS | $CPU_MS ms | $CPU_PCT % | $WAKE |"
    echo
    echo "Resident by mapping (largest 8): $TOP."
} | tee "$T/table.md"
mkdir -p docs/bench
cp "$T/table.md" docs/bench/footprint.md
