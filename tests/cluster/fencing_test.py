#!/usr/bin/python3
"""SIGSTOP of an owner for longer than its lease, then SIGCONT (LEASE_MS
4000, RENEW_MS 1000): the other nodes take its sessions over (higher
epochs, CONNECTED there; the fake server replaces the frozen node's
connections as WhatsApp does, which its doubleLive counts); after SIGCONT
the stopped node drops what it still held: no connection of its own to
WhatsApp beyond the sessions it owns anew, the fake server with exactly one
live connection per device and no new doubleLive, GET /api/cluster never
again showing it owning a session with the epoch it had (an OwnerHistory
on the other nodes, then on every node), its metrics counting a
self-fence, fenced writes, or each of its leases lost (which of them comes
first after SIGCONT is a race between the node's timer, its sessions'
sockets and its renewal's answer), and its log saying so. No session
showed a QR."""
import os, re, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clusterlib import (Cluster, OwnerHistory, Poller, check, fail, grep_log, log,  # noqa: E402
                        summary)

# what the node logs when it closes its sessions for want of renewals
# ("could not renew its leases in time"), loses a lease, or a write is fenced
FENCE_LOG = r"fenc|could not renew|lease lost"
cl = Cluster(lease_ms=4000, renew_ms=1000, connect_rate=50, prekeys_uploaded=True)
cl.setup()
victim = cl.nodes[0]
others = cl.nodes[1:]
old = cl.owners()
mine = sorted(n for n, o in old.items() if o[0] == victim.id)
check(mine, "%s owns no session" % victim.id)
hist = OwnerHistory(cl, exclude=[victim])
poll = Poller(cl)
m0 = victim.metrics()
dl0 = cl.fw_state()["doubleLive"]
check(dl0 == 0, "doubleLive %d before the stop" % dl0)
log("SIGSTOP %s, owner of %d sessions (it holds %d WhatsApp connections)" % (victim.id, len(mine),
                                                                           victim.wa_connections()))
logsize = len(victim.log_text())

t_stop = time.time()
victim.sigstop()
done = cl.wait_settled(cl.lease_ms / 1000 + 30, "while %s is stopped" % victim.id, names=mine, old=old,
                       not_on=[victim])
t_taken = time.time()
log("its sessions taken over %s after the stop (%s)" % ("%.1f s" % (t_taken - t_stop), summary(list(done.values()))))
# stopped for longer than its lease in any case
time.sleep(max(0.0, t_stop + 2 * cl.lease_ms / 1000 - time.time()))
fs = cl.fw_state()
dl_stopped = fs["doubleLive"]
log("stopped %.1f s; the fake server replaced %d connections of the frozen node (doubleLive)"
    % (time.time() - t_stop, dl_stopped))
taken = cl.owners()

t_cont = time.time()
victim.sigcont()
hist_all = OwnerHistory(cl)  # now on every node, the resumed one too

# the resumed node drops what it held: at most the connections of sessions it owns anew
end = time.time() + 15
while True:
    own = cl.owners()
    again = [n for n, o in own.items() if o[0] == victim.id]
    k = victim.wa_connections()
    if k <= len(again) or time.time() > end:
        break
    time.sleep(0.2)
log("%.1f s after SIGCONT %s holds %d WhatsApp connections and owns %d sessions"
    % (time.time() - t_cont, victim.id, k, len(again)))
check(k <= len(again), "%.0f s after SIGCONT %s still holds %d WhatsApp connections, owns %d sessions"
      % (time.time() - t_cont, victim.id, k, len(again)))
for n in again:
    check((own[n][1] or 0) > (old[n][1] or 0), "%s owns %s again with epoch %s (had %s before the stop)"
          % (victim.id, n, own[n][1], old[n][1]))

cl.wait_settled(30, "after SIGCONT")
fs = cl.wait_fw_settled(20, "after SIGCONT")
cl.check_fw("after SIGCONT", double_live=None)
check(fs["doubleLive"] == dl_stopped, "doubleLive went from %d to %d after SIGCONT: the resumed node logged in "
      "again on a device another node owns" % (dl_stopped, fs["doubleLive"]))
check(victim.alive(), "%s died after SIGCONT (status %s)" % (victim.id, victim.proc.returncode))
time.sleep(2)
hist.close()
hist_all.close()
poll.close()

# never again the old owner with the old epoch, once taken over
for rows, what in ((hist.rows, "the other nodes"), (hist_all.rows, "any node after SIGCONT")):
    newest = {}
    for t, asked, name, owner, epoch in rows:
        if name not in old:
            continue
        if name in newest and epoch is not None and epoch < newest[name]:
            fail("/api/cluster on %s showed %s going back from epoch %d to %d (owner %s)"
                 % (asked, name, newest[name], epoch, owner))
        newest[name] = max(newest.get(name, 0), epoch or 0)
        if name in mine and t > t_taken and owner == victim.id and (epoch or 0) <= (old[name][1] or 0):
            fail("/api/cluster on %s at +%.1f s after SIGCONT: %s owned by %s with its old epoch %s"
                 % (asked, t - t_cont, name, owner, epoch))
log("ownership history: %d rows from the others, %d from every node after SIGCONT"
    % (len(hist.rows), len(hist_all.rows)))

m1 = victim.metrics()
fence = {k: v - m0.get(k, 0) for k, v in m1.items()
         if k.startswith("wagw_cluster_") and ("fence" in k or "lost" in k)}
log("%s's fencing metrics (change): %s" % (victim.id, fence))
lost = sum(v for k, v in fence.items() if "lost" in k)
check(any(v > 0 for k, v in fence.items() if "fence" in k) or lost >= len(mine),
      "%s's metrics show no fenced write, no self-fence and %d of its %d leases lost: %s"
      % (victim.id, lost, len(mine), {k: v for k, v in m1.items() if k.startswith("wagw_cluster_")}))
# each lease is lost once, however the self-fence and the renewal's answer meet
claims = sum(v - m0.get(k, 0) for k, v in m1.items() if k.startswith("wagw_cluster_claims_total"))
check(lost <= len(mine) + claims, "%s counts %d leases lost; it held %d and claimed %d since"
      % (victim.id, lost, len(mine), claims))
lines = [l for l in victim.log_text()[logsize:].split("\n") if re.search(FENCE_LOG, l, re.I)]
check(lines, "%s's log says nothing of fencing after SIGCONT (/%s/)" % (victim.id, FENCE_LOG))
log("its log: %d lines on fencing, first: %s" % (len(lines), lines[0][:200]))
check(not poll.qrs(), "the poller saw a QR: %s" % poll.qrs()[:3])
n = cl.no_qr_in_log("after the fencing")
log("%d stored events since linking read back, none a QR" % n)
print("PASS")
