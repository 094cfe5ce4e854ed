#!/usr/bin/python3
"""The harness and the cluster's surface: a throwaway PostgreSQL, three
nodes on it, CLUSTER_SESSIONS sessions created round-robin on the nodes and
linked by QRs read from random nodes; then every node lists every session
CONNECTED with the same account; GET /api/cluster on every node agrees (the
same nodes, each live, and one owner per session, the owner's epoch and a
lease in the future); each node owns at most its fair share; GET /readyz is
200; /metrics has wagw_cluster_* series; the fake server has one live
connection per device, at the node that owns it (its sockets counted);
every session's stored events since linking are readable from any node.

Then, on the same cluster, order across nodes: a WebSocket watcher on node
B sees every event of a session owned by node A, in order, as A's own
watcher does: three sessions of A are made to reconnect (POST reconnect
with keepCredentials on A) CLUSTER_RECONNECTS (default 5) times each, then
once more through B (forwarded to the owner); watchers on A, B and C of
each session then hold the same events, seqs increasing by one without a
gap, the last one the session's current seq, with a CONNECTED for each
reconnect; no QR."""
import math, os, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib  # noqa: E402
from clusterlib import Cluster, WSWatcher, check, fail, log, route  # noqa: E402

cl = Cluster()
cl.setup()

views = {n.id: cl.states(n) for n in cl.nodes}
for nid, st in views.items():
    check(sorted(st) == sorted(cl.names), "%s lists %d sessions, not the %d" % (nid, len(st), len(cl.names)))
    bad = [n for n in cl.names if st[n]["state"] != "CONNECTED" or (st[n].get("account") or {}).get("jid") != cl.jid[n]]
    check(not bad, "%s shows %d sessions not CONNECTED as their device: %s" % (nid, len(bad), bad[:5]))

ids = sorted(n.id for n in cl.nodes)
owners = None
for n in cl.nodes:
    c = n.cluster()
    check(c.get("node") == n.id, "/api/cluster on %s says node %s" % (n.id, c.get("node")))
    check(c.get("leaseMs") == cl.lease_ms and c.get("renewMs") == cl.renew_ms,
          "/api/cluster on %s: leaseMs %s renewMs %s" % (n.id, c.get("leaseMs"), c.get("renewMs")))
    nodes = {x["id"]: x for x in c.get("nodes", [])}
    check(sorted(nodes) == ids, "/api/cluster on %s lists nodes %s" % (n.id, sorted(nodes)))
    for x in nodes.values():
        check(not x.get("draining") and x.get("live", True) and x.get("heartbeatAgeMs", 1e9) < 3 * cl.renew_ms + 2000,
              "/api/cluster on %s: node %s %s" % (n.id, x["id"], x))
        check(x.get("advertiseUrl") == cl.node(x["id"]).url, "node %s advertises %s" % (x["id"], x.get("advertiseUrl")))
    sess = {s["name"]: s for s in c.get("sessions", [])}
    check(sorted(sess) == sorted(cl.names), "/api/cluster on %s lists %d sessions" % (n.id, len(sess)))
    for s in sess.values():
        check(s.get("owner") in ids and isinstance(s.get("epoch"), int) and s["epoch"] >= 1 and
              0 < s.get("expiresInMs", -1) <= cl.lease_ms,
              "/api/cluster on %s: session %s" % (n.id, s))
    mine = {x: s["owner"] for x, s in sess.items()}
    if owners is None:
        owners = mine
    check(mine == owners, "the nodes disagree on owners")
    counts = {i: list(owners.values()).count(i) for i in ids}
    for x in nodes.values():
        check(x.get("sessions") == counts[x["id"]], "/api/cluster on %s: %s owns %s sessions, the list says %d"
              % (n.id, x["id"], x.get("sessions"), counts[x["id"]]))
share = math.ceil(len(cl.names) / len(ids))
counts = {i: list(owners.values()).count(i) for i in ids}
log("owners: %s (fair share %d)" % (counts, share))
check(all(v <= share for v in counts.values()), "a node owns more than its fair share %d: %s" % (share, counts))

for n in cl.nodes:
    st, b = n.req("GET", "/readyz")
    check(st == 200, "/readyz on %s: %s %s" % (n.id, st, b))
    m = n.metrics()
    cm = sorted(k for k in m if k.startswith("wagw_cluster_"))
    check(cm, "no wagw_cluster_* metrics on %s" % n.id)
log("metrics: %s" % sorted({k.split("{")[0] for k in m if k.startswith("wagw_cluster_")}))

fs = cl.check_fw("after linking")
check(fs["live"] == len(cl.names), "the fake server has %d connections for %d sessions" % (fs["live"], len(cl.names)))
for n in cl.nodes:
    k = n.wa_connections()
    check(k == counts[n.id], "%s has %d connections to WhatsApp, owns %d sessions" % (n.id, k, counts[n.id]))

read = cl.no_qr_in_log("after linking")
log("%d stored events since linking read back, none a QR" % read)

# --- order across nodes ------------------------------------------------------
RECONNECTS = int(os.environ.get("CLUSTER_RECONNECTS", "5"))
a, b, c = cl.nodes[0], cl.nodes[1], cl.nodes[2]
old = cl.owners()
mine = sorted(n for n, o in old.items() if o[0] == a.id)
check(len(mine) >= 3, "%s owns %d sessions" % (a.id, len(mine)))
picked = mine[:3]
st = cl.states(a)
since = {n: st[n]["seq"] for n in picked}
watchers = {(n, node.id): WSWatcher(node, n, since=since[n]) for n in picked for node in (a, b, c)}
time.sleep(0.5)


def reconnect(node, name):
    t = time.time()
    code, body = node.req("POST", route(name) + "/reconnect", {"keepCredentials": True, "waitMs": 15000},
                          timeout=20)
    check(code == 200, "reconnect %s on %s: %s %s" % (name, node.id, code, str(body)[:300]))
    data = body.get("data", {}) if isinstance(body, dict) else {}
    check(data.get("state") == "CONNECTED" and not data.get("hasQR"),
          "reconnect %s on %s answered %s" % (name, node.id, str(body)[:300]))
    return time.time() - t


times = []
for i in range(RECONNECTS):
    for n in picked:
        times.append(reconnect(a, n))
log("%d reconnects on the owner %s, %.2f s each at most" % (len(times), a.id, max(times)))
for n in picked:
    times.append(reconnect(b, n))
log("one more each through %s (forwarded to %s)" % (b.id, a.id))
check(cl.owners()[picked[0]][0] == a.id, "%s changed owner during the test" % picked[0])

st = cl.states(a)
end = time.time() + 15
for n in picked:
    upto = st[n]["seq"]
    for node in (a, b, c):
        w = watchers[(n, node.id)]
        while time.time() < end and not any(m.get("seq", 0) >= upto for m in w.msgs()):
            time.sleep(0.1)
for w in watchers.values():
    w.close()

for n in picked:
    upto = st[n]["seq"]
    ref = None
    for node in (a, b, c):
        w = watchers[(n, node.id)]
        msgs = w.msgs()
        gaps = [m for m in msgs if m.get("type") == "gap"]
        check(not gaps, "%s's watcher on %s got a gap: %s" % (n, node.id, gaps[:2]))
        seqs = [m["seq"] for m in msgs]
        check(seqs == list(range(since[n] + 1, upto + 1)),
              "%s's watcher on %s (%d opens, errors %s): seqs %s, want %d..%d"
              % (n, node.id, w.opens, w.errors[:2], seqs, since[n] + 1, upto))
        trail = [(m["seq"], m["state"], m.get("detail")) for m in msgs]
        qr = [x for x in msgs if x.get("state") == "QR_READY" or x.get("hasQR")]
        check(not qr, "%s showed a QR on %s: %s" % (n, node.id, qr[:1]))
        conn = sum(1 for m in msgs if m["state"] == "CONNECTED")
        check(conn >= RECONNECTS + 1, "%s: %d CONNECTED events seen on %s for %d reconnects: %s"
              % (n, conn, node.id, RECONNECTS + 1, trail))
        if ref is None:
            ref = trail
        check(trail == ref, "%s: the watcher on %s saw %s, the owner's %s" % (n, node.id, trail, ref))
    log("%s: %d events %d..%d, the same on %s, %s and %s: %s" % (n, len(ref), since[n] + 1, upto, a.id, b.id,
                                                               c.id, [s for _, s, _ in ref][:8]))
print("PASS")
