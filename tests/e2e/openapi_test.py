#!/usr/bin/python3
"""The OpenAPI description (api/openapi.json) kept honest: the live service
serves it at /openapi.json; every documented operation exists on the live
service and answers one of its documented statuses; every route of the
live route table (server/http/routes.c) is documented with its methods."""
import http.client, json, os, re, socket, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import SRC, check, failed, free_port, gateway_env, req, start_fakewa, start_gateway  # noqa: E402
from wsclient import WS  # noqa: E402

ADMIN = "admin-key-for-the-openapi-test-01234"
A = {"X-API-Key": ADMIN}
doc_bytes = open(os.path.join(SRC, "api/openapi.json"), "rb").read()
doc = json.loads(doc_bytes)
check(doc["openapi"].startswith("3.1"), "not OpenAPI 3.1: %s" % doc["openapi"])

fw = start_fakewa("--qr-first-ms", "120000", "--qr-next-ms", "60000")
# webhooks to a closed loopback port: created and tested without leaving loopback
gw, port, gport, log = start_gateway(fw, "openapi", ["--api-key", ADMIN],
                                     env=dict(gateway_env(fw), WEBHOOK_ALLOW_PRIVATE="1"))
CLOSED = "http://127.0.0.1:%d/hook" % free_port()


def new_webhook():
    st, _, b = req(port, "POST", "/api/webhooks", body=json.dumps({"url": CLOSED, "events": ["never.sent"]}),
                   headers=dict(A, **{"Content-Type": "application/json"}))
    check(st == 201, "create a webhook: %d %s" % (st, b))
    return json.loads(b)["data"]["id"]

st, h, b = req(port, "GET", "/openapi.json")
check(st == 200 and h.get("content-type", "").startswith("application/json") and b == doc_bytes,
      "GET /openapi.json: %d %s (%d bytes, the file has %d)" % (st, h.get("content-type"), len(b), len(doc_bytes)))

METHODS = ("get", "head", "post", "delete", "put", "patch")
fresh = [0]


def new_session():
    fresh[0] += 1
    name = "doc%d" % fresh[0]
    st, _, b = req(port, "POST", "/api/sessions", body=json.dumps({"name": name}), headers=A)
    check(st == 201, "create %s: %d %s" % (name, st, b))
    return name


def status_of(method, path, body):
    """The status of one request; an event stream is closed after its head."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request(method, path, body=body, headers=dict(A, **({"Content-Type": "application/json"} if body else {})))
    sock = c.sock
    r = c.getresponse()
    if r.getheader("content-type", "").startswith("text/event-stream"):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    else:
        r.read()
    c.close()
    return r.status


# Every documented operation on the live service (as the admin): it exists
# (never 405, 404 only where the document says the route may be off) and
# answers a documented status. Calls that would change later answers act on
# a session made for them.
n = 0
for path, item in doc["paths"].items():
    for m in METHODS:
        op = item.get(m)
        if not op:
            continue
        documented = set(op.get("responses", {}).keys())
        name = "default"
        if "{name}" in path and (m == "delete" or path.endswith(("/logout", "/key", "/reconnect"))):
            name = new_session()
        live = path.replace("{name}", name)
        if "{id}" in path:
            live = live.replace("{id}", new_webhook())
        body = None
        if m == "post":
            body = b'{"name":"docnew"}' if path == "/api/sessions" else b"{}"
            if path.endswith(("/test", "/replay")):
                body = None
        if path.endswith("/reconnect"):
            body = b'{"waitMs":1000}'
        if path.endswith("/ws"):
            ws = WS("127.0.0.1", port, live, headers=A)
            check(str(ws.status) in documented, "%s %s upgrade: %d not in %s" % (m.upper(), path, ws.status, sorted(documented)))
            ws.s.close()
        st = status_of(m.upper(), live, body)
        n += 1
        check(st != 405, "%s %s: 405 (not on the live service)" % (m.upper(), path))
        check(st != 404 or "404" in documented and path in ("/demo/config", "/", "/index.html"),
              "%s %s: 404 (not on the live service)" % (m.upper(), path))
        check(str(st) in documented, "%s %s: %d not in the documented %s" % (m.upper(), path, st, sorted(documented)))
check(n >= 40, "only %d documented operations" % n)

# Every live route is documented with its methods.
src = open(os.path.join(SRC, "server/http/routes.c")).read()
rows = re.findall(r'\{"([^"]*)", AT_(ROOT|SESSION|NAMED|WEBHOOK), ([A-Z_| ]+),', src)
check(len(rows) >= 15, "the route table was not found in routes.c (%d rows)" % len(rows))
for path, at, methods in rows:
    if at == "SESSION":
        paths = ["/api/whatsapp" + path, "/whatsapp" + path, "/api/sessions/{name}" + path]
    elif at == "NAMED":
        paths = ["/api/sessions/{name}" + path]
    elif at == "WEBHOOK":
        paths = ["/api/webhooks/{id}" + path]
    else:
        paths = [path]
    for p in paths:
        check(p in doc["paths"], "live route %s is not documented" % p)
        for bit, m in (("M_GET", "get"), ("GET_HEAD", "get"), ("M_POST", "post"), ("M_DELETE", "delete")):
            if bit in methods:
                check(p in doc["paths"] and m in doc["paths"][p], "live %s %s is not documented" % (m.upper(), p))

gw.terminate()
check(gw.wait(20) == 0, "gateway exit status")
fw["proc"].terminate()
if not failed:
    print("ok: %d documented operations, %d live rows" % (n, len(rows)))
