#!/usr/bin/python3
"""A node that joins takes only unowned and expired sessions; POST
/api/cluster/rebalance (admin) evens ownership out: kill -9 of a node, its
sessions move to the other two (half each); restarted, it runs nothing
(its old leases were taken); after the rebalance every node holds its fair
share (ceil(sessions / nodes), give or take the hysteresis of one pass) and
every session is CONNECTED at its owner, moved without a QR, never with two
live connections for one device. The rebalance is admin only; with SQLite
it answers 409 (authz_table)."""
import os, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clusterlib import Cluster, Poller, check, log  # noqa: E402

cl = Cluster()
cl.setup()
total = len(cl.owners())
victim = cl.nodes[0]
victim.kill()
cl.wait_settled(60, "after kill -9 of %s" % victim.id, not_on=[victim])
victim.restart()
time.sleep(3)  # a few passes: the restarted node finds nothing to claim
counts = {n.id: len(cl.owned_by(n.id)) for n in cl.nodes}
log("owners after the restart: %s" % counts)
check(counts[victim.id] == 0, "the restarted node claimed owned sessions: %s" % counts)

poll = Poller(cl)
other = cl.nodes[1]
st, body = other.req("POST", "/api/cluster/rebalance", b"")
check(st == 202, "rebalance: %d %s" % (st, body))
fair = -(-total // len(cl.nodes))
t0 = time.time()
while time.time() - t0 < 60:
    counts = {n.id: len(cl.owned_by(n.id)) for n in cl.nodes}
    if all(c >= fair - 1 for c in counts.values()):
        break
    time.sleep(0.5)
log("owners after the rebalance: %s (fair share %d), %.1f s" % (counts, fair, time.time() - t0))
check(all(fair - 1 <= c <= fair + 1 for c in counts.values()),
      "not even after the rebalance: %s (fair %d)" % (counts, fair))
cl.wait_settled(60, "every session after the rebalance")
cl.wait_fw_settled(15, "after the rebalance")
cl.check_fw("after the rebalance")
poll.close()
check(not poll.qrs(), "the poller saw a QR: %s" % poll.qrs()[:3])
cl.no_qr_in_log("after the rebalance")
print("PASS")
