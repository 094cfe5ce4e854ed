#!/bin/bash
# End-to-end smoke test of the wa-gateway binary: --help, configuration
# errors (one line, non-zero exit), /healthz over HTTP/1.1 and HTTP/2, JSON
# 404/405, log format, and a clean exit on SIGTERM (leak-checked under ASan).
set -u
. "${TEST_SRCDIR}/wa_gateway/tests/e2e/lib.sh"
BIN=$(gateway_bin)
T=${TEST_TMPDIR:-$(mktemp -d)}

# --help lists every variable with defaults and exits 0.
out=$("$BIN" --help) || fail "--help exited non-zero"
for v in PORT HOST GRPC_PORT API_KEY DATA_DIR WA_URL WA_ROOT_KEY LOG_LEVEL; do
    echo "$out" | grep -q " $v " || fail "--help does not list $v"
done
echo "$out" | grep -q "default: 3000" || fail "--help does not show the PORT default"

# Invalid configuration: one-line error, non-zero status.
check_bad() {
    err=$("$@" 2>&1 >/dev/null)
    rc=$?
    [ "$rc" -ne 0 ] || fail "'$*' exited 0"
    [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] || fail "'$*' printed more than one line: $err"
    echo "ok: $* -> $err"
}
check_bad "$BIN" --port 70000 --data-dir "$T/d"
check_bad env PORT=abc "$BIN" --data-dir "$T/d"
touch "$T/afile"
check_bad "$BIN" --data-dir "$T/afile/sub"
check_bad "$BIN" --data-dir "$T/afile"
check_bad "$BIN" --host 0.0.0.0 --data-dir "$T/d"
check_bad "$BIN" --bogus

# Port already taken: clear error.
PORT=$(free_port)
GPORT=$(free_port)
/usr/bin/python3 -c "
import socket,time,sys
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1',$PORT)); s.listen(1); time.sleep(3)" &
HOLD=$!
sleep 0.5
check_bad "$BIN" --port "$PORT" --grpc-port "$GPORT" --data-dir "$T/d"
kill "$HOLD" 2>/dev/null
wait "$HOLD" 2>/dev/null

# gRPC port taken, the HTTP one free (HTTP already listens when gRPC
# fails): the listener is closed and the process exits 1 at once, no hang.
PORT=$(free_port)
GPORT=$(free_port)
/usr/bin/python3 -c "
import socket,time
s=socket.socket(); s.bind(('127.0.0.1',$GPORT)); s.listen(1); time.sleep(15)" &
HOLD=$!
sleep 0.5
timeout 10 "$BIN" --port "$PORT" --grpc-port "$GPORT" --data-dir "$T/dg" 2>"$T/glog" >/dev/null
rc=$?
kill "$HOLD" 2>/dev/null
wait "$HOLD" 2>/dev/null
[ "$rc" -eq 1 ] || { cat "$T/glog" >&2; fail "gRPC port taken: exit status $rc (124 = hung)"; }
grep -q "cannot listen for gRPC" "$T/glog" || fail "gRPC port taken: no clear error"
if grep -q 'ERROR: AddressSanitizer\|LeakSanitizer\|runtime error' "$T/glog"; then
    cat "$T/glog" >&2
    fail "sanitizer report after a failed start"
fi
echo "ok: gRPC port taken -> exit 1"

# Start for real; environment sets the port, a flag the data dir.
PORT=$(free_port)
PORT=$PORT GRPC_PORT=$GPORT LOG_LEVEL=debug "$BIN" --data-dir "$T/data" 2>"$T/log" &
PID=$!
wait_http "http://127.0.0.1:$PORT/healthz" 100 || fail "healthz did not answer"
[ -d "$T/data" ] || fail "data dir not created"
[ "$(stat -c %a "$T/data")" = "700" ] || fail "data dir mode is not 0700"
body=$(curl -fsS "http://127.0.0.1:$PORT/healthz")
[ "$body" = '{"status":"ok"}' ] || fail "healthz body: $body"
h2=$(curl -sS --http2-prior-knowledge -o /dev/null -w '%{http_version} %{http_code}' "http://127.0.0.1:$PORT/healthz")
[ "$h2" = "2 200" ] || fail "HTTP/2 healthz: $h2"
code=$(curl -sS -o "$T/b404" -w '%{http_code}' "http://127.0.0.1:$PORT/nope")
[ "$code" = 404 ] || fail "unknown path gave $code"
grep -q '"success":false' "$T/b404" || fail "404 body is not JSON"
hdr=$(curl -sS -X POST -D - -o /dev/null "http://127.0.0.1:$PORT/healthz")
echo "$hdr" | grep -q '^HTTP/1.1 405' || fail "POST /healthz not 405: $hdr"
echo "$hdr" | grep -qi '^allow: GET, HEAD' || fail "405 without Allow"

kill -TERM "$PID"
wait_exit "$PID" 100
rc=$?
[ "$rc" -eq 0 ] || { cat "$T/log" >&2; fail "exit status after SIGTERM: $rc"; }
grep -qE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z INFO  http: listening' "$T/log" || fail "log format"
grep -q 'received SIGTERM' "$T/log" || fail "no shutdown log line"
if grep -q 'ERROR: AddressSanitizer\|LeakSanitizer\|runtime error' "$T/log"; then
    cat "$T/log" >&2
    fail "sanitizer report"
fi

# SIGINT also stops it cleanly.
PORT=$(free_port)
"$BIN" --port "$PORT" --grpc-port "$GPORT" --data-dir "$T/data" 2>"$T/log2" &
PID=$!
wait_http "http://127.0.0.1:$PORT/healthz" 100 || fail "second start did not answer"
kill -INT "$PID"
wait_exit "$PID" 100 || fail "exit status after SIGINT: $?"
echo "PASS"
