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
