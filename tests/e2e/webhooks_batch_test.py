#!/usr/bin/python3
"""The webhook test call's group commit, end to end (the real binary):

1. waitMs: 0 answers once the event is stored (answered false, an eventId);
   out of range or not a number is 400; gRPC TestWebhook with queued_only
   answers the same way.
2. Many test calls at once: 8 kept-alive connections each send CALLS test
   calls back to back (most with waitMs=0, every 5th waiting for its
   delivery), while a second target gets calls too. Every call answers 200
   with its eventId; on each connection the ids increase in the order of
   its calls; each target's receiver gets every one of its events exactly
   once, in id order, and nothing else (nothing lost, reordered or sent
   twice by the batching)."""
import http.client, http.server, json, os, socket, sys, threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2elib  # noqa: E402
from e2elib import check, failed, gateway_env, start_fakewa, start_gateway  # noqa: E402

ADMIN = "admin-key-for-the-wh-batch-test-0123"
A = {"X-API-Key": ADMIN, "Content-Type": "application/json"}
CONNS = 8
CALLS = int(os.environ.get("WEBHOOK_BATCH_CALLS", "150"))


class Receiver:
    """Records (path, webhook-id, body) of every POST; answers 200."""

    def __init__(self):
        self.lock = threading.Lock()
        self.recs = []
        rcv = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with rcv.lock:
                    rcv.recs.append((self.path, self.headers.get("webhook-id"), body))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def ids(self, path):
        with self.lock:
            return [int(w[4:]) for p, w, _ in self.recs if p == path]


def call(c, method, path, body=None):
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=A)
    r = c.getresponse()
    d = r.read()
    return r.status, json.loads(d) if d[:1] == b"{" else d


fw = start_fakewa("--qr-first-ms", "120000", "--qr-next-ms", "60000")
gw, port, gport, logpath = start_gateway(fw, "whbatch", ["--api-key", ADMIN],
                                         env=dict(gateway_env(fw), WEBHOOK_ALLOW_PRIVATE="1"))
rcv = Receiver()
c0 = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
tid = {}
for name in ("a", "b"):
    st, b = call(c0, "POST", "/api/webhooks", {"url": "http://127.0.0.1:%d/%s" % (rcv.port, name),
                                               "events": ["webhook.none"]})
    check(st == 201, "create %s: %s %s" % (name, st, b))
    tid[name] = b["data"]["id"]
mine = {"a": [], "b": []}  # the ids answered per target

# 1. waitMs
st, b = call(c0, "POST", "/api/webhooks/%s/test?waitMs=0" % tid["a"])
check(st == 200 and b["data"]["answered"] is False and b["data"]["eventId"] > 0
      and "queued" in b["message"].lower(), "waitMs=0: %s %s" % (st, b))
mine["a"].append(b["data"]["eventId"])
for bad in ("-1", "60001", "abc", "", "1e3", "+5"):
    st, b = call(c0, "POST", "/api/webhooks/%s/test?waitMs=%s" % (tid["a"], bad))
    check(st == 400, "waitMs=%r: %s %s" % (bad, st, b))
st, b = call(c0, "POST", "/api/webhooks/%s/test?waitMs=5000" % tid["a"])
check(st == 200 and b["data"]["answered"] and b["data"]["delivered"] and b["data"]["status"] == 200,
      "waitMs=5000: %s %s" % (st, b))
mine["a"].append(b["data"]["eventId"])
st, b = call(c0, "POST", "/api/webhooks/%s/test" % tid["b"])  # the default wait
check(st == 200 and b["data"]["delivered"], "default wait: %s %s" % (st, b))
mine["b"].append(b["data"]["eventId"])

import grpc  # noqa: E402
pb, pbg, _, _ = e2elib.grpc_stubs()
stub = pbg.GatewayStub(grpc.insecure_channel("127.0.0.1:%d" % gport))
r = stub.TestWebhook(pb.TestWebhookRequest(id=tid["b"], queued_only=True), metadata=[("x-api-key", ADMIN)],
                     timeout=10)
check(not r.answered and r.event_id > mine["b"][-1], "gRPC queued_only: %s" % r)
mine["b"].append(r.event_id)
r = stub.TestWebhook(pb.TestWebhookRequest(id=tid["b"], wait_ms=5000), metadata=[("x-api-key", ADMIN)],
                     timeout=10)
check(r.answered and r.delivered and r.event_id > mine["b"][-1], "gRPC wait_ms: %s" % r)
mine["b"].append(r.event_id)

# 2. many calls at once
results = [[] for _ in range(CONNS)]
go = threading.Barrier(CONNS)


def worker(k):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    go.wait()
    for i in range(CALLS):
        name = "b" if (k + i) % 4 == 0 else "a"
        wait = "5000" if i % 5 == 4 else "0"
        try:
            st, b = call(c, "POST", "/api/webhooks/%s/test?waitMs=%s" % (tid[name], wait))
        except (OSError, http.client.HTTPException) as e:
            results[k].append((name, wait, 0, str(e)))
            continue
        results[k].append((name, wait, st, b))


ths = [threading.Thread(target=worker, args=(k,)) for k in range(CONNS)]
for t in ths:
    t.start()
for t in ths:
    t.join()
for k in range(CONNS):
    last = 0
    for name, wait, st, b in results[k]:
        check(st == 200 and b["data"]["eventId"] > last,
              "connection %d: %s (waitMs=%s): %s %s (after id %d)" % (k, name, wait, st, b, last))
        last = b["data"]["eventId"]
        mine[name].append(last)
        if wait != "0":
            check(b["data"]["answered"] and b["data"]["delivered"], "a waiting call: %s" % b)
total = sum(len(v) for v in mine.values())
for _ in range(200):
    if len(rcv.ids("/a")) + len(rcv.ids("/b")) >= total:
        break
    threading.Event().wait(0.05)
threading.Event().wait(0.3)  # a duplicate would show
for name in ("a", "b"):
    got = rcv.ids("/" + name)
    want = sorted(mine[name])
    check(len(set(got)) == len(got), "%s: duplicates: %d of %d" % (name, len(got) - len(set(got)), len(got)))
    check(got == sorted(got), "%s: out of order" % name)
    check(set(got) == set(want), "%s: lost %s, unexpected %s" % (name, sorted(set(want) - set(got))[:10],
                                                               sorted(set(got) - set(want))[:10]))
for p, w, body in rcv.recs:
    d = json.loads(body)
    check(d["type"] == "webhook.test" and d["data"]["webhook"] == tid[p[1:]], "body for %s: %s" % (p, d))
gw.terminate()
check(gw.wait(20) == 0, "gateway exit status")
fw["proc"].terminate()
if not failed:
    print("ok: %d test events (%d connections), each delivered once and in order" % (total, CONNS))
