#!/usr/bin/python3
"""Fault storm with STORM_SESSIONS (default 100) linked sessions besides
"default", each its own account (companion device of its own phone) at the
fake WhatsApp server: every second or so the fake server injects a fault,
on every connection (drop, stall, garbage frame, 515, 503) or on a few
sessions' devices (drop, stall, replaced, logout followed by a re-link with
the same phone), while HTTP clients hammer the routes of every session and
SSE and gRPC clients hold streams (all sessions, one session, default); the
gateway is SIGKILLed and restarted STORM_KILLS (default 20) times on the
way, the store checked after every kill. Afterwards, within a bounded
recovery: every session is back CONNECTED; no credentials were lost (every
session the storm did not log out is the device it was linked as, none
ever showed a QR; the logged-out ones are linked again to their own phone);
the fake server never saw two live connections for one device (doubleLive
0) and sees exactly one live connection per session; every stream saw only
legal transitions in order, per session; the process stayed bounded in
fds and memory and stops cleanly. STORM_SECONDS (default 45) bounds the
storm; `make soak` runs it for 10 minutes with 100 kills."""
import http.client, json, os, random, subprocess, sys, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2elib
from e2elib import SRC, TMP, GW, start_fakewa, gateway_env, free_port

SECONDS = float(os.environ.get("STORM_SECONDS", "45"))
KILLS = int(os.environ.get("STORM_KILLS", "20"))
NSESS = int(os.environ.get("STORM_SESSIONS", "100"))
RATE = 100  # CONNECT_RATE: a restart brings every session back within about a second
KEY = "storm-admin-key-0123456789"
NAMES = ["default"] + ["s%03d" % i for i in range(NSESS)]
stop = threading.Event()
errors = []
LEGAL = {  # state -> states it may change to
    "DISCONNECTED": {"CONNECTING", "DISCONNECTED"},
    "CONNECTING": {"CONNECTING", "QR_READY", "CONNECTED", "DISCONNECTED"},
    "QR_READY": {"QR_READY", "CONNECTING", "DISCONNECTED"},
    "CONNECTED": {"CONNECTING", "DISCONNECTED"},
}
lock = threading.Lock()


def fail(msg):
    stop.set()
    e2elib.fail(msg)


def req(port, method, path, body=None, timeout=3):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request(method, path, body=body, headers={"X-API-Key": KEY})
    r = c.getresponse()
    return r.status, r.read()


def route(name):
    return "/api/whatsapp" if name == "default" else "/api/sessions/" + name


fwenv = start_fakewa("--refs", "3", "--qr-first-ms", "3000", "--qr-next-ms", "2000", "--server-ping-ms", "700",
                     "--account-per-scan")
fw, cport = fwenv["proc"], fwenv["cport"]
hport, gport = free_port(), free_port()
DATA = os.path.join(TMP, "data")
gw_env = gateway_env(fwenv)
log = open(os.path.join(TMP, "gw.log"), "w")
gw = None


def control(method, path, body=None):
    st, b = req(cport, method, "/control" + path, body)
    return st, b


def fw_state():
    return json.loads(control("GET", "/state")[1])


def start_gw():
    global gw
    gw = subprocess.Popen([GW, "--port", str(hport), "--grpc-port", str(gport), "--api-key", KEY,
                           "--data-dir", DATA, "--qr-first-ms", "3000", "--qr-next-ms", "2000",
                           "--keepalive-ms", "400", "--heartbeat-ms", "500", "--reconnect-wait-ms", "3000",
                           "--connect-rate", str(RATE), "--max-sessions", str(NSESS + 10)],
                          env=gw_env, stderr=log)
    e2elib.procs.append(gw)
    for _ in range(500):
        try:
            if req(hport, "GET", "/healthz")[0] == 200:
                return
        except OSError:
            time.sleep(0.02)
    fail("gateway did not start")


def states():
    """name -> status object (with the account) of every session."""
    st, b = req(hport, "GET", "/api/sessions", timeout=10)
    if st != 200:
        raise OSError("GET /api/sessions: %d" % st)
    return {s["name"]: s for s in json.loads(b)["data"]}


def check_stream(name, events):
    """Per session: seq increases; consecutive events are legal transitions."""
    last = {}
    for e in events:
        s, seq, state = e.get("session") or "default", e.get("seq"), e.get("state")
        if seq is None or state is None:
            continue
        if s in last:
            pseq, pstate = last[s]
            if seq <= pseq:
                errors.append("%s/%s: seq went from %d to %d" % (name, s, pseq, seq))
            elif seq == pseq + 1 and state not in LEGAL[pstate]:
                errors.append("%s/%s: illegal %s -> %s (seq %d)" % (name, s, pstate, state, seq))
        last[s] = (seq, state)


def sse_client(name, path):
    while not stop.is_set():
        events = []
        try:
            c = http.client.HTTPConnection("127.0.0.1", hport, timeout=5)
            c.request("GET", path, headers={"X-API-Key": KEY})
            r = c.getresponse()
            buf = b""
            while not stop.is_set() and r.status == 200:
                chunk = r.read1(65536)
                if not chunk:
                    break
                buf += chunk
                while b"\n\n" in buf:
                    block, buf = buf.split(b"\n\n", 1)
                    for line in block.split(b"\n"):
                        if line.startswith(b"data: "):
                            events.append(json.loads(line[6:]))
        except (OSError, http.client.HTTPException, ValueError):
            pass
        check_stream(name, events)
        time.sleep(0.1)


def grpc_client(i):
    import grpc
    pb, pbg = stubs
    names = {1: "DISCONNECTED", 2: "CONNECTING", 3: "QR_READY", 4: "CONNECTED"}
    while not stop.is_set():
        events = []
        try:
            ch = grpc.insecure_channel("127.0.0.1:%d" % gport)
            it = pbg.GatewayStub(ch).WatchStatus(pb.WatchStatusRequest(), metadata=[("x-api-key", KEY)], timeout=8)
            for st in it:
                events.append({"seq": st.seq, "state": names[st.state]})
                if stop.is_set():
                    it.cancel()
                    break
            ch.close()
        except Exception:
            pass
        check_stream("grpc%d" % i, events)
        time.sleep(0.1)


def hammer(i):
    n = 0
    while not stop.is_set() and n < 200000:
        s = random.choice(NAMES)
        m, p = random.choice([("GET", route(s) + "/status"), ("GET", route(s) + "/qr"),
                              ("GET", route(s) + "/qr?format=png"), ("GET", "/api/sessions"),
                              ("GET", "/api/sessions/" + s), ("GET", "/metrics"), ("GET", "/readyz"),
                              ("GET", "/healthz"), ("GET", "/nope")])
        try:
            st, b = req(hport, m, p, timeout=3)
            if st >= 500 and st != 503:
                errors.append("hammer: %s %s -> %d %s" % (m, p, st, b[:100]))
        except (OSError, http.client.HTTPException):
            pass
        n += 1
        time.sleep(0.005)


# --- who each session is: its phone, and the device it is linked as ---
phone = {}  # name -> the account's phone number (fixed once linked)
jid = {}  # name -> the device it is linked as now
relinked = set()  # sessions the storm logged out on purpose (a new device of the same phone)
qr_seen = {}  # sessions never logged out on purpose that showed a QR -> when
counts = {"scans": 0, "reconnects": 0}


def recover_step(st, limit=20):
    """One pass over the sessions: scans the QRs of those that are to be
    linked (again), reconnects those that stopped; notes a QR on a session
    that never lost its link on purpose (credentials lost). Returns the
    number of sessions CONNECTED."""
    done = 0
    for name in NAMES:
        s = st.get(name)
        if s is None:
            errors.append("session %s is missing" % name)
            continue
        if s["state"] == "CONNECTED":
            done += 1
            acct = s.get("account") or {}
            if name not in phone and acct.get("phone"):
                phone[name] = acct["phone"]
            if acct.get("jid"):
                jid[name] = acct["jid"]
            continue
        if limit <= 0:
            continue
        if s["state"] == "QR_READY":
            if name in phone and name not in relinked:
                qr_seen.setdefault(name, time.time())
                continue
            limit -= 1
            st_, raw = req(hport, "GET", route(name) + "/qr?format=raw")
            if st_ == 200 and raw:
                q = "?phone=" + phone[name] if name in phone else ""
                req(cport, "POST", "/control/scan" + q, raw)
                counts["scans"] += 1
        elif s["state"] == "DISCONNECTED" and s.get("detail") in (
                "qr_timeout", "logged_out", "replaced", "pairing_failed", "client_outdated"):
            limit -= 1
            st_, b = req(hport, "POST", route(name) + "/reconnect", b'{"keepCredentials":true,"waitMs":100}',
                         timeout=5)
            if st_ >= 400 and st_ not in (502, 503, 504):  # not reachable or not yet: fine in a storm
                errors.append("reconnect %s: %d %s" % (name, st_, b[:100]))
            counts["reconnects"] += 1
    return done


def lost_credentials():
    if qr_seen:
        fail("credentials lost: %d sessions showed a QR without being logged out: %s"
             % (len(qr_seen), sorted(qr_seen)[:10]))


def recover(seconds, what):
    end = time.time() + seconds
    while time.time() < end:
        try:
            if recover_step(states(), limit=len(NAMES)) == len(NAMES):
                return
        except (OSError, http.client.HTTPException, ValueError):
            pass
        lost_credentials()
        time.sleep(0.3)
    try:
        bad = {n: (s["state"], s.get("detail")) for n, s in states().items() if s["state"] != "CONNECTED"}
    except Exception as e:
        bad = str(e)
    fail("%s: not every session CONNECTED after %d s: %s" % (what, seconds, str(bad)[:600]))


# --- phase 1: create and link every session ---
t_start = time.time()
start_gw()
for name in NAMES[1:]:
    st, b = req(hport, "POST", "/api/sessions", json.dumps({"name": name}).encode(), timeout=10)
    if st != 201:
        fail("POST /api/sessions %s: %d %s" % (name, st, b[:200]))
recover(90, "linking")
linked_as = dict(jid)
if len(set(linked_as.values())) != len(NAMES) or len(set(phone.values())) != len(NAMES):
    fail("sessions are not each their own device and account: %d devices, %d phones"
         % (len(set(linked_as.values())), len(set(phone.values()))))
t_linked = time.time()

stubs = e2elib.grpc_stubs()[:2]
threads = [threading.Thread(target=f, args=a, daemon=True) for f, a in
           [(sse_client, ("all%d" % i, "/api/events")) for i in range(2)] +
           [(sse_client, ("one%d" % i, "/api/sessions/%s/events" % NAMES[1 + i])) for i in range(3)] +
           [(sse_client, ("default", "/api/whatsapp/events"),)] +
           [(grpc_client, (i,)) for i in range(2)] + [(hammer, (i,)) for i in range(3)]]
for t in threads:
    t.start()

# --- phase 2: the storm ---
global_faults = ["drop", "stall", "garbage", "restart", "server_error"]
aimed_faults = ["drop", "stall", "replaced", "logged_out"]
t_end = time.time() + SECONDS
kill_every = SECONDS / (KILLS * 1.25 + 1)
next_kill = time.time() + kill_every
kills = faults_done = aimed_done = 0
peak_fds = peak_rss = 0
while time.time() < t_end or (kills < KILLS and time.time() < t_end + 60):
    time.sleep(random.uniform(0.3, 1.0))
    try:
        r = random.random()
        if r < 0.35:
            f = random.choice(global_faults)
            control("POST", "/fault", f.encode())
            if f == "stall":
                time.sleep(random.uniform(0.2, 0.8))
                control("POST", "/fault", b"drop")
            faults_done += 1
        elif r < 0.7:
            for name in random.sample(NAMES, random.randint(1, 3)):
                f = random.choice(aimed_faults)
                if f == "logged_out":
                    relinked.add(name)  # WhatsApp removes the device: a QR is legitimate now
                control("POST", "/fault", ("%s %s" % (f, phone[name])).encode())
                if f == "stall":
                    time.sleep(random.uniform(0.2, 0.6))
                    control("POST", "/fault", ("drop %s" % phone[name]).encode())
                aimed_done += 1
        else:
            recover_step(states())
    except (OSError, http.client.HTTPException, ValueError, KeyError):
        pass
    try:
        fds = len(os.listdir("/proc/%d/fd" % gw.pid))
        rss = int(open("/proc/%d/statm" % gw.pid).read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        peak_fds, peak_rss = max(peak_fds, fds), max(peak_rss, rss)
    except OSError:
        pass
    if kills < KILLS and time.time() >= next_kill:
        gw.kill()
        gw.wait()
        out = subprocess.run([GW, "--check-store", "--data-dir", DATA], capture_output=True, text=True)
        if out.returncode != 0:
            fail("store inconsistent after kill %d: %s %s" % (kills, out.stdout, out.stderr))
        kills += 1
        next_kill = time.time() + kill_every
        start_gw()

# --- phase 3: every session back to its state ---
control("POST", "/fault", b"online")
# a few sessions replaced now: bringing them back needs a reconnect each
for name in random.sample(NAMES, 3):
    control("POST", "/fault", ("replaced %s" % phone[name]).encode())
t_recover = time.time()
recover(60, "after the storm")
t_recovered = time.time()
stop.set()
for t in threads:
    t.join(10)
if kills < KILLS:
    fail("only %d of %d kills happened" % (kills, KILLS))
if gw.poll() is not None:
    fail("the gateway died (exit %s)" % gw.returncode)
lost_credentials()
st = states()
for name in NAMES:
    acct = st[name].get("account") or {}
    if name not in relinked and acct.get("jid") != linked_as[name]:
        fail("credentials lost: %s is %s, was linked as %s" % (name, acct.get("jid"), linked_as[name]))
    if acct.get("phone") != phone[name]:
        fail("%s is linked to phone %s, not its own %s" % (name, acct.get("phone"), phone[name]))
fs = fw_state()
live = fs["liveDevices"]
want = sorted(s["account"]["jid"] for s in st.values())
if sorted(live) != want:
    fail("the fake server's live devices are not the sessions' devices, once each: %d live, %d sessions, "
         "missing %s, extra %s" % (len(live), len(want), sorted(set(want) - set(live))[:5],
                                   sorted(set(live) - set(want))[:5]))
if fs["doubleLive"] != 0:
    fail("two live connections for one device: doubleLive %d" % fs["doubleLive"])
# bounded: one socket per session plus streams and listeners; memory well
# under 128 MB (ASan builds excluded)
asan = "asan" in GW or os.environ.get("WAGW_ASAN")
if peak_fds > 2 * len(NAMES) + 100:
    fail("fd count grew to %d" % peak_fds)
if not asan and peak_rss > 128 * 1024 * 1024:
    fail("RSS grew to %d MB" % (peak_rss >> 20))
gw.terminate()
if gw.wait(15) != 0:
    fail("gateway exit status %s" % gw.returncode)
out = subprocess.run([GW, "--check-store", "--data-dir", DATA], capture_output=True, text=True)
if out.returncode != 0:
    fail("store inconsistent at the end: %s" % out.stdout)
fw.terminate()
logtext = open(os.path.join(TMP, "gw.log")).read()
if "AddressSanitizer" in logtext or "runtime error" in logtext:
    fail("sanitizer report in the gateway log")
if errors:
    fail("%d problems, first: %s" % (len(errors), errors[:5]))
print("storm: %d sessions linked in %.0f s; %.0f s of storm: %d faults on all, %d aimed, %d re-linked, %d kills; "
      "recovered in %.1f s; %d scans, %d reconnects; peak %d fds, peak RSS %d MB; %d logins, doubleLive %d"
      % (len(NAMES), t_linked - t_start, SECONDS, faults_done, aimed_done, len(relinked), kills,
         t_recovered - t_recover, counts["scans"], counts["reconnects"], peak_fds, peak_rss >> 20,
         fs["loginsOk"], fs["doubleLive"]))
print("PASS")
