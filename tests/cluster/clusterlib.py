"""Shared helpers of the cluster tests (issue 16): a throwaway PostgreSQL
(tests/pg/pgtmp.sh), the fake WhatsApp server, N gateway nodes sharing one
STORE_URL, S sessions linked (each its own phone at the fake server), and
what the tests look at: GET /api/cluster, the fake server's /control/state,
/metrics, the nodes' WhatsApp sockets, event streams (SSE of every session,
WebSocket of one) and the durable event log of each session.

Everything a test starts is torn down at exit, on failure too: atexit and
SIGTERM/SIGINT run `cleanup` (SIGKILL of each process by its PID, then
`pgtmp.sh stop`); a reaper process in its own session does the same if the
test itself is SIGKILLed (bazel's timeout). Every wait is bounded.

Linking the full way has each new device generate, store and upload 812
pre-keys (what WhatsApp asks of a companion on its first login): that is
most of the setup's CPU (about 6 s of 9 for 300 sessions, 16 s of 19 under
the sanitizers). A test whose subject starts once the sessions are linked
may pass prekeys_uploaded=True: the fake server then starts each device
with 812 pre-keys on it, as after that first upload, and nothing else
changes (a node that connects later asks for the count, as always).
basics_test links the full way.

Environment: CLUSTER_SESSIONS (default 300) linked sessions, "default"
included; CLUSTER_NODES (default 3)."""
import atexit, concurrent.futures, http.client, json, os, random, re, signal, socket, subprocess, sys, threading, time

SRC = os.path.join(os.environ["TEST_SRCDIR"], "wa_gateway")
sys.path.insert(0, os.path.join(SRC, "tests/e2e"))
import e2elib  # noqa: E402
from e2elib import TMP, GW, FW, free_port  # noqa: E402
from wsclient import WS  # noqa: E402

PGTMP = os.path.join(SRC, "tests/pg/pgtmp.sh")
KEY = "cluster-admin-key-0123456789abcdef"
A = {"X-API-Key": KEY}
SECRET = "cluster-node-secret-0123456789abcdefghij"  # CLUSTER_SECRET: commands forwarded to the owner
SESSIONS = int(os.environ.get("CLUSTER_SESSIONS", "300"))
NODES = int(os.environ.get("CLUSTER_NODES", "3"))
CONCURRENCY = 6  # requests in flight while the sessions are created and linked
T0 = time.time()

_procs = {}  # pid -> Popen of every process started here
_pgdir = [None]
_cleaned = [False]
_reaper = [None]
_reapfile = os.path.join(TMP, "cluster-reap.txt")
_lock = threading.Lock()


def log(msg):
    print("%7.2fs %s" % (time.time() - T0, msg), flush=True)


# --- teardown ---------------------------------------------------------------

def _write_reapfile():
    with open(_reapfile + ".new", "w") as f:
        for pid in _procs:
            f.write("pid %d\n" % pid)
        if _pgdir[0]:
            f.write("pgdir %s\n" % _pgdir[0])
    os.replace(_reapfile + ".new", _reapfile)


# Runs in its own session: waits for EOF on stdin (the test ended, however),
# then kills the PIDs still listed (only if they still run one of our
# binaries) and stops the PostgreSQL cluster.
_REAPER = r"""
import os, signal, subprocess, sys
sys.stdin.read()
try:
    lines = open(sys.argv[1]).read().split("\n")
except OSError:
    lines = []
for l in lines:
    if l.startswith("pid "):
        pid = int(l[4:])
        try:
            exe = open("/proc/%d/cmdline" % pid, "rb").read().split(b"\0")[0].decode()
        except OSError:
            continue
        if exe in (sys.argv[3], sys.argv[4]):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
for l in lines:
    if l.startswith("pgdir "):
        subprocess.run([sys.argv[2], "stop", l[6:]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
"""


def _start_reaper():
    if _reaper[0]:
        return
    _write_reapfile()
    _reaper[0] = subprocess.Popen(["/usr/bin/python3", "-c", _REAPER, _reapfile, PGTMP, GW, FW],
                                  stdin=subprocess.PIPE, start_new_session=True)


def track(p):
    with _lock:
        _procs[p.pid] = p
        _write_reapfile()
    return p


def untrack(p):
    with _lock:
        _procs.pop(p.pid, None)
        _write_reapfile()


def cleanup():
    """Kills every process started here (by PID), stops PostgreSQL."""
    with _lock:
        if _cleaned[0]:
            return
        _cleaned[0] = True
        for pid, p in list(_procs.items()):
            if p.poll() is None:
                try:
                    p.kill()  # SIGKILL also ends a SIGSTOPped process
                except OSError:
                    pass
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                pass
        _procs.clear()
        if _pgdir[0]:
            subprocess.run([PGTMP, "stop", _pgdir[0]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=60)
            _pgdir[0] = None
        _write_reapfile()
        if _reaper[0]:
            _reaper[0].stdin.close()  # nothing left for it to do
            try:
                _reaper[0].wait(10)
            except subprocess.TimeoutExpired:
                pass


def _on_signal(signum, frame):
    print("cluster test: signal %d, tearing down" % signum, file=sys.stderr, flush=True)
    cleanup()
    os._exit(128 + signum)


atexit.register(cleanup)
for _s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(_s, _on_signal)

_cluster = [None]


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr, flush=True)
    c = _cluster[0]
    if c:
        try:
            c.diagnose()
        except Exception as e:  # diagnostics must not hide the failure
            print("(diagnostics failed: %r)" % e, file=sys.stderr)
    cleanup()
    os._exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


# --- HTTP -------------------------------------------------------------------

def req(port, method, path, body=None, timeout=5, headers=None):
    """One request with the admin key; (status, JSON or bytes). Raises OSError
    (and http.client.HTTPException) when the node does not answer."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=dict(A, **(headers or {})))
        r = c.getresponse()
        data = r.read()
        st = r.status
    finally:
        c.close()
    if data[:1] in (b"{", b"["):
        try:
            return st, json.loads(data)
        except ValueError:
            pass
    return st, data


def try_req(*a, **kw):
    try:
        return req(*a, **kw)
    except (OSError, http.client.HTTPException):
        return None, None


def route(name):
    return "/api/whatsapp" if name == "default" else "/api/sessions/" + name


def parse_metrics(text):
    """Prometheus text -> {'name{labels}': value}."""
    out = {}
    for line in text.decode(errors="replace").split("\n"):
        if not line or line[0] == "#":
            continue
        parts = line.rsplit(" ", 1)
        if len(parts) == 2:
            try:
                out[parts[0]] = float(parts[1])
            except ValueError:
                pass
    return out


# --- processes ---------------------------------------------------------------

def start_pg():
    out = subprocess.run([PGTMP, "start"], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        fail("pgtmp.sh start: %s %s" % (out.stdout, out.stderr))
    kv = dict(l.split("=", 1) for l in out.stdout.split("\n") if "=" in l)
    with _lock:
        _pgdir[0] = kv["PGTMP_DIR"]
        _write_reapfile()
    return kv["PGTMP_URL"]


def pg_pids():
    """The PostgreSQL processes' PIDs (postmaster and its children)."""
    try:
        master = int(open(os.path.join(_pgdir[0], "data", "postmaster.pid")).readline())
    except (OSError, ValueError, TypeError):
        return []
    pids = [master]
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if int(open("/proc/%s/stat" % d).read().rsplit(")", 1)[1].split()[1]) == master:
                    pids.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return pids


def start_fakewa(*args):
    p = track(subprocess.Popen([FW] + list(args), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
    line = p.stdout.readline()
    if not line:
        fail("the fake server did not start")
    env = dict(kv.split("=", 1) for kv in line.split())
    env["cport"] = int(env["CONTROL"].split(":")[2].split("/")[0])
    env["wport"] = int(env["WA_URL"].split(":")[2].split("/")[0])
    env["proc"] = p
    return env


def tcp_peers(pid, remote_port):
    """Established TCP connections of process `pid` to 127.0.0.1:remote_port."""
    inodes = set()
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                t = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if t.startswith("socket:["):
                inodes.add(t[8:-1])
    except OSError:
        return 0
    n = 0
    for tab in ("/proc/%d/net/tcp" % pid, "/proc/%d/net/tcp6" % pid):
        try:
            rows = open(tab).read().split("\n")[1:]
        except OSError:
            continue
        for row in rows:
            f = row.split()
            if len(f) < 10:
                continue
            if f[3] == "01" and int(f[2].split(":")[1], 16) == remote_port and f[9] in inodes:
                n += 1
    return n


class Node:
    """One gateway node; keeps its ports, data dir and NODE_ID across restarts."""

    def __init__(self, cl, nid):
        self.cl, self.id = cl, nid
        self.port, self.gport = free_port(), free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.data = os.path.join(TMP, "data-" + nid)
        # kept with the test's outputs (bazel-testlogs/.../test.outputs) when bazel runs it
        self.logpath = os.path.join(os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR") or TMP, "node-%s.log" % nid)
        self.proc = None
        self.starts = 0
        self.stopped = False  # SIGSTOPped

    def env(self):
        c = self.cl
        e = dict(os.environ, STORE_URL=c.store_url, NODE_ID=self.id, ADVERTISE_URL=self.url,
                 LEASE_MS=str(c.lease_ms), RENEW_MS=str(c.renew_ms), PORT=str(self.port),
                 GRPC_PORT=str(self.gport), DATA_DIR=self.data, API_KEY=KEY, WA_URL=c.fw["WA_URL"],
                 WA_ROOT_KEY=c.fw["WA_ROOT_KEY"], CONNECT_RATE=str(c.connect_rate),
                 MAX_SESSIONS=str(c.nsessions + 20), HEARTBEAT_MS="2000", LOG_LEVEL=c.log_level,
                 CLUSTER_SECRET=SECRET)
        e.update(c.node_env)
        return e

    def start(self, wait=True):
        self.starts += 1
        with open(self.logpath, "a") as f:
            f.write("=== test: start %d of %s at %.2fs ===\n" % (self.starts, self.id, time.time() - T0))
        self.proc = track(subprocess.Popen([GW], env=self.env(), stdout=subprocess.DEVNULL,
                                           stderr=open(self.logpath, "a")))
        self.stopped = False
        if wait:
            self.wait_ready()
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def serving(self):
        return self.alive() and not self.stopped

    def wait_ready(self, secs=30):
        """Until GET /readyz answers 200."""
        end = time.time() + secs
        last = None
        while time.time() < end:
            if not self.alive():
                fail("node %s exited (status %s) while starting; log tail:\n%s"
                     % (self.id, self.proc.returncode, self.log_tail()))
            st, b = try_req(self.port, "GET", "/readyz", timeout=2)
            if st == 200:
                return
            last = (st, b)
            time.sleep(0.05)
        fail("node %s not ready after %d s: %s" % (self.id, secs, last))

    def signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def kill(self):
        """kill -9, waited for."""
        if self.alive():
            self.proc.kill()
            self.proc.wait(10)
        untrack(self.proc)
        self.stopped = False

    def sigstop(self):
        self.signal(signal.SIGSTOP)
        self.stopped = True

    def sigcont(self):
        self.signal(signal.SIGCONT)
        self.stopped = False

    def term(self):
        self.signal(signal.SIGTERM)

    def wait_exit(self, secs):
        """The exit status, or None if still running after `secs`."""
        try:
            rc = self.proc.wait(secs)
        except subprocess.TimeoutExpired:
            return None
        untrack(self.proc)
        return rc

    def restart(self, wait=True):
        self.kill()
        return self.start(wait)

    def req(self, method, path, body=None, timeout=5):
        return req(self.port, method, path, body, timeout)

    def cluster(self, timeout=5):
        st, b = self.req("GET", "/api/cluster", timeout=timeout)
        if st != 200 or not isinstance(b, dict):
            raise OSError("GET /api/cluster on %s: %s %s" % (self.id, st, str(b)[:200]))
        return b.get("data", b) if "nodes" not in b else b

    def metrics(self):
        st, b = self.req("GET", "/metrics")
        if st != 200:
            raise OSError("GET /metrics on %s: %s" % (self.id, st))
        return parse_metrics(b)

    def wa_connections(self):
        """Its established connections to the fake WhatsApp server."""
        return tcp_peers(self.proc.pid, self.cl.fw["wport"]) if self.alive() else 0

    def log_text(self):
        try:
            return open(self.logpath, errors="replace").read()
        except OSError:
            return ""

    def log_tail(self, n=25):
        return "\n".join(self.log_text().split("\n")[-n:])


# --- the cluster ---------------------------------------------------------------

class Cluster:
    def __init__(self, nodes=NODES, sessions=SESSIONS, lease_ms=4000, renew_ms=1000, connect_rate=50,
                 log_level="info", node_env=None, fakewa_args=(), prekeys_uploaded=False):
        _cluster[0] = self
        self.nsessions = sessions
        self.lease_ms, self.renew_ms, self.connect_rate = lease_ms, renew_ms, connect_rate
        self.log_level, self.node_env = log_level, dict(node_env or {})
        self.names = ["default"] + ["s%03d" % i for i in range(1, sessions)]
        self.phone = {n: str(5511900000000 + i) for i, n in enumerate(self.names)}
        self.jid = {}  # name -> device JID once linked
        self.linked_seq = {}  # name -> the seq of its CONNECTED event after linking
        _start_reaper()
        t = time.time()
        self.store_url = start_pg()
        log("PostgreSQL up in %.1f s" % (time.time() - t))
        if prekeys_uploaded:
            fakewa_args = ("--prekey-count", "812") + tuple(fakewa_args)
        self.fw = start_fakewa(*fakewa_args)
        self.cport = self.fw["cport"]
        self.nodes = [Node(self, "n%d" % (i + 1)) for i in range(nodes)]
        for n in self.nodes:
            n.start(wait=False)
        for n in self.nodes:
            n.wait_ready()
        log("%d nodes ready (lease %d ms, renew %d ms)" % (nodes, lease_ms, renew_ms))

    # nodes
    def node(self, nid):
        return next(n for n in self.nodes if n.id == nid)

    def serving(self, exclude=()):
        ex = {getattr(x, "id", x) for x in exclude}
        return [n for n in self.nodes if n.serving() and n.id not in ex]

    def any(self, exclude=()):
        s = self.serving(exclude)
        if not s:
            fail("no node serving")
        return random.choice(s)

    # the fake server
    def control(self, method, path, body=None):
        return req(self.cport, method, "/control" + path, body)

    def fw_state(self):
        st, b = self.control("GET", "/state")
        if st != 200:
            fail("/control/state: %s" % st)
        return b

    # sessions
    def states(self, node=None, timeout=10):
        """name -> status of every session, as `node` (any serving one) lists them."""
        node = node or self.any()
        st, b = node.req("GET", "/api/sessions", timeout=timeout)
        if st != 200:
            raise OSError("GET /api/sessions on %s: %s %s" % (node.id, st, str(b)[:200]))
        return {s.get("session") or s.get("name"): s for s in b["data"]}

    def owners(self, node=None):
        """name -> (owner, epoch, expiresInMs) from GET /api/cluster."""
        node = node or self.any()
        c = node.cluster()
        return {s["name"]: (s.get("owner"), s.get("epoch"), s.get("expiresInMs")) for s in c.get("sessions", [])}

    def owned_by(self, nid, node=None):
        return sorted(n for n, o in self.owners(node).items() if o[0] == nid)

    def create_all(self):
        t = time.time()
        serving = self.serving()

        def create(i_name):  # a few at a time, spread over the nodes
            i, name = i_name
            node = serving[i % len(serving)]
            return (name, node.id) + node.req("POST", "/api/sessions", {"name": name}, timeout=15)

        with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as ex:
            for name, nid, st, b in ex.map(create, enumerate(self.names[1:])):
                if st != 201:
                    fail("POST /api/sessions %s on %s: %s %s" % (name, nid, st, str(b)[:200]))
        t1 = time.time()
        log("%d sessions created in %.1f s" % (len(self.names) - 1, t1 - t))
        # a session created on one node reaches the others' lists through NOTIFY: not at once
        for node in self.serving():
            end = time.time() + 10
            while True:
                try:
                    missing = set(self.names) - set(self.states(node))
                except (OSError, http.client.HTTPException, ValueError):
                    missing = {"?"}
                if not missing:
                    break
                if time.time() > end:
                    fail("%s does not list %d sessions created on other nodes 10 s later: %s"
                         % (node.id, len(missing), sorted(missing)[:10]))
                time.sleep(0.05)
        log("every node lists every session %.2f s after the last was created" % (time.time() - t1))

    def link_all(self, secs=120):
        """Scans each session's QR (read from a random node) with its own
        phone until every session is CONNECTED."""
        t = time.time()
        end = t + secs
        scanned = {}  # name -> the QR text scanned last
        scans = 0
        while time.time() < end:
            try:
                st = self.states()
            except (OSError, http.client.HTTPException, ValueError):
                time.sleep(0.2)
                continue
            missing = [n for n in self.names if n not in st]
            if missing:
                fail("sessions missing from GET /api/sessions: %s" % missing[:10])
            todo = [n for n in self.names if st[n]["state"] != "CONNECTED"]
            if not todo:
                break

            def scan(name):  # its QR read from a random node, scanned by its phone
                node = self.any()
                code, raw = try_req(node.port, "GET", route(name) + "/qr?format=raw")
                if code != 200 or not isinstance(raw, bytes) or raw == scanned.get(name):
                    return 0
                self.control("POST", "/scan?phone=" + self.phone[name], raw)
                scanned[name] = raw
                return 1

            with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as ex:
                scans += sum(ex.map(scan, [n for n in todo if st[n]["state"] == "QR_READY"]))
            time.sleep(0.3)
        else:
            st = self.states()
            bad = {n: (s["state"], s.get("detail")) for n, s in st.items() if s["state"] != "CONNECTED"}
            fail("linking: %d sessions not CONNECTED after %d s: %s" % (len(bad), secs, str(bad)[:500]))
        st = self.states()
        for name in self.names:
            acct = st[name].get("account") or {}
            self.jid[name] = acct.get("jid")
            self.linked_seq[name] = st[name].get("seq")
            if acct.get("phone") != self.phone[name]:
                fail("%s linked to phone %s, not %s" % (name, acct.get("phone"), self.phone[name]))
        if len(set(self.jid.values())) != len(self.names):
            fail("sessions are not each their own device: %d devices" % len(set(self.jid.values())))
        log("%d sessions linked in %.1f s (%d scans)" % (len(self.names), time.time() - t, scans))

    def setup(self, link_secs=180):
        """Creates and links every session; returns when each is CONNECTED
        at its owner and live once at the fake server, doubleLive 0."""
        self.create_all()
        self.link_all(link_secs)
        self.wait_owned()
        self.wait_settled(30, "after linking")
        self.wait_fw_settled(15, "after linking")
        self.check_fw("after linking")

    def wait_owned(self, secs=30):
        """Until /api/cluster shows every session owned by a serving node."""
        end = time.time() + secs
        while time.time() < end:
            try:
                own = self.owners()
                live = {n.id for n in self.serving()}
                if all(own.get(n, (None,))[0] in live for n in self.names):
                    return own
            except (OSError, http.client.HTTPException, ValueError):
                pass
            time.sleep(0.3)
        fail("not every session owned by a serving node after %d s" % secs)

    def connected(self, node=None):
        st = self.states(node)
        return {n for n in self.names if st.get(n, {}).get("state") == "CONNECTED"}

    def wait_all_connected(self, secs, what, names=None):
        """Until every session in `names` (all) is CONNECTED, as listed by a
        serving node, linked as the device it was linked as; returns the time
        it took."""
        names = names or self.names
        t = time.time()
        end = t + secs
        st = None
        while time.time() < end:
            try:
                st = self.states(timeout=5)
                if all(st.get(n, {}).get("state") == "CONNECTED" for n in names):
                    break
            except (OSError, http.client.HTTPException, ValueError):
                pass
            time.sleep(0.2)
        else:
            bad = {n: (s.get("state"), s.get("detail")) for n, s in (st or {}).items()
                   if n in names and s.get("state") != "CONNECTED"}
            fail("%s: %d sessions not CONNECTED after %d s: %s" % (what, len(bad), secs, str(bad)[:600]))
        for n in names:
            j = (st[n].get("account") or {}).get("jid")
            if j != self.jid[n]:
                fail("%s: %s is device %s, was linked as %s (credentials lost?)" % (what, n, j, self.jid[n]))
        return time.time() - t

    def owner_states(self):
        """name -> (owner, epoch, its status as the owner itself shows it)
        for every session (a follower's view of a session whose owner died
        may be stale: only the owner's counts)."""
        own = self.owners()
        views = {}
        for n in self.serving():
            try:
                views[n.id] = self.states(n, timeout=5)
            except (OSError, http.client.HTTPException, ValueError):
                pass
        out = {}
        for name in self.names:
            o, e, _ = own.get(name, (None, None, None))
            out[name] = (o, e, views.get(o, {}).get(name) if o else None)
        return out

    def wait_settled(self, secs, what, names=None, old=None, not_on=()):
        """Until each session of `names` (all) is owned by a serving node (not
        one of `not_on`; with an epoch above its epoch in `old`, a dict
        name -> (owner, epoch, ...)), CONNECTED as its owner shows it, as the
        device it was linked as, and that device is live at the fake server.
        Returns name -> seconds until it was first seen so."""
        names = list(names or self.names)
        bad_owners = {getattr(x, "id", x) for x in not_on}
        t = time.time()
        end = t + secs
        done = {}
        why = {}
        while time.time() < end and len(done) < len(names):
            try:
                view = self.owner_states()
                live = set(self.fw_state()["liveDevices"])
            except (OSError, http.client.HTTPException, ValueError):
                time.sleep(0.3)
                continue
            serving = {n.id for n in self.serving()}
            now = time.time()
            for name in names:
                if name in done:
                    continue
                o, e, st = view[name]
                if o not in serving or o in bad_owners:
                    why[name] = "owner %s" % o
                elif old and name in old and not (e or 0) > (old[name][1] or 0):
                    why[name] = "owner %s epoch %s (was %s)" % (o, e, old[name][1])
                elif not st or st.get("state") != "CONNECTED":
                    why[name] = "%s at its owner %s" % (st and (st.get("state"), st.get("detail")), o)
                elif (st.get("account") or {}).get("jid") != self.jid[name]:
                    fail("%s: %s is device %s at %s, was linked as %s (credentials lost?)"
                         % (what, name, (st.get("account") or {}).get("jid"), o, self.jid[name]))
                elif self.jid[name] not in live:
                    why[name] = "not live at the fake server"
                else:
                    done[name] = now - t
            if len(done) < len(names):
                time.sleep(0.3)
        if len(done) < len(names):
            left = {n: why.get(n) for n in names if n not in done}
            fail("%s: %d of %d sessions not settled after %d s: %s"
                 % (what, len(left), len(names), secs, str(sorted(left.items())[:12])))
        return done

    def check_fw(self, what, double_live=0):
        """The fake server: doubleLive as expected; each session's device
        live exactly once, nothing else live."""
        fs = self.fw_state()
        if double_live is not None and fs["doubleLive"] != double_live:
            fail("%s: the fake server saw two live connections for one device: doubleLive %d"
                 % (what, fs["doubleLive"]))
        want = sorted(self.jid.values())
        if sorted(fs["liveDevices"]) != want:
            fail("%s: live devices at the fake server are not the sessions' devices once each: %d live, "
                 "missing %s, extra %s" % (what, len(fs["liveDevices"]), sorted(set(want) - set(fs["liveDevices"]))[:5],
                                          sorted(set(fs["liveDevices"]) - set(want))[:5]))
        return fs

    def wait_fw_settled(self, secs, what):
        """Until the fake server has exactly one connection per session,
        each device live once."""
        end = time.time() + secs
        fs = None
        while time.time() < end:
            fs = self.fw_state()
            if fs["live"] == len(self.names) and sorted(fs["liveDevices"]) == sorted(self.jid.values()):
                return fs
            time.sleep(0.2)
        fail("%s: the fake server has %s connections, %d live devices, for %d sessions"
             % (what, fs["live"], len(fs["liveDevices"]), len(self.names)))

    def no_qr_in_log(self, what, names=None, secs=60):
        """Reads every session's stored events since it was linked (WebSocket
        ?since=) from a serving node: none is QR_READY (the credentials were
        never lost). Returns the number of events read. A few sessions are
        read at a time (each read waits on the node's event log)."""
        names = names or self.names
        end = time.time() + secs
        total = 0
        st = self.states()

        def read(name):
            node = self.any()
            return name, node, read_events(node, name, self.linked_seq[name], st[name]["seq"], end)

        with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as ex:
            got = list(ex.map(read, names))
        for name, node, evs in got:
            upto = st[name]["seq"]
            if evs is None:
                fail("%s: could not read %s's events %d..%d from %s" % (what, name, self.linked_seq[name], upto,
                                                                        node.id))
            gaps = [e for e in evs if e.get("type") == "gap"]
            if gaps:
                fail("%s: %s's stored events since %d have a gap: %s" % (what, name, self.linked_seq[name], gaps[0]))
            seqs = [e["seq"] for e in evs]
            if seqs != list(range(self.linked_seq[name] + 1, upto + 1)):
                for n in self.nodes:  # what each node said of it, and of the log
                    for line in grep_log(n, r"\b%s\b|cannot store|deadlock|again \(attempt" % name)[-15:]:
                        print("%s: %s" % (n.id, line), file=sys.stderr)
                fail("%s: %s's stored events since %d are not every seq up to %d: %s"
                     % (what, name, self.linked_seq[name], upto, seqs[:40]))
            qr = [e for e in evs if e.get("state") == "QR_READY" or e.get("hasQR")]
            if qr:
                fail("%s: %s showed a QR (seq %s, detail %s)" % (what, name, qr[0]["seq"], qr[0].get("detail")))
            total += len(evs)
        return total

    def diagnose(self):
        """On failure: what each node, the cluster view and the fake server say."""
        out = sys.stderr
        for n in self.nodes:
            print("--- node %s (pid %s, %s): log tail" % (n.id, n.proc and n.proc.pid,
                                                       "stopped" if n.stopped else
                                                       ("running" if n.alive() else "exited")), file=out)
            print(n.log_tail(40), file=out)
        for n in self.serving():
            try:
                c = n.cluster(timeout=3)
                print("--- /api/cluster on %s: nodes %s" % (n.id, json.dumps(c.get("nodes"))), file=out)
                break
            except Exception:
                continue
        try:
            fs = self.fw_state()
            print("--- fake server: %s" % {k: v for k, v in fs.items() if not isinstance(v, (list, dict))},
                  file=out)
        except Exception:
            pass
        out.flush()


# --- streams -------------------------------------------------------------------

def ws_recv(ws, end):
    """The next text message of `ws` before time `end` (pings skipped), or
    None when `end` passed first; EOFError when the stream ended."""
    while time.time() < end:
        ws.s.settimeout(max(0.01, end - time.time()))
        try:
            b0, b1 = ws._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = int.from_bytes(ws._read(2), "big")
            elif n == 127:
                n = int.from_bytes(ws._read(8), "big")
            ws.s.settimeout(5)
            payload = ws._read(n)
        except (socket.timeout, TimeoutError):
            return None
        if b0 & 0x0F == 8:
            raise EOFError
        if b0 & 0x0F == 1:
            return json.loads(payload)
    return None


def read_events(node, name, since, upto, end):
    """The events of session `name` after seq `since` up to `upto`, over a
    WebSocket on `node`; None if they did not all come before `end`."""
    try:
        ws = WS("127.0.0.1", node.port, route(name) + "/ws?since=%d" % since, timeout=5, headers=A)
    except (OSError, EOFError):
        return None
    if ws.status != 101:
        ws.close()
        return None
    evs, last = [], since
    try:
        while last < upto:
            m = ws_recv(ws, end)
            if m is None:
                return None
            evs.append(m)  # a gap ({"type":"gap"}) too: the caller refuses it
            if m.get("type") == "gap":
                break
            last = m.get("seq", last)
    except (OSError, EOFError, ValueError):
        return None
    finally:
        ws.close()
    return evs


class WSWatcher:
    """A WebSocket on one session's events at one node, read in a thread:
    (arrival time, message) pairs; resumes with ?since= when it drops
    (at the same node)."""

    def __init__(self, node, name, since=None):
        self.node, self.name = node, name
        self.events, self.errors, self.stop = [], [], threading.Event()
        self.ids = []  # each event's SSE id (int, or None), beside events
        self.opens = 0
        self.last = since
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        tries = 0
        while not self.stop.is_set() and tries < 1000:
            tries += 1
            path = route(self.name) + "/ws" + ("?since=%d" % self.last if self.last is not None else "")
            try:
                ws = WS("127.0.0.1", self.node.port, path, timeout=5, headers=A)
            except (OSError, EOFError) as e:
                self.errors.append("open: %r" % e)
                time.sleep(0.2)
                continue
            if ws.status != 101:
                self.errors.append("upgrade %d" % ws.status)
                ws.close()
                time.sleep(0.2)
                continue
            self.opens += 1
            try:
                while not self.stop.is_set():
                    m = ws_recv(ws, time.time() + 0.5)
                    if m is None:
                        continue
                    self.events.append((time.time(), m))
                    if "seq" in m and m.get("type") != "gap":
                        self.last = m["seq"]
            except (OSError, EOFError, ValueError) as e:
                self.errors.append("read: %r" % e)
            ws.close()

    def msgs(self):
        return [m for _, m in list(self.events)]

    def close(self):
        self.stop.set()
        self.t.join(5)


class SSEWatcher:
    """GET /api/events (every session) on one node, read in a thread: each
    event with its arrival time. Resumes with Last-Event-ID when the stream
    ends, on the same node (or, if `follow`, on any serving node)."""

    def __init__(self, cl, node, follow=False):
        self.cl, self.node, self.follow = cl, node, follow
        self.events, self.errors, self.stop = [], [], threading.Event()
        self.ids = []  # each event's SSE id (int, or None), beside events
        self.opens = 0
        self.last_id = None
        self.ready = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()
        if not self.ready.wait(10):
            fail("SSE /api/events on %s did not open: %s" % (node.id, self.errors[-3:]))

    def run(self):
        tries = 0
        while not self.stop.is_set() and tries < 2000:
            tries += 1
            node = self.node
            if not node.serving():
                if not self.follow:
                    time.sleep(0.2)
                    continue
                live = self.cl.serving()
                if not live:
                    time.sleep(0.2)
                    continue
                node = self.node = random.choice(live)
            h = dict(A)
            if self.last_id is not None:
                h["Last-Event-ID"] = str(self.last_id)
            try:
                c = http.client.HTTPConnection("127.0.0.1", node.port, timeout=10)
                c.request("GET", "/api/events", headers=h)
                r = c.getresponse()
                if r.status != 200:
                    self.errors.append("%s: status %d with Last-Event-ID %s" % (node.id, r.status, self.last_id))
                    if r.status == 400:
                        self.last_id = None  # a cursor this node does not take: start afresh
                    c.close()
                    time.sleep(0.3)
                    continue
                self.opens += 1
                self.ready.set()
                buf = b""
                while not self.stop.is_set():
                    chunk = r.read1(65536)
                    if not chunk:
                        break
                    now = time.time()
                    buf += chunk
                    while b"\n\n" in buf:
                        block, buf = buf.split(b"\n\n", 1)
                        eid, data = None, None
                        for line in block.split(b"\n"):
                            if line.startswith(b"id: "):
                                eid = line[4:].decode()
                            elif line.startswith(b"data: "):
                                data = json.loads(line[6:])
                        if data is not None:
                            self.ids.append(int(eid) if eid and eid.isdigit() else None)
                            self.events.append((now, data))
                        if eid and eid.isdigit():
                            self.last_id = int(eid)
                c.close()
            except (OSError, http.client.HTTPException, ValueError) as e:
                self.errors.append("%s: %r" % (node.id, e))
                time.sleep(0.1)

    def snapshot(self):
        return list(self.events)

    def close(self):
        self.stop.set()
        self.t.join(12)


class Poller:
    """Polls GET /api/sessions on serving nodes every `every` s in a thread:
    every (time, node, name, state, detail) that is not CONNECTED."""

    def __init__(self, cl, every=0.5):
        self.cl, self.every = cl, every
        self.seen, self.polls, self.stop = [], 0, threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop.is_set():
            live = self.cl.serving()
            if live:
                node = random.choice(live)
                try:
                    st = self.cl.states(node, timeout=3)
                    now = time.time()
                    self.polls += 1
                    for n, s in st.items():
                        if s.get("state") != "CONNECTED":
                            self.seen.append((now, node.id, n, s.get("state"), s.get("detail")))
                except (OSError, http.client.HTTPException, ValueError, KeyError):
                    pass
            self.stop.wait(self.every)

    def qrs(self):
        return [x for x in self.seen if x[3] == "QR_READY"]

    def close(self):
        self.stop.set()
        self.t.join(10)


def first_qr(events, names=None):
    """The first QR_READY event of a watcher's events (of `names`), or None."""
    for t, e in events:
        if (e.get("state") == "QR_READY" or e.get("hasQR")) and (names is None or e.get("session") in names):
            return t, e
    return None


def outages(events, names, t_from):
    """Per session: the (left CONNECTED at, CONNECTED again at) intervals of
    the events arriving after t_from (arrival times)."""
    out = {n: [] for n in names}
    down = {}
    for t, e in events:
        n = e.get("session")
        if n not in out or t < t_from or "state" not in e:
            continue
        if e["state"] != "CONNECTED":
            down.setdefault(n, t)
        elif n in down:
            out[n].append((down.pop(n), t))
    for n, t in down.items():
        out[n].append((t, None))
    return out


def grep_log(node, pattern):
    return [l for l in node.log_text().split("\n") if re.search(pattern, l, re.I)]


class OwnerHistory:
    """Polls GET /api/cluster on serving nodes (not `exclude`) every `every`
    s in a thread: every (time, asked node, session, owner, epoch) seen."""

    def __init__(self, cl, exclude=(), every=0.3):
        self.cl, self.exclude, self.every = cl, exclude, every
        self.rows, self.polls, self.errors, self.stop = [], 0, [], threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop.is_set():
            live = self.cl.serving(self.exclude)
            if live:
                node = random.choice(live)
                try:
                    c = node.cluster(timeout=3)
                    now = time.time()
                    self.polls += 1
                    for s in c.get("sessions", []):
                        self.rows.append((now, node.id, s["name"], s.get("owner"), s.get("epoch")))
                except (OSError, http.client.HTTPException, ValueError, KeyError) as e:
                    self.errors.append(repr(e))
            self.stop.wait(self.every)

    def close(self):
        self.stop.set()
        self.t.join(10)


def summary(times):
    """'median / max' of a list of seconds."""
    if not times:
        return "none"
    v = sorted(times)
    return "median %.2f s, p90 %.2f s, max %.2f s" % (v[len(v) // 2], v[int(len(v) * 0.9)], v[-1])
