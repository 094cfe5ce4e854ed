#!/usr/bin/python3
"""Fault storm: the fake WhatsApp server injects a random fault every second
or so (drop, stall, garbage frame, 515, 503, replaced, logout followed by a
re-pair) while HTTP clients hammer every route and SSE and gRPC clients hold
streams; the gateway is SIGKILLed and restarted STORM_KILLS times on the
way. Afterwards: the process is alive and stops cleanly, its fds and memory
stayed bounded, every stream saw only legal state transitions in order, and
the store is consistent after every kill. STORM_SECONDS (default 60) and
STORM_KILLS (default 20) bound the run; `make soak` runs it for 10 minutes
with 100 kills."""
import http.client, json, os, random, socket, subprocess, sys, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2elib
from e2elib import SRC, TMP, GW, procs, free_port, start_fakewa, gateway_env

SECONDS = float(os.environ.get("STORM_SECONDS", "60"))
KILLS = int(os.environ.get("STORM_KILLS", "20"))
KEY = "storm-key"
procs = []
stop = threading.Event()
errors = []
LEGAL = {  # state -> states it may change to
    "DISCONNECTED": {"CONNECTING", "DISCONNECTED"},
    "CONNECTING": {"CONNECTING", "QR_READY", "CONNECTED", "DISCONNECTED"},
    "QR_READY": {"QR_READY", "CONNECTING", "DISCONNECTED"},
    "CONNECTED": {"CONNECTING", "DISCONNECTED"},
}


def fail(msg):
    stop.set()
    e2elib.fail(msg)


def req(port, method, path, body=None, timeout=3):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request(method, path, body=body, headers={"X-API-Key": KEY})
    r = c.getresponse()
    return r.status, r.read()


env = start_fakewa("--refs", "3", "--qr-first-ms", "3000", "--qr-next-ms", "2000", "--server-ping-ms", "700")
fw, cport = env["proc"], env["cport"]
hport, gport = free_port(), free_port()
DATA = os.path.join(TMP, "data")
gw_env = gateway_env(env)
log = open(os.path.join(TMP, "gw.log"), "w")
gw = None


def start_gw():
    global gw
    gw = subprocess.Popen([GW, "--port", str(hport), "--grpc-port", str(gport), "--api-key", KEY,
                           "--data-dir", DATA, "--qr-first-ms", "3000", "--qr-next-ms", "2000",
                           "--keepalive-ms", "400", "--heartbeat-ms", "500", "--reconnect-wait-ms", "3000"],
                          env=gw_env, stderr=log)
    procs.append(gw)
    for _ in range(200):
        try:
            if req(hport, "GET", "/healthz")[0] == 200:
                return
        except OSError:
            time.sleep(0.02)
    fail("gateway did not start")


def check_stream(name, events):
    """Consecutive events must be legal transitions; seq must increase."""
    for a, b in zip(events, events[1:]):
        if b[0] <= a[0]:
            errors.append("%s: seq went from %d to %d" % (name, a[0], b[0]))
        if b[0] == a[0] + 1 and b[1] not in LEGAL[a[1]]:
            errors.append("%s: illegal %s -> %s (seq %d)" % (name, a[1], b[1], b[0]))


def sse_client(i):
    while not stop.is_set():
        events = []
        try:
            c = http.client.HTTPConnection("127.0.0.1", hport, timeout=5)
            c.request("GET", "/api/whatsapp/events", headers={"X-API-Key": KEY})
            r = c.getresponse()
            buf = b""
            while not stop.is_set():
                chunk = r.read1(65536)
                if not chunk:
                    break
                buf += chunk
                while b"\n\n" in buf:
                    block, buf = buf.split(b"\n\n", 1)
                    for line in block.split(b"\n"):
                        if line.startswith(b"data: "):
                            d = json.loads(line[6:])
                            events.append((d["seq"], d["state"]))
        except (OSError, http.client.HTTPException, ValueError):
            pass
        check_stream("sse%d" % i, events)
        time.sleep(0.1)


def grpc_client(i):
    import grpc
    sys.path.insert(0, os.path.join(TMP, "gen"))
    import gateway_pb2 as pb, gateway_pb2_grpc as pbg
    names = {1: "DISCONNECTED", 2: "CONNECTING", 3: "QR_READY", 4: "CONNECTED"}
    while not stop.is_set():
        events = []
        try:
            ch = grpc.insecure_channel("127.0.0.1:%d" % gport)
            it = pbg.GatewayStub(ch).WatchStatus(pb.WatchStatusRequest(), metadata=[("x-api-key", KEY)], timeout=8)
            for st in it:
                events.append((st.seq, names[st.state]))
                if stop.is_set():
                    it.cancel()
                    break
            ch.close()
        except Exception:
            pass
        check_stream("grpc%d" % i, events)
        time.sleep(0.1)


def hammer(i):
    paths = [("GET", "/api/whatsapp/status"), ("GET", "/whatsapp/qr"), ("GET", "/api/whatsapp/qr?format=png"),
             ("GET", "/metrics"), ("GET", "/readyz"), ("GET", "/healthz"), ("GET", "/nope")]
    n = 0
    while not stop.is_set() and n < 200000:
        m, p = random.choice(paths)
        try:
            st, b = req(hport, m, p, timeout=2)
            if st >= 500 and st != 503:
                errors.append("hammer: %s %s -> %d %s" % (m, p, st, b[:100]))
        except (OSError, http.client.HTTPException):
            pass
        n += 1
        time.sleep(0.005)


subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I" + os.path.join(SRC, "proto"),
                "--python_out=" + os.path.join(TMP, "gen"), "--grpc_python_out=" + os.path.join(TMP, "gen"),
                "gateway.proto"], check=True, cwd=TMP) if os.makedirs(os.path.join(TMP, "gen"), exist_ok=True) is None else None
start_gw()
threads = [threading.Thread(target=f, args=(i,), daemon=True)
           for f, n in ((sse_client, 5), (grpc_client, 5), (hammer, 3)) for i in range(n)]
for t in threads:
    t.start()

faults = ["drop", "stall", "garbage", "restart", "server_error", "replaced", "logged_out"]
t_end = time.time() + SECONDS
kill_every = SECONDS / (KILLS * 1.6 + 1)
next_kill = time.time() + kill_every
kills = faults_done = scans = 0
peak_fds = peak_rss = 0
while time.time() < t_end:
    time.sleep(random.uniform(0.3, 1.2))
    try:
        st, b = req(hport, "GET", "/api/whatsapp/status")
        state = json.loads(b)["data"]
    except Exception:
        continue
    try:
        if state["state"] == "QR_READY" and random.random() < 0.7:
            st, raw = req(hport, "GET", "/api/whatsapp/qr?format=raw")
            if st == 200:
                req(cport, "POST", "/control/scan", raw)
                scans += 1
        elif state["state"] == "DISCONNECTED" and state["detail"] in ("qr_timeout", "logged_out", "replaced", "pairing_failed"):
            req(hport, "POST", "/api/whatsapp/reconnect", b'{"keepCredentials":true,"waitMs":2000}', timeout=5)
        else:
            f = random.choice(faults)
            req(cport, "POST", "/control/fault", f.encode())
            if f == "stall":
                time.sleep(random.uniform(0.2, 1.0))
                req(cport, "POST", "/control/fault", b"drop")
            faults_done += 1
    except (OSError, http.client.HTTPException):
        pass
    fds = len(os.listdir("/proc/%d/fd" % gw.pid))
    rss = int(open("/proc/%d/statm" % gw.pid).read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    peak_fds, peak_rss = max(peak_fds, fds), max(peak_rss, rss)
    if kills < KILLS and time.time() >= next_kill:
        gw.kill()
        gw.wait()
        out = subprocess.run([GW, "--check-store", "--data-dir", DATA], capture_output=True, text=True)
        if out.returncode != 0:
            fail("store inconsistent after kill %d: %s %s" % (kills, out.stdout, out.stderr))
        kills += 1
        next_kill = time.time() + kill_every
        start_gw()

stop.set()
for t in threads:
    t.join(10)
if kills < KILLS:
    fail("only %d of %d kills happened" % (kills, KILLS))
check = gw.poll() is None
if not check:
    fail("the gateway died (exit %s)" % gw.returncode)
st, b = req(hport, "GET", "/api/whatsapp/status")
if st != 200:
    fail("not serving after the storm")
# bounded: a few dozen fds for 10 streams + listeners; well under 64 MB (ASan builds excluded)
asan = "asan" in GW or os.environ.get("WAGW_ASAN")
if peak_fds > 200:
    fail("fd count grew to %d" % peak_fds)
if not asan and peak_rss > 64 * 1024 * 1024:
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
print("storm: %.0f s, %d faults, %d scans, %d kills, peak %d fds, peak RSS %d MB"
      % (SECONDS, faults_done, scans, kills, peak_fds, peak_rss >> 20))
print("PASS")
