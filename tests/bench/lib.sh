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

# state_at URL: the "state" of the status JSON at URL
state_at() { curl -fs "$1" | sed -n 's/.*"state":"\([A-Z_]*\)".*/\1/p'; }

# wait_state URL STATE: waits up to 15 s for the status at URL to show STATE
wait_state() {
    for _ in $(seq 300); do
        [ "$(state_at "$1")" = "$2" ] && return 0
        sleep 0.05
    done
    echo "bench: no $2 at $1" >&2
    return 1
}

# rss_kb PID: resident set size in KB
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
