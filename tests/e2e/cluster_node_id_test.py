#!/usr/bin/python3
"""One live process per NODE_ID, on a real PostgreSQL 15 (tests/pg/pgtmp.sh).
A node runs a linked session; a second process started with the same
NODE_ID (a copied configuration) stays out of the cluster: it logs that the
NODE_ID is in use, /readyz answers 503, it never appears as a live node and
never takes the session (its lease keeps its epoch and owner over several
renewals; the fake server never sees two live connections for the device).
Without the check the two processes would take each other's leases as
their own stale ones, over and over. Once the first process is killed
(kill -9), the waiting one joins at once: ready, and it runs the session
without a QR. A process started afterwards with the same NODE_ID again
stays out too."""
import json, os, signal, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2elib
from e2elib import check, free_port, start_fakewa, start_gateway, gateway_env

KEY = "cluster-node-id-admin-key-0123456789"
LEASE, RENEW = 3000, 500
URL, PGDIR = e2elib.start_pg()
fw = start_fakewa()
cport = fw["cport"]


def req(port, method, path, body=None):
    return e2elib.api(port, method, path, body, KEY)


wait = e2elib.wait_until


def start(tag):
    port = free_port()
    env = dict(gateway_env(fw), STORE_URL=URL, NODE_ID="node-x", ADVERTISE_URL="http://127.0.0.1:%d" % port,
               LEASE_MS=str(LEASE), RENEW_MS=str(RENEW), API_KEY=KEY)
    p, port, _, log = start_gateway(fw, tag, [], port=port, env=env)
    return p, port, log


def lease(port):
    st, b = req(port, "GET", "/api/cluster")
    if st != 200:
        return None
    for s in json.loads(b)["sessions"]:
        if s["name"] == "sales":
            return s["owner"], s["epoch"]
    return None


def live_nodes(port):
    return [n["id"] for n in json.loads(req(port, "GET", "/api/cluster")[1])["nodes"] if n["live"]]


first, P1, log1 = start("first")
wait("the first process ready", lambda: req(P1, "GET", "/readyz")[0] == 200)
st, d = req(P1, "POST", "/api/sessions", json.dumps({"name": "sales"}).encode())
check(st == 201, "create: %d %s" % (st, d))
wait("sales QR", lambda: e2elib.api_data(P1, "/api/sessions/sales/status", KEY).get("state") == "QR_READY")
st, raw = req(P1, "GET", "/api/sessions/sales/qr?format=raw")
check(st == 200, "QR: %d" % st)
check(req(cport, "POST", "/control/scan?phone=4915112345678", raw)[0] == 200, "scan")
wait("sales CONNECTED", lambda: e2elib.api_data(P1, "/api/sessions/sales/status", KEY).get("state") == "CONNECTED")
held = wait("a lease", lambda: lease(P1))
check(held[0] == "node-x", "the lease is node-x's: %s" % (held,))

# the same NODE_ID again: kept out
second, P2, log2 = start("second")
t_end = time.time() + 8 * RENEW / 1000.0 + LEASE / 1000.0
while time.time() < t_end:
    check(req(P2, "GET", "/readyz")[0] == 503, "the second process with NODE_ID node-x is not ready")
    check(req(P1, "GET", "/readyz")[0] == 200, "the first process stays ready")
    now = lease(P1)
    check(now == held, "the lease of sales moved while two processes had one NODE_ID: %s -> %s" % (held, now))
    time.sleep(0.2)
text = open(log2).read()
check("NODE_ID node-x is in use by another live process" in text, "the second process says why it waits")
check(text.count("is in use by another live process") == 1, "said once, not every pass")
check(e2elib.api_data(P1, "/api/sessions/sales/status", KEY).get("state") == "CONNECTED", "sales still CONNECTED")
fs = json.loads(req(cport, "GET", "/control/state")[1])
check(fs["doubleLive"] == 0, "never two live connections for the device: %s" % fs["doubleLive"])
print("the second process stayed out for %.1f s" % (8 * RENEW / 1000.0 + LEASE / 1000.0))

# the first one is killed: the waiting one joins and runs the session, no QR
first.send_signal(signal.SIGKILL)
first.wait()
t0 = time.time()
wait("the second process ready", lambda: req(P2, "GET", "/readyz")[0] == 200, 10)
print("ready %.2f s after the kill" % (time.time() - t0))
wait("sales CONNECTED on the second process",
     lambda: e2elib.api_data(P2, "/api/sessions/sales/status", KEY).get("state") == "CONNECTED", 30)
check("is free again" in open(log2).read(), "the second process says it joins")
after = lease(P2)
check(after[0] == "node-x" and after[1] > held[1], "claimed anew: %s -> %s" % (held, after))
check(live_nodes(P2) == ["node-x"], "one live node: %s" % live_nodes(P2))

# and a third process with the same NODE_ID stays out again
third, P3, log3 = start("third")
time.sleep(2 * RENEW / 1000.0 + 1)
check(req(P3, "GET", "/readyz")[0] == 503, "the third process is not ready")
check(lease(P2) == after, "the lease did not move: %s" % (lease(P2),))
check("is in use by another live process" in open(log3).read(), "the third process says why")
fs = json.loads(req(cport, "GET", "/control/state")[1])
check(fs["doubleLive"] == 0, "never two live connections for the device: %s" % fs["doubleLive"])
for p in (second, third):
    p.send_signal(signal.SIGTERM)
    check(p.wait(timeout=30) == 0, "stopped cleanly")
print("ok")
