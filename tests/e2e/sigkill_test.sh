#!/bin/bash
# Crash safety: the gateway is killed with SIGKILL at random points of
# pairing and login (50 rounds, bounded). After every kill the store must be
# consistent (wa-gateway --check-store) and the next start must come up
# either logging in (CONNECTED) or asking for a QR (QR_READY): never a
# half-written credential that leaves it stuck.
set -u
. "${TEST_SRCDIR}/wa_gateway/tests/e2e/lib.sh"
BIN=$(gateway_bin)
T=${TEST_TMPDIR:-$(mktemp -d)}
ROUNDS=${SIGKILL_ROUNDS:-50}
PORT=$(free_port)
GPORT=$(free_port)
B=http://127.0.0.1:$PORT
KEY=k

start_fakewa "$T/fw.out" --refs 6 --qr-first-ms 20000 --qr-next-ms 5000
trap 'kill "$FW_PID" ${GW_PID:-} 2>/dev/null' EXIT
RANDOM=$$
connected=0 qr=0 logout=0 CURL_PID=
for round in $(seq 1 "$ROUNDS"); do
    "$BIN" --port "$PORT" --grpc-port "$GPORT" --data-dir "$T/data" --api-key "$KEY" \
        --keepalive-ms 500 2>>"$T/gw.log" &
    GW_PID=$!
    # the restart must reach QR_READY or CONNECTED (or, when the last round
    # asked for a logout that WhatsApp completed before the kill,
    # DISCONNECTED/logged_out with the credentials wiped)
    state=""
    for i in $(seq 1 100); do
        state=$(curl -fsS --max-time 1 "$B/api/whatsapp/status" 2>/dev/null | json 'j["data"]["state"]+"/"+j["data"]["detail"]' 2>/dev/null)
        case "$state" in QR_READY/* | CONNECTED/*) break ;; DISCONNECTED/logged_out) [ "$logout" -eq 1 ] && break ;; esac
        sleep 0.05
    done
    case "$state" in
    QR_READY/*) qr=$((qr + 1)) state=QR_READY ;;
    CONNECTED/*) connected=$((connected + 1)) state=CONNECTED ;;
    DISCONNECTED/logged_out) [ "$logout" -eq 1 ] || fail "round $round: logged out without a logout" ;;
    *) tail -20 "$T/gw.log" >&2; fail "round $round: restart reached '$state'" ;;
    esac
    logout=0
    if [ "$state" = QR_READY ]; then
        RAW=$(curl -fsS -H "X-API-Key: $KEY" "$B/api/whatsapp/qr?format=raw")
        # scan now; the kill lands somewhere in pair-success, 515, login, pre-keys
        curl -s -X POST --data-binary "$RAW" "$CONTROL/scan" >/dev/null &
        CURL_PID=$!
    elif [ $((RANDOM % 4)) -eq 0 ]; then
        curl -s -X POST -H "X-API-Key: $KEY" "$B/api/whatsapp/logout" >/dev/null &
        CURL_PID=$!
        logout=1
    fi
    sleep "0.0$((RANDOM % 10))$((RANDOM % 10))"
    kill -KILL "$GW_PID"
    wait "$GW_PID" 2>/dev/null
    [ -n "${CURL_PID:-}" ] && wait "$CURL_PID" 2>/dev/null
    CURL_PID=
    out=$("$BIN" --check-store --data-dir "$T/data" 2>&1) || fail "round $round: $out"
done
echo "rounds: $ROUNDS, restarts asking for a QR: $qr, logging in: $connected"
[ "$connected" -gt 0 ] || fail "no restart ever logged in (pairing never completed)"
[ "$qr" -gt 0 ] || fail "no restart ever asked for a QR"
echo PASS
