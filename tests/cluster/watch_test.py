#!/usr/bin/python3
"""A WebSocket watcher on node B sees every event of a session owned by
node A, in order, as A's own watcher does (LEASE_MS 4000, RENEW_MS 1000):
three sessions of A are made to reconnect (POST reconnect with
keepCredentials on A) CLUSTER_RECONNECTS (default 5) times each, then once
more through B (forwarded to the owner); watchers on A, B and C of each
session then hold the same events, seqs increasing by one without a gap,
the last one the session's current seq, with a CONNECTED for each
reconnect; no QR."""
import os, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clusterlib import Cluster, WSWatcher, check, fail, log, route  # noqa: E402

RECONNECTS = int(os.environ.get("CLUSTER_RECONNECTS", "5"))
cl = Cluster(lease_ms=4000, renew_ms=1000, connect_rate=50)
cl.setup()
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
