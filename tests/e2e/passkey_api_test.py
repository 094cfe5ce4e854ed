#!/usr/bin/python3
"""End-to-end test of the passkey step of linking through the HTTP and gRPC
APIs, with the real programs on loopback (wa-gateway + the fake WhatsApp
server, which verifies assertions as a relying party), the assertions signed
in software with a P-256 key made by openssl: the scan answered with a
passkey request; the status says passkey_required and shows the WebAuthn
options to key holders only (JSON and gRPC); GET passkey needs the key and
gives the options; POST passkey refuses a malformed body (400), an
assertion for another challenge (400) and a bad signature (WhatsApp refuses:
502); gRPC GetPasskeyOptions gives the same options and SendPasskeyAssertion
completes the step; the code the phone shows appears in the status; the
gateway reaches CONNECTED; then both answer 409 / FAILED_PRECONDITION; both
RPCs are in reflection."""
import json, os, subprocess, sys, time
import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import SRC, TMP, GW, procs, fail, check, free_port, start_fakewa, gateway_env, req
from passkeylib import Passkey, Events

KEY = "passkey-test-key"
RP_ID = "web.whatsapp.com"
ORIGIN = "https://web.whatsapp.com"

gen = os.path.join(TMP, "gen")
os.makedirs(gen, exist_ok=True)
subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I" + os.path.join(SRC, "proto"),
                "-I/usr/share/grpc-proto", "--python_out=" + gen, "--grpc_python_out=" + gen,
                "gateway.proto", "grpc/reflection/v1/reflection.proto"], check=True)
sys.path.insert(0, gen)
grpc.__path__.append(os.path.join(gen, "grpc"))
import gateway_pb2 as pb, gateway_pb2_grpc as pbg
from grpc.reflection.v1 import reflection_pb2 as r1, reflection_pb2_grpc as r1g

env = start_fakewa("--refs", "6", "--qr-first-ms", "30000", "--qr-next-ms", "20000")
cport = env["cport"]
hport, gport = free_port(), free_port()
gw = subprocess.Popen([GW, "--port", str(hport), "--grpc-port", str(gport), "--api-key", KEY,
                       "--data-dir", os.path.join(TMP, "data"), "--qr-first-ms", "30000",
                       "--qr-next-ms", "20000"],
                      env=gateway_env(env), stderr=open(os.path.join(TMP, "gw.log"), "w"))
procs.append(gw)


def http(method, path, body=None, key=KEY, ctype=None):
    h = {"X-API-Key": key} if key else {}
    if ctype:
        h["Content-Type"] = ctype
    st, _, data = req(hport, method, path, body=body, headers=h, timeout=30)
    return st, json.loads(data) if data[:1] == b"{" else data


def control(method, path, body=None):
    st, _, data = req(cport, method, path, body=body)
    return st, json.loads(data)


def status(key=KEY):
    return http("GET", "/api/whatsapp/status", key=key)[1]["data"]


def wait_detail(state, detail, secs=10):
    end = time.time() + secs
    last = None
    while time.time() < end:
        try:
            last = status()
            if last["state"] == state and (detail is None or last["detail"] == detail):
                return last
        except OSError:
            pass
        time.sleep(0.05)
    fail("%s/%s not reached (last %s)" % (state, detail, last))


for _ in range(100):
    try:
        if req(hport, "GET", "/healthz")[0] == 200:
            break
    except OSError:
        time.sleep(0.05)
ch = grpc.insecure_channel("127.0.0.1:%d" % gport)
grpc.channel_ready_future(ch).result(timeout=10)
stub = pbg.GatewayStub(ch)
MD = [("x-api-key", KEY)]

# before any passkey step: 409 / FAILED_PRECONDITION, 401 without the key
wait_detail("QR_READY", None)
check(http("GET", "/api/whatsapp/passkey")[0] == 409, "GET passkey without a step")
check(http("GET", "/api/whatsapp/passkey", key=None)[0] == 401, "GET passkey without the key")
check(http("POST", "/whatsapp/passkey", b"{}", key=None)[0] == 401, "POST passkey without the key")
try:
    stub.GetPasskeyOptions(pb.PasskeyOptionsRequest(), metadata=MD, timeout=5)
    fail("GetPasskeyOptions without a step succeeded")
except grpc.RpcError as e:
    check(e.code() == grpc.StatusCode.FAILED_PRECONDITION, "GetPasskeyOptions: %s" % e.code())

# the account needs its passkey: the scan is answered with the request
pk = Passkey()
st, j = pk.register(control, RP_ID, ORIGIN)
check(st == 200, "credential refused: %s" % j)
check(control("POST", "/control/passkey/on-scan")[0] == 200, "on-scan refused")
events = Events(hport, KEY)
qr = req(hport, "GET", "/api/whatsapp/qr?format=raw", headers={"X-API-Key": KEY})[2]
st, j = control("POST", "/control/scan", qr)
check(st == 202 and j.get("passkey"), "scan: %s %s" % (st, j))
s = wait_detail("CONNECTING", "passkey_required")
opts = s.get("passkeyOptions")
check(isinstance(opts, dict) and opts.get("rpId") == RP_ID and opts.get("challenge"),
      "status passkeyOptions: %r" % opts)
check("passkeyOptions" not in status(key=None), "passkeyOptions shown without the key")
st, j = http("GET", "/whatsapp/passkey")
check(st == 200 and j["data"]["passkeyOptions"] == opts, "GET passkey: %s %s" % (st, j))
check(j["data"]["detail"] == "passkey_required", "GET passkey detail")
o = stub.GetPasskeyOptions(pb.PasskeyOptionsRequest(), metadata=MD, timeout=5)
check(json.loads(o.options_json) == opts, "gRPC options differ")
gs = stub.GetStatus(pb.GetStatusRequest(), metadata=MD, timeout=5)
check(json.loads(gs.passkey_options_json) == opts, "gRPC Status.passkey_options_json")
check(stub.GetStatus(pb.GetStatusRequest(), timeout=5).passkey_options_json == "",
      "gRPC Status shows the options without the key")

# refusals: malformed (400), another challenge (400), a bad signature (502)
for body in [b"", b"{", b"[]", b'{"id":"AA"}', pk.assertion(opts["challenge"], RP_ID, ORIGIN)[:-2].encode()]:
    st, j = http("POST", "/api/whatsapp/passkey", body, ctype="application/json")
    check(st == 400 and j["success"] is False, "malformed %r: %s %s" % (body[:20], st, j))
other = pk.assertion("A" * 43, RP_ID, ORIGIN).encode()
st, j = http("POST", "/api/whatsapp/passkey", other, ctype="application/json")
check(st == 400 and "challenge" in j["message"], "another challenge: %s %s" % (st, j))
bad = pk.assertion(opts["challenge"], RP_ID, ORIGIN, tamper=True).encode()
st, j = http("POST", "/api/whatsapp/passkey", bad, ctype="application/json")
check(st == 502 and "refused" in j["message"], "bad signature: %s %s" % (st, j))
fst = control("GET", "/control/state")[1]["passkey"]
check(fst["assertionsBad"] == 1 and fst["assertionsOk"] == 0, "fake counters: %s" % fst)
try:
    stub.SendPasskeyAssertion(pb.PasskeyAssertionRequest(assertion_json="{"), metadata=MD, timeout=5)
    fail("malformed gRPC assertion accepted")
except grpc.RpcError as e:
    check(e.code() == grpc.StatusCode.INVALID_ARGUMENT, "SendPasskeyAssertion: %s" % e.code())
try:
    stub.SendPasskeyAssertion(pb.PasskeyAssertionRequest(assertion_json="{}"), timeout=5)
    fail("gRPC assertion without the key accepted")
except grpc.RpcError as e:
    check(e.code() == grpc.StatusCode.UNAUTHENTICATED, "no key: %s" % e.code())
check(status()["detail"] == "passkey_required", "still waiting for the passkey")

# a good assertion over gRPC completes the step
good = pk.assertion(opts["challenge"], RP_ID, ORIGIN)
rep = stub.SendPasskeyAssertion(pb.PasskeyAssertionRequest(assertion_json=good), metadata=MD,
                                timeout=30)
check("accepted" in rep.message.lower(), "reply: %r" % rep.message)
wait_detail("CONNECTED", None, 10)
time.sleep(0.3)
fst = control("GET", "/control/state")[1]
pkst = fst["passkey"]
check(pkst["assertionsOk"] == 1 and pkst["handoffOk"] == 1 and pkst["commitmentsOk"] == 1 and
      pkst["pairingRequestsOk"] == 1, "fake counters after linking: %s" % pkst)
check(fst["paired"] == 1 and fst["unacked"] == 0, "fake: %s" % fst)
codes = events.find(lambda e: e.get("detail") == "passkey_confirm")
check(codes and codes[-1].get("linkCode") == pkst["code"],
      "the code shown (%s) is not the phone's (%s)" % (codes and codes[-1].get("linkCode"), pkst["code"]))
check(not events.find(lambda e: e.get("detail") == "passkey_confirm" and "passkeyOptions" in e),
      "options still shown with the code")
events.close()

# nothing pending any more
check(http("GET", "/api/whatsapp/passkey")[0] == 409, "GET passkey after linking")
st, j = http("POST", "/api/whatsapp/passkey", good.encode(), ctype="application/json")
check(st == 409, "POST passkey after linking: %s %s" % (st, j))

# reflection knows both RPCs
rs = r1g.ServerReflectionStub(ch)
resp = list(rs.ServerReflectionInfo(iter([r1.ServerReflectionRequest(
    file_containing_symbol="wagateway.v1.Gateway")]), timeout=5))
blob = b"".join(resp[0].file_descriptor_response.file_descriptor_proto)
check(b"GetPasskeyOptions" in blob and b"SendPasskeyAssertion" in blob and
      b"passkey_options_json" in blob, "reflection lacks the passkey RPCs")

gw.terminate()
check(gw.wait(10) == 0, "gateway exit status")
env["proc"].terminate()
print("PASS")
