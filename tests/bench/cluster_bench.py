#!/usr/bin/python3
"""Cluster benchmark: three wa-gateway nodes (the release binary) on one
PostgreSQL (STORE_URL in the environment, made by cluster_bench.sh with
tests/pg/pgtmp.sh), S (default 60, CLUSTER_BENCH_SESSIONS) linked sessions
over wss:// against tests/fakewa (one account per session), LEASE_MS and
RENEW_MS at their defaults. Measures:

  * forwarding: a command for a session node A runs, sent to A itself and
    to node B (which forwards it to A's ADVERTISE_URL), interleaved, on one
    kept-alive HTTP/1.1 connection per node: POST .../pairing-code with a
    valid phone on a linked session (A answers 409 "already linked": the
    same work on both paths, only the hop differs; CLUSTER_BENCH_ROUNDS per
    path, default 2000) and POST .../reconnect {"keepCredentials":true} (a
    real reconnect; CLUSTER_BENCH_RECONNECTS per path, default 300; each
    session CONNECTED again before its next one). p50/p90/p99/max per path;
    the target: p99(B) - p99(A) <= 10 ms;
  * failover: kill -9 of A; per session A ran, the time until node C shows
    it CONNECTED again (GET /api/sessions on C every 100 ms: a newer seq
    and CONNECTED; its sinceMs against the wall clock of the kill) and
    until the fake server has its device logged in again; no registration
    (QR) at the fake server. Then A is restarted and POST
    /api/cluster/rebalance spreads the sessions again;
  * drain: SIGTERM of B; per session B ran, its downtime as C sees it (the
    events of GET /api/events on C: from its first change away from
    CONNECTED to CONNECTED again, by the events' sinceMs) and as the fake
    server sees it (device not logged in, polled every 50 ms); max and
    p99; the target: <= 5 s per session, no QR.

The nodes run on CPU 0, the fake server, PostgreSQL and this driver on
CPU 1. Every wait is bounded. What follows the line "<!-- analysis: kept by
cluster_bench.py -->" in --out is kept. Prints a markdown report and writes
it to --out. Called by tests/bench/cluster_bench.sh (make bench)."""
import argparse, http.client, json, os, platform, signal, socket, ssl, subprocess, sys, threading, time

ap = argparse.ArgumentParser()
ap.add_argument("--gw", required=True)
ap.add_argument("--fakewa", required=True)
ap.add_argument("--tmp", required=True)
ap.add_argument("--out", required=True)
ap.add_argument("-n", type=int, default=int(os.environ.get("CLUSTER_BENCH_SESSIONS", "60")))
ap.add_argument("--rounds", type=int, default=int(os.environ.get("CLUSTER_BENCH_ROUNDS", "2000")))
ap.add_argument("--reconnects", type=int, default=int(os.environ.get("CLUSTER_BENCH_RECONNECTS", "300")))
args = ap.parse_args()
N, TMP = args.n, args.tmp
STORE_URL = os.environ.get("STORE_URL", "")
KEY = "bench-admin-key-0123456789"
SECRET = "cluster-bench-secret-0123456789abcdef"
PHONE_BODY = json.dumps({"phoneNumber": "+15551234567"})
procs = []


def keep_logs():
    """CLUSTER_BENCH_LOGS=DIR: the nodes' and the fake server's logs are
    copied there (for a look after a failure)."""
    dest = os.environ.get("CLUSTER_BENCH_LOGS")
    if dest:
        os.makedirs(dest, exist_ok=True)
        for f in os.listdir(TMP):
            if f.endswith(".log") or f.endswith(".err"):
                with open(os.path.join(TMP, f), "rb") as src, open(os.path.join(dest, f), "wb") as dst:
                    dst.write(src.read())


def die(msg):
    print("cluster_bench: " + msg, file=sys.stderr, flush=True)
    keep_logs()
    for p in procs:
        if p.poll() is None:
            p.kill()
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            pass
    os._exit(1)  # also from the events thread


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def pct(v, p):
    if not v:
        return float("nan")
    s = sorted(v)
    return s[min(len(s) - 1, max(0, int(round(p / 100.0 * len(s) + 0.5)) - 1))]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wall_ms():
    return int(time.time() * 1000)


if not STORE_URL.startswith("postgres"):
    die("STORE_URL (postgres://...) must be set (cluster_bench.sh makes one)")
try:
    os.sched_setaffinity(0, {1})
except OSError:
    pass

# --- a test CA and a server certificate for 127.0.0.1 ---
ca_key, ca_pem = os.path.join(TMP, "ca.key"), os.path.join(TMP, "ca.pem")
srv_key, srv_csr, srv_pem = (os.path.join(TMP, f) for f in ("srv.key", "srv.csr", "srv.pem"))
ext = os.path.join(TMP, "srv.ext")
with open(ext, "w") as f:
    f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
            "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")
for cmd in (["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", ca_key, "-out", ca_pem, "-days", "2", "-subj", "/CN=wa-gateway bench CA"],
            ["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", srv_key, "-out", srv_csr, "-subj", "/CN=127.0.0.1"],
            ["openssl", "x509", "-req", "-in", srv_csr, "-CA", ca_pem, "-CAkey", ca_key, "-CAcreateserial",
             "-out", srv_pem, "-days", "2", "-extfile", ext]):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
ctl_tls = ssl.create_default_context(cafile=ca_pem)

# --- the fake WhatsApp server over wss://, one account per phone ---
fw = subprocess.Popen(["taskset", "-c", "1", args.fakewa, "--cert", srv_pem, "--key", srv_key,
                       "--account-per-scan"], stdout=subprocess.PIPE, stderr=open(os.path.join(TMP, "fw.err"), "w"),
                      text=True)
procs.append(fw)
fwenv = dict(kv.split("=", 1) for kv in fw.stdout.readline().split())
if not fwenv.get("WA_URL", "").startswith("wss://"):
    die("the fake server did not start over wss://")
CPORT = int(fwenv["CONTROL"].split(":")[2].split("/")[0])


def control(method, path, body=None):
    c = http.client.HTTPSConnection("127.0.0.1", CPORT, timeout=10, context=ctl_tls)
    c.request(method, "/control" + path, body=body)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def fw_state():
    return json.loads(control("GET", "/state")[1])


phase_marks = []  # (phase, doubleLive, loginsOk) at the fake server at the end of each phase


def mark(phase):
    st = fw_state()
    phase_marks.append((phase, st["doubleLive"], st["loginsOk"]))


# --- the nodes ---
class Node:
    def __init__(self, ident):
        self.id = ident
        self.port, self.gport = free_port(), free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.data = os.path.join(TMP, ident)
        self.log = open(os.path.join(TMP, ident + ".log"), "a")
        self.proc = None
        self.env = dict(os.environ, STORE_URL=STORE_URL, NODE_ID=ident, ADVERTISE_URL=self.url,
                        CLUSTER_SECRET=SECRET, WA_URL=fwenv["WA_URL"], WA_ROOT_KEY=fwenv["WA_ROOT_KEY"],
                        WA_CA_FILE=ca_pem, API_KEY=KEY, DATA_DIR=self.data, PORT=str(self.port),
                        GRPC_PORT=str(self.gport), MAX_SESSIONS=str(N + 10), PAGE="0")
        for k in ("LEASE_MS", "RENEW_MS", "DRAIN_TIMEOUT_MS"):
            self.env.pop(k, None)  # the defaults
        self.api = Api(self)

    def start(self):
        self.proc = subprocess.Popen(["taskset", "-c", "0", args.gw], env=self.env, stdout=self.log,
                                     stderr=self.log)
        procs.append(self.proc)
        self.api.c = None
        for _ in range(500):
            if self.proc.poll() is not None:
                die("node %s exited at start (%s); see its log" % (self.id, self.proc.returncode))
            try:
                if Api(self).req("GET", "/healthz", timeout=1)[0] == 200:
                    return
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.02)
        die("node %s did not start" % self.id)

    def ready(self):
        try:
            return Api(self).req("GET", "/readyz", timeout=2)[0] == 200
        except (OSError, http.client.HTTPException):
            return False


class Api:
    """One keep-alive HTTP/1.1 connection to a node with the admin key."""

    def __init__(self, node):
        self.node = node
        self.c = None

    def req(self, method, path, body=None, timeout=10):
        for attempt in (0, 1):
            try:
                if self.c is None:
                    self.c = http.client.HTTPConnection("127.0.0.1", self.node.port, timeout=timeout)
                    self.c.connect()
                    self.c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                hdr = {"X-API-Key": KEY}
                if body is not None:
                    hdr["Content-Type"] = "application/json"
                self.c.request(method, path, body=body, headers=hdr)
                r = self.c.getresponse()
                return r.status, r.read()
            except (OSError, http.client.HTTPException):
                self.c = None
                if attempt:
                    raise
        return 0, b""

    def timed(self, method, path, body=None):
        """One request on the kept-alive connection; (status, ms, body). A
        request that had to reconnect is marked with status -status."""
        fresh = self.c is None
        t0 = time.perf_counter()
        st, b = self.req(method, path, body)
        ms = (time.perf_counter() - t0) * 1000
        return (-st if fresh else st), ms, b


nodes = [Node("n1"), Node("n2"), Node("n3")]
A, B, C = nodes


def sessions(node):
    st, body = node.api.req("GET", "/api/sessions", timeout=30)
    if st != 200:
        die("GET /api/sessions on %s: %d %s" % (node.id, st, body[:200]))
    return {s["name"]: s for s in json.loads(body)["data"]}


def cluster(node):
    st, body = node.api.req("GET", "/api/cluster", timeout=30)
    if st != 200:
        die("GET /api/cluster on %s: %d %s" % (node.id, st, body[:200]))
    d = json.loads(body)
    return d.get("data", d)


def owners(node):
    return {s["name"]: s["owner"] for s in cluster(node)["sessions"]}


def wait_all_connected(node, names, seconds, what):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ss = sessions(node)
        if all(ss.get(n, {}).get("state") == "CONNECTED" for n in names):
            return ss
        time.sleep(0.2)
    ss = sessions(node)
    bad = sorted(n for n in names if ss.get(n, {}).get("state") != "CONNECTED")
    die("%s: %d of %d sessions not CONNECTED after %d s (e.g. %s)" % (
        what, len(bad), len(names), seconds, ", ".join("%s=%s" % (n, ss.get(n, {}).get("state")) for n in bad[:5])))


class Events(threading.Thread):
    """GET /api/events (admin) on one node: every event of every session,
    with the time it arrived here."""

    def __init__(self, node):
        super().__init__(daemon=True)
        self.node = node
        self.mu = threading.Lock()
        self.events = []  # (arrival monotonic, event)
        self.stop = False
        self.ok = threading.Event()
        self.reconnects = 0

    def run(self):
        while not self.stop:
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.node.port, timeout=600)
                c.request("GET", "/api/events", headers={"X-API-Key": KEY})
                r = c.getresponse()
                if r.status != 200:
                    die("GET /api/events on %s: %d" % (self.node.id, r.status))
                self.ok.set()
                buf = b""
                while not self.stop:
                    chunk = r.read1(65536)
                    if not chunk:
                        break
                    buf += chunk
                    while b"\n\n" in buf:
                        block, buf = buf.split(b"\n\n", 1)
                        for line in block.split(b"\n"):
                            if line.startswith(b"data:"):
                                ev = json.loads(line[5:])
                                with self.mu:
                                    self.events.append((time.monotonic(), ev))
            except (OSError, http.client.HTTPException, ValueError):
                pass
            if not self.stop:
                self.reconnects += 1
                time.sleep(0.05)

    def since(self, t):
        with self.mu:
            return [e for e in self.events if e[0] >= t]


report = {}
meta = "Measured %s on %d cores (%s), %s." % (
    time.strftime("%Y-%m-%d", time.gmtime()), os.cpu_count(),
    next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
    " ".join(platform.uname()[i] for i in (0, 2)))
t_start = time.monotonic()

# 1. three nodes, S sessions created (round robin over the nodes) and linked
log("1: starting 3 nodes, creating and linking %d sessions" % N)
for nd in nodes:
    nd.start()
end = time.monotonic() + 30
while not all(nd.ready() for nd in nodes):
    if time.monotonic() > end:
        die("the nodes were not ready within 30 s")
    time.sleep(0.1)
names = ["s%03d" % i for i in range(1, N + 1)]
phones = {"default": "4915550000000"}
for i, name in enumerate(names):
    phones[name] = "49155%08d" % (i + 1)
    st, body = nodes[i % 3].api.req("POST", "/api/sessions", json.dumps({"name": name}))
    if st != 201:
        die("POST /api/sessions %s on %s: %d %s" % (name, nodes[i % 3].id, st, body[:200]))
t_link = time.monotonic()
pending = ["default"] + names
end = time.monotonic() + 60
while pending:
    if time.monotonic() > end:
        die("no QR within 60 s for %d sessions (e.g. %s)" % (len(pending), pending[:5]))
    left = []
    for k, name in enumerate(pending):
        route = "/api/whatsapp" if name == "default" else "/api/sessions/" + name
        st, qr = nodes[k % 3].api.req("GET", route + "/qr?format=raw")
        if st == 200 and qr:
            st, body = control("POST", "/scan?phone=" + phones[name], qr)
            if st != 200:
                die("%s: the scan was refused: %s" % (name, body))
        else:
            left.append(name)
    pending = left
    if pending:
        time.sleep(0.2)
all_names = ["default"] + names
ss = wait_all_connected(C, all_names, 120, "linking")
report["link_s"] = time.monotonic() - t_link
jid = {}
for n in all_names:
    j = (ss[n].get("account") or {}).get("jid")
    if not j:
        die("%s: no account jid in its status" % n)
    jid[n] = j
log("  linked in %.1f s" % report["link_s"])
time.sleep(3)  # the owners' first writes (pre-keys) settle
own = owners(C)
report["owners_start"] = {nd.id: sum(1 for o in own.values() if o == nd.id) for nd in nodes}
a_names = sorted(n for n in all_names if own.get(n) == A.id)
if len(a_names) < 3:
    die("node %s runs only %d sessions (%s)" % (A.id, len(a_names), report["owners_start"]))
log("  owners: %s" % report["owners_start"])
fs = fw_state()
regs_linked = fs["registrations"]
mark("linking")

# 2. forwarding: the same command to the owner (A) and through B
log("2: pairing-code x %d per path, A direct vs via B" % args.rounds)


def run_pair(rounds, seconds):
    lat = {"direct": [], "forwarded": []}
    status = {"direct": {}, "forwarded": {}}
    end = time.monotonic() + seconds
    # warm up both connections (and B's connection to A)
    for nd in (A, B):
        for n in a_names[:3]:
            nd.api.req("POST", "/api/sessions/%s/pairing-code" % n, PHONE_BODY)
    for i in range(rounds):
        if time.monotonic() > end:
            break
        name = a_names[i % len(a_names)]
        path = "/api/sessions/%s/pairing-code" % name
        order = (("direct", A), ("forwarded", B)) if i % 2 == 0 else (("forwarded", B), ("direct", A))
        for kind, nd in order:
            st, ms, _ = nd.api.timed("POST", path, PHONE_BODY)
            status[kind][st] = status[kind].get(st, 0) + 1
            lat[kind].append(ms)
    return lat, status


t0 = time.monotonic()
lat, status = run_pair(args.rounds, 300)
report["pair_s"] = time.monotonic() - t0
report["pair_lat"], report["pair_status"] = lat, status
report["pair_sessions"] = len(a_names)
mark("pairing-code")
log("  %d rounds in %.1f s; direct p99 %.2f ms, forwarded p99 %.2f ms; statuses %s" % (
    len(lat["direct"]), report["pair_s"], pct(lat["direct"], 99), pct(lat["forwarded"], 99), status))

log("2b: reconnect x %d per path" % args.reconnects)


def session_state(node, name):
    st, body = node.api.req("GET", "/api/sessions/%s/status" % name)
    if st != 200:
        return None, None
    d = json.loads(body)["data"]
    return d["state"], d["seq"]


def run_reconnect(rounds, seconds):
    lat = {"direct": [], "forwarded": []}
    status = {"direct": {}, "forwarded": {}}
    back_ms = []
    end = time.monotonic() + seconds
    body = json.dumps({"keepCredentials": True})
    for i in range(2 * rounds):
        if time.monotonic() > end:
            break
        name = a_names[(i // 2) % len(a_names)]
        # alternate which path goes first in each pair of rounds
        kind = ("direct", "forwarded")[(i + (i // 2)) % 2]
        nd = A if kind == "direct" else B
        _, seq0 = session_state(A, name)
        st, ms, b = nd.api.timed("POST", "/api/sessions/%s/reconnect" % name, body)
        status[kind][st] = status[kind].get(st, 0) + 1
        lat[kind].append(ms)
        # CONNECTED again (a newer seq) before the next command
        t1 = time.monotonic()
        while True:
            state, seq = session_state(A, name)
            if state == "CONNECTED" and seq is not None and seq0 is not None and seq > seq0:
                back_ms.append((time.monotonic() - t1) * 1000)
                break
            if time.monotonic() > t1 + 15:
                die("%s: not CONNECTED again within 15 s of a reconnect (%s, answer %d %s)" % (
                    name, state, st, b[:200]))
            time.sleep(0.01)
    return lat, status, back_ms


t0 = time.monotonic()
lat, status, back = run_reconnect(args.reconnects, 180)
report["rec_s"] = time.monotonic() - t0
report["rec_lat"], report["rec_status"], report["rec_back"] = lat, status, back
log("  %d rounds in %.1f s; direct p99 %.2f ms, forwarded p99 %.2f ms; statuses %s" % (
    len(lat["direct"]), report["rec_s"], pct(lat["direct"], 99), pct(lat["forwarded"], 99), status))
wait_all_connected(C, all_names, 30, "after the reconnects")
mark("reconnects")

# 3. failover: kill -9 of A
own = owners(C)
a_names = sorted(n for n in all_names if own.get(n) == A.id)
report["fail_n"] = len(a_names)
log("3: kill -9 of %s (%d sessions)" % (A.id, len(a_names)))
ss0 = sessions(C)
seq0 = {n: ss0[n]["seq"] for n in a_names}
regs0 = fw_state()["registrations"]
ev = Events(C)
ev.start()
if not ev.ok.wait(10):
    die("GET /api/events on %s did not answer" % C.id)
time.sleep(0.5)
t_kill_w = wall_ms()
t_kill = time.monotonic()
A.proc.kill()
A.proc.wait(10)
back_gw, back_dev, down_dev = {}, {}, set()
end = t_kill + 60
while len(back_gw) < len(a_names) or len(back_dev) < len(a_names):
    now = time.monotonic()
    if now > end:
        die("failover: after 60 s, %d of %d sessions CONNECTED again on %s, %d devices logged in again" % (
            len(back_gw), len(a_names), C.id, len(back_dev)))
    ss = sessions(C)
    for n in a_names:
        s = ss.get(n, {})
        if n not in back_gw and s.get("state") == "CONNECTED" and s.get("seq", 0) > seq0[n]:
            back_gw[n] = (s["sinceMs"] - t_kill_w, (now - t_kill) * 1000)
    live = set(fw_state()["liveDevices"])
    for n in a_names:
        if jid[n] not in live:
            down_dev.add(n)
        elif n in down_dev and n not in back_dev:
            back_dev[n] = (now - t_kill) * 1000
    time.sleep(max(0, 0.1 - (time.monotonic() - now)))
report["fail_gw"] = back_gw
report["fail_dev"] = back_dev
report["fail_regs"] = fw_state()["registrations"] - regs0
report["fail_qr_events"] = sum(1 for _, e in ev.since(t_kill) if e.get("state") == "QR_READY")
report["fail_not_down"] = len(a_names) - len(down_dev)
log("  all back: max %.0f ms (by sinceMs), %d registrations" % (
    max(v[0] for v in back_gw.values()), report["fail_regs"]))
mark("failover")
ev.stop = True

# A again, and a rebalance to spread the sessions over three nodes
log("   restarting %s and rebalancing" % A.id)
A.start()
end = time.monotonic() + 30
while not A.ready():
    if time.monotonic() > end:
        die("%s was not ready within 30 s of its restart" % A.id)
    time.sleep(0.1)
time.sleep(4)  # a heartbeat, so that the others count it
st, body = C.api.req("POST", "/api/cluster/rebalance")
if st != 202:
    die("POST /api/cluster/rebalance: %d %s" % (st, body[:200]))
t_rb = time.monotonic()
fair = -(-len(all_names) // 3)
stable = None  # (owners, since when) while balanced and all CONNECTED
while True:
    own = owners(C)
    held = {nd.id: sum(1 for o in own.values() if o == nd.id) for nd in nodes}
    ss = sessions(C)
    now = time.monotonic()
    if max(held.values()) <= fair and all(ss[n]["state"] == "CONNECTED" for n in all_names) and \
            sum(held.values()) == len(all_names):
        if stable is None or stable[0] != own:
            stable = (own, now)
        elif now - stable[1] >= 4:  # nothing moved for more than a renewal period
            break
    else:
        stable = None
    if now > t_rb + 60:
        die("rebalance: not balanced and settled within 60 s: %s" % held)
    time.sleep(0.2)
report["rebalance_s"] = stable[1] - t_rb
report["owners_rebalanced"] = held
wait_all_connected(C, all_names, 30, "after the rebalance")
mark("restart and rebalance")

# 4. drain: SIGTERM of B
own = owners(C)
b_names = sorted(n for n in all_names if own.get(n) == B.id)
report["drain_n"] = len(b_names)
log("4: SIGTERM of %s (%d sessions)" % (B.id, len(b_names)))
regs0 = fw_state()["registrations"]
ev = Events(C)
ev.start()
if not ev.ok.wait(10):
    die("GET /api/events on %s did not answer" % C.id)
time.sleep(0.5)
t_term = time.monotonic()
t_term_w = wall_ms()
B.proc.send_signal(signal.SIGTERM)
dev_down, dev_up = {}, {}
end = t_term + 60
while True:
    now = time.monotonic()
    live = set(fw_state()["liveDevices"])
    for n in b_names:
        if jid[n] not in live:
            dev_down.setdefault(n, now)
        elif n in dev_down and n not in dev_up:
            dev_up[n] = now
    if B.proc.poll() is not None and all(jid[n] in live for n in b_names):
        ss = sessions(C)
        if all(ss[n]["state"] == "CONNECTED" for n in all_names):
            break
    if now > end:
        ss = sessions(C)
        die("drain: after 60 s, %s %s; not logged in at the fake server: %s; C shows %s" % (
            B.id, "stopped" if B.proc.poll() is not None else "still running",
            ", ".join(n for n in b_names if jid[n] not in live) or "none",
            ", ".join("%s=%s" % (n, ss[n]["state"]) for n in b_names)))
    time.sleep(max(0, 0.05 - (time.monotonic() - now)))
report["drain_rc"] = B.proc.returncode
wait_all_connected(C, all_names, 30, "after the drain")
time.sleep(1)
# the gateway's view: C's events for each session
gw_down = {}
evs = ev.since(t_term)
for n in b_names:
    start = None
    for _, e in evs:
        if e.get("session") != n or e.get("sinceMs", 0) < t_term_w - 50:
            continue
        if start is None and e.get("state") != "CONNECTED":
            start = e["sinceMs"]
        elif start is not None and e.get("state") == "CONNECTED":
            gw_down[n] = e["sinceMs"] - start
            break
report["drain_gw"] = gw_down
report["drain_dev"] = {n: (dev_up[n] - dev_down[n]) * 1000 for n in dev_up}
report["drain_dev_never_down"] = len(b_names) - len(dev_down)
report["drain_regs"] = fw_state()["registrations"] - regs0
report["drain_qr_events"] = sum(1 for _, e in evs if e.get("state") == "QR_READY")
report["drain_event_states"] = sorted({e.get("state") for _, e in evs if e.get("session") in b_names})
last_up = max(dev_up.values()) if dev_up else t_term
report["drain_all_back_s"] = last_up - t_term
ev.stop = True
mark("drain")
fs = fw_state()
report["double_live"] = fs["doubleLive"]
report["regs_total_after_link"] = fs["registrations"] - regs_linked
report["total_s"] = time.monotonic() - t_start

# stop everything we started
for nd in nodes:
    if nd.proc and nd.proc.poll() is None:
        nd.proc.send_signal(signal.SIGTERM)
for nd in nodes:
    if nd.proc:
        try:
            nd.proc.wait(40)
        except subprocess.TimeoutExpired:
            nd.proc.kill()
            nd.proc.wait(10)
fw.terminate()
keep_logs()
try:
    fw.wait(10)
except subprocess.TimeoutExpired:
    fw.kill()

# --- the report ---
r = report


def verdict(ok):
    return "met" if ok else "**not met**"


def row(name, v):
    return "| %s | %d | %.2f | %.2f | %.2f | %.2f |" % (name, len(v), pct(v, 50), pct(v, 90), pct(v, 99), max(v))


def compare(d):
    """The table of the two paths of one command and their difference."""
    diff = [pct(d["forwarded"], q) - pct(d["direct"], q) for q in (50, 90, 99)]
    return ["| path | n | p50 | p90 | p99 | max |",
            "|---|---|---|---|---|---|",
            row("A (owner)", d["direct"]),
            row("B -> A (forwarded)", d["forwarded"]),
            "| difference | | %+.2f | %+.2f | %+.2f | %+.2f |"
            % tuple(diff + [max(d["forwarded"]) - max(d["direct"])])]


def statuses(d):
    return ", ".join("%d x %d" % (c, s) for s, c in sorted(d.items()))


pl, rl = r["pair_lat"], r["rec_lat"]


def dl_by_phase():
    """doubleLive at the fake server gained in each phase (a login of a
    device while another connection of it was logged in: the older one is
    then closed with a "replaced" stream error)."""
    out, prev = [], 0
    for ph, d, _ in phase_marks:
        out.append((ph, d - prev))
        prev = d
    return out


pair_d99 = pct(pl["forwarded"], 99) - pct(pl["direct"], 99)
rec_d99 = pct(rl["forwarded"], 99) - pct(rl["direct"], 99)
fail_since = [v[0] for v in r["fail_gw"].values()]
fail_poll = [v[1] for v in r["fail_gw"].values()]
fail_dev = list(r["fail_dev"].values())
dgw = list(r["drain_gw"].values())
ddev = list(r["drain_dev"].values())
drain_max = max(dgw + ddev) if (dgw or ddev) else float("nan")
lines = [
    "# Cluster: three nodes on one PostgreSQL, %d linked sessions" % N,
    "",
    meta,
    "Three wa-gateway nodes (release build) on CPU 0; PostgreSQL 15 (tests/pg/pgtmp.sh: fsync off),",
    "tests/fakewa (wss://, a test CA, one account per session) and the driver on CPU 1. LEASE_MS 10000,",
    "RENEW_MS 3000 (the defaults); %d sessions plus \"default\", all linked; owners at the start: %s."
    % (N, ", ".join("%s %d" % kv for kv in sorted(r["owners_start"].items()))),
    "The driver keeps one HTTP/1.1 connection per node alive (TCP_NODELAY); A = n1, B = n2, C = n3.",
    "",
    "| target | result | status |",
    "|---|---|---|",
    "| a command sent to a non-owner adds <= 10 ms at p99 (pairing-code, answered 409) | p99 %.2f ms via B vs %.2f ms at A: +%.2f ms (p50 +%.2f ms) | %s |"
    % (pct(pl["forwarded"], 99), pct(pl["direct"], 99), pair_d99,
       pct(pl["forwarded"], 50) - pct(pl["direct"], 50), verdict(pair_d99 <= 10)),
    "| the same for reconnect {\"keepCredentials\":true} | p99 %.2f ms via B vs %.2f ms at A: %+.2f ms (p50 %+.2f ms) | %s |"
    % (pct(rl["forwarded"], 99), pct(rl["direct"], 99), rec_d99,
       pct(rl["forwarded"], 50) - pct(rl["direct"], 50), verdict(rec_d99 <= 10)),
    "| kill -9 of a node: its sessions CONNECTED again elsewhere, no QR | %d sessions: max %.1f s (p50 %.1f s) by their sinceMs on C; devices logged in again at the fake server max %.1f s; %d registrations, %d QR_READY events | %s |"
    % (r["fail_n"], max(fail_since) / 1000, pct(fail_since, 50) / 1000, max(fail_dev) / 1000 if fail_dev else float("nan"),
       r["fail_regs"], r["fail_qr_events"], verdict(r["fail_regs"] == 0 and r["fail_qr_events"] == 0)),
    "| drain (SIGTERM): <= 5 s down per session, no QR | %d sessions: as C's events show it max %.2f s, p99 %.2f s; the device at the fake server max %.2f s, p99 %.2f s; %d registrations, %d QR_READY events | %s |"
    % (r["drain_n"], max(dgw) / 1000 if dgw else float("nan"), pct(dgw, 99) / 1000,
       max(ddev) / 1000 if ddev else float("nan"), pct(ddev, 99) / 1000, r["drain_regs"], r["drain_qr_events"],
       verdict(drain_max <= 5000 and r["drain_regs"] == 0 and r["drain_qr_events"] == 0
               and len(dgw) == r["drain_n"])),
    "| never two live connections for one device | doubleLive %d (%s) | %s |"
    % (r["double_live"], ", ".join("%s %+d" % (ph, d) for ph, d in dl_by_phase()), verdict(r["double_live"] == 0)),
    "",
    "## Forwarding: POST /api/sessions/{name}/pairing-code (ms)",
    "",
    "%d rounds per path over node A's %d sessions, the two paths interleaved (alternating which goes first),"
    " %.1f s; a valid phone, so A answers 409 (already linked) on both paths. Answers: direct %s; forwarded %s."
    % (len(pl["direct"]), r["pair_sessions"], r["pair_s"],
       statuses(r["pair_status"]["direct"]), statuses(r["pair_status"]["forwarded"])),
    "",
    *compare(pl),
    "",
    "## Forwarding: POST /api/sessions/{name}/reconnect {\"keepCredentials\":true} (ms)",
    "",
    "%d rounds per path (a real reconnect each; the session CONNECTED again, p50 %.0f ms, before the next), %.1f s."
    " Answers: direct %s; forwarded %s."
    % (len(rl["direct"]), pct(r["rec_back"], 50), r["rec_s"], statuses(r["rec_status"]["direct"]),
       statuses(r["rec_status"]["forwarded"])),
    "",
    *compare(rl),
    "",
    "## Failover: kill -9 of A",
    "",
    "%d sessions. CONNECTED again on C (a newer seq; GET /api/sessions on C every 100 ms), by the state's"
    " sinceMs from the kill: p50 %.2f s, p90 %.2f s, max %.2f s; as the polling saw it: max %.2f s. The device"
    " logged in again at the fake server (polled every 100 ms): p50 %.2f s, max %.2f s. %d registrations,"
    " %d QR_READY events. Then A restarted and POST /api/cluster/rebalance: balanced (%s) and all CONNECTED"
    " within %.1f s (and unchanged for 4 s after)."
    % (r["fail_n"], pct(fail_since, 50) / 1000, pct(fail_since, 90) / 1000, max(fail_since) / 1000,
       max(fail_poll) / 1000, pct(fail_dev, 50) / 1000 if fail_dev else float("nan"),
       max(fail_dev) / 1000 if fail_dev else float("nan"), r["fail_regs"], r["fail_qr_events"],
       ", ".join("%s %d" % kv for kv in sorted(r["owners_rebalanced"].items())), r["rebalance_s"]),
    "",
    "Per session (s, by sinceMs): " + ", ".join(
        "%s %.2f" % (n, v[0] / 1000) for n, v in sorted(r["fail_gw"].items())) + ".",
    "",
    "## Drain: SIGTERM of B",
    "",
    "%d sessions. Down as C's GET /api/events shows it (first change away from CONNECTED to CONNECTED again,"
    " by sinceMs): p50 %.2f s, p99 %.2f s, max %.2f s (%d of %d sessions seen leaving CONNECTED; states seen: %s)."
    " The device not logged in at the fake server (polled every 50 ms): p50 %.2f s, p99 %.2f s, max %.2f s"
    " (%d never seen down). Every device back %.2f s after the SIGTERM; B exited with %s. %d registrations,"
    " %d QR_READY events."
    % (r["drain_n"], pct(dgw, 50) / 1000, pct(dgw, 99) / 1000, max(dgw) / 1000 if dgw else float("nan"),
       len(dgw), r["drain_n"], ", ".join(r["drain_event_states"]),
       pct(ddev, 50) / 1000, pct(ddev, 99) / 1000, max(ddev) / 1000 if ddev else float("nan"),
       r["drain_dev_never_down"], r["drain_all_back_s"], r["drain_rc"], r["drain_regs"], r["drain_qr_events"]),
    "",
    "Per session (s, C's events / fake server): " + ", ".join(
        "%s %s/%s" % (n, "%.2f" % (r["drain_gw"][n] / 1000) if n in r["drain_gw"] else "-",
                      "%.2f" % (r["drain_dev"][n] / 1000) if n in r["drain_dev"] else "-")
        for n in sorted(set(r["drain_gw"]) | set(r["drain_dev"]))) + ".",
    "",
    "Logins at the fake server by phase: " + ", ".join(
        "%s %d" % (ph, l - (phase_marks[i - 1][2] if i else 0)) for i, (ph, _, l) in enumerate(phase_marks)) + ".",
    "",
    "The whole run took %.0f s (linking %.1f s)." % (r["total_s"], r["link_s"]),
]
text = "\n".join(lines) + "\n"
print(text)
# the hand-written analysis below the marker survives a new run
MARK = "<!-- analysis: kept by cluster_bench.py -->"
try:
    old = open(args.out).read()
    if MARK in old:
        text += "\n" + old[old.index(MARK):]
except OSError:
    pass
with open(args.out, "w") as f:
    f.write(text)
