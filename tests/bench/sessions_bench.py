#!/usr/bin/python3
"""Sessions benchmark (issue 14): wa-gateway's release binary with N
(default 1,000) idle linked sessions over wss:// against tests/fakewa, each
session its own account (companion device of its own phone), and the
figures the issue sets targets for:

  * marginal RSS per idle linked session: (RSS with N linked sessions - RSS
    with none but "default") / N, once after linking them and once after a
    restart that restored them;
  * CPU of N idle linked sessions over IDLE_SECONDS (utime + stime from
    /proc/PID/stat, as a share of one core);
  * cold start: restart with N linked sessions; all CONNECTED within 60 s,
    the connection opens the fake server sees never above CONNECT_RATE in
    any second, no QR (no registration reaches the fake server, no
    QR_READY event);
  * create -> first QR (POST /api/sessions until its QR_READY event on
    GET /api/events) p50/p99;
  * GET /api/sessions with N sessions p50/p99;
  * the transport's share: tests/bench/conn-mem over the same server.

The gateway runs on CPU 0, the fake server and this driver on CPU 1. Every
wait is bounded. What follows the line "<!-- analysis: kept by
sessions_bench.py -->" in --out is kept. SESSIONS_PERF=FILE records a perf profile of the idle
phase into FILE. Prints a markdown report and writes it to --out.
Called by tests/bench/sessions_bench.sh (make bench)."""
import argparse, http.client, json, os, platform, signal, socket, ssl, subprocess, sys, threading, time

ap = argparse.ArgumentParser()
ap.add_argument("--gw", required=True)
ap.add_argument("--fakewa", required=True)
ap.add_argument("--conn-mem", required=True)
ap.add_argument("--tmp", required=True)
ap.add_argument("--out", required=True)
ap.add_argument("-n", type=int, default=int(os.environ.get("SESSIONS_N", "1000")))
ap.add_argument("--idle-seconds", type=int, default=int(os.environ.get("SESSIONS_IDLE_SECONDS", "60")))
ap.add_argument("--connect-rate", type=int, default=int(os.environ.get("CONNECT_RATE", "25")))
args = ap.parse_args()
N, RATE, TMP = args.n, args.connect_rate, args.tmp
KEY = "bench-admin-key-0123456789"
procs = []


def die(msg):
    print("sessions_bench: " + msg, file=sys.stderr, flush=True)
    for p in procs:
        if p.poll() is None:
            p.kill()
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
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
ctl_tls = ssl.create_default_context(cafile=ca_pem)

# --- the fake WhatsApp server over wss://, one account per scan ---
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


# --- the gateway ---
HPORT, GPORT = free_port(), free_port()
DATA = os.path.join(TMP, "data")
gw_env = dict(os.environ, WA_URL=fwenv["WA_URL"], WA_ROOT_KEY=fwenv["WA_ROOT_KEY"], WA_CA_FILE=ca_pem,
              API_KEY=KEY, DATA_DIR=DATA, PORT=str(HPORT), GRPC_PORT=str(GPORT),
              MAX_SESSIONS=str(N + 10), CONNECT_RATE=str(RATE), PAGE="0")
gw = None
gw_log = open(os.path.join(TMP, "gw.log"), "a")


class Api:
    """One keep-alive HTTP/1.1 connection to the gateway with the admin key."""

    def __init__(self):
        self.c = None

    def req(self, method, path, body=None, timeout=10):
        for attempt in (0, 1):
            try:
                if self.c is None:
                    self.c = http.client.HTTPConnection("127.0.0.1", HPORT, timeout=timeout)
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


api = Api()


def start_gw():
    global gw
    t0 = time.monotonic()
    gw = subprocess.Popen(["taskset", "-c", "0", args.gw], env=gw_env, stderr=gw_log, stdout=gw_log)
    procs.append(gw)
    for _ in range(300):
        try:
            if Api().req("GET", "/healthz", timeout=1)[0] == 200:
                return t0
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.02)
    die("the gateway did not start (see %s)" % os.path.join(TMP, "gw.log"))


def stop_gw():
    gw.send_signal(signal.SIGTERM)
    try:
        rc = gw.wait(60)
    except subprocess.TimeoutExpired:
        die("the gateway did not stop within 60 s of SIGTERM")
    if rc != 0:
        die("the gateway exited with %s on SIGTERM" % rc)
    api.c = None


def smaps(pid):
    out = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if v.strip().endswith("kB"):
                out[k] = int(v.split()[0]) * 1024
    return out


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sessions():
    st, body = api.req("GET", "/api/sessions", timeout=30)
    if st != 200:
        die("GET /api/sessions: %d %s" % (st, body[:200]))
    return json.loads(body)["data"]


def count_state(state):
    return sum(1 for s in sessions() if s["state"] == state)


def wait_all(state, n, seconds, what):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        c = count_state(state)
        if c >= n:
            return time.monotonic()
        time.sleep(0.25)
    die("%s: only %d of %d sessions %s after %d s" % (what, count_state(state), n, state, seconds))


class Events(threading.Thread):
    """GET /api/events (admin): every session's changes; notes when each
    session first showed QR_READY and counts QR_READY events."""

    def __init__(self):
        super().__init__(daemon=True)
        self.cv = threading.Condition()
        self.first_qr = {}
        self.qr_events = 0
        self.events = 0
        self.stop = False
        self.ok = threading.Event()

    def run(self):
        while not self.stop:
            try:
                c = http.client.HTTPConnection("127.0.0.1", HPORT, timeout=600)
                c.request("GET", "/api/events", headers={"X-API-Key": KEY})
                r = c.getresponse()
                if r.status != 200:
                    die("GET /api/events: %d" % r.status)
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
                                self.note(json.loads(line[5:]), time.monotonic())
            except (OSError, http.client.HTTPException, ValueError):
                time.sleep(0.05)

    def note(self, ev, now):
        with self.cv:
            self.events += 1
            if ev.get("state") == "QR_READY":
                self.qr_events += 1
                self.first_qr.setdefault(ev.get("session"), now)
                self.cv.notify_all()

    def wait_qr(self, name, seconds):
        end = time.monotonic() + seconds
        with self.cv:
            while name not in self.first_qr and time.monotonic() < end:
                self.cv.wait(end - time.monotonic())
            return self.first_qr.get(name)


def link(name, route):
    """Fetches the session's QR as text and has the phone scan it."""
    for _ in range(200):
        st, qr = api.req("GET", route + "/qr?format=raw")
        if st == 200 and qr:
            break
        time.sleep(0.02)
    else:
        die("%s: no QR to scan" % name)
    st, body = control("POST", "/scan", qr)
    if st != 200:
        die("%s: the scan was refused: %s" % (name, body))


report = {}
meta = "Measured %s on %d cores (%s), %s." % (
    time.strftime("%Y-%m-%d", time.gmtime()), os.cpu_count(),
    next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
    " ".join(platform.uname()[i] for i in (0, 2)))

# A. default linked, then a restart: the baseline is a restored process
log("A: baseline (default linked, restored)")
start_gw()
end = time.monotonic() + 30
while time.monotonic() < end:
    st, b = api.req("GET", "/api/whatsapp/status")
    if st == 200 and json.loads(b)["data"]["state"] == "QR_READY":
        break
    time.sleep(0.05)
link("default", "/api/whatsapp")
wait_all("CONNECTED", 1, 30, "default")
time.sleep(5)
stop_gw()
start_gw()
wait_all("CONNECTED", 1, 30, "default after restart")
time.sleep(10)
base = smaps(gw.pid)
report["rss0"] = base["Rss"]
report["anon0"] = base.get("Anonymous", 0)
log("baseline RSS %.1f MB" % (base["Rss"] / 1e6))

# B. create and link N sessions, paced below the gate (two connections each)
log("B: creating and linking %d sessions" % N)
ev = Events()
ev.start()
if not ev.ok.wait(10):
    die("GET /api/events did not answer")
qr_ms, create_ms = [], []
pace = 2.5 / RATE
t_b = time.monotonic()
for i in range(1, N + 1):
    name = "s%04d" % i
    t0 = time.monotonic()
    st, body = api.req("POST", "/api/sessions", json.dumps({"name": name}))
    t1 = time.monotonic()
    if st != 201:
        die("POST /api/sessions %s: %d %s" % (name, st, body[:200]))
    if not json.loads(body)["data"].get("key"):
        die("POST /api/sessions %s: no key in the answer" % name)
    create_ms.append((t1 - t0) * 1000)
    tq = ev.wait_qr(name, 30)
    if tq is None:
        die("%s: no QR_READY event within 30 s" % name)
    qr_ms.append((tq - t0) * 1000)
    link(name, "/api/sessions/" + name)
    if i % 100 == 0:
        log("  %d created, QR p99 so far %.0f ms" % (i, pct(qr_ms, 99)))
    rest = t0 + pace - time.monotonic()
    if rest > 0:
        time.sleep(rest)
t_all = wait_all("CONNECTED", N + 1, 300, "linking")
report["link_s"] = t_all - t_b
report["qr_p50"], report["qr_p99"], report["qr_max"] = pct(qr_ms, 50), pct(qr_ms, 99), max(qr_ms)
report["create_p99"] = pct(create_ms, 99)
time.sleep(20)  # pre-key uploads, stores
s1 = smaps(gw.pid)
report["rss1"], report["anon1"] = s1["Rss"], s1.get("Anonymous", 0)
report["fds"] = len(os.listdir("/proc/%d/fd" % gw.pid))
report["threads"] = len(os.listdir("/proc/%d/task" % gw.pid))
fs = fw_state()
report["accounts"] = fs["accounts"]
report["double_live"] = fs["doubleLive"]
log("linked: RSS %.1f MB" % (s1["Rss"] / 1e6))
ev.stop = True

# D. cold start
log("D: cold start with %d linked sessions" % N)
stop_gw()
regs0 = fw_state()["registrations"]
since = json.loads(control("GET", "/connects?since=0")[1])["now"]
t_exec = start_gw()
ev = Events()
ev.start()
t_conn = wait_all("CONNECTED", N + 1, 120, "cold start")
report["cold_s"] = t_conn - t_exec
cj = json.loads(control("GET", "/connects?since=%d" % since)[1])
with open(os.path.join(TMP, "cold-connects.json"), "w") as f:
    json.dump(cj, f)
times = cj["times"]
report["cold_opens"] = cj["count"]
report["cold_max_window"] = cj["maxPerSecond"]
bins = {}
for t in times:
    bins[t // 1000] = bins.get(t // 1000, 0) + 1
report["cold_max_bin"] = max(bins.values()) if bins else 0
report["cold_span_s"] = (times[-1] - times[0]) / 1000.0 if times else 0
report["cold_regs"] = fw_state()["registrations"] - regs0
report["cold_qr_events"] = ev.qr_events
time.sleep(10)
s2 = smaps(gw.pid)
report["rss2"], report["anon2"] = s2["Rss"], s2.get("Anonymous", 0)

# C. idle CPU and the sessions list
log("C: %d s idle" % args.idle_seconds)
c0, w0 = cpu_seconds(gw.pid), time.monotonic()
pings0 = fw_state()["pings"]
if os.environ.get("SESSIONS_PERF"):  # a profile of the idle gateway, to explain its CPU
    subprocess.run(["perf", "record", "-F", "499", "-g", "-p", str(gw.pid), "-o", os.environ["SESSIONS_PERF"],
                    "--", "sleep", str(args.idle_seconds)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
else:
    time.sleep(args.idle_seconds)
c1, w1 = cpu_seconds(gw.pid), time.monotonic()
report["idle_cpu_pct"] = (c1 - c0) / (w1 - w0) * 100
report["pings_per_s"] = (fw_state()["pings"] - pings0) / (w1 - w0)
report["idle_connected"] = count_state("CONNECTED")
list_ms = []
for _ in range(300):
    t0 = time.monotonic()
    st, body = api.req("GET", "/api/sessions")
    list_ms.append((time.monotonic() - t0) * 1000)
    if st != 200:
        die("GET /api/sessions: %d" % st)
report["list_bytes"] = len(body)
report["list_p50"], report["list_p99"] = pct(list_ms, 50), pct(list_ms, 99)
ev.stop = True
fs = fw_state()
report["double_live_end"] = fs["doubleLive"]

if os.environ.get("SESSIONS_HOLD"):  # keep everything up for a look from outside
    log("holding for %s s: gateway pid %d, fake server pid %d" % (os.environ["SESSIONS_HOLD"], gw.pid, fw.pid))
    time.sleep(float(os.environ["SESSIONS_HOLD"]))

# E. the transport's share
stop_gw()
log("E: conn-mem (transport only)")
out = subprocess.run(["taskset", "-c", "0", args.conn_mem, "--url", fwenv["WA_URL"], "--root-key",
                      fwenv["WA_ROOT_KEY"], "--ca-file", ca_pem, "-n", str(N)], capture_output=True, text=True,
                     timeout=300)
cm = dict(kv.split("=") for kv in out.stdout.split())
report["tr_heap"], report["tr_rss"] = float(cm.get("heap_per_conn", "nan")), float(cm.get("rss_per_conn", "nan"))
fw.terminate()
fw.wait(10)

# --- the report ---
r = report
kib = lambda b: b / 1024.0
m_link = (r["rss1"] - r["rss0"]) / N
m_rest = (r["rss2"] - r["rss0"]) / N
a_link = (r["anon1"] - r["anon0"]) / N
a_rest = (r["anon2"] - r["anon0"]) / N


def verdict(ok):
    return "met" if ok else "**not met**"


lines = [
    "# Sessions: %d idle linked sessions over wss://" % N,
    "",
    meta,
    "wa-gateway release build on CPU 0; tests/fakewa (wss://, a test CA, one account per scan) and the",
    "driver on CPU 1; CONNECT_RATE=%d, keepalive every 20 s (the defaults)." % RATE,
    "",
    "| target | result | status |",
    "|---|---|---|",
    "| marginal RSS per idle linked session <= 256 KiB (stretch 128 KiB) | %.1f KiB after linking, %.1f KiB after a restart (anonymous: %.1f / %.1f KiB) | %s%s |"
    % (kib(m_link), kib(m_rest), kib(a_link), kib(a_rest), verdict(max(m_link, m_rest) <= 256 * 1024),
       ", stretch met" if max(m_link, m_rest) <= 128 * 1024 else ""),
    "| %d idle linked sessions <= 2 %% of one core | %.2f %% over %d s (%.1f keepalive pings/s) | %s |"
    % (N, r["idle_cpu_pct"], args.idle_seconds, r["pings_per_s"], verdict(r["idle_cpu_pct"] <= 2.0)),
    "| cold start: all CONNECTED within 60 s | %.1f s from exec (%d connections over %.1f s) | %s |"
    % (r["cold_s"], r["cold_opens"], r["cold_span_s"], verdict(r["cold_s"] <= 60)),
    "| cold start: connections within CONNECT_RATE (%d/s) | at most %d in any 1 s window, %d in a calendar second | %s |"
    % (RATE, r["cold_max_window"], r["cold_max_bin"], verdict(r["cold_max_window"] <= RATE)),
    "| cold start: zero QR codes | %d registrations at the fake server, %d QR_READY events | %s |"
    % (r["cold_regs"], r["cold_qr_events"], verdict(r["cold_regs"] == 0 and r["cold_qr_events"] == 0)),
    "| create -> first QR p99 <= 250 ms | p50 %.0f ms, p99 %.0f ms, max %.0f ms (%d sessions, POST alone p99 %.1f ms) | %s |"
    % (r["qr_p50"], r["qr_p99"], r["qr_max"], N, r["create_p99"], verdict(r["qr_p99"] <= 250)),
    "| GET /api/sessions with %d sessions p99 <= 20 ms | p50 %.1f ms, p99 %.1f ms (%d bytes) | %s |"
    % (N + 1, r["list_p50"], r["list_p99"], r["list_bytes"], verdict(r["list_p99"] <= 20)),
    "| never two live connections for one device | doubleLive %d | %s |"
    % (r["double_live_end"], verdict(r["double_live_end"] == 0)),
    "",
    "RSS: %.1f MB with \"default\" only (restored), %.1f MB with %d more linked (%.0f s to create and link them all),"
    " %.1f MB after a restart restored them; %d fds, %d threads; %d accounts at the fake server."
    % (r["rss0"] / 1e6, r["rss1"] / 1e6, N, r["link_s"], r["rss2"] / 1e6, r["fds"], r["threads"], r["accounts"]),
    "The transport alone (tests/bench/conn-mem: frame socket, TLS, Noise; %d idle wss:// connections):"
    " %.1f KiB of heap and %.1f KiB of RSS per connection." % (N, kib(r["tr_heap"]), kib(r["tr_rss"])),
]
text = "\n".join(lines) + "\n"
print(text)
# the hand-written analysis below the marker survives a new run
MARK = "<!-- analysis: kept by sessions_bench.py -->"
try:
    old = open(args.out).read()
    if MARK in old:
        text += "\n" + old[old.index(MARK):]
except OSError:
    pass
with open(args.out, "w") as f:
    f.write(text)
