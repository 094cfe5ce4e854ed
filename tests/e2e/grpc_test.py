#!/usr/bin/python3
"""End-to-end tests of the gRPC endpoint with Debian's python3-grpcio against
wa-gateway + the fake WhatsApp server on loopback: every RPC, 100 concurrent
WatchStatus streams receiving the same ordered transitions of a pairing,
cancelled and deadline-expired streams released, UNAUTHENTICATED for a
missing or wrong key, health Check/Watch, reflection v1alpha and v1 (list,
file descriptors with dependencies, and a call built from them alone),
INVALID_ARGUMENT for a malformed request with the server still serving,
`buf curl` through reflection, and streams ended with UNAVAILABLE at
shutdown."""
import os, socket, subprocess, sys, threading, time
import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import SRC, TMP, GW, procs, fail, check, free_port, start_fakewa, gateway_env

KEY = "grpc-test-key"
MD = [("x-api-key", KEY)]


# stubs generated from the public proto and the standard ones
gen = os.path.join(TMP, "gen")
os.makedirs(gen, exist_ok=True)
subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I" + os.path.join(SRC, "proto"),
                "-I/usr/share/grpc-proto", "--python_out=" + gen, "--grpc_python_out=" + gen,
                "gateway.proto", "grpc/health/v1/health.proto",
                "grpc/reflection/v1alpha/reflection.proto", "grpc/reflection/v1/reflection.proto"],
               check=True)
sys.path.insert(0, gen)
grpc.__path__.append(os.path.join(gen, "grpc"))  # grpc.health / grpc.reflection live in gen
import gateway_pb2 as pb, gateway_pb2_grpc as pbg
from grpc.health.v1 import health_pb2, health_pb2_grpc
from grpc.reflection.v1alpha import reflection_pb2 as ra, reflection_pb2_grpc as rag
from grpc.reflection.v1 import reflection_pb2 as r1, reflection_pb2_grpc as r1g

env = start_fakewa("--refs", "3", "--qr-first-ms", "5000", "--qr-next-ms", "3000")
fw, cport = env["proc"], env["cport"]
hport, gport = free_port(), free_port()
log = open(os.path.join(TMP, "gw.log"), "w")
gw = subprocess.Popen([GW, "--port", str(hport), "--grpc-port", str(gport), "--api-key", KEY,
                       "--data-dir", os.path.join(TMP, "data"), "--qr-first-ms", "5000",
                       "--qr-next-ms", "3000"],
                      env=gateway_env(env),
                      stderr=log)
procs.append(gw)
ch = grpc.insecure_channel("127.0.0.1:%d" % gport)
grpc.channel_ready_future(ch).result(timeout=10)
stub = pbg.GatewayStub(ch)


def status():
    return stub.GetStatus(pb.GetStatusRequest(), timeout=5)


def wait_state(state, detail=None, secs=10):
    end = time.time() + secs
    while time.time() < end:
        s = status()
        if s.state == state and (detail is None or s.detail == detail):
            return s
        time.sleep(0.05)
    fail("state %s not reached (%s)" % (state, status()))


def control(path, body=b""):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", cport, timeout=5)
    c.request("POST" if body else "GET", path, body=body or None)
    r = c.getresponse()
    return r.status, r.read()


def code_of(fn):
    try:
        fn()
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK


s = wait_state(pb.QR_READY)
check(s.has_qr and not s.connected and not s.HasField("account"), "QR_READY status %s" % s)

# missing or wrong key -> UNAUTHENTICATED on every protected method
for md in ([], [("x-api-key", "wrong")]):
    check(code_of(lambda: stub.GetQR(pb.GetQRRequest(), metadata=md, timeout=5)) == grpc.StatusCode.UNAUTHENTICATED, "GetQR key")
    check(code_of(lambda: stub.Reconnect(pb.ReconnectRequest(), metadata=md, timeout=5)) == grpc.StatusCode.UNAUTHENTICATED, "Reconnect key")
    check(code_of(lambda: stub.Logout(pb.LogoutRequest(), metadata=md, timeout=5)) == grpc.StatusCode.UNAUTHENTICATED, "Logout key")
    check(code_of(lambda: next(stub.WatchStatus(pb.WatchStatusRequest(), metadata=md, timeout=5))) == grpc.StatusCode.UNAUTHENTICATED, "Watch key")
check(code_of(lambda: stub.GetStatus(pb.GetStatusRequest(session="nope"), timeout=5)) == grpc.StatusCode.NOT_FOUND, "unknown session")

# GetQR: the PNG decodes to the QR string
q = stub.GetQR(pb.GetQRRequest(), metadata=MD, timeout=5)
check(q.qr.startswith("https://wa.me/settings/linked_devices#") and q.expires_in > 0
      and q.data_url.startswith("data:image/png;base64,"), "GetQR %s" % q.qr[:60])
png = os.path.join(TMP, "qr.png")
open(png, "wb").write(q.png)
dec = subprocess.run(["zbarimg", "--raw", "-q", png], capture_output=True, text=True).stdout.strip()
check(dec == q.qr, "QR PNG decodes to %r" % dec)

# 100 concurrent WatchStatus streams see the same ordered transitions
N = 100
results = [None] * N
started = threading.Barrier(N + 1)


def watch(i):
    seen = []
    it = stub.WatchStatus(pb.WatchStatusRequest(), metadata=MD, timeout=30)
    try:
        for st in it:
            if not seen:
                started.wait()
            seen.append((st.seq, st.state))
            if st.state == pb.CONNECTED:
                break
    except grpc.RpcError as e:
        seen.append(("error", e.code()))
    it.cancel()
    results[i] = seen


threads = [threading.Thread(target=watch, args=(i,)) for i in range(N)]
for t in threads:
    t.start()
started.wait(timeout=20)
st, _ = control("/control/scan", q.qr.encode())
check(st == 200, "scan refused")
for t in threads:
    t.join(30)
ref = None
for i, seen in enumerate(results):
    check(seen and seen[-1][1] == pb.CONNECTED, "stream %d ended %s" % (i, seen and seen[-1]))
    seqs = [x[0] for x in seen]
    check(seqs == list(range(seqs[0], seqs[0] + len(seqs))), "stream %d lost or reordered: %s" % (i, seqs))
    tail = [x for x in seen if x[0] >= results[0][0][0]]
    if ref is None:
        ref = tail
    check(tail[-len(ref):] == ref[-len(tail):], "stream %d saw other transitions" % i)
print("100 streams ok:", [x[1] for x in results[0]])

# cancelled streams are released; a deadline-expired one too
def grpc_subscribers():
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", hport, timeout=5)
    c.request("GET", "/metrics")
    for line in c.getresponse().read().decode().splitlines():
        if line.startswith('wagw_subscribers{transport="grpc"}'):
            return int(line.split()[-1])
    return -1


for _ in range(50):
    if grpc_subscribers() == 0:
        break
    time.sleep(0.1)
check(grpc_subscribers() == 0, "cancelled streams not released: %d" % grpc_subscribers())
it = stub.WatchStatus(pb.WatchStatusRequest(), metadata=MD, timeout=0.7)
codes = []
try:
    for st in it:
        codes.append(st.state)
except grpc.RpcError as e:
    codes.append(e.code())
check(codes[0] == pb.CONNECTED and codes[-1] == grpc.StatusCode.DEADLINE_EXCEEDED, "deadline stream %s" % codes)
time.sleep(0.3)
check(grpc_subscribers() == 0, "deadline stream not released")

# connected: account with the key, GetQR FAILED_PRECONDITION
s = stub.GetStatus(pb.GetStatusRequest(), metadata=MD, timeout=5)
check(s.connected and s.account.phone == "15551234567", "connected status %s" % s)
check(code_of(lambda: stub.GetQR(pb.GetQRRequest(), metadata=MD, timeout=5)) == grpc.StatusCode.FAILED_PRECONDITION, "GetQR connected")

# health
h = health_pb2_grpc.HealthStub(ch)
check(h.Check(health_pb2.HealthCheckRequest(), timeout=5).status == health_pb2.HealthCheckResponse.SERVING, "health")
check(h.Check(health_pb2.HealthCheckRequest(service="wagateway.v1.Gateway"), timeout=5).status == health_pb2.HealthCheckResponse.SERVING, "health svc")
check(code_of(lambda: h.Check(health_pb2.HealthCheckRequest(service="x.Y"), timeout=5)) == grpc.StatusCode.NOT_FOUND, "health unknown")
hw = h.Watch(health_pb2.HealthCheckRequest(), timeout=5)
check(next(hw).status == health_pb2.HealthCheckResponse.SERVING, "health watch")
hw.cancel()

# reflection v1alpha and v1: list, descriptors with dependencies, a call built from them
for mod, g in ((ra, rag), (r1, r1g)):
    rs = g.ServerReflectionStub(ch)
    reqs = [mod.ServerReflectionRequest(list_services=""),
            mod.ServerReflectionRequest(file_containing_symbol="wagateway.v1.Gateway"),
            mod.ServerReflectionRequest(file_by_filename="grpc/health/v1/health.proto"),
            mod.ServerReflectionRequest(file_containing_symbol="no.Such")]
    resps = list(rs.ServerReflectionInfo(iter(reqs), timeout=5))
    names = sorted(s.name for s in resps[0].list_services_response.service)
    check(names == sorted(["wagateway.v1.Gateway", "grpc.health.v1.Health",
                           "grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection"]),
          "list services %s" % names)
    files = [descriptor_pb2.FileDescriptorProto.FromString(b) for b in resps[1].file_descriptor_response.file_descriptor_proto]
    check([f.name for f in files][0] == "gateway.proto" or files[0].package == "wagateway.v1", "descriptor %s" % [f.name for f in files])
    hf = [descriptor_pb2.FileDescriptorProto.FromString(b) for b in resps[2].file_descriptor_response.file_descriptor_proto]
    check(hf and hf[0].package == "grpc.health.v1", "health descriptor")
    check(resps[3].error_response.error_code == 5, "unknown symbol")
    pool = descriptor_pool.DescriptorPool()
    for f in files:
        pool.Add(f)
    svc = pool.FindServiceByName("wagateway.v1.Gateway")
    methods = sorted(m.name for m in svc.methods)
    check(set(methods) >= {"GetQR", "GetStatus", "Logout", "Reconnect", "WatchStatus",
                           "GetPasskeyOptions", "SendPasskeyAssertion", "RequestPairingCode"}, methods)
    m = svc.methods_by_name["GetStatus"]
    factory = message_factory.MessageFactory(pool)
    Req = factory.GetPrototype(m.input_type)
    Resp = factory.GetPrototype(m.output_type)
    call = ch.unary_unary("/wagateway.v1.Gateway/GetStatus", request_serializer=Req.SerializeToString,
                          response_deserializer=Resp.FromString)
    r = call(Req(), timeout=5)
    check(r.state == 4, "dynamic GetStatus %s" % r)  # CONNECTED
    dyn = {}
    for meth in svc.methods:
        dyn[meth.name] = (factory.GetPrototype(meth.input_type), factory.GetPrototype(meth.output_type))
    Rq, Rs = dyn["GetQR"]
    qr_call = ch.unary_unary("/wagateway.v1.Gateway/GetQR", request_serializer=Rq.SerializeToString,
                             response_deserializer=Rs.FromString)
    check(code_of(lambda: qr_call(Rq(), metadata=MD, timeout=5)) == grpc.StatusCode.FAILED_PRECONDITION, "dynamic GetQR")
    Wq, Ws = dyn["WatchStatus"]
    wcall = ch.unary_stream("/wagateway.v1.Gateway/WatchStatus", request_serializer=Wq.SerializeToString,
                            response_deserializer=Ws.FromString)
    it = wcall(Wq(), metadata=MD, timeout=5)
    check(next(it).state == 4, "dynamic WatchStatus")
    it.cancel()
print("reflection ok")

# malformed request -> INVALID_ARGUMENT, and the server keeps serving
raw = ch.unary_unary("/wagateway.v1.Gateway/GetStatus", request_serializer=lambda b: b,
                     response_deserializer=lambda b: b)
check(code_of(lambda: raw(b"\x0a\xff\xff\xff\xff\x0f", timeout=5)) == grpc.StatusCode.INVALID_ARGUMENT, "malformed request")
nope = ch.unary_unary("/wagateway.v1.Gateway/Nope", request_serializer=lambda b: b, response_deserializer=lambda b: b)
check(code_of(lambda: nope(b"", timeout=5)) == grpc.StatusCode.UNIMPLEMENTED, "unknown method")
# an oversize request (over 64 KB) -> RESOURCE_EXHAUSTED, still serving
check(code_of(lambda: raw(b"\x0a\x80\x80\x08" + b"x" * 131072, timeout=5)) ==
      grpc.StatusCode.RESOURCE_EXHAUSTED, "oversize request")
check(status().connected, "still serving")

# buf curl through reflection, without any .proto
out = subprocess.run(["buf", "curl", "--protocol", "grpc", "--http2-prior-knowledge", "--list-services",
                      "http://127.0.0.1:%d" % gport], capture_output=True, text=True)
check("wagateway.v1.Gateway" in out.stdout, "buf curl list: %s %s" % (out.stdout, out.stderr))
out = subprocess.run(["buf", "curl", "--protocol", "grpc", "--http2-prior-knowledge", "-d", "{}",
                      "http://127.0.0.1:%d/wagateway.v1.Gateway/GetStatus" % gport], capture_output=True, text=True)
check('"state": "CONNECTED"' in out.stdout, "buf curl call: %s %s" % (out.stdout, out.stderr))

# Reconnect (unlink, new QR) and Logout, also called from reflection alone
Rq, Rs = dyn["Reconnect"]
rep = ch.unary_unary("/wagateway.v1.Gateway/Reconnect", request_serializer=Rq.SerializeToString,
                     response_deserializer=Rs.FromString)(Rq(), metadata=MD, timeout=15)
check(rep.message == "WhatsApp reconnection initiated" and rep.qr.qr.startswith("https://wa.me/")
      and rep.status.state == 3, "Reconnect %s" % rep)
Lq, Ls = dyn["Logout"]
lo = ch.unary_unary("/wagateway.v1.Gateway/Logout", request_serializer=Lq.SerializeToString,
                    response_deserializer=Ls.FromString)(Lq(), metadata=MD, timeout=5)
check(lo.status.state == 1 and lo.status.detail == "logged_out", "Logout %s" % lo)

# shutdown ends open streams with a final status
it = stub.WatchStatus(pb.WatchStatusRequest(), metadata=MD, timeout=20)
next(it)
gw.terminate()
end_code = None
try:
    for _ in it:
        pass
except grpc.RpcError as e:
    end_code = e.code()
check(end_code == grpc.StatusCode.UNAVAILABLE, "stream end at shutdown: %s" % end_code)
check(gw.wait(10) == 0, "gateway exit status")

# TLS when a certificate and key are configured
subprocess.run("cd '%s' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
               "-subj /CN=localhost -addext subjectAltName=DNS:localhost -keyout tls.key -out tls.pem 2>/dev/null" % TMP,
               shell=True, check=True)
tport, thport = free_port(), free_port()
tgw = subprocess.Popen([GW, "--port", str(thport), "--grpc-port", str(tport), "--api-key", KEY,
                        "--data-dir", os.path.join(TMP, "data-tls"), "--tls-cert", os.path.join(TMP, "tls.pem"),
                        "--tls-key", os.path.join(TMP, "tls.key")],
                       env=gateway_env(env), stderr=log)
procs.append(tgw)
creds = grpc.ssl_channel_credentials(open(os.path.join(TMP, "tls.pem"), "rb").read())
tch = grpc.secure_channel("localhost:%d" % tport, creds)
grpc.channel_ready_future(tch).result(timeout=10)
ts = pbg.GatewayStub(tch).GetStatus(pb.GetStatusRequest(), timeout=5)
check(ts.state in (pb.CONNECTING, pb.QR_READY), "TLS GetStatus %s" % ts)
plain = grpc.insecure_channel("127.0.0.1:%d" % tport)
check(code_of(lambda: pbg.GatewayStub(plain).GetStatus(pb.GetStatusRequest(), timeout=3)) == grpc.StatusCode.UNAVAILABLE,
      "plaintext call to the TLS port")
tgw.terminate()
check(tgw.wait(10) == 0, "TLS gateway exit status")
fw.terminate()
check(KEY not in open(os.path.join(TMP, "gw.log")).read(), "the key was logged")
print("PASS")
