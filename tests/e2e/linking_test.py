#!/usr/bin/python3
"""End-to-end tests of linking as WhatsApp does it in 2026, with the real
programs on loopback (wa-gateway + the fake WhatsApp server) and the state
sequence asserted from an SSE subscriber:
- companion_reg_refresh right after a scan: the QR is redrawn with a new
  secret (same ref, same expiry), the old QR is refused by the phone, the
  new one links;
- every stanza the server sends is acked;
- a server that stays silent after the handshake ends in DISCONNECTED/timeout
  and a retry;
- edge routing info becomes the "ED" prefix of the next connection;
- logout while WhatsApp is out of reach: logged_out at once, the removal
  request reaches WhatsApp on the next connection."""
import json, os, socket, subprocess, sys, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import TMP, GW, procs, fail, check, free_port, req, start_fakewa, gateway_env

KEY = "k3y-for-linking-tests"


def api(port, method, path, body=None):
    return req(port, method, path, body=body, headers={"X-API-Key": KEY}, timeout=10)


def control(fw, method, path, body=None):
    return req(fw["cport"], method, "/control/" + path, body=body, timeout=10)


def fake_state(fw):
    return json.loads(control(fw, "GET", "state")[2])


def fault(fw, name):
    st, _, b = control(fw, "POST", "fault", name)
    check(st == 200, "fault %s refused: %s" % (name, b))


class SSE:
    """A subscriber: every status event, in order, collected by a thread."""

    def __init__(self, port):
        self.events = []
        self.lock = threading.Lock()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.sendall(("GET /api/whatsapp/events HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                           "X-API-Key: %s\r\nAccept: text/event-stream\r\n\r\n" % (port, KEY)).encode())
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        buf = b""
        try:
            while True:
                d = self.sock.recv(65536)
                if not d:
                    return
                buf += d
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    line = line.strip()
                    if line.startswith(b"data: {"):
                        with self.lock:
                            self.events.append(json.loads(line[6:]))
        except OSError:
            return

    def wait(self, pred, what, secs=15, start=0):
        end = time.time() + secs
        while time.time() < end:
            with self.lock:
                for i in range(start, len(self.events)):
                    if pred(self.events[i]):
                        return i
            time.sleep(0.02)
        with self.lock:
            fail("%s not seen; events: %s" % (what, [(e["state"], e.get("detail")) for e in self.events]))


def start_gateway(fw, port, datadir, extra=()):
    log = open(os.path.join(TMP, "gw-link-%d.log" % port), "a")
    p = subprocess.Popen([GW, "--port", str(port), "--grpc-port", str(free_port()),
                          "--data-dir", datadir, "--api-key", KEY, "--heartbeat-ms", "300",
                          "--keepalive-ms", "300", "--keepalive-timeout-ms", "1000"] + list(extra),
                         env=gateway_env(fw), stderr=log)
    procs.append(p)
    for _ in range(200):
        try:
            if req(port, "GET", "/healthz")[0] == 200:
                return p
        except OSError:
            time.sleep(0.05)
    fail("gateway did not start")


def stop(p):
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        fail("gateway did not stop on SIGTERM")


def qr_of(port):
    st, _, b = api(port, "GET", "/api/whatsapp/qr?format=raw")
    check(st == 200, "no QR: %s %s" % (st, b))
    return b.decode()


def field(qr, i):
    return qr.split("#", 1)[1].split(",")[i]


fw = start_fakewa("--qr-first-ms", "20000", "--qr-next-ms", "20000")
port = free_port()
data = os.path.join(TMP, "data-linking")
gw = start_gateway(fw, port, data, ["--qr-first-ms", "20000", "--qr-next-ms", "20000"])
sse = SSE(port)
q1i = sse.wait(lambda e: e["state"] == "QR_READY", "QR_READY")
qr1 = qr_of(port)
exp1 = sse.events[q1i]["expiresIn"]

# 1. refresh right after the phone scans (as WhatsApp does since mid 2026)
fault(fw, "refresh_on_scan")
st, _, b = control(fw, "POST", "scan", qr1)
check(st == 202 and json.loads(b).get("refreshed"), "the scan did not trigger a refresh: %s %s" % (st, b))
q2i = sse.wait(lambda e: e["state"] == "QR_READY", "the redrawn QR", start=q1i + 1)
qr2 = qr_of(port)
check(field(qr1, 0) == field(qr2, 0), "the redrawn QR changed its ref")
check(field(qr1, 3) != field(qr2, 3), "the redrawn QR kept the retired secret")
check(abs(sse.events[q2i]["expiresIn"] - exp1) <= 1, "the redrawn QR got a new lifetime")
st, _, b = control(fw, "POST", "scan", qr1)
check(st == 409 and b"retired" in b, "a scan of the old QR was not refused: %s %s" % (st, b))
st, _, b = control(fw, "POST", "scan", qr2)
check(st == 200, "a scan of the new QR failed: %s %s" % (st, b))
ci = sse.wait(lambda e: e["state"] == "CONNECTED", "CONNECTED", start=q2i)
seq = [e["seq"] for e in sse.events[: ci + 1]]
check(seq == list(range(seq[0], seq[0] + len(seq))), "events lost or out of order: %s" % seq)

# 2. every stanza that needs an ack gets one
fault(fw, "stanzas")
time.sleep(1)
s = fake_state(fw)
check(s["unacked"] == 0 and s["acksBad"] == 0 and s["acksOk"] >= 15,
      "stanzas not acked as whatsmeow does: %s" % s)

# 3. edge routing: the next connection starts with the ED prefix
fault(fw, "routing")
time.sleep(0.3)
fault(fw, "restart")
sse.wait(lambda e: e["state"] == "CONNECTED", "CONNECTED after the restart", start=ci + 1)
check(fake_state(fw)["routed"] >= 1, "no ED prefix on the connection after routing info")

# 4. logout while WhatsApp cannot be reached
n0 = len(sse.events)
fault(fw, "offline")
sse.wait(lambda e: e["state"] == "DISCONNECTED", "DISCONNECTED when offline", start=n0)
st, _, b = api(port, "POST", "/api/whatsapp/logout")
check(st == 200, "logout while offline: %s %s" % (st, b))
d = json.loads(req(port, "GET", "/api/whatsapp/status")[2])["data"]
check(d["state"] == "DISCONNECTED" and d["detail"] == "logged_out" and not d["linked"],
      "logout while offline is not immediate: %s" % d)
time.sleep(1)
check(fake_state(fw)["logouts"] == 0, "a removal got through while offline?")
fault(fw, "online")
end = time.time() + 15
while time.time() < end and fake_state(fw)["logouts"] == 0:
    time.sleep(0.1)
s = fake_state(fw)
check(s["logouts"] == 1 and s["devices"] == [], "the removal did not reach WhatsApp: %s" % s)
d = json.loads(req(port, "GET", "/api/whatsapp/status")[2])["data"]
check(d["state"] == "DISCONNECTED" and d["detail"] == "logged_out", "state after removal: %s" % d)
stop(gw)

# 5. a server that says nothing after the handshake: timeout, then a retry
fault(fw, "silent")
port2 = free_port()
gw2 = start_gateway(fw, port2, os.path.join(TMP, "data-linking-2"), ["--login-timeout-ms", "800"])
sse2 = SSE(port2)
t = sse2.wait(lambda e: e["state"] == "DISCONNECTED" and e.get("detail") == "timeout",
              "DISCONNECTED/timeout")
sse2.wait(lambda e: e["state"] == "QR_READY", "QR_READY on the retry", start=t)
stop(gw2)
print("linking_test: ok")
