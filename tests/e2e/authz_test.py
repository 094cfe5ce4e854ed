#!/usr/bin/python3
"""The authorization table (authz_table.py) against the live gateway: every
row x {admin key, own session key, other session's key, no key} -> the
status the table expects. Also checks that the table names every path of
the HTTP route table (server/http/routes.c), so a new route cannot be added
without saying who may call it. Runs the rows of the transports it has a
runner for (RUNNERS)."""
import http.client, json, os, re, socket, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import SRC, check, fail, failed, free_port, gateway_env, req, start_fakewa, start_gateway  # noqa: E402
import authz_table as T  # noqa: E402

ADMIN = "admin-key-for-the-authz-test-0123456"
CALLERS = ("admin", "own", "other", "none")

fw = start_fakewa("--qr-first-ms", "120000", "--qr-next-ms", "60000")
# webhook targets on a closed loopback port: test calls never leave loopback
gw, port, gport, log = start_gateway(fw, "authz", ["--api-key", ADMIN],
                                     env=dict(gateway_env(fw), WEBHOOK_ALLOW_PRIVATE="1"))
CLOSED = "http://127.0.0.1:%d/hook" % free_port()
A = {"X-API-Key": ADMIN}


def jreq(method, path, body=None, headers=None):
    st, _, b = req(port, method, path, body=body, headers=headers)
    return st, (json.loads(b) if b[:1] == b"{" else b)


keys = {}
st, b = jreq("POST", "/api/sessions/default/key", headers=A)
check(st == 200, "a key for default: %s %s" % (st, b))
keys["default"] = b["data"]["key"]
for name in ("sales", "support"):
    st, b = jreq("POST", "/api/sessions", body=json.dumps({"name": name}), headers=A)
    check(st == 201, "create %s: %s %s" % (name, st, b))
    keys[name] = b["data"]["key"]


def wait_qr(name):
    """Every row expects its session to show a QR."""
    t0 = time.time()
    while time.time() - t0 < 10:
        st, b = jreq("GET", "/api/sessions/%s/status" % name)
        if st == 200 and b["data"]["state"] == "QR_READY":
            return
        time.sleep(0.05)
    fail("%s shows no QR" % name)


for name in keys:
    wait_qr(name)

fresh_n = [0]


def http_status(method, path, body, headers, stream):
    if not stream:
        st, _, _ = req(port, method, path, body=body, headers=headers)
        return st
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request(method, path, body=body, headers=headers)
    sock = c.sock
    st = c.getresponse().status
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    c.close()
    return st


def run_http(row):
    for i, caller in enumerate(CALLERS):
        if T.FRESH in row.flags:
            fresh_n[0] += 1
            session = "fresh%d" % fresh_n[0]
            st, b = jreq("POST", "/api/sessions", body=json.dumps({"name": session}), headers=A)
            check(st == 201, "create %s: %s %s" % (session, st, b))
            keys[session] = b["data"]["key"]
        else:
            session = "default" if T.SEED in row.flags else "sales"
        own = keys[session]
        other = keys["support"] if session != "support" else keys["sales"]
        h = {"admin": A, "own": {"X-API-Key": own}, "other": {"X-API-Key": other}, "none": {}}[caller]
        path = row.target.replace("{s}", session)
        if T.WEBHOOK in row.flags:  # a target of the row's session, for this call
            st, b = jreq("POST", "/api/webhooks", body=json.dumps({"url": CLOSED, "session": session,
                                                                   "events": ["never.sent"]}), headers=A)
            check(st == 201, "create a webhook: %s %s" % (st, b))
            path = path.replace("{w}", b["data"]["id"])
        st = http_status(row.method, path, row.body, h, T.STREAM in row.flags)
        want = row.expect[i]
        ok = st in want if isinstance(want, tuple) else st == want
        check(ok, "%s %s as %s: %d, expected %s" % (row.method, path, caller, st, want))
        if T.FRESH in row.flags:
            jreq("DELETE", "/api/sessions/" + session, headers=A)
        if T.CHANGES in row.flags:  # a new QR for the next caller
            st, b = jreq("POST", "/api/sessions/%s/reconnect" % session, headers=A)
            check(st == 200, "reconnect %s after %s %s: %s %s" % (session, row.method, path, st, b))
            wait_qr(session)


RUNNERS = {"http": run_http}

# The table covers every path of the HTTP route table.
src = open(os.path.join(SRC, "server/http/routes.c")).read()
rows = re.findall(r'\{"([^"]*)", AT_(ROOT|SESSION|NAMED|WEBHOOK), ([A-Z_| ]+),', src)
check(len(rows) >= 15, "the route table was not found in routes.c (%d rows)" % len(rows))
covered = set((r.method, r.target) for r in T.ROWS if r.transport == "http")
paths = set(t for _, t in covered)
for path, at, methods in rows:
    if at == "SESSION":
        want = ["/api/whatsapp" + path, "/whatsapp" + path, "/api/sessions/{s}" + path]
    elif at == "NAMED":
        want = ["/api/sessions/{s}" + path]
    elif at == "WEBHOOK":
        want = ["/api/webhooks/{w}" + path]
    else:
        want = [path]
    for w in want:
        check(w in paths, "route %s (%s) is not in authz_table.py" % (w, methods.strip()))
        for m in ("GET", "POST", "DELETE"):
            if "M_" + m in methods or (m == "GET" and "GET_HEAD" in methods):
                check((m, w) in covered, "%s %s is not in authz_table.py" % (m, w))

n = 0
for row in T.ROWS:
    run = RUNNERS.get(row.transport)
    if run:
        run(row)
        n += 1
check(n >= 40, "only %d rows ran" % n)
# the wrong keys above may not have locked the test's address out
st, _ = jreq("GET", "/api/sessions/sales/qr", headers={"X-API-Key": keys["sales"]})
check(st == 200, "sales' key after the table: %d" % st)
gw.terminate()
check(gw.wait(20) == 0, "gateway exit status")
fw["proc"].terminate()
if not failed:
    print("ok: %d rows x %d callers" % (n, len(CALLERS)))
