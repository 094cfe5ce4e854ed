# Shared helpers of the benchmark scripts (sourced, after BIN, T and PIDS
# are set).

# bench_fakewa ARGS...: starts tests/fakewa's server (ARGS are its flags),
# adds it to PIDS and sets and exports WA_URL, WA_ROOT_KEY and CONTROL from
# the first line it prints
bench_fakewa() {
    "$BIN/tests/fakewa/fakewa-server" "$@" >"$T/fw" 2>/dev/null &
    PIDS+=($!)
    for _ in $(seq 50); do [ -s "$T/fw" ] && break; sleep 0.1; done
    WA_URL=$(sed -n 's/.*WA_URL=\([^ ]*\).*/\1/p' "$T/fw")
    WA_ROOT_KEY=$(sed -n 's/.*WA_ROOT_KEY=\([^ ]*\).*/\1/p' "$T/fw")
    CONTROL=$(sed -n 's/.*CONTROL=\([^ ]*\).*/\1/p' "$T/fw")
    [ -n "$WA_URL" ] || { echo "bench: the fake WhatsApp server did not start" >&2; return 1; }
    export WA_URL WA_ROOT_KEY CONTROL
}

# rss_kb PID: resident set size in KB
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
