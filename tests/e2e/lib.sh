# Shared shell helpers for end-to-end tests (sourced, not run).
# Every test uses loopback only and bounds every wait.

# Prints a free TCP port on 127.0.0.1.
free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# fail MESSAGE: prints and exits non-zero.
fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# wait_http URL [TRIES]: polls URL every 0.1 s until it answers 200.
wait_http() {
    i=0
    while [ "$i" -lt "${2:-100}" ]; do
        if curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null; then return 0; fi
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# wait_exit PID [TRIES]: waits up to TRIES*0.1 s for PID to exit; prints its status.
wait_exit() {
    i=0
    while kill -0 "$1" 2>/dev/null && [ "$i" -lt "${2:-100}" ]; do
        sleep 0.1
        i=$((i + 1))
    done
    if kill -0 "$1" 2>/dev/null; then return 1; fi
    wait "$1"
}

# The binary under test, from the test's runfiles.
gateway_bin() {
    echo "${TEST_SRCDIR}/wa_gateway/server/wa-gateway"
}

# The fake WhatsApp server from the test's runfiles.
fakewa_bin() {
    echo "${TEST_SRCDIR}/wa_gateway/tests/fakewa/fakewa-server"
}

# start_fakewa OUTFILE ARGS...: starts the fake server in the background;
# sets FW_PID, WA_URL, WA_ROOT_KEY and CONTROL from its first line.
start_fakewa() {
    out=$1
    shift
    "$(fakewa_bin)" "$@" >"$out" 2>"$out.err" &
    FW_PID=$!
    i=0
    while [ ! -s "$out" ] && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    line=$(head -1 "$out")
    WA_URL=$(echo "$line" | sed -n 's/.*WA_URL=\([^ ]*\).*/\1/p')
    WA_ROOT_KEY=$(echo "$line" | sed -n 's/.*WA_ROOT_KEY=\([^ ]*\).*/\1/p')
    CONTROL=$(echo "$line" | sed -n 's/.*CONTROL=\([^ ]*\).*/\1/p')
    export WA_URL WA_ROOT_KEY
    [ -n "$CONTROL" ] || fail "fake server did not start: $(cat "$out.err")"
}

# json EXPR: evaluates a Python expression on the JSON read from stdin (as j).
json() {
    /usr/bin/python3 -c "import json,sys; j=json.load(sys.stdin); print($1)"
}

# wait_state URL STATE [TRIES] [DETAIL]: polls a status URL until state (and detail) match.
wait_state() {
    i=0
    while [ "$i" -lt "${3:-100}" ]; do
        got=$(curl -fsS --max-time 2 "$1" 2>/dev/null | json 'j["data"]["state"]+"/"+j["data"]["detail"]' 2>/dev/null)
        case "$got" in "$2/${4:-}"*) return 0 ;; esac
        sleep 0.1
        i=$((i + 1))
    done
    echo "last state: $got" >&2
    return 1
}
