#!/usr/bin/python3
"""The webhook leader changes hands, and the all-sessions stream keeps the
log's order, across nodes (3 nodes, 30 linked sessions, one WEBHOOK_URL).

While commands make events on sessions owned by every node:
- the leader is drained by SIGTERM: it gives the leadership up and another
  node delivers; then that one is killed (kill -9): a third takes over;
- every stored event of every session reaches the receiver at least once
  (the webhook-id may repeat after the kill, never be missing), and each
  session's first deliveries come in seq order;
- an SSE watcher of GET /api/events, resuming with Last-Event-ID on any
  serving node when its node goes away, sees event ids strictly increasing
  and misses no stored event: the id cursor is safe to resume from on any
  node, whichever node wrote the event."""
import base64, os, random, sys, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clusterlib import Cluster, SSEWatcher, check, fail, log, route, try_req  # noqa: E402

# the receiver: every delivery with its webhook-id
import e2elib  # noqa: E402
recv = e2elib.Receiver()
RECV = recv.url
SECRET = "whsec_" + base64.b64encode(b"leader-order-secret-32-bytes-abc").decode()

cl = Cluster(nodes=3, sessions=30, lease_ms=4000, renew_ms=1000,
             node_env={"WEBHOOK_URL": RECV, "WEBHOOK_SECRET": SECRET, "WEBHOOK_ALLOW_PRIVATE": "1"})
cl.setup()
base = {n: s["seq"] for n, s in cl.states().items()}  # events after these are checked


def leaders():
    out = []
    for n in cl.serving():
        try:
            m = n.metrics()
            if any(k.startswith("wagw_cluster_webhook_leader") and v == 1 for k, v in m.items()):
                out.append(n)
        except OSError:
            pass
    return out


def wait_leader(exclude, what, secs=20):
    end = time.time() + secs
    while time.time() < end:
        ls = [n for n in leaders() if n.id not in exclude]
        if len(ls) == 1 and len(leaders()) == 1:
            return ls[0]
        time.sleep(0.2)
    fail("%s: no single webhook leader among %s after %d s: %s"
         % (what, [n.id for n in cl.serving()], secs, [n.id for n in leaders()]))


# the all-sessions stream, resumed by id (Last-Event-ID) on any serving node
sse = SSEWatcher(cl, cl.nodes[0], follow=True)


def sse_events():
    """(id, session, seq) of every event the watcher got."""
    return [(i, e.get("session"), e.get("seq")) for i, (_, e) in zip(list(sse.ids), sse.snapshot())]


# events on sessions of every node: reconnects sent to random nodes (forwarded to the owner)
load_stop = threading.Event()
sent = [0]


def load():
    for _ in range(400):  # bounded
        if load_stop.is_set():
            return
        live = cl.serving()
        if live:
            name = random.choice(cl.names)
            st, _ = try_req(random.choice(live).port, "POST", route(name) + "/reconnect",
                            {"keepCredentials": True}, timeout=5)
            if st == 200:
                sent[0] += 1
        time.sleep(0.05)


lt = threading.Thread(target=load, daemon=True)
lt.start()
time.sleep(3)

l1 = wait_leader((), "at the start")
log("webhook leader: %s; SIGTERM" % l1.id)
l1.term()
check(l1.wait_exit(30) == 0, "%s drained and exited 0" % l1.id)
l2 = wait_leader((l1.id,), "after the drain of %s" % l1.id)
log("webhook leader after the drain: %s; kill -9" % l2.id)
time.sleep(2)
l2.kill()
l3 = wait_leader((l1.id, l2.id), "after killing %s" % l2.id, secs=30)
log("webhook leader after the kill: %s" % l3.id)
time.sleep(2)
load_stop.set()
lt.join(30)
log("%d reconnects sent" % sent[0])
cl.wait_settled(60, "after the leader changes")
cl.wait_fw_settled(15, "after the leader changes")

# every stored event since `base` of every session, from the survivor's log
final = {n: s["seq"] for n, s in cl.states(l3).items()}
want = {(n, q) for n in cl.names for q in range(base[n] + 1, final[n] + 1)}
check(len(want) > 100, "enough events to look at: %d" % len(want))
log("%d events stored since the start of the load" % len(want))


def delivered():
    return {(b.get("session"), b.get("seq")) for _, b in recv.snapshot()}


end = time.time() + 60
while time.time() < end and not want <= delivered():
    time.sleep(0.5)
missing = sorted(want - delivered())
check(not missing, "%d stored events never delivered to the webhook: %s" % (len(missing), missing[:10]))
got = recv.snapshot()
ids = [w for w, _ in got]
firsts = {}
order_bad = []
for w, b in got:
    k = (b.get("session"), b.get("seq"))
    if k in firsts or k[0] is None:
        continue
    firsts[k] = 1
    if [q for (s_, q) in firsts if s_ == k[0] and q > k[1]]:
        order_bad.append(k)
check(not order_bad, "first deliveries out of seq order: %s" % order_bad[:10])
log("webhook: %d deliveries, %d distinct ids, every stored event at least once, in order per session"
    % (len(ids), len(set(ids))))

# the stream: ids strictly increasing, nothing missing
end = time.time() + 30
while time.time() < end and not want <= {(e[1], e[2]) for e in sse_events()}:
    time.sleep(0.5)
sse.close()
# (a fresh stream starts with every session's current state, at `base`: not checked)
evs = [e for e in sse_events() if e[1] in base and e[2] > base[e[1]]]
back = [(evs[i - 1], evs[i]) for i in range(1, len(evs)) if evs[i][0] <= evs[i - 1][0]]
check(not back, "the all-sessions stream went back in id (%d times): %s" % (len(back), back[:10]))
lost = sorted(want - {(e[1], e[2]) for e in evs})
check(not lost, "the all-sessions stream (resumed by id, %d opens) missed %d stored events: %s"
      % (sse.opens, len(lost), lost[:10]))
log("stream: %d events over %d opens, ids increasing, none missed" % (len(evs), sse.opens))
cl.check_fw("at the end", double_live=0)
print("PASS")
