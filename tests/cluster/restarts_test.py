#!/usr/bin/python3
"""CLUSTER_CYCLES (default 50) kill -9 / restart cycles of random nodes
(LEASE_MS 4000, RENEW_MS 1000): each cycle kills one node, restarts it
after 0 to 0.6 s and lets it serve 0.2 to 1.0 s once ready (a restarted
node takes its sessions back at once, with a new epoch), bounded to 40 s
per cycle.
Throughout, the fake server never sees two live connections for one device
(doubleLive 0, checked after every kill and every restart); at the end
every session is CONNECTED at its owner as the device it was linked as,
with one live connection each, and none ever showed a QR (a poller, an SSE
watcher of every session that follows the serving nodes, and each
session's stored events since linking)."""
import os, random, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clusterlib import Cluster, Poller, SSEWatcher, check, fail, first_qr, log, summary  # noqa: E402

CYCLES = int(os.environ.get("CLUSTER_CYCLES", "50"))
CYCLE_BOUND = 40.0
cl = Cluster(lease_ms=4000, renew_ms=1000, connect_rate=50, prekeys_uploaded=True)
cl.setup()
poll = Poller(cl)
sse = SSEWatcher(cl, cl.nodes[0], follow=True)
random.seed(os.environ.get("CLUSTER_SEED") or time.time())

t0 = time.time()
kills = {n.id: 0 for n in cl.nodes}
starts = []
for i in range(CYCLES):
    tc = time.time()
    victim = random.choice(cl.nodes)
    victim.kill()
    kills[victim.id] += 1
    fs = cl.fw_state()
    check(fs["doubleLive"] == 0, "cycle %d: doubleLive %d after killing %s" % (i, fs["doubleLive"], victim.id))
    time.sleep(random.uniform(0, 0.6))
    ts = time.time()
    victim.start()
    starts.append(time.time() - ts)
    time.sleep(random.uniform(0.2, 1.0))
    fs = cl.fw_state()
    check(fs["doubleLive"] == 0, "cycle %d: doubleLive %d after restarting %s" % (i, fs["doubleLive"], victim.id))
    q = poll.qrs()
    check(not q, "cycle %d: the poller saw a QR: %s" % (i, q[:3]))
    if time.time() - tc > CYCLE_BOUND:
        fail("cycle %d took %.1f s" % (i, time.time() - tc))
    if i % 10 == 9:
        log("%d cycles, %d live connections at the fake server, %d devices live" % (i + 1, fs["live"],
                                                                                  len(fs["liveDevices"])))
log("%d cycles in %.0f s (kills %s; restart to ready: %s)" % (CYCLES, time.time() - t0, kills, summary(starts)))

t = time.time()
done = cl.wait_settled(90, "after %d restarts" % CYCLES)
log("every session CONNECTED at its owner %.1f s after the last restart" % (time.time() - t))
fs = cl.wait_fw_settled(20, "after the restarts")
cl.check_fw("after the restarts")
time.sleep(1)
poll.close()
sse.close()
check(not poll.qrs(), "the poller saw a QR: %s" % poll.qrs()[:3])
q = first_qr(sse.snapshot())
check(q is None, "the SSE watcher saw a QR: %s" % (q and q[1]))
n = cl.no_qr_in_log("after the restarts")
own = cl.owners()
log("owners at the end: %s; SSE: %d events over %d opens; poller: %d polls; %d stored events since "
    "linking, none a QR; fake server: doubleLive %d, %d logins"
    % ({x.id: sum(1 for o in own.values() if o[0] == x.id) for x in cl.nodes}, len(sse.events), sse.opens,
       poll.polls, n, fs["doubleLive"], fs["loginsOk"]))
print("PASS")
