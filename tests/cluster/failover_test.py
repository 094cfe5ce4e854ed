#!/usr/bin/python3
"""kill -9 of a node, with the default lease (LEASE_MS 10000, RENEW_MS
3000, CONNECT_RATE 25): every session it owned is CONNECTED again, owned by
another node with a higher epoch, within 30 s of the kill; none of them
showed a QR (an SSE watcher of every session on a surviving node, a poller
of GET /api/sessions, and each session's stored events since linking);
the fake server never saw two live connections for one device (doubleLive
0) and ends with one live connection per session."""
import os, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clusterlib import Cluster, Poller, SSEWatcher, check, fail, first_qr, log, outages, summary  # noqa: E402

BOUND = 30.0
cl = Cluster(lease_ms=10000, renew_ms=3000, connect_rate=25, prekeys_uploaded=True)
cl.setup()
old = cl.owners()
counts = {n.id: sum(1 for o in old.values() if o[0] == n.id) for n in cl.nodes}
victim = max(cl.nodes, key=lambda n: counts[n.id])
others = [n for n in cl.nodes if n is not victim]
mine = sorted(n for n, o in old.items() if o[0] == victim.id)
check(mine, "%s owns no session: %s" % (victim.id, counts))
log("owners %s; killing %s (%d sessions)" % (counts, victim.id, len(mine)))

sse = SSEWatcher(cl, others[0])
poll = Poller(cl)
time.sleep(1)
check(cl.fw_state()["doubleLive"] == 0, "doubleLive before the kill")

t_kill = time.time()
victim.kill()
done = cl.wait_settled(BOUND, "after kill -9 of %s" % victim.id, names=mine, old=old, not_on=[victim])
took = max(done.values())
log("%d sessions of %s CONNECTED elsewhere %.1f s after the kill (%s)" % (len(mine), victim.id, took,
                                                                          summary(list(done.values()))))
check(took <= BOUND, "failover took %.1f s" % took)
new = cl.owners()
moved = {o: sum(1 for n in mine if new[n][0] == o) for o in (x.id for x in others)}
log("taken over: %s" % moved)

# the other sessions stay as they were
cl.wait_settled(30, "every session after the failover")
fs = cl.wait_fw_settled(15, "after the failover")
cl.check_fw("after the failover")
time.sleep(1)
sse.close()
poll.close()
q = first_qr(sse.snapshot())
check(q is None, "the SSE watcher on %s saw a QR: %s" % (others[0].id, q and q[1]))
check(not poll.qrs(), "the poller saw a QR: %s" % poll.qrs()[:3])
out = outages(sse.snapshot(), mine, t_kill)
seen = [b - a for iv in out.values() for a, b in iv if b is not None]
log("SSE on %s: %d events, %d opens; outages seen of the moved sessions: %d (%s), from the kill: %s"
    % (others[0].id, len(sse.events), sse.opens, len(seen), summary(seen),
       summary([max([b for a, b in iv if b] or [t_kill]) - t_kill for iv in out.values()])))
n = cl.no_qr_in_log("after the failover")
log("%d stored events since linking read back, none a QR; doubleLive %d, %d live connections"
    % (n, fs["doubleLive"], fs["live"]))
print("PASS")
