#!/usr/bin/python3
"""The event loop never waits on PostgreSQL. One gateway on a throwaway
PostgreSQL 15 (tests/pg/pgtmp.sh) runs a linked session and a webhook
target. Then every PostgreSQL process is stopped (SIGSTOP) and, while the
database cannot answer, the test asks for what needs it (a new session, a
key rotation, a webhook target, a dropped WhatsApp connection that
reconnects, a QR scanned: the phone is answered only once the pairing is
stored) and for what does not (health, status, the session list,
metrics). The second kind must be answered before the database comes back:
a store call made on the loop thread would hold every request until then.
A WebSocket watcher gets the drop only once it is stored (after SIGCONT):
events are durable before any stream shows them. After SIGCONT, everything
that waited for the database completes, nothing lost."""
import base64, json, os, signal, sys, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2elib
from e2elib import check, fail, free_port, start_fakewa, start_gateway, gateway_env

KEY = "store-frozen-admin-key-0123456789abc"
URL, PGDIR = e2elib.start_pg()
pg = e2elib.PgFreezer(PGDIR)

fw = start_fakewa()
cport = fw["cport"]

# the webhook receiver
recv = e2elib.Receiver()
RECV = recv.url
SECRET = "whsec_" + base64.b64encode(b"s" * 32).decode()

# a long lease: the node keeps its sessions through the freeze (self-fencing
# is cluster_health_test's subject)
env = dict(gateway_env(fw), STORE_URL=URL, NODE_ID="frozen-1", API_KEY=KEY, LEASE_MS="60000",
           RENEW_MS="3000", WEBHOOK_ALLOW_PRIVATE="1")
p, port, gport, log = start_gateway(fw, "frozen", [], env=env)


def api(method, path, body=None, timeout=10):
    return e2elib.api(port, method, path, json.dumps(body).encode() if body is not None else None,
                      KEY, timeout=timeout)


def data(path):
    return e2elib.api_data(port, path, KEY)


def wait(what, cond, secs=30):
    return e2elib.wait_until(what, cond, secs, lambda: sys.stderr.write(open(log).read()[-4000:]))


# a linked session and a webhook target, before the freeze
st, d = api("POST", "/api/sessions", {"name": "s1"})
check(st == 201, "create s1: %d %s" % (st, d))
wait("s1 QR", lambda: data("/api/sessions/s1/status").get("state") == "QR_READY")
st, raw = api("GET", "/api/sessions/s1/qr?format=raw")
st, d = e2elib.api(cport, "POST", "/control/scan?phone=4915112345601", raw)
check(st == 200, "scan: %d %s" % (st, d))
wait("s1 CONNECTED", lambda: data("/api/sessions/s1/status").get("state") == "CONNECTED")
st, d = api("POST", "/api/webhooks", {"url": RECV, "secret": SECRET, "session": "s1"})
check(st == 201, "webhook target: %d %s" % (st, d))

# s3 waits for its scan (scanned while the database is stopped)
st, d = api("POST", "/api/sessions", {"name": "s3"})
check(st == 201, "create s3: %d %s" % (st, d))
wait("s3 QR", lambda: data("/api/sessions/s3/status").get("state") == "QR_READY")
st, raw3 = api("GET", "/api/sessions/s3/qr?format=raw")
check(st == 200, "s3 QR: %d" % st)


def fw_state():
    return json.loads(e2elib.api(cport, "GET", "/control/state")[1])


paired0 = fw_state()["paired"]

# a WebSocket watcher of s1, reading in the background
from wsclient import WS
ws = WS("127.0.0.1", port, "/api/sessions/s1/ws", headers={"X-API-Key": KEY})
check(ws.status == 101, "WebSocket upgrade: %d" % ws.status)
frames = []


def read_ws():
    try:
        while True:
            frames.append((time.time(), ws.recv()))
    except (EOFError, OSError):
        pass
threading.Thread(target=read_ws, daemon=True).start()
wait("the watcher's first event", lambda: frames, 10)

# the freeze
pg.freeze()
t_freeze = time.time()
results = {}


def later(name, method, path, body=None):
    def run():
        try:
            results[name] = api(method, path, body, timeout=60)
        except Exception as e:  # noqa: BLE001
            results[name] = (0, str(e).encode())
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


waiting = [later("create", "POST", "/api/sessions", {"name": "s2"}),
           later("rotate", "POST", "/api/sessions/s1/key"),
           later("webhook", "POST", "/api/webhooks", {"url": RECV, "secret": SECRET})]
# the phone scans s3's QR: the pairing is answered only once it is stored
st, d = e2elib.api(cport, "POST", "/control/scan?phone=4915112345603", raw3)
check(st == 200, "scan s3: %d %s" % (st, d))
time.sleep(0.5)  # the requests above are in, waiting for the database
# s1's phone connection drops: the session reconnects, with what it stores
st, d = e2elib.api(cport, "POST", "/control/fault", b"drop 4915112345601")
check(st == 200, "drop: %d %s" % (st, d))

# answered while the database is stopped
for path in ("/healthz", "/api/sessions/s1/status", "/api/sessions", "/metrics", "/readyz"):
    try:
        st, _ = api("GET", path, timeout=3)
    except OSError as e:
        fail("%s not answered while the database is stopped: %s" % (path, e))
    check(st in (200, 503), "%s answered: %d" % (path, st))
def dropped(ev):
    return ev.get("data", ev).get("state") in ("DISCONNECTED", "CONNECTING")
# the status shows the drop at once; a stream shows it once it is stored
wait("the status shows the drop while the database is stopped",
     lambda: dropped(data("/api/sessions/s1/status")), 3)
time.sleep(0.5)
check(not any(t > t_freeze and dropped(ev) for t, ev in frames),
      "a stream showed an event before it was stored: %s" % frames[-3:])
check(time.time() - t_freeze < 8, "all answered within the freeze")
check(not results, "nothing that needs the database finished while it was stopped: %s" % results)
check(fw_state()["paired"] == paired0,
      "the phone was answered before the pairing was stored (paired %d -> %d)"
      % (paired0, fw_state()["paired"]))

pg.thaw()
wait("the watcher gets the drop once it is stored", lambda: any(dropped(ev) for t, ev in frames), 20)
for t in waiting:
    t.join(30)
check(results.get("create", (0,))[0] == 201, "create after the freeze: %s" % (results.get("create"),))
check(results.get("rotate", (0,))[0] == 200, "rotate after the freeze: %s" % (results.get("rotate"),))
check(results.get("webhook", (0,))[0] == 201, "webhook after the freeze: %s" % (results.get("webhook"),))
wait("s1 CONNECTED again", lambda: data("/api/sessions/s1/status").get("state") == "CONNECTED")
wait("s3 paired and CONNECTED once its pairing is stored",
     lambda: data("/api/sessions/s3/status").get("state") == "CONNECTED")
check(fw_state()["paired"] == paired0 + 1, "one pairing: %s" % fw_state()["paired"])
wait("s2 listed with its QR", lambda: data("/api/sessions/s2/status").get("state") == "QR_READY")
wait("the drop delivered to the webhook", lambda: any(dropped(e) for _, e in recv.snapshot()), 20)
st = json.loads(e2elib.api(cport, "GET", "/control/state")[1])
check(st["doubleLive"] == 0, "one live connection per device: %s" % st)
p.send_signal(signal.SIGTERM)
check(p.wait(timeout=30) == 0, "stopped cleanly")
print("ok: answered while PostgreSQL was stopped, and nothing lost after")
