"""Shared helpers of the Python end-to-end tests: paths of the programs under
test in the runfiles, failing a test (killing what it started), free ports,
the fake WhatsApp server, and plain HTTP requests."""
import http.client, os, socket, subprocess, sys

SRC = os.path.join(os.environ["TEST_SRCDIR"], "wa_gateway")
TMP = os.environ.get("TEST_TMPDIR", "/tmp")
GW = os.path.join(SRC, "server/wa-gateway")
FW = os.path.join(SRC, "tests/fakewa/fakewa-server")
procs = []  # every process a test started, killed when it fails


def fail(msg):
    print("FAIL:", msg, file=sys.stderr)
    for p in procs:
        p.kill()
    os._exit(1)


def check(cond, msg):
    if not cond:
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
