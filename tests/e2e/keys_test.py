#!/usr/bin/python3
"""Issue 13 point 2, keys, with the real gateway on loopback (IPv4 and
IPv6): wrong keys are counted on every route and method that accepts a key,
`GET status` and gRPC `GetStatus` included (before, a wrong key there was
never counted, so the key could be guessed through them without limit); the
lockout after 10 wrong keys refuses further wrong keys with 429 /
RESOURCE_EXHAUSTED but never the right key (before, the right key was
refused too: anyone could lock out everybody behind an address); an address
reaching the service over HTTP and over gRPC is one client (before, gRPC
counted "[::1]" and HTTP "::1" apart); a key shorter than 16 bytes gives a
start-up warning (there was none). The key never appears in the log."""
import http.client, json, os, sys, time
import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import TMP, procs, fail, check, start_fakewa, start_gateway, grpc_stubs

pb, pbg, _, _ = grpc_stubs()
KEY = "keys-test-key-0123456789abcdef"
WRONG = [("x-api-key", "wrong-key")]


def http_req(host, port, method, path, headers=None):
    c = http.client.HTTPConnection(host, port, timeout=5)
    c.request(method, path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body


def grpc_code(fn):
    try:
        fn()
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK


def failures(host, port):
    _, b = http_req(host, port, "GET", "/metrics")
    for line in b.decode().splitlines():
        if line.startswith("wagw_auth_failures_total "):
            return int(line.split()[1])
    fail("no wagw_auth_failures_total metric")


fw = start_fakewa("--refs", "5", "--qr-first-ms", "30000", "--qr-next-ms", "20000")

# --- IPv4: status counts wrong keys; the right key passes a lockout ---
gw, port, gport, log = start_gateway(fw, "v4", ["--api-key", KEY])
H = "127.0.0.1"
for i in range(5):
    st, b = http_req(H, port, "GET", "/api/whatsapp/status", {"X-API-Key": "guess-%d" % i})
    check(st == 200 and "account" not in json.loads(b)["data"], "status with a wrong key: %d" % st)
check(failures(H, port) == 5, "wrong keys on status not counted (%d)" % failures(H, port))
ch = grpc.insecure_channel("%s:%d" % (H, gport))
stub = pbg.GatewayStub(ch)
for i in range(5):
    st = stub.GetStatus(pb.GetStatusRequest(), metadata=WRONG, timeout=5)
    check(not st.HasField("account"), "GetStatus with a wrong key shows the account")
check(failures(H, port) == 10, "wrong keys on GetStatus not counted (%d)" % failures(H, port))
# ten wrong keys in all (5 + 5, both transports): the address is locked
st, _ = http_req(H, port, "GET", "/api/whatsapp/qr", {"X-API-Key": "guess-x"})
check(st == 429, "no lockout after 10 wrong keys on status/GetStatus (%d)" % st)
check(grpc_code(lambda: stub.GetQR(pb.GetQRRequest(), metadata=WRONG, timeout=5))
      == grpc.StatusCode.RESOURCE_EXHAUSTED, "gRPC wrong key during the lockout")
# the right key is never locked out
st, _ = http_req(H, port, "GET", "/api/whatsapp/qr", {"X-API-Key": KEY})
check(st in (200, 409), "the right key was locked out (%d)" % st)
check(grpc_code(lambda: stub.GetStatus(pb.GetStatusRequest(), metadata=[("x-api-key", KEY)], timeout=5))
      == grpc.StatusCode.OK, "the right key locked out over gRPC")
st, _ = http_req(H, port, "GET", "/api/whatsapp/status", {"X-API-Key": KEY})
check(st == 200, "status with the right key during the lockout (%d)" % st)
ch.close()
gw.terminate()
check(gw.wait(10) == 0, "gateway exit status")
check("shorter than 16" not in open(log).read(), "warning for a long key")
check(KEY not in open(log).read(), "the key was logged")

# --- IPv6: one client over both transports ---
gw, port, gport, log = start_gateway(fw, "v6", ["--api-key", KEY, "--host", "::1"])
ch = grpc.insecure_channel("[::1]:%d" % gport)
stub = pbg.GatewayStub(ch)
for i in range(10):
    check(grpc_code(lambda: stub.GetQR(pb.GetQRRequest(), metadata=WRONG, timeout=5))
          in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.RESOURCE_EXHAUSTED), "gRPC wrong key")
st, _ = http_req("::1", port, "GET", "/api/whatsapp/qr", {"X-API-Key": "guess"})
check(st == 429, "gRPC's wrong keys from ::1 did not count for HTTP from ::1 (%d)" % st)
ch.close()
gw.terminate()
check(gw.wait(10) == 0, "gateway exit status")

# --- a short key: a start-up warning, without the key ---
gw, port, gport, log = start_gateway(fw, "short", ["--api-key", "tiny-key"])
gw.terminate()
check(gw.wait(10) == 0, "gateway exit status")
text = open(log).read()
check("WARN" in text and "shorter than 16 bytes" in text, "no warning for a short key: %s" % text[:500])
check("tiny-key" not in text, "the short key was logged")
fw["proc"].terminate()
print("PASS")
