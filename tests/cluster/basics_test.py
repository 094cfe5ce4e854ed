#!/usr/bin/python3
"""The harness and the cluster's surface: a throwaway PostgreSQL, three
nodes on it, CLUSTER_SESSIONS sessions created round-robin on the nodes and
linked by QRs read from random nodes; then every node lists every session
CONNECTED with the same account; GET /api/cluster on every node agrees (the
same nodes, each live, and one owner per session, the owner's epoch and a
lease in the future); each node owns at most its fair share; GET /readyz is
200; /metrics has wagw_cluster_* series; the fake server has one live
connection per device, at the node that owns it (its sockets counted);
every session's stored events since linking are readable from any node."""
import math, os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib  # noqa: E402
from clusterlib import Cluster, check, fail, log  # noqa: E402

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
print("PASS")
