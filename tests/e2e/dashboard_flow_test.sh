#!/bin/bash
# End-to-end test of the dashboard's flow with the real programs on loopback:
# wa-gateway against the fake WhatsApp server. A fresh start reaches QR_READY
# by itself; the QR PNG decodes (zbarimg) to the string the fake phone
# expects; a simulated scan leads to CONNECTED; qr then answers 409; the
# gateway restarted on the same data dir logs in without a QR; reconnect
# unlinks and answers with a new QR; refs run out into DISCONNECTED/qr_timeout
# and reconnect gives a QR again; logout wipes the credentials. Along the way:
# both path prefixes, 401 on every protected route, the JSON types of the
# three contract fields, SSE events in order, and a clean exit.
set -u
. "${TEST_SRCDIR}/wa_gateway/tests/e2e/lib.sh"
BIN=$(gateway_bin)
T=${TEST_TMPDIR:-$(mktemp -d)}
KEY=test-key-123
PORT=$(free_port)
GPORT=$(free_port)
B=http://127.0.0.1:$PORT

start_fakewa "$T/fw.out" --refs 3 --qr-first-ms 2500 --qr-next-ms 1200 --server-ping-ms 500
cleanup() {
    kill "${GW_PID:-0}" "$FW_PID" 2>/dev/null
    [ -n "${SSE_PID:-}" ] && kill "$SSE_PID" 2>/dev/null
}
trap cleanup EXIT

start_gw() {
    "$BIN" --port "$PORT" --grpc-port "$GPORT" --data-dir "$T/data" --api-key "$KEY" \
        --qr-first-ms 2500 --qr-next-ms 1200 --keepalive-ms 1000 --reconnect-wait-ms 5000 \
        2>>"$T/gw.log" &
    GW_PID=$!
    wait_http "$B/healthz" 100 || fail "gateway did not start"
}
stop_gw() {
    kill -TERM "$GW_PID"
    wait_exit "$GW_PID" 100
    rc=$?
    [ "$rc" -eq 0 ] || { tail -20 "$T/gw.log" >&2; fail "gateway exit status $rc"; }
}
check_types() { # the three contract fields keep their JSON types in every state
    curl -fsS "$B/api/whatsapp/status" | json 'all([j["success"] is True, type(j["data"]["connected"]) is bool, type(j["data"]["hasQR"]) is bool, type(j["data"]["state"]) is str, j["data"]["state"] in ("CONNECTED","DISCONNECTED","CONNECTING","QR_READY"), j["data"]["connected"] == (j["data"]["state"]=="CONNECTED")])' | grep -q True || fail "contract field types"
}
H="X-API-Key: $KEY"

start_gw
# SSE subscriber for the whole first flow
curl -sN -H "$H" "$B/api/whatsapp/events" >"$T/sse.txt" &
SSE_PID=$!

# 1. fresh start -> QR_READY with hasQR true, by itself
wait_state "$B/api/whatsapp/status" QR_READY 100 || fail "no QR_READY"
check_types
curl -fsS "$B/whatsapp/status" | json 'j["data"]["hasQR"]' | grep -q True || fail "hasQR not true"

# 2. 401 for a missing and a wrong key on each protected route
for r in "GET qr" "POST reconnect" "POST logout" "GET events"; do
    set -- $r
    for k in "" "X-API-Key: wrong"; do
        code=$(curl -s -o "$T/body" -w '%{http_code}' --max-time 3 -X "$1" ${k:+-H "$k"} "$B/api/whatsapp/$2")
        [ "$code" = 401 ] || fail "$r with key '$k' gave $code"
        json 'j["success"] is False and "key" in j["message"].lower()' <"$T/body" | grep -q True || fail "401 body"
    done
done

# 3. the PNG decodes to the exact QR string the phone will scan (three
#    requests: a rotation between them is legitimate, so up to three tries)
for try in 1 2 3; do
    curl -fsS -H "$H" "$B/api/whatsapp/qr" >"$T/qr.json"
    json 'j["data"]["qrCode"].startswith("data:image/png;base64,") and 0 < j["data"]["expiresIn"] <= 3' <"$T/qr.json" | grep -q True || fail "qr body: $(cat "$T/qr.json")"
    curl -fsS -H "$H" "$B/api/whatsapp/qr?format=png" -o "$T/qr.png"
    RAW=$(curl -fsS -H "$H" "$B/whatsapp/qr?format=raw")
    DEC=$(zbarimg --raw -q "$T/qr.png" 2>/dev/null)
    json 'j["data"]["qrCode"]' <"$T/qr.json" | sed 's/^data:image\/png;base64,//' | base64 -d >"$T/qr2.png"
    DEC2=$(zbarimg --raw -q "$T/qr2.png" 2>/dev/null)
    [ -n "$RAW" ] && [ "$RAW" = "$DEC" ] && [ "$RAW" = "$DEC2" ] && break
    [ "$try" = 3 ] && fail "QR image decodes to '$DEC' / '$DEC2', expected '$RAW'"
done
case "$RAW" in https://wa.me/settings/linked_devices\#*,*,*,*,1) ;; *) fail "QR string form: $RAW" ;; esac

# 4. simulated scan -> CONNECTED, hasQR false, account for the key holder
code=$(curl -s -o "$T/scan" -w '%{http_code}' -X POST --data-binary "$RAW" "$CONTROL/scan")
[ "$code" = 200 ] || fail "scan refused: $(cat "$T/scan")"
wait_state "$B/api/whatsapp/status" CONNECTED 100 || fail "no CONNECTED after the scan"
check_types
curl -fsS -H "$H" "$B/api/whatsapp/status" | json 'j["data"]["hasQR"] is False and j["data"]["account"]["phone"]=="15551234567"' | grep -q True || fail "connected status body"
curl -fsS "$B/api/whatsapp/status" | json '"account" not in j["data"]' | grep -q True || fail "account shown without a key"

# 5. qr when connected: 409 with the state
code=$(curl -s -o "$T/body" -w '%{http_code}' -H "$H" "$B/api/whatsapp/qr")
[ "$code" = 409 ] || fail "qr when connected gave $code"
json 'j["success"] is False and j["state"]=="CONNECTED"' <"$T/body" | grep -q True || fail "409 body"

# 6. SSE saw every transition in order: DISCONNECTED? CONNECTING QR_READY ... CONNECTED
sleep 0.3
kill "$SSE_PID"
SSE_PID=
grep '^data: ' "$T/sse.txt" | sed 's/^data: //' | /usr/bin/python3 -c '
import json,sys
ev=[json.loads(l) for l in sys.stdin]
seqs=[e["seq"] for e in ev]
assert seqs==sorted(seqs) and len(set(seqs))==len(seqs), seqs
assert seqs==list(range(seqs[0],seqs[0]+len(seqs))), ("gap", seqs)
states=[e["state"] for e in ev]
i=states.index("QR_READY"); j=len(states)-1-states[::-1].index("CONNECTED")
assert i<j, states
print("sse ok", states)' || fail "SSE events: $(cat "$T/sse.txt")"

# 7. restart on the same data dir: CONNECTED again, no QR
stop_gw
start_gw
wait_state "$B/api/whatsapp/status" CONNECTED 100 || fail "no CONNECTED after restart"
grep -c "pairing:" "$T/gw.log" | grep -q '^1$' || fail "a QR was offered after restart"

# 8. reconnect: unlink and answer with a new QR (new ref)
curl -fsS -X POST -H "$H" "$B/whatsapp/reconnect" >"$T/rc.json" || fail "reconnect failed"
json 'j["success"] and j["message"]=="WhatsApp reconnection initiated" and j["data"]["qrCode"].startswith("data:image/png")' <"$T/rc.json" | grep -q True || fail "reconnect body: $(cat "$T/rc.json")"
RAW2=$(curl -fsS -H "$H" "$B/whatsapp/qr?format=raw")
[ "${RAW2%%,*}" != "${RAW%%,*}" ] || fail "reconnect did not give a new ref"
curl -fsS "$CONTROL/state" | json 'j["logouts"]==1 and j["devices"]==[]' | grep -q True || fail "reconnect did not unlink: $(curl -s "$CONTROL/state")"

# 9. expiresIn counts down, then refs run out -> DISCONNECTED/qr_timeout
E1=$(curl -fsS -H "$H" "$B/api/whatsapp/qr" | json 'j["data"]["expiresIn"]')
sleep 1.1
E2=$(curl -fsS -H "$H" "$B/api/whatsapp/qr" | json 'j["data"]["expiresIn"]' 2>/dev/null || echo 99)
[ "$E2" -lt "$E1" ] || [ "$E2" -gt 1 ] || fail "expiresIn did not count down ($E1 -> $E2)"
wait_state "$B/api/whatsapp/status" DISCONNECTED 80 qr_timeout || fail "no qr_timeout"
check_types
curl -fsS "$B/api/whatsapp/status" | json 'j["data"]["hasQR"]' | grep -q False || fail "hasQR after timeout"
sleep 1
wait_state "$B/api/whatsapp/status" DISCONNECTED 2 qr_timeout || fail "reconnected by itself after qr_timeout"

# 10. reconnect gives a QR again
curl -fsS -X POST -H "$H" "$B/api/whatsapp/reconnect" | json 'j["data"]["expiresIn"] > 0' | grep -q True || fail "no QR on reconnect after timeout"
RAW3=$(curl -fsS -H "$H" "$B/whatsapp/qr?format=raw")
curl -fsS -X POST --data-binary "$RAW3" "$CONTROL/scan" >/dev/null || fail "second scan"
wait_state "$B/api/whatsapp/status" CONNECTED 100 || fail "no CONNECTED after second pairing"

# 11. logout wipes the credentials; the next start shows a QR
curl -fsS -X POST -H "$H" "$B/api/whatsapp/logout" | json 'j["success"]' | grep -q True || fail "logout"
wait_state "$B/api/whatsapp/status" DISCONNECTED 50 logged_out || fail "no logged_out"
stop_gw
start_gw
wait_state "$B/api/whatsapp/status" QR_READY 100 || fail "no QR after logout + restart"
stop_gw
[ "$(stat -c %a "$T/data/wa-gateway.db")" = 600 ] || fail "store mode"
if grep -q "$KEY" "$T/gw.log"; then fail "the API key was logged"; fi
if grep -qE 'ERROR: AddressSanitizer|LeakSanitizer|runtime error' "$T/gw.log"; then
    tail -40 "$T/gw.log" >&2
    fail "sanitizer report"
fi
echo PASS
