#!/usr/bin/python3
"""Cluster readiness and self-fencing against a real PostgreSQL 15 (a
throwaway cluster from tests/pg/pgtmp.sh): two nodes share it; a session is
linked and runs on one of them. Then every PostgreSQL process is stopped
(SIGSTOP): neither node can renew its leases, so before they expire the
owner closes the session's WhatsApp connection (the fake server sees no
live connection), /readyz answers 503 on both and a grpc.health.v1 Watch
stream receives NOT_SERVING; its metrics count the self-fence. After
SIGCONT the nodes are ready again (Watch: SERVING), the session is claimed
again (a new epoch) and CONNECTED without a QR. Also: GET /api/cluster shows
both nodes; a command sent to the node that does not run the session is
forwarded to the one that does (and a wrong node secret is refused 403);
a key rotated on one node is the only one either node accepts; a session
created on one node is seen by the other; a follower whose database
connection drops reads the events it missed once reconnected. Webhooks: a target created on
one node is listed on the other, and only one node (the leader) delivers:
every event reaches the receiver once, not once per node; deleting the
target on the other node stops the deliveries."""
import http.client, json, os, signal, subprocess, sys, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2elib
from e2elib import SRC, TMP, check, free_port, start_fakewa, start_gateway, gateway_env

KEY = "cluster-health-admin-key-0123456789"
SECRET = "cluster-health-node-secret-0123456789-abcdef"
LEASE, RENEW = 3000, 500
URL, PGDIR = e2elib.start_pg()
pg = e2elib.PgFreezer(PGDIR)

fw = start_fakewa()
cport = fw["cport"]


def req(port, method, path, body=None, headers=None, key=KEY):
    return e2elib.api(port, method, path, body, key, headers)


def data(port, path):
    return e2elib.api_data(port, path, KEY)


# the webhook receiver
recv = e2elib.Receiver()
RECV = recv.url

nodes = {}
for name in ("a", "b"):
    port, gport = free_port(), free_port()
    env = dict(gateway_env(fw), STORE_URL=URL, NODE_ID="node-" + name,
               ADVERTISE_URL="http://127.0.0.1:%d" % port, CLUSTER_SECRET=SECRET,
               LEASE_MS=str(LEASE), RENEW_MS=str(RENEW), API_KEY=KEY, WEBHOOK_ALLOW_PRIVATE="1")
    p, port, gport, log = start_gateway(fw, "cl-" + name, [], port=port, gport=gport, env=env)
    nodes[name] = (p, port, gport, log)
A, B = nodes["a"][1], nodes["b"][1]


wait = e2elib.wait_until


# both nodes listed, both ready
wait("two live nodes", lambda: len([n for n in json.loads(req(A, "GET", "/api/cluster")[1])["nodes"]
                                    if n["live"]]) == 2)
cl = json.loads(req(B, "GET", "/api/cluster")[1])
check(cl["clustered"] and cl["leaseMs"] == LEASE and cl["renewMs"] == RENEW, "cluster: %s" % cl)
for n in (A, B):
    check(req(n, "GET", "/readyz")[0] == 200, "ready")

# a session created on B is seen on A; link it through A (maybe a follower)
st, d = req(B, "POST", "/api/sessions", json.dumps({"name": "sales"}).encode())
check(st == 201, "create: %d %s" % (st, d))
sales_key = json.loads(d)["key"] if "key" in json.loads(d) else json.loads(d).get("data", {}).get("key")
wait("sales on A", lambda: data(A, "/api/sessions/sales/status").get("state") == "QR_READY")
st, raw = req(A, "GET", "/api/sessions/sales/qr?format=raw")
check(st == 200 and raw.startswith(b"2@") or b"#2@" in raw, "QR from either node: %d %r" % (st, raw[:40]))
st, d = req(cport, "POST", "/control/scan?phone=4915112345678", raw)
check(st == 200, "scan: %d %s" % (st, d))
wait("sales CONNECTED (seen on A and B)", lambda: all(
    data(n, "/api/sessions/sales/status").get("state") == "CONNECTED" for n in (A, B)))


def owner(port=None):
    for s in json.loads(req(port or A, "GET", "/api/cluster")[1])["sessions"]:
        if s["name"] == "sales":
            return s["owner"], s["epoch"]
    return None, 0


own, epoch1 = wait("an owner", lambda: owner() if owner()[0] else None)
qr_seen = []  # "sales" must never show a QR again (linked: no new registration)
def watch_states():
    while True:
        for n in (A, B):
            try:
                if data(n, "/api/sessions/sales/status").get("state") == "QR_READY":
                    qr_seen.append(n)
            except OSError:
                pass
        time.sleep(0.1)
threading.Thread(target=watch_states, daemon=True).start()
other = B if own == "node-a" else A
runner = A if own == "node-a" else B

# a webhook target created on the node that does not run the session: listed
# on both; the session's events are delivered once each (by one node)
st, d = req(other, "POST", "/api/webhooks", json.dumps({"url": RECV, "session": "sales"}).encode())
check(st == 201, "webhook created: %d %s" % (st, d))
wid = json.loads(d).get("data", json.loads(d)).get("id")
wait("the target on both nodes", lambda: all(
    wid in req(n, "GET", "/api/webhooks")[1].decode() for n in (A, B)))
metrics = [req(n, "GET", "/metrics")[1].decode() for n in (A, B)]
leaders = [m for m in metrics if any(l.startswith("wagw_cluster_webhook_leader") and l.endswith(" 1")
                                     for l in m.splitlines())]
check(len(leaders) == 1, "exactly one node delivers the webhooks: %d" % len(leaders))

# a command on the other node is forwarded; a wrong node secret is refused
st, d = req(other, "POST", "/api/sessions/sales/reconnect", b'{"keepCredentials":true}')
check(st == 200, "forwarded reconnect: %d %s" % (st, d))
st, d = req(other, "POST", "/api/sessions/sales/reconnect", b'{"keepCredentials":true}',
            {"X-WAGW-Node-Secret": "wrong"})
check(st == 403, "wrong node secret: %d %s" % (st, d))
# a request that comes from another node (the right secret) is never forwarded again
st, d = req(other, "POST", "/api/sessions/sales/reconnect", b'{"keepCredentials":true}',
            {"X-WAGW-Node-Secret": SECRET})
check(st == 409 and b"another node" in d, "a forwarded request forwarded again: %d %s" % (st, d))
wait("CONNECTED after the reconnect", lambda: data(other, "/api/sessions/sales/status").get("state") == "CONNECTED")

# the reconnect's events reached the receiver, each once
def sales_events():
    by_id = {}  # webhook-id -> its deliveries
    for wid, body in recv.snapshot():
        by_id.setdefault(wid, []).append(body)
    return {k: v for k, v in by_id.items() if v[0].get("session") == "sales"}
wait("webhooks of the reconnect", lambda: len(sales_events()) >= 2)
time.sleep(1.5)  # a second node delivering would have sent its copies by now
ev = sales_events()
dups = {k: len(v) for k, v in ev.items() if len(v) > 1}
check(not dups, "every event delivered once, not once per node: %s" % dups)
seqs = sorted(v[0]["seq"] for v in ev.values())
check(seqs == list(range(seqs[0], seqs[0] + len(seqs))), "in order, no gap: %s" % seqs)
# deleted on the runner: listed nowhere
st, d = req(runner, "DELETE", "/api/webhooks/" + wid)
check(st == 200, "webhook deleted: %d %s" % (st, d))
wait("the target gone on both nodes", lambda: not any(
    wid in req(n, "GET", "/api/webhooks")[1].decode() for n in (A, B)))

# a follower whose database connection drops misses the notifications sent
# meanwhile: once reconnected it reads what it missed from the log
other_id = "node-a" if other == A else "node-b"
subprocess.run(["/usr/lib/postgresql/15/bin/psql", URL, "-qAtc",
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'wagw-cluster:%s'" % other_id],
               check=True, capture_output=True)
st, d = req(runner, "POST", "/api/sessions/sales/reconnect", b'{"keepCredentials":true}')
check(st == 200, "reconnect on the owner: %d %s" % (st, d))
owner_seq = data(runner, "/api/sessions/sales/status").get("seq", 0)
check(owner_seq > 0, "the owner's seq")
wait("the follower caught up after its reconnect to the database",
     lambda: data(other, "/api/sessions/sales/status").get("seq", 0) >= owner_seq, 10)

# a key rotated on one node: the other takes the new one only
st, d = req(other, "POST", "/api/sessions/sales/key")
check(st == 200, "rotate: %d %s" % (st, d))
j = json.loads(d)
newkey = j.get("key") or j.get("data", {}).get("key")
check(newkey, "rotate gave a key: %s" % j)
wait("the new key on the runner", lambda: req(runner, "GET", "/api/sessions/sales/qr", key=newkey)[0] in (200, 409))
if sales_key:
    wait("the old key refused on the runner",
         lambda: req(runner, "GET", "/api/sessions/sales/qr", key=sales_key)[0] in (401, 403))

# Health/Watch on the runner
ep, epp, hp, hpg = e2elib.grpc_stubs()
import grpc
ch = grpc.insecure_channel("127.0.0.1:%d" % nodes["a" if runner == A else "b"][2])
h = hpg.HealthStub(ch)
seen = []
def watch():
    try:
        for r in h.Watch(hp.HealthCheckRequest(), timeout=60):
            seen.append((time.time(), r.status))
    except grpc.RpcError:
        pass
threading.Thread(target=watch, daemon=True).start()
wait("Watch: SERVING", lambda: seen and seen[-1][1] == hp.HealthCheckResponse.SERVING)

# the database stops: both nodes self-fence before the lease can expire
pg.freeze()
t_stop = time.time()
wait("no live connection at the fake server", lambda: json.loads(req(cport, "GET", "/control/state")[1])["live"] == 0, 10)
t_closed = time.time() - t_stop
check(t_closed < LEASE / 1000.0, "connection closed %.2f s after the database stopped (lease %d ms)" % (t_closed, LEASE))
for n in (A, B):
    check(req(n, "GET", "/readyz")[0] == 503, "not ready while the database is stopped")
wait("Watch: NOT_SERVING", lambda: seen and seen[-1][1] == hp.HealthCheckResponse.NOT_SERVING, 5)
m = req(runner, "GET", "/metrics")[1].decode()
check("wagw_cluster_self_fences_total" in m and
      not any(l.startswith("wagw_cluster_self_fences_total") and l.endswith(" 0") for l in m.splitlines()),
      "self-fence counted")

# the database is back: ready again, the session is claimed anew (new epoch), no QR
pg.thaw()
wait("Watch: SERVING again", lambda: seen and seen[-1][1] == hp.HealthCheckResponse.SERVING, 20)
for n in (A, B):
    wait("ready again", lambda: req(n, "GET", "/readyz")[0] == 200)
wait("CONNECTED again", lambda: data(other, "/api/sessions/sales/status").get("state") == "CONNECTED", 30)
own2, epoch2 = owner()
check(epoch2 > epoch1, "claimed anew: epoch %d -> %d" % (epoch1, epoch2))
st = json.loads(req(cport, "GET", "/control/state")[1])
check(not qr_seen, "no QR for the linked session")
if st["doubleLive"]:
    for n in nodes.values():
        sys.stderr.write(open(n[3]).read()[-6000:])
check(st["doubleLive"] == 0, "never two live connections for one device: %s" % st["doubleLive"])

# SIGTERM drains: the other node runs the session afterwards, no QR
for name, (p, port, gport, log) in nodes.items():
    if port == (A if own2 == "node-a" else B):
        p.send_signal(signal.SIGTERM)
        check(p.wait(timeout=30) == 0, "drained and stopped")
survivor = B if own2 == "node-a" else A
wait("CONNECTED on the survivor", lambda: owner(survivor)[0] not in (None, own2) and
     data(survivor, "/api/sessions/sales/status").get("state") == "CONNECTED", 20)
st = json.loads(req(cport, "GET", "/control/state")[1])
check(not qr_seen and st["doubleLive"] == 0, "drain: no QR, one connection per device")
print("ok")
