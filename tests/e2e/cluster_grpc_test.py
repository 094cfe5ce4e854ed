#!/usr/bin/python3
"""gRPC commands in a cluster, against a real PostgreSQL 15 (a throwaway
cluster from tests/pg/pgtmp.sh) and two nodes sharing it: Reconnect,
RequestPairingCode, SendPasskeyAssertion, Logout and DeleteSession sent over
gRPC to the node that does NOT run the session are carried out by the node
that does (passed on to its HTTP API with the caller's key and the node
secret), and the gRPC answer is the one the owner would give: Reconnect
with keep_credentials opens a new WhatsApp connection on the owner and
answers CONNECTED; a pairing code asked on the other node is the one the
fake phone links with (and GetStatus there shows it at once); a malformed
passkey assertion gets the owner's gRPC code; Logout logs the session out;
DeleteSession removes it from both nodes. A client that gives up while its
command is on its way cancels it without harm. A third node without
CLUSTER_SECRET answers FAILED_PRECONDITION "runs on another node"."""
import http.client, json, os, re, signal, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2elib
from e2elib import SRC, check, fail, free_port, start_fakewa, start_gateway, gateway_env

KEY = "cluster-grpc-admin-key-0123456789"
SECRET = "cluster-grpc-node-secret-0123456789-abcdef"
LEASE, RENEW = 3000, 500
PHONE = "+1 555-123-4567"  # the fake phone's number
CODE_RE = re.compile(r"^[1-9A-HJ-NP-TV-Z]{4}-[1-9A-HJ-NP-TV-Z]{4}$")
ELSEWHERE = "runs on another node"

URL, PGDIR = e2elib.start_pg()
# an exception (a gRPC error not expected) fails the test like a check:
# what it started is killed, the database stopped
def on_exception(t, v, tb):
    import traceback
    traceback.print_exception(t, v, tb)
    fail("exception: %s" % v)
sys.excepthook = on_exception

fw = start_fakewa()
cport = fw["cport"]


def req(port, method, path, body=None, headers=None, key=KEY):
    return e2elib.api(port, method, path, body, key, headers)


def data(port, path):
    return e2elib.api_data(port, path, KEY)


wait = e2elib.wait_until


def start_node(name, secret):
    port, gport = free_port(), free_port()
    env = dict(gateway_env(fw), STORE_URL=URL, NODE_ID="node-" + name,
               ADVERTISE_URL="http://127.0.0.1:%d" % port,
               LEASE_MS=str(LEASE), RENEW_MS=str(RENEW), API_KEY=KEY, DRAIN_TIMEOUT_MS="5000")
    if secret:
        env["CLUSTER_SECRET"] = secret
    return start_gateway(fw, "clg-" + name, [], port=port, gport=gport, env=env)


nodes = {n: start_node(n, SECRET) for n in ("a", "b")}
HTTP = {"node-" + n: v[1] for n, v in nodes.items()}
GRPC = {"node-" + n: v[2] for n, v in nodes.items()}
A = nodes["a"][1]
wait("two live nodes", lambda: len([n for n in json.loads(req(A, "GET", "/api/cluster")[1])["nodes"]
                                    if n["live"]]) == 2)


def owner(name):
    for s in json.loads(req(A, "GET", "/api/cluster")[1])["sessions"]:
        if s["name"] == name and s["owner"]:
            return s["owner"]
    return None


def other_than(node):
    return "node-b" if node == "node-a" else "node-a"


def logged_connects():
    return json.loads(req(cport, "GET", "/control/connects")[1])["logged"]


ep, epg, hp, hpg = e2elib.grpc_stubs()
import grpc
MD = [("x-api-key", KEY)]
stubs = {n: epg.GatewayStub(grpc.insecure_channel("127.0.0.1:%d" % p)) for n, p in GRPC.items()}


def rpc_error(fn):
    try:
        fn()
    except grpc.RpcError as e:
        return e.code(), e.details()
    return grpc.StatusCode.OK, ""


# "sales", linked, runs on one node
st, d = req(nodes["b"][1], "POST", "/api/sessions", json.dumps({"name": "sales"}).encode())
check(st == 201, "create: %d %s" % (st, d))
j = json.loads(d)
sales_key = j.get("key") or j.get("data", {}).get("key")
check(sales_key, "a session key: %s" % j)
wait("sales QR_READY on A", lambda: data(A, "/api/sessions/sales/status").get("state") == "QR_READY")
st, raw = req(A, "GET", "/api/sessions/sales/qr?format=raw")
check(st == 200, "QR: %d %r" % (st, raw[:40]))
st, d = req(cport, "POST", "/control/scan?phone=4915112345678", raw)
check(st == 200, "scan: %d %s" % (st, d))
wait("sales CONNECTED on both nodes", lambda: all(
    data(p, "/api/sessions/sales/status").get("state") == "CONNECTED" for p in HTTP.values()))
own = wait("an owner of sales", lambda: owner("sales"))
oth = other_than(own)
print("sales runs on %s; commands go to %s" % (own, oth), flush=True)

# Reconnect with keep_credentials on the other node, with the session's own
# key: the owner opens a new connection, the answer is CONNECTED
n0 = logged_connects()
rep = stubs[oth].Reconnect(ep.ReconnectRequest(session="sales", keep_credentials=True),
                           metadata=[("x-api-key", sales_key)], timeout=30)
check(rep.message == "WhatsApp reconnection initiated" and rep.status.state == ep.CONNECTED
      and not rep.HasField("qr"), "forwarded Reconnect: %s" % rep)
check(logged_connects() > n0, "the owner opened a new connection (%d -> %d)" % (n0, logged_connects()))
check(data(HTTP[own], "/api/sessions/sales/status").get("state") == "CONNECTED", "CONNECTED on the owner")
check(owner("sales") == own, "still runs on %s" % own)
# a wrong wait_ms is refused here already, as locally
c, _ = rpc_error(lambda: stubs[oth].Reconnect(ep.ReconnectRequest(session="sales", wait_ms=300001),
                                              metadata=MD, timeout=10))
check(c == grpc.StatusCode.INVALID_ARGUMENT, "wait_ms out of range: %s" % c)

# SendPasskeyAssertion, malformed: the owner's code comes back
for assertion in ("{bad", "{}"):
    c_own, d_own = rpc_error(lambda: stubs[own].SendPasskeyAssertion(
        ep.PasskeyAssertionRequest(session="sales", assertion_json=assertion), metadata=MD, timeout=10))
    c_oth, d_oth = rpc_error(lambda: stubs[oth].SendPasskeyAssertion(
        ep.PasskeyAssertionRequest(session="sales", assertion_json=assertion), metadata=MD, timeout=10))
    check(c_own != grpc.StatusCode.OK and c_oth == c_own and d_oth and ELSEWHERE not in d_oth,
          "passkey %r: owner %s %r, other node %s %r" % (assertion, c_own, d_own, c_oth, d_oth))

# RequestPairingCode for an unlinked session, on the node that does not run it
st, d = req(A, "POST", "/api/sessions", json.dumps({"name": "pc"}).encode())
check(st == 201, "create pc: %d %s" % (st, d))
wait("pc QR_READY on both nodes", lambda: all(
    data(p, "/api/sessions/pc/status").get("state") == "QR_READY" for p in HTTP.values()))
pc_own = wait("an owner of pc", lambda: owner("pc"))
pc_oth = other_than(pc_own)
rep = stubs[pc_oth].RequestPairingCode(ep.PairingCodeRequest(session="pc", phone_number=PHONE),
                                       metadata=MD, timeout=40)
check(CODE_RE.match(rep.pairing_code) and 0 < rep.expires_in <= 180 and rep.message.startswith("Enter this code"),
      "forwarded RequestPairingCode: %s" % rep)
s = stubs[pc_oth].GetStatus(ep.GetStatusRequest(session="pc"), metadata=MD, timeout=5)
check(s.link_code == rep.pairing_code, "the code in GetStatus on the same node at once: %s" % s)
c, d = rpc_error(lambda: stubs[pc_oth].RequestPairingCode(
    ep.PairingCodeRequest(session="pc", phone_number=PHONE), metadata=MD, timeout=10))
check(c == grpc.StatusCode.RESOURCE_EXHAUSTED, "a second code within 10 s (the owner's 429): %s %s" % (c, d))
st, d = req(cport, "POST", "/control/pair-code", rep.pairing_code.encode())
check(st == 200 and json.loads(d)["ok"], "typing the code: %s" % d)
wait("pc CONNECTED on both nodes", lambda: all(
    data(p, "/api/sessions/pc/status").get("state") == "CONNECTED" for p in HTTP.values()))
c, d = rpc_error(lambda: stubs[pc_oth].RequestPairingCode(
    ep.PairingCodeRequest(session="pc", phone_number=PHONE), metadata=MD, timeout=10))
check(c == grpc.StatusCode.FAILED_PRECONDITION and ELSEWHERE not in d, "linked (the owner's 409): %s %s" % (c, d))

# Logout on the other node: logged out on the owner
rep = stubs[oth].Logout(ep.LogoutRequest(session="sales"), metadata=MD, timeout=20)
check(rep.message == "Logged out" and rep.status.session == "sales", "forwarded Logout: %s" % rep)
# (a linked session unlinks on WhatsApp first: the reply may still show it CONNECTED)
wait("logged out on the owner", lambda: data(HTTP[own], "/api/sessions/sales/status").get("detail") == "logged_out")
check(data(HTTP[own], "/api/sessions/sales/status").get("state") == "DISCONNECTED", "DISCONNECTED on the owner")

# a client that gives up while its command travels (the owner paused for
# a second, less than its lease): the request is cancelled, no harm
own_proc = nodes[own[-1]][0]
own_proc.send_signal(signal.SIGSTOP)
try:
    c, d = rpc_error(lambda: stubs[oth].Reconnect(ep.ReconnectRequest(session="sales", wait_ms=20000),
                                                  metadata=MD, timeout=0.8))
finally:
    own_proc.send_signal(signal.SIGCONT)
check(c == grpc.StatusCode.DEADLINE_EXCEEDED, "a Reconnect given up: %s %s" % (c, d))
time.sleep(0.5)
rep = stubs[oth].Reconnect(ep.ReconnectRequest(session="sales"), metadata=MD, timeout=30)
check(rep.status.state == ep.QR_READY and rep.HasField("qr") and rep.qr.data_url.startswith("data:image/png"),
      "forwarded Reconnect with a new QR: %s" % rep.status)
q = stubs[own].GetQR(ep.GetQRRequest(session="sales"), metadata=MD, timeout=5)
check(q.data_url == rep.qr.data_url, "the owner's QR is the one answered")

# DeleteSession on the node that does not run "pc": gone on both nodes
rep = stubs[pc_oth].DeleteSession(ep.DeleteSessionRequest(name="pc"), metadata=MD, timeout=30)
check(rep.message, "forwarded DeleteSession: %s" % rep)
c, _ = rpc_error(lambda: stubs[pc_oth].GetStatus(ep.GetStatusRequest(session="pc"), timeout=5))
check(c == grpc.StatusCode.NOT_FOUND, "pc gone on the node asked, at once: %s" % c)
wait("pc gone on the owner", lambda: req(HTTP[pc_own], "GET", "/api/sessions/pc/status")[0] == 404)
c, _ = rpc_error(lambda: stubs[pc_oth].DeleteSession(ep.DeleteSessionRequest(name="pc"), metadata=MD, timeout=10))
check(c == grpc.StatusCode.NOT_FOUND, "deleting it again: %s" % c)
# only the admin key may delete (decided on this node already)
c, _ = rpc_error(lambda: stubs[oth].DeleteSession(ep.DeleteSessionRequest(name="sales"),
                                                  metadata=[("x-api-key", sales_key)], timeout=10))
check(c in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED),
      "DeleteSession with a session key: %s" % c)

# a node without CLUSTER_SECRET does not forward: FAILED_PRECONDITION
pc, http_c, gport_c, log_c = start_node("c", None)
wait("three live nodes", lambda: len([n for n in json.loads(req(A, "GET", "/api/cluster")[1])["nodes"]
                                      if n["live"]]) == 3)
wait("sales known on c", lambda: data(http_c, "/api/sessions/sales/status").get("state"))
check(owner("sales") == own, "sales still runs on %s" % own)
stub_c = epg.GatewayStub(grpc.insecure_channel("127.0.0.1:%d" % gport_c))
for name, call in (("Logout", lambda: stub_c.Logout(ep.LogoutRequest(session="sales"), metadata=MD, timeout=10)),
                   ("Reconnect", lambda: stub_c.Reconnect(ep.ReconnectRequest(session="sales", keep_credentials=True),
                                                          metadata=MD, timeout=10)),
                   ("DeleteSession", lambda: stub_c.DeleteSession(ep.DeleteSessionRequest(name="sales"),
                                                                  metadata=MD, timeout=10))):
    c, d = rpc_error(call)
    check(c == grpc.StatusCode.FAILED_PRECONDITION and ELSEWHERE in d, "%s without a secret: %s %r" % (name, c, d))
for method, path in (("POST", "/api/sessions/sales/logout"), ("POST", "/api/sessions/sales/reconnect"),
                     ("DELETE", "/api/sessions/sales")):
    st, d = req(http_c, method, path, b"{}" if method == "POST" else None)
    check(st == 409 and ELSEWHERE.encode() in d, "HTTP %s %s without a secret: %d %s" % (method, path, st, d))

# every node stops cleanly
for p in [v[0] for v in nodes.values()] + [pc]:
    p.send_signal(signal.SIGTERM)
for p in [v[0] for v in nodes.values()] + [pc]:
    check(p.wait(timeout=30) == 0, "a node's exit status")
print("ok")
