#!/usr/bin/python3
"""End-to-end tests of the HTTP API details with the real programs on
loopback (wa-gateway + the fake WhatsApp server): WebSocket events in order,
expiresIn counting down and resetting on rotation, 404/405/413, malformed and
invalid UTF-8 bodies, CORS preflight, metrics without secrets, readiness,
HTTP/2, and HTTPS with a test certificate (HTTP/2 by ALPN)."""
import base64, http.client, json, os, socket, ssl, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import SRC, TMP, GW, FW, procs, fail, check, free_port, req

KEY = "k3y-for-tests"


def request(port, method, path, body=None, headers=None, tls_ctx=None):
    h = {"X-API-Key": KEY}
    h.update(headers or {})
    return req(port, method, path, body=body, headers=h, timeout=10, tls_ctx=tls_ctx)


def wait_state(port, state, detail=None, secs=10):
    end = time.time() + secs
    last = None
    while time.time() < end:
        try:
            _, _, b = request(port, "GET", "/api/whatsapp/status")
            d = json.loads(b)["data"]
            last = d
            if d["state"] == state and (detail is None or d["detail"] == detail):
                return d
        except OSError:
            pass
        time.sleep(0.05)
    fail("state %s not reached (last %s)" % (state, last))


def start_fakewa():
    p = subprocess.Popen([FW, "--refs", "3", "--qr-first-ms", "2000", "--qr-next-ms", "1500"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    procs.append(p)
    line = p.stdout.readline().split()
    env = dict(kv.split("=", 1) for kv in line)
    return env


def start_gateway(env, port, extra=()):
    e = dict(os.environ, WA_URL=env["WA_URL"], WA_ROOT_KEY=env["WA_ROOT_KEY"])
    log = open(os.path.join(TMP, "gw-%d.log" % port), "w")
    p = subprocess.Popen([GW, "--port", str(port), "--grpc-port", str(free_port()),
                          "--data-dir", os.path.join(TMP, "data-%d" % port), "--api-key", KEY,
                          "--qr-first-ms", "2000", "--qr-next-ms", "1500", "--heartbeat-ms", "300",
                          "--cors-origins", "http://dash.example, http://other.example"] + list(extra),
                         env=e, stderr=log)
    procs.append(p)
    for _ in range(100):
        try:
            if request(port, "GET", "/healthz", tls_ctx=None if "--tls-cert" not in extra else TLS)[0] == 200:
                return p
        except OSError:
            time.sleep(0.05)
    fail("gateway did not start")


from wsclient import WS as _WS


def WS(port, path, headers=None):
    return _WS("127.0.0.1", port, path, headers=headers)


env = start_fakewa()
control = env["CONTROL"]
cport = int(control.split(":")[2].split("/")[0])
port = free_port()
start_gateway(env, port)
wait_state(port, "QR_READY")

# WebSocket: refused without the key, then every event in order through a pairing
check(WS(port, "/api/whatsapp/ws").status == 401, "WebSocket without a key not refused")
ws = WS(port, "/api/whatsapp/events", headers={"X-API-Key": KEY})
check(ws.status == 101, "WebSocket upgrade status %d" % ws.status)
first = ws.recv()
check(first["state"] == "QR_READY" and first["hasQR"] is True, "first WS event %s" % first)

# expiresIn counts down within a ref and resets when the QR rotates
_, _, b = request(port, "GET", "/api/whatsapp/qr")
e1 = json.loads(b)["data"]["expiresIn"]
_, _, raw1 = request(port, "GET", "/api/whatsapp/qr?format=raw")
time.sleep(1.1)
_, _, b = request(port, "GET", "/api/whatsapp/qr")
e2 = json.loads(b)["data"]["expiresIn"]
check(1 <= e1 <= 2 and e2 < e1, "expiresIn did not count down: %s -> %s" % (e1, e2))
rot = ws.recv()  # the rotation arrives as an event too
check(rot["state"] == "QR_READY" and rot["seq"] == first["seq"] + 1, "rotation event %s" % rot)
_, _, raw2 = request(port, "GET", "/api/whatsapp/qr?format=raw")
_, _, b = request(port, "GET", "/api/whatsapp/qr")
e3 = json.loads(b)["data"]["expiresIn"]
check(raw2 != raw1 and e3 >= 1, "QR did not rotate with a fresh expiresIn (%s)" % e3)

st, _, _ = request(cport, "POST", "/control/scan", body=raw2)
check(st == 200, "scan refused")
seqs, states = [first["seq"], rot["seq"]], []
while True:
    ev = ws.recv()
    seqs.append(ev["seq"])
    states.append(ev["state"])
    if ev["state"] == "CONNECTED":
        break
check(seqs == list(range(seqs[0], seqs[0] + len(seqs))), "WS events out of order or lost: %s" % seqs)
ws.send("ping")
check(ws.recv()["state"] == "CONNECTED", "WS ping answer")
print("websocket ok", states)

# errors: 404, 405 with Allow, 413, malformed and invalid UTF-8 bodies, bad format
st, h, b = request(port, "GET", "/api/whatsapp/nope")
check(st == 404 and json.loads(b)["success"] is False, "404 %s" % st)
st, h, b = request(port, "POST", "/api/whatsapp/status")
check(st == 405 and "GET" in h.get("allow", "") and json.loads(b)["success"] is False, "405 POST status")
st, h, b = request(port, "GET", "/whatsapp/reconnect")
check(st == 405 and "POST" in h.get("allow", ""), "405 GET reconnect")
st, _, b = request(port, "POST", "/api/whatsapp/reconnect", body=b"{" + b" " * 20000 + b"}")
check(st == 413 and json.loads(b)["success"] is False, "413 %s" % st)
for body in (b"{bad", b"[1,2]", b'{"keepCredentials":"yes"}', b'{"waitMs":-5}', b'{"keepCredentials":"\xff\xfe"}'):
    st, _, b = request(port, "POST", "/api/whatsapp/reconnect", body=body,
                       headers={"Content-Type": "application/json"})
    check(st == 400 and json.loads(b)["success"] is False, "malformed body %r gave %s" % (body, st))
st, _, b = request(port, "GET", "/api/whatsapp/qr?format=gif")
check(st in (400, 409), "unknown format %s" % st)
wait_state(port, "CONNECTED")  # none of that disturbed the session

# malformed HTTP: request headers over h2o's limit (8 KB + 100 x 4 KB) get
# 400 and the connection is closed; a slowloris client that never finishes
# its headers is dropped after 10 s while everybody else is served
import socket
big = socket.create_connection(("127.0.0.1", port), timeout=10)
big.sendall(b"GET /api/whatsapp/status HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 600000 + b"\r\n\r\n")
check(big.recv(64).startswith(b"HTTP/1.1 400 "), "huge headers not refused")
big.close()
slow = [socket.create_connection(("127.0.0.1", port), timeout=15) for _ in range(20)]
for c in slow:
    c.sendall(b"GET /api/whatsapp/status HTTP/1.1\r\nHost: x\r\n")
t0 = time.time()
for _ in range(5):
    st, _, _ = request(port, "GET", "/api/whatsapp/status")
    check(st == 200, "status while slowloris connections are open: %s" % st)
for c in slow:
    check(c.recv(64) == b"", "slowloris connection answered")
    c.close()
check(time.time() - t0 < 12, "slowloris connections held %.1f s" % (time.time() - t0))
print("malformed HTTP ok")

# CORS: preflight answered for allowed origins only
st, h, _ = request(port, "OPTIONS", "/api/whatsapp/qr",
                   headers={"Origin": "http://dash.example", "Access-Control-Request-Method": "GET",
                            "Access-Control-Request-Headers": "x-api-key"})
check(st == 204 and h.get("access-control-allow-origin") == "http://dash.example"
      and "x-api-key" in h.get("access-control-allow-headers", "").lower(), "preflight %s %s" % (st, h))
st, h, _ = request(port, "GET", "/api/whatsapp/status", headers={"Origin": "http://evil.example"})
check(st == 200 and "access-control-allow-origin" not in h, "CORS for an unlisted origin")
st, h, _ = request(port, "GET", "/api/whatsapp/status", headers={"Origin": "http://other.example"})
check(h.get("access-control-allow-origin") == "http://other.example", "CORS for a listed origin")

# metrics and readiness; no secrets in metrics
st, _, b = request(port, "GET", "/metrics")
m = b.decode()
check(st == 200 and 'wagw_session_state{session="default",state="CONNECTED"} 1' in m
      and "wagw_requests_total" in m and 'wagw_subscribers{transport="websocket"} 1' in m, "metrics")
check(KEY not in m and raw2.decode().split("#")[1][:20] not in m, "a secret in /metrics")
st, _, b = request(port, "GET", "/readyz")
check(st == 200 and json.loads(b)["status"] == "ready", "readyz")

# SSE: the current state first, then heartbeats while nothing changes
c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
c.request("GET", "/whatsapp/events", headers={"X-API-Key": KEY})
r = c.getresponse()
check(r.status == 200 and r.getheader("Content-Type") == "text/event-stream", "SSE headers")
got, t0 = b"", time.time()
while b": heartbeat" not in got and time.time() - t0 < 3:
    got += r.read1(4096)
check(b"event: status" in got and b'"state":"CONNECTED"' in got and b": heartbeat" in got,
      "SSE first event and heartbeat: %r" % got[:300])
c.close()

# reconnect keeping the credentials: the same device logs in again
st, _, b = request(cport, "GET", "/control/state")
logins = json.loads(b)["loginsOk"]
st, _, b = request(port, "POST", "/api/whatsapp/reconnect", body=b'{"keepCredentials":true}')
check(st == 200 and json.loads(b)["data"]["state"] == "CONNECTED", "keepCredentials reconnect %s %s" % (st, b))
st, _, b = request(cport, "GET", "/control/state")
check(json.loads(b)["loginsOk"] == logins + 1 and json.loads(b)["paired"] == 1, "keepCredentials did not log in again")

# HTTP/2 cleartext (prior knowledge) with curl
out = subprocess.run(["curl", "-s", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
                      "http://127.0.0.1:%d/api/whatsapp/status" % port], capture_output=True, text=True).stdout
check(out == "2 200", "h2c: %s" % out)

# HTTPS with a test certificate: HTTP/1.1 and HTTP/2 by ALPN
subprocess.run("cd '%s' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
               "-subj /CN=localhost -addext subjectAltName=DNS:localhost -keyout tls.key -out tls.pem 2>/dev/null" % TMP,
               shell=True, check=True)
TLS = ssl.create_default_context(cafile=os.path.join(TMP, "tls.pem"))
tport = free_port()
start_gateway(env, tport, ("--tls-cert", os.path.join(TMP, "tls.pem"), "--tls-key", os.path.join(TMP, "tls.key")))
st, _, b = request(tport, "GET", "/api/whatsapp/status", tls_ctx=TLS)
check(st == 200 and json.loads(b)["success"] is True, "HTTPS status")
out = subprocess.run(["curl", "-s", "--http2", "--cacert", os.path.join(TMP, "tls.pem"), "-o", "/dev/null",
                      "-w", "%{http_version} %{http_code}", "https://localhost:%d/healthz" % tport],
                     capture_output=True, text=True).stdout
check(out == "2 200", "HTTPS h2: %s" % out)
try:
    http.client.HTTPConnection("127.0.0.1", tport, timeout=3).request("GET", "/healthz")
except Exception:
    pass

# WhatsApp unreachable: reconnect answers 502 with the detail, quickly
env_dead = dict(env, WA_URL="ws://127.0.0.1:%d/ws/chat" % free_port())
dport = free_port()
start_gateway(env_dead, dport, ("--reconnect-wait-ms", "5000"))
t0 = time.time()
st, _, b = request(dport, "POST", "/api/whatsapp/reconnect")
j = json.loads(b)
check(st == 502 and j["success"] is False and j["detail"] == "unreachable" and time.time() - t0 < 5,
      "unreachable reconnect: %s %s" % (st, b))

# wrong keys are rate limited per address: 429 after 10; the right key still passes
for i in range(10):
    st, _, _ = request(dport, "GET", "/api/whatsapp/qr", headers={"X-API-Key": "guess-%d" % i})
    check(st == 401, "wrong key %d gave %d" % (i, st))
st, h, b = request(dport, "GET", "/api/whatsapp/qr", headers={"X-API-Key": "guess-10"})
check(st == 429 and h.get("retry-after") == "60" and json.loads(b)["success"] is False,
      "no lockout after 10 wrong keys: %s" % st)
st, _, _ = request(dport, "GET", "/api/whatsapp/qr")
check(st != 429 and st != 401, "the right key was locked out: %s" % st)
st, _, b = request(dport, "GET", "/api/whatsapp/status")
check(st == 200, "status (no key needed) refused during the lockout")
st, _, b = request(dport, "GET", "/metrics")
check("wagw_auth_failures_total 11" in b.decode(), "auth failures not counted")

for p in procs[1:]:
    p.terminate()
for p in procs[1:]:
    check(p.wait(10) == 0, "gateway exit status")
procs[0].terminate()
for f in os.listdir(TMP):
    if f.startswith("gw-") and KEY in open(os.path.join(TMP, f)).read():
        fail("the API key was logged")
print("PASS")
