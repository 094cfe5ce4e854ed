"""Shared helpers of the Python end-to-end tests: paths of the programs under
test in the runfiles, failing a test (killing what it started), free ports,
the fake WhatsApp server, and plain HTTP requests."""
import http.client, json, os, signal, socket, subprocess, sys, time

SRC = os.path.join(os.environ["TEST_SRCDIR"], "wa_gateway")
TMP = os.environ.get("TEST_TMPDIR", "/tmp")
GW = os.path.join(SRC, "server/wa-gateway")
FW = os.path.join(SRC, "tests/fakewa/fakewa-server")
procs = []  # every process a test started, killed when it fails


# E2E_KEEP_GOING=1: a failed check is printed and the test goes on (it
# still fails at the end); used to see every check fail on older code.
KEEP_GOING = os.environ.get("E2E_KEEP_GOING") == "1"
failed = []


fail_hooks = []  # run by fail() (which skips atexit) after the processes are killed


def fail(msg):
    print("FAIL:", msg, file=sys.stderr)
    for p in procs:
        p.kill()
    for f in fail_hooks:
        f()
    os._exit(1)


def start_pg():
    """Starts a throwaway PostgreSQL 15 (tests/pg/pgtmp.sh); returns its URL.
    It is stopped and its directory removed at exit, also when a check
    fails."""
    pgtmp = os.path.join(SRC, "tests/pg/pgtmp.sh")
    out = subprocess.run([pgtmp, "start"], capture_output=True, text=True, check=True).stdout
    kv = dict(l.split("=", 1) for l in out.split())
    done = []

    def stop():
        if not done:
            done.append(1)
            subprocess.run([pgtmp, "stop", kv["PGTMP_DIR"]])
    import atexit
    atexit.register(stop)
    fail_hooks.append(stop)
    return kv["PGTMP_URL"], kv["PGTMP_DIR"]


class PgFreezer:
    """Stops (SIGSTOP) and resumes every process of the throwaway PostgreSQL
    in `pgdir`; whatever is stopped is resumed when a check fails and at
    exit (before start_pg's stop, which is registered earlier)."""

    def __init__(self, pgdir):
        self.pgdir, self.stopped = pgdir, []
        fail_hooks.insert(0, self.thaw)
        import atexit
        atexit.register(self.thaw)

    def pids(self):
        with open(os.path.join(self.pgdir, "data", "postmaster.pid")) as f:
            pm = int(f.readline())
        kids = subprocess.run(["pgrep", "-P", str(pm)], capture_output=True, text=True).stdout.split()
        return [pm] + [int(k) for k in kids]

    def freeze(self):
        for p in self.pids():
            os.kill(p, signal.SIGSTOP)
            self.stopped.append(p)

    def thaw(self):
        for p in self.stopped:
            try:
                os.kill(p, signal.SIGCONT)
            except OSError:
                pass
        self.stopped = []


class Receiver:
    """A webhook receiver on 127.0.0.1 (answers 200): `got` lists each
    delivery as (webhook-id, body parsed as JSON), guarded by `lock`."""

    def __init__(self):
        import http.server, threading
        self.got, self.lock = [], threading.Lock()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                with outer.lock:
                    outer.got.append((self.headers.get("webhook-id"), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.url = "http://127.0.0.1:%d/hook" % self.srv.server_address[1]

    def snapshot(self):
        with self.lock:
            return list(self.got)


def wait_until(what, cond, secs=20, on_timeout=None):
    """Calls cond() every 0.1 s until it returns something true, which is
    returned; after `secs` runs on_timeout() (when given: to show a log)
    and fails with "timed out waiting for <what>"."""
    t0 = time.time()
    while time.time() - t0 < secs:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    if on_timeout:
        on_timeout()
    fail("timed out waiting for " + what)


def check(cond, msg):
    if not cond:
        if KEEP_GOING:
            print("FAIL:", msg, file=sys.stderr, flush=True)
            if not failed:
                import atexit
                atexit.register(lambda: os._exit(1))
            failed.append(msg)
            return
        fail(msg)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start_fakewa(*args):
    """Starts the fake WhatsApp server; returns its first line as a dict
    (WA_URL, WA_ROOT_KEY, CONTROL) plus the control port as "cport"."""
    p = subprocess.Popen([FW] + list(args), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    procs.append(p)
    env = dict(kv.split("=", 1) for kv in p.stdout.readline().split())
    env["cport"] = int(env["CONTROL"].split(":")[2].split("/")[0])
    env["proc"] = p
    return env


def gateway_env(fw):
    """The environment pointing a gateway at the fake server `fw`."""
    return dict(os.environ, WA_URL=fw["WA_URL"], WA_ROOT_KEY=fw["WA_ROOT_KEY"])


def req(port, method, path, body=None, headers=None, timeout=5, tls_ctx=None):
    """One HTTP request; returns (status, lower-cased headers, body)."""
    if tls_ctx:
        c = http.client.HTTPSConnection("localhost", port, timeout=timeout, context=tls_ctx)
    else:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data


def api(port, method, path, body=None, key=None, headers=None, timeout=10):
    """A JSON API call with `key` as X-API-Key; returns (status, body)."""
    h = {"Content-Type": "application/json"}
    if key:
        h["X-API-Key"] = key
    h.update(headers or {})
    st, _, data = req(port, method, path, body, h, timeout)
    return st, data


def api_data(port, path, key=None):
    """The "data" object of a GET (an empty dict unless 200)."""
    st, d = api(port, "GET", path, key=key)
    return json.loads(d).get("data", {}) if st == 200 else {}


def grpc_stubs():
    """Generates the gRPC stubs of the public proto and health in TMP and
    returns (gateway_pb2, gateway_pb2_grpc, health_pb2, health_pb2_grpc)."""
    import grpc
    gen = os.path.join(TMP, "gen")
    os.makedirs(gen, exist_ok=True)
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I" + os.path.join(SRC, "proto"),
                    "-I/usr/share/grpc-proto", "--python_out=" + gen, "--grpc_python_out=" + gen,
                    "gateway.proto", "grpc/health/v1/health.proto"], check=True)
    sys.path.insert(0, gen)
    grpc.__path__.append(os.path.join(gen, "grpc"))  # grpc.health lives in gen
    import gateway_pb2, gateway_pb2_grpc
    from grpc.health.v1 import health_pb2, health_pb2_grpc
    return gateway_pb2, gateway_pb2_grpc, health_pb2, health_pb2_grpc


def start_gateway(fw, name, args, port=None, gport=None, **popen):
    """Starts wa-gateway against the fake server `fw` with `args`; waits for
    /healthz. Returns (process, http port, grpc port, log path)."""
    port = port or free_port()
    gport = gport or free_port()
    logpath = os.path.join(TMP, "gw-%s.log" % name)
    host = "127.0.0.1"
    if "--host" in args:
        host = args[args.index("--host") + 1]
    p = subprocess.Popen([GW, "--port", str(port), "--grpc-port", str(gport),
                          "--data-dir", os.path.join(TMP, "data-" + name)] + list(args),
                         env=popen.pop("env", None) or gateway_env(fw),
                         stderr=popen.pop("stderr", None) or open(logpath, "w"), **popen)
    procs.append(p)
    for _ in range(200):
        try:
            c = http.client.HTTPConnection(host, port, timeout=2)
            c.request("GET", "/healthz")
            if c.getresponse().status == 200:
                c.close()
                return p, port, gport, logpath
        except OSError:
            time.sleep(0.05)
    fail("gateway %s did not start" % name)
