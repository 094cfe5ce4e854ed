#!/usr/bin/python3
"""Webhooks end to end (issue 15, points 3 to 5), against the real binary and
the fake WhatsApp server, with receivers written here (Python's http.server)
that verify every Standard Webhooks signature with Python's own hmac:

1. Delivery that survives everything: two targets (the global one from
   WEBHOOK_URL + WEBHOOK_SECRET, one created through the API with a
   generated secret) whose receiver fails every other request (500) and
   goes away for a few seconds; five sessions reconnect in a loop for at
   least 1,000 state changes while the gateway is SIGKILLed and restarted
   20 times. Each target then has every event of every session, in event
   order (each new webhook-id above the last), seqs contiguous per session
   up to the session's final seq; a repeated webhook-id always carries the
   same body; every signature verifies.
2. Refusals: malformed URLs, other schemes, user info, private, loopback,
   link-local, metadata and ULA addresses (400), a host name resolving to
   loopback (400 at creation; at connect time for WEBHOOK_URL: the
   receiver gets nothing and the log says "refused address").
3. Redirects are not followed (the test call sees the 302; the Location is
   never requested); TLS is verified (a self-signed receiver fails with a
   TLS error, the same one trusted through WEBHOOK_CA_FILE gets it).
4. Dead letters after the retry budget (WEBHOOK_MAX_ATTEMPTS=3), visible in
   GET /api/webhooks and /metrics, delivered in order after a replay.
5. Who may do what: a session key creates, lists, tests and deletes its own
   session's targets only (over HTTP and gRPC); secrets never in the log."""
import base64, hashlib, hmac, http.client, http.server, json, os, re, signal, socket, ssl
import subprocess, sys, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2elib  # noqa: E402
from e2elib import GW, TMP, check, fail, free_port, gateway_env, start_fakewa  # noqa: E402

ADMIN = "admin-key-for-the-webhooks-test-0123"
A = {"X-API-Key": ADMIN, "Content-Type": "application/json"}
GLOBAL_SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef01234567").decode()
KILLS = int(os.environ.get("WEBHOOK_KILLS", "20"))
MIN_EVENTS = int(os.environ.get("WEBHOOK_EVENTS", "1000"))
T0 = time.time()


def log(msg):
    print("[%6.1fs] %s" % (time.time() - T0, msg), flush=True)


def api(port, method, path, body=None, headers=None, timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request(method, path, body=json.dumps(body) if isinstance(body, (dict, list)) else body,
              headers=headers if headers is not None else A)
    r = c.getresponse()
    data = r.read()
    c.close()
    try:
        return r.status, json.loads(data)
    except ValueError:
        return r.status, data


def key_of(secret):
    return base64.b64decode(secret[len("whsec_"):] + "=" * (-len(secret[6:]) % 4))


# --- the receiver ---------------------------------------------------------

class Receiver:
    """Records every request per path: (webhook-id, timestamp, signature,
    body, status answered). `mode[path]` decides the answer: "ok", "half"
    (every other request of that path fails with 500), "fail" (500),
    "redirect" (302 to /landing)."""

    def __init__(self, port=0, tls=None):
        self.lock = threading.Lock()
        self.recs, self.mode, self.count = {}, {}, {}
        self.tls = tls
        self.conns, self.away = set(), False
        self.port = port or free_port()
        self.srv = None
        self.start()

    def start(self):
        rcv = self
        self.away = False

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                # headers and body are two writes: without this, Nagle and
                # the client's delayed ACK add 40 ms to every answer
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with rcv.lock:
                    rcv.conns.add(self.connection)

            def finish(self):
                with rcv.lock:
                    rcv.conns.discard(self.connection)
                super().finish()

            def do_POST(self):
                n = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(n)
                if rcv.away:  # gone: no answer at all
                    self.close_connection = True
                    return
                path = self.path
                with rcv.lock:
                    k = rcv.count.get(path, 0)
                    rcv.count[path] = k + 1
                    mode = rcv.mode.get(path, "ok")
                    status = {"ok": 200, "fail": 500, "redirect": 302}.get(mode, 200)
                    if mode == "half":
                        status = 500 if k % 2 == 0 else 200
                    rcv.recs.setdefault(path, []).append(
                        (self.headers.get("webhook-id"), self.headers.get("webhook-timestamp"),
                         self.headers.get("webhook-signature"), body, status,
                         self.headers.get("content-type"), time.time()))
                self.send_response(status)
                if status == 302:
                    self.send_header("location", "/landing")
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), H)
        self.srv.daemon_threads = True
        if self.tls:
            self.srv.socket = self.tls.wrap_socket(self.srv.socket, server_side=True)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def stop(self):
        self.away = True
        self.srv.shutdown()
        self.srv.server_close()
        with self.lock:
            for c in list(self.conns):
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def get(self, path):
        with self.lock:
            return list(self.recs.get(path, []))


def verify(secret, rec):
    wid, ts, sig, body, _, ctype, _ = rec
    check(wid and re.fullmatch(r"evt_[0-9]+", wid), "webhook-id %r" % wid)
    check(ts and abs(int(ts) - time.time()) < 600, "webhook-timestamp %r" % ts)
    check(ctype == "application/json", "content-type %r" % ctype)
    mac = hmac.new(key_of(secret), ("%s.%s." % (wid, ts)).encode() + body, hashlib.sha256).digest()
    want = "v1," + base64.b64encode(mac).decode()
    check(sig and want in sig.split(" "), "signature of %s does not verify: %r" % (wid, sig))


# --- the gateway ------------------------------------------------------------

class Gateway:
    def __init__(self, fw, name, env):
        self.fw, self.name, self.env = fw, name, env
        self.port, self.gport = free_port(), free_port()
        self.data = os.path.join(TMP, "data-" + name)
        self.logpath = os.path.join(TMP, "gw-%s.log" % name)
        self.p = None

    def start(self):
        env = dict(gateway_env(self.fw), **self.env)
        self.p = subprocess.Popen([GW, "--port", str(self.port), "--grpc-port", str(self.gport),
                                   "--data-dir", self.data, "--api-key", ADMIN,
                                   "--qr-first-ms", "300", "--qr-next-ms", "150",
                                   "--reconnect-wait-ms", "3000", "--connect-rate", "100"],
                                  env=env, stderr=open(self.logpath, "a"))
        e2elib.procs.append(self.p)
        for _ in range(400):
            try:
                if api(self.port, "GET", "/healthz", headers={})[0] == 200:
                    return
            except OSError:
                time.sleep(0.02)
        fail("gateway %s did not start" % self.name)

    def kill(self):
        self.p.send_signal(signal.SIGKILL)
        self.p.wait()

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(15)
        except subprocess.TimeoutExpired:
            fail("gateway %s did not stop on SIGTERM" % self.name)
        check(self.p.returncode == 0, "gateway %s exit code %s" % (self.name, self.p.returncode))

    def log(self):
        return open(self.logpath).read()


def route(name):
    return "/api/whatsapp" if name == "default" else "/api/sessions/" + name


def seqs_now(gw):
    st, b = api(gw.port, "GET", "/api/sessions")
    check(st == 200, "GET /api/sessions: %s %s" % (st, b))
    return {s["name"]: s["seq"] for s in b["data"]}


class Churn:
    """Sessions reconnecting in a loop (each reconnect: a new registration,
    CONNECTING then QR codes): state changes, whatever the gateway's state."""

    def __init__(self, gw, names):
        self.gw, self.names, self.stop = gw, names, threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(n,), daemon=True) for n in names]
        for t in self.threads:
            t.start()

    def run(self, name):
        while not self.stop.is_set():
            try:
                api(self.gw.port, "POST", route(name) + "/reconnect", timeout=5)
            except (OSError, http.client.HTTPException):
                time.sleep(0.05)
            time.sleep(0.3)

    def end(self):
        self.stop.set()
        for t in self.threads:
            t.join(10)


fw = start_fakewa("--refs", "3", "--qr-first-ms", "300", "--qr-next-ms", "150")

# --- 2. refusals and 5. authorization, on a gateway without ALLOW_PRIVATE ---
log("refusals and authorization")
rcv0 = Receiver()
hostname = socket.gethostname()
try:
    loop_name = hostname if socket.gethostbyname(hostname).startswith("127.") else None
except OSError:
    loop_name = None
env0 = {"WEBHOOK_BACKOFF_MS": "20", "WEBHOOK_BACKOFF_MAX_MS": "200"}
if loop_name:  # the connect-time check: a name resolving to loopback
    env0.update(WEBHOOK_URL="http://%s:%d/rebind" % (loop_name, rcv0.port), WEBHOOK_SECRET=GLOBAL_SECRET)
gw0 = Gateway(fw, "refusals", env0)
gw0.start()
bad = [
    ("not-a-url", "url must start with http"),
    ("http://exa mple.com/", "spaces"),
    ("ftp://example.com/x", "http:// or https://"),
    ("file:///etc/passwd", "http:// or https://"),
    ("https://user:pw@example.com/x", "user info"),
    ("https:///x", "no host"),
    ("http://127.0.0.1:%d/x" % rcv0.port, "private"),
    ("http://localhost/x", "private"),
    ("http://[::1]/x", "private"),
    ("http://10.1.2.3/x", "private"),
    ("http://192.168.0.10/x", "private"),
    ("http://100.64.1.1/x", "private"),
    ("http://169.254.169.254/latest/meta-data/", "private"),
    ("http://[fd00:ec2::254]/x", "private"),
    ("http://[fe80::1]/x", "private"),
    ("http://2130706433/x", "private"),
]
if loop_name:
    bad.append(("http://%s:%d/x" % (loop_name, rcv0.port), "resolves to a private"))
for url, why in bad:
    st, b = api(gw0.port, "POST", "/api/webhooks", {"url": url})
    check(st == 400 and why in b.get("message", ""), "%s: %s %s (want 400 %r)" % (url, st, b, why))
for body, why in [("{", "JSON object"), ({"url": 5}, "string"), ({"url": "https://a.example/", "x": 1}, "Unknown"),
                  ({"url": "https://a.example/", "secret": "short"}, "whsec_"),
                  ({"url": "https://a.example/", "events": ["Bad Type"]}, "events"),
                  ({"url": "https://a.example/", "events": "x"}, "events"), ({}, "required")]:
    st, b = api(gw0.port, "POST", "/api/webhooks", body)
    check(st == 400 and why in b.get("message", ""), "%s: %s %s" % (body, st, b))

# sessions a and b with their own keys
keys = {}
for n in ("a", "b"):
    st, b = api(gw0.port, "POST", "/api/sessions", {"name": n})
    check(st == 201, "create session %s: %s %s" % (n, st, b))
    keys[n] = b["data"]["key"]
KA = {"X-API-Key": keys["a"], "Content-Type": "application/json"}
KB = {"X-API-Key": keys["b"], "Content-Type": "application/json"}
NOEVENTS = ["never.sent"]  # a public URL that is never called: nothing matches
st, b = api(gw0.port, "POST", "/api/webhooks", {"url": "https://93.184.216.34/a", "events": NOEVENTS}, KA)
check(st == 201 and b["data"]["session"] == "a" and b["data"]["secret"].startswith("whsec_"),
      "a session key creates for its own session: %s %s" % (st, b))
wa = b["data"]["id"]
st, b = api(gw0.port, "POST", "/api/webhooks", {"url": "https://93.184.216.34/b", "events": NOEVENTS,
                                                "secret": GLOBAL_SECRET}, KB)
check(st == 201 and "secret" not in b["data"], "a given secret is never shown: %s %s" % (st, b))
wb = b["data"]["id"]
st, b = api(gw0.port, "POST", "/api/webhooks", {"url": "https://93.184.216.34/x", "session": "a",
                                                "events": NOEVENTS}, KB)
check(st == 403, "b's key for session a: %s %s" % (st, b))
st, b = api(gw0.port, "POST", "/api/webhooks", {"url": "https://93.184.216.34/x", "session": "nope",
                                                "events": NOEVENTS})
check(st == 404, "unknown session: %s %s" % (st, b))
st, b = api(gw0.port, "GET", "/api/webhooks", None, KB)
check(st == 200 and [t["id"] for t in b["data"]] == [wb], "b sees only its own: %s" % b)
check(all("secret" not in t for t in b["data"]), "no secret in the list")
st, b = api(gw0.port, "GET", "/api/webhooks")
ids = [t["id"] for t in b["data"]]
check(st == 200 and wa in ids and wb in ids, "the admin sees all: %s" % b)
for m, p in [("DELETE", "/api/webhooks/" + wa), ("POST", "/api/webhooks/%s/test?waitMs=100" % wa),
             ("POST", "/api/webhooks/%s/replay" % wa)]:
    st, b = api(gw0.port, m, p, None, KB)
    check(st == 404, "%s %s with b's key: %s %s" % (m, p, st, b))
if loop_name:
    st, b = api(gw0.port, "DELETE", "/api/webhooks/global", None, KA)
    check(st == 404, "a session key cannot delete the global webhook: %s" % st)
st, b = api(gw0.port, "GET", "/api/webhooks", None, {"X-API-Key": "wrong-key-0123456789"})
check(st == 401, "a wrong key: %s" % st)
st, b = api(gw0.port, "GET", "/api/webhooks", None, {})
check(st == 401, "no key: %s" % st)
st, b = api(gw0.port, "DELETE", "/api/webhooks/" + wa, None, KA)
check(st == 200, "a deletes its own: %s %s" % (st, b))

# the same over gRPC
import grpc  # noqa: E402
pb, pbg, _, _ = e2elib.grpc_stubs()
ch = grpc.insecure_channel("127.0.0.1:%d" % gw0.gport)
stub = pbg.GatewayStub(ch)
r = stub.ListWebhooks(pb.ListWebhooksRequest(), metadata=[("x-api-key", keys["b"])], timeout=5)
check([w.id for w in r.webhooks] == [wb], "gRPC ListWebhooks with b's key: %s" % r)
try:
    stub.CreateWebhook(pb.CreateWebhookRequest(url="https://93.184.216.34/x", session="a", events=NOEVENTS),
                       metadata=[("x-api-key", keys["b"])], timeout=5)
    fail("gRPC CreateWebhook for another session passed")
except grpc.RpcError as e:
    check(e.code() == grpc.StatusCode.PERMISSION_DENIED, "gRPC create for a: %s" % e.code())
try:
    stub.CreateWebhook(pb.CreateWebhookRequest(url="http://127.0.0.1:1/x"), metadata=[("x-api-key", ADMIN)],
                       timeout=5)
    fail("gRPC CreateWebhook of a loopback URL passed")
except grpc.RpcError as e:
    check(e.code() == grpc.StatusCode.INVALID_ARGUMENT and "private" in e.details(), "gRPC private: %s" % e)
r = stub.CreateWebhook(pb.CreateWebhookRequest(url="https://93.184.216.34/g", events=NOEVENTS),
                       metadata=[("x-api-key", ADMIN)], timeout=5)
check(r.webhook.id.startswith("wh_") and r.secret.startswith("whsec_") and list(r.webhook.events) == NOEVENTS,
      "gRPC CreateWebhook: %s" % r)
try:
    stub.DeleteWebhook(pb.DeleteWebhookRequest(id=r.webhook.id), metadata=[("x-api-key", keys["a"])], timeout=5)
    fail("gRPC DeleteWebhook of the admin's target with a's key passed")
except grpc.RpcError as e:
    check(e.code() == grpc.StatusCode.NOT_FOUND, "gRPC delete with a's key: %s" % e.code())
r2 = stub.ReplayWebhook(pb.ReplayWebhookRequest(id=r.webhook.id), metadata=[("x-api-key", ADMIN)], timeout=5)
check(r2.requeued == 0, "gRPC ReplayWebhook: %s" % r2)
stub.DeleteWebhook(pb.DeleteWebhookRequest(id=r.webhook.id), metadata=[("x-api-key", ADMIN)], timeout=5)
ch.close()

if loop_name:  # the global target's host resolves to loopback: refused when connecting
    api(gw0.port, "POST", route("default") + "/reconnect")
    t_end = time.time() + 10
    while time.time() < t_end and "refused address" not in gw0.log():
        time.sleep(0.1)
    check("refused address" in gw0.log(), "a connect to a loopback address was not refused")
    check(not rcv0.get("/rebind"), "the receiver behind a loopback name got %d requests" % len(rcv0.get("/rebind")))
    st, b = api(gw0.port, "GET", "/api/webhooks")
    g = [t for t in b["data"] if t["id"] == "global"][0]
    check(g["failed"] > 0 and "refused address" in (g["lastError"] or ""), "global: %s" % g)
else:
    log("no host name resolving to loopback here: the connect-time check is covered by the redirect/TLS part only")
gw0.stop()
check(GLOBAL_SECRET[6:] not in gw0.log() and keys["a"] not in gw0.log(), "a secret is in the log")

# --- 3. redirects, TLS, 4. dead letters and replay ---------------------------
log("redirects, TLS, dead letters")
certs = {}
for n in ("trusted", "untrusted"):
    subprocess.run("cd '%s' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
                   "-subj /CN=localhost -addext subjectAltName=DNS:localhost -keyout %s.key -out %s.pem "
                   "2>/dev/null" % (TMP, n, n), shell=True, check=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(TMP, n + ".pem"), os.path.join(TMP, n + ".key"))
    certs[n] = Receiver(tls=ctx)
rcv1 = Receiver()
gw1 = Gateway(fw, "budget", {"WEBHOOK_ALLOW_PRIVATE": "1", "WEBHOOK_MAX_ATTEMPTS": "3",
                             "WEBHOOK_BACKOFF_MS": "20", "WEBHOOK_BACKOFF_MAX_MS": "100",
                             "WEBHOOK_CA_FILE": os.path.join(TMP, "trusted.pem")})
gw1.start()


def create(gw, url, **kw):
    st, b = api(gw.port, "POST", "/api/webhooks", dict(url=url, **kw))
    check(st == 201, "create %s: %s %s" % (url, st, b))
    return b["data"]["id"], b["data"].get("secret")


rid, rsec = create(gw1, "http://127.0.0.1:%d/redirect" % rcv1.port, events=["webhook.none"])
rcv1.mode["/redirect"] = "redirect"
st, b = api(gw1.port, "POST", "/api/webhooks/%s/test?waitMs=5000" % rid)
check(st == 200 and b["data"]["answered"] and not b["data"]["delivered"] and b["data"]["status"] == 302
      and "not followed" in b["data"]["error"], "redirect: %s %s" % (st, b))
time.sleep(0.3)
check(not rcv1.get("/landing"), "the redirect was followed")
verify(rsec, rcv1.get("/redirect")[0])
body0 = json.loads(rcv1.get("/redirect")[0][3])
check(body0["type"] == "webhook.test" and body0["session"] is None, "test event body: %s" % body0)
tid, tsec = create(gw1, "https://localhost:%d/tls" % certs["trusted"].port, events=["webhook.none"])
uid, _ = create(gw1, "https://localhost:%d/tls" % certs["untrusted"].port, events=["webhook.none"])
st, b = api(gw1.port, "POST", "/api/webhooks/%s/test?waitMs=5000" % tid)
check(st == 200 and b["data"]["delivered"], "TLS with WEBHOOK_CA_FILE: %s" % b)
verify(tsec, certs["trusted"].get("/tls")[0])
st, b = api(gw1.port, "POST", "/api/webhooks/%s/test?waitMs=5000" % uid)
check(st == 200 and not b["data"]["delivered"] and "TLS" in (b["data"]["error"] or ""), "untrusted TLS: %s" % b)
check(not certs["untrusted"].get("/tls"), "a request reached the untrusted receiver")
for i in (rid, tid, uid):
    api(gw1.port, "DELETE", "/api/webhooks/" + i)

did, dsec = create(gw1, "http://127.0.0.1:%d/dead" % rcv1.port, session="default")
rcv1.mode["/dead"] = "fail"
for _ in range(4):
    api(gw1.port, "POST", route("default") + "/reconnect")
    time.sleep(0.3)


def settle(gw, secs=1.5, limit=20):
    """Waits until no session changes for `secs`; returns the seqs."""
    last, since, t_end = seqs_now(gw), time.time(), time.time() + limit
    while time.time() < t_end:
        time.sleep(0.25)
        now = seqs_now(gw)
        if now != last:
            last, since = now, time.time()
        elif time.time() - since >= secs:
            return now
    fail("the sessions do not settle: %s" % last)


settle(gw1)
t_end = time.time() + 20
info = None
while time.time() < t_end:
    st, b = api(gw1.port, "GET", "/api/webhooks")
    info = [t for t in b["data"] if t["id"] == did][0]
    ids = set(r[0] for r in rcv1.get("/dead"))
    if info["dead"] >= 4 and not info["retrying"] and info["dead"] == len(ids):
        break
    time.sleep(0.2)
check(info["dead"] >= 4 and info["failed"] == 3 * info["dead"], "dead letters after 3 attempts each: %s" % info)
dead_n = info["dead"]
_, _, mtext = e2elib.req(gw1.port, "GET", "/metrics")
check(('wagw_webhook_dead{webhook="%s"} %d' % (did, dead_n)).encode() in mtext, "metrics: dead")
check(('wagw_webhook_failed_attempts_total{webhook="%s"} %d' % (did, 3 * dead_n)).encode() in mtext,
      "metrics: failed")
stored = re.search(rb"^wagw_events_stored_total (\d+)$", mtext, re.M)
commits = re.search(rb"^wagw_events_commits_total (\d+)$", mtext, re.M)
check(stored and commits and int(stored.group(1)) > 0 and 0 < int(commits.group(1)) <= int(stored.group(1))
      and re.search(rb"^wagw_events_store_failures_total 0$", mtext, re.M)
      and re.search(rb"^wagw_events_pruned_total \d+$", mtext, re.M),
      "metrics: the event log's counters (stored, commits <= stored, no failures, pruned)")
check("dead letter" in gw1.log(), "the log does not say a delivery became a dead letter")
check(re.search(r"WARN +webhook: target %s \(127\.0\.0\.1\): delivery of event \d+ failed \(attempt 1\): HTTP 500"
                % did, gw1.log()), "the log does not say why a delivery failed")
check("/dead" not in gw1.log(), "the log shows the URL's path")
rcv1.mode["/dead"] = "ok"
n_before = len(rcv1.get("/dead"))
st, b = api(gw1.port, "POST", "/api/webhooks/%s/replay" % did)
check(st == 200 and b["data"]["requeued"] == dead_n, "replay: %s %s" % (st, b))
t_end = time.time() + 15
while time.time() < t_end and sum(1 for r in rcv1.get("/dead")[n_before:] if r[4] == 200) < dead_n:
    time.sleep(0.1)
ok = [r for r in rcv1.get("/dead")[n_before:] if r[4] == 200]
check(len(ok) >= dead_n, "replayed: %d of %d delivered" % (len(ok), dead_n))
ok_ids = [int(r[0][4:]) for r in ok]
check(ok_ids == sorted(ok_ids), "replayed out of order: %s" % ok_ids)
for r in rcv1.get("/dead"):
    verify(dsec, r)
st, b = api(gw1.port, "GET", "/api/webhooks")
info = [t for t in b["data"] if t["id"] == did][0]
check(info["dead"] == 0 and info["delivered"] >= dead_n, "after the replay: %s" % info)
gw1.stop()

# --- 1. 1,000 state changes, a flaky receiver, 20 SIGKILLs ------------------
log("delivery under failures: %d events, %d SIGKILLs" % (MIN_EVENTS, KILLS))
rcv = Receiver()
rcv.mode["/global"] = rcv.mode["/api"] = "half"
gw = Gateway(fw, "main", {"WEBHOOK_ALLOW_PRIVATE": "1", "WEBHOOK_URL": "http://127.0.0.1:%d/global" % rcv.port,
                          "WEBHOOK_SECRET": GLOBAL_SECRET, "WEBHOOK_BACKOFF_MS": "10",
                          "WEBHOOK_BACKOFF_MAX_MS": "300"})
gw.start()
st, b = api(gw.port, "POST", "/api/webhooks", {"url": "http://127.0.0.1:%d/api" % rcv.port})
check(st == 201, "create the API target: %s %s" % (st, b))
api_secret, api_id = b["data"]["secret"], b["data"]["id"]
s0 = seqs_now(gw)["default"]  # the target takes default's events after this at the latest
names = ["default", "s1", "s2", "s3", "s4"]
for n in names[1:]:
    st, b = api(gw.port, "POST", "/api/sessions", {"name": n})
    check(st == 201, "create %s: %s" % (n, st))
churn = Churn(gw, names)
away_at = KILLS // 2
for k in range(KILLS):
    time.sleep(1.2)
    gw.kill()
    if k == away_at:  # the receiver goes away for a while (connections refused)
        rcv.stop()
        log("receiver away")
    time.sleep(0.1)
    gw.start()
    if k == away_at + 3:
        rcv.start()
        log("receiver back")
    if k % 5 == 4:
        log("%d kills" % (k + 1))
# keep churning until enough state changes were stored
t_end = time.time() + 60
while time.time() < t_end and sum(seqs_now(gw).values()) < MIN_EVENTS:
    time.sleep(0.5)
churn.end()
final = settle(gw)
log("state changes: %d (%s)" % (sum(final.values()), final))
check(sum(final.values()) >= MIN_EVENTS, "only %d state changes" % sum(final.values()))


def accepted(path):
    """The events a target acknowledged, first time each: [(id, session, seq)]."""
    seen, out = set(), []
    for r in rcv.get(path):
        if r[4] == 200 and r[0] not in seen:
            seen.add(r[0])
            b = json.loads(r[3])
            out.append((int(r[0][4:]), b["session"], b["seq"]))
    return out


def caught_up(path):
    last = {}
    for _, s, q in accepted(path):
        last[s] = max(last.get(s, 0), q)
    return all(last.get(n, 0) >= final[n] for n in names)


t_end = time.time() + 90
while time.time() < t_end and not (caught_up("/global") and caught_up("/api")):
    time.sleep(0.5)
log("drained")
if os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR"):
    import shutil
    shutil.copy(gw.logpath, os.environ["TEST_UNDECLARED_OUTPUTS_DIR"])
    with open(os.path.join(os.environ["TEST_UNDECLARED_OUTPUTS_DIR"], "recv.txt"), "w") as f:
        for path in ("/global", "/api"):
            for r in rcv.get(path):
                f.write("%s %.3f %s %d %s\n" % (path, r[6], r[0], r[4], r[3][:80]))
final2 = seqs_now(gw)
check(final2 == final, "the sessions changed after the churn stopped: %s -> %s" % (final, final2))
for path, secret, first in (("/global", GLOBAL_SECRET, None), ("/api", api_secret, None)):
    recs = rcv.get(path)
    bodies = {}
    for r in recs:
        verify(secret, r)
        if r[0] in bodies:
            check(bodies[r[0]] == r[3], "%s: %s sent with two bodies" % (path, r[0]))
        bodies[r[0]] = r[3]
    # in order: each newly acknowledged id is above every id acknowledged before
    last = 0
    seen = set()
    for r in recs:
        if r[4] != 200:
            continue
        i = int(r[0][4:])
        if r[0] in seen:
            continue
        check(i > last, "%s: %s acknowledged after evt_%d" % (path, r[0], last))
        last = i
        seen.add(r[0])
    per = {}
    for _, s, q in accepted(path):
        per.setdefault(s, []).append(q)
    for n in names:
        got = per.get(n, [])
        lo = 1 if path == "/global" or n != "default" else (got[0] if got else 1)
        check(got == list(range(lo, final[n] + 1)),
              "%s: session %s got seqs %s... expected %d..%d" % (path, n, got[:20], lo, final[n]))
    fails = sum(1 for r in recs if r[4] != 200)
    dups = len([r for r in recs if r[4] == 200]) - len(seen)
    log("%s: %d events, %d requests (%d answered 500), %d duplicates (same webhook-id)"
        % (path, len(seen), len(recs), fails, dups))
check(len(accepted("/global")) >= MIN_EVENTS, "global: %d events" % len(accepted("/global")))
check(per.get("default") and per["default"][0] <= s0 + 1,
      "API target: default's events from its creation (seq %d): %s" % (s0, per.get("default", [])[:3]))
gw.stop()
check(GLOBAL_SECRET[6:] not in gw.log() and api_secret[6:] not in gw.log(), "a secret is in the log")
log("ok")
