#!/usr/bin/python3
"""End-to-end tests of the gRPC endpoint with Debian's python3-grpcio against
wa-gateway + the fake WhatsApp server on loopback: every RPC, 100 concurrent
WatchStatus streams receiving the same ordered transitions of a pairing,
cancelled and deadline-expired streams released, UNAUTHENTICATED for a
missing or wrong key, health Check/Watch, reflection v1alpha and v1 (list,
file descriptors with dependencies, and a call built from them alone),
INVALID_ARGUMENT for a malformed request with the server still serving,
`buf curl` through reflection, and streams ended with UNAVAILABLE at
shutdown. Several sessions: CreateSession, ListSessions (state filter),
RotateSessionKey, DeleteSession (a deleted session's stream ends NOT_FOUND,
a linked one is removed on the fake server), WatchSessions seeing every
session's changes in order (cancelled and deadline-expired streams
released), the `session` field of every method with per-session keys
(another session's key PERMISSION_DENIED), and the session methods through
`buf curl` with reflection only."""
import json, os, socket, subprocess, sys, threading, time
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
                           "GetPasskeyOptions", "SendPasskeyAssertion", "RequestPairingCode",
                           "CreateSession", "ListSessions", "DeleteSession", "RotateSessionKey",
                           "WatchSessions"}, methods)
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

# --- several sessions: CreateSession, ListSessions, RotateSessionKey,
# DeleteSession, WatchSessions, the `session` field and per-session keys ---
def keyed(key):
    return [("x-api-key", key)]


all_seen, all_end = [], []
all_it = stub.WatchSessions(pb.WatchSessionsRequest(), metadata=MD, timeout=60)


def watch_all():
    try:
        for st in all_it:
            all_seen.append((st.session, st.seq, st.state, st.detail))
    except grpc.RpcError as e:
        all_end.append(e.code())


wa = threading.Thread(target=watch_all)
wa.start()
cr = stub.CreateSession(pb.CreateSessionRequest(name="sales", device_name="Sales desk"), metadata=MD, timeout=10)
check(cr.key and cr.status.session == "sales" and cr.message.startswith("Session created"), "CreateSession %s" % cr)
sales_key = cr.key
sup = stub.CreateSession(pb.CreateSessionRequest(name="support"), metadata=MD, timeout=10)
support_key = sup.key
check(support_key and support_key != sales_key and sup.status.session == "support", "second session")
check(code_of(lambda: stub.CreateSession(pb.CreateSessionRequest(name="sales"), metadata=MD, timeout=5))
      == grpc.StatusCode.FAILED_PRECONDITION, "duplicate name")
check(code_of(lambda: stub.CreateSession(pb.CreateSessionRequest(name="Not A Name"), metadata=MD, timeout=5))
      == grpc.StatusCode.INVALID_ARGUMENT, "malformed name")
check(code_of(lambda: stub.CreateSession(pb.CreateSessionRequest(name="x" * 65), metadata=MD, timeout=5))
      == grpc.StatusCode.INVALID_ARGUMENT, "name too long")
check(code_of(lambda: stub.CreateSession(pb.CreateSessionRequest(name="mine"), metadata=keyed(sales_key), timeout=5))
      == grpc.StatusCode.PERMISSION_DENIED, "CreateSession with a session key")
check(code_of(lambda: stub.CreateSession(pb.CreateSessionRequest(name="mine"), timeout=5))
      == grpc.StatusCode.UNAUTHENTICATED, "CreateSession without a key")


def wait_session(name, state, key=KEY, secs=15):
    end = time.time() + secs
    while time.time() < end:
        s = stub.GetStatus(pb.GetStatusRequest(session=name), metadata=keyed(key), timeout=5)
        if s.state == state:
            return s
        time.sleep(0.05)
    fail("%s: state %s not reached" % (name, state))


# each session its own QR, opened by its own key only
wait_session("sales", pb.QR_READY, sales_key)
wait_session("support", pb.QR_READY, support_key)
q_sales = stub.GetQR(pb.GetQRRequest(session="sales"), metadata=keyed(sales_key), timeout=5)
q_sup = stub.GetQR(pb.GetQRRequest(session="support"), metadata=MD, timeout=5)
check(q_sales.qr.startswith("https://wa.me/") and q_sales.qr != q_sup.qr, "per-session QR codes")
for name, key in (("support", sales_key), ("sales", support_key), ("", sales_key), ("default", support_key)):
    check(code_of(lambda: stub.GetQR(pb.GetQRRequest(session=name), metadata=keyed(key), timeout=5))
          == grpc.StatusCode.PERMISSION_DENIED, "GetQR of %r with another session's key" % name)
check(code_of(lambda: stub.GetQR(pb.GetQRRequest(session="nope"), metadata=MD, timeout=5))
      == grpc.StatusCode.NOT_FOUND, "GetQR of an unknown session")
check(code_of(lambda: stub.GetStatus(pb.GetStatusRequest(session="x" * 65), timeout=5))
      == grpc.StatusCode.INVALID_ARGUMENT, "session name over 64 bytes")
check(code_of(lambda: stub.GetStatus(pb.GetStatusRequest(session="y" * 64), timeout=5))
      == grpc.StatusCode.NOT_FOUND, "64-byte session name")
sup_it = stub.WatchStatus(pb.WatchStatusRequest(session="support"), metadata=keyed(support_key), timeout=60)
first = next(sup_it)
check(first.session == "support" and first.state == pb.QR_READY, "WatchStatus of support %s" % first)
check(code_of(lambda: next(stub.WatchStatus(pb.WatchStatusRequest(session="sales"), metadata=keyed(support_key),
                                            timeout=5))) == grpc.StatusCode.PERMISSION_DENIED,
      "WatchStatus with another session's key")

# link sales: its own key sees its account, another session's key does not
st, _ = control("/control/scan", q_sales.qr.encode())
check(st == 200, "scan of the sales QR refused")
s = wait_session("sales", pb.CONNECTED, sales_key)
check(s.account.phone == "15551234567", "sales account %s" % s)
sales_jid = s.account.jid
o = stub.GetStatus(pb.GetStatusRequest(session="sales"), metadata=keyed(support_key), timeout=5)
check(o.connected and not o.HasField("account"), "another session's key sees the account: %s" % o)
check(not stub.GetStatus(pb.GetStatusRequest(session="sales"), timeout=5).HasField("account"), "no key, no account")

# ListSessions, with the state filter
ls = stub.ListSessions(pb.ListSessionsRequest(), metadata=MD, timeout=5)
names = [x.session for x in ls.sessions]
check(names[:1] == ["default"] and {"sales", "support"} <= set(names), "ListSessions %s" % names)
check([x for x in ls.sessions if x.session == "sales"][0].account.jid == sales_jid, "ListSessions shows the account")
conn = stub.ListSessions(pb.ListSessionsRequest(state=pb.CONNECTED), metadata=MD, timeout=5)
check([x.session for x in conn.sessions] == ["sales"], "ListSessions CONNECTED %s" % conn)
qr_ready = stub.ListSessions(pb.ListSessionsRequest(state=pb.QR_READY), metadata=MD, timeout=5)
check("support" in [x.session for x in qr_ready.sessions] and all(x.state == pb.QR_READY for x in qr_ready.sessions),
      "ListSessions QR_READY")
raw_list = ch.unary_unary("/wagateway.v1.Gateway/ListSessions", request_serializer=lambda b: b,
                          response_deserializer=lambda b: b)
check(code_of(lambda: raw_list(b"\x08\x63", metadata=MD, timeout=5)) == grpc.StatusCode.INVALID_ARGUMENT,
      "ListSessions with a state outside the enum")
for md, code in ((keyed(sales_key), grpc.StatusCode.PERMISSION_DENIED), ([], grpc.StatusCode.UNAUTHENTICATED)):
    check(code_of(lambda: stub.ListSessions(pb.ListSessionsRequest(), metadata=md, timeout=5)) == code,
          "ListSessions with %s" % md)

# RotateSessionKey: by the session's own key; the old one stops working
check(code_of(lambda: stub.RotateSessionKey(pb.RotateSessionKeyRequest(session="support"), metadata=keyed(sales_key),
                                            timeout=5)) == grpc.StatusCode.PERMISSION_DENIED, "rotate another's key")
rk = stub.RotateSessionKey(pb.RotateSessionKeyRequest(session="support"), metadata=keyed(support_key), timeout=5)
check(rk.key and rk.key != support_key and rk.status.session == "support" and rk.message, "RotateSessionKey %s" % rk)
check(code_of(lambda: stub.GetQR(pb.GetQRRequest(session="support"), metadata=keyed(support_key), timeout=5))
      == grpc.StatusCode.UNAUTHENTICATED, "the old key still works")
support_key = rk.key
check(code_of(lambda: stub.GetQR(pb.GetQRRequest(session="support"), metadata=keyed(support_key), timeout=5))
      == grpc.StatusCode.OK, "the new key does not work")
dk = stub.RotateSessionKey(pb.RotateSessionKeyRequest(), metadata=MD, timeout=5)
check(dk.status.session == "default" and dk.key, "RotateSessionKey of default (empty session)")
check(code_of(lambda: stub.GetStatus(pb.GetStatusRequest(), metadata=keyed(dk.key), timeout=5)) == grpc.StatusCode.OK
      and stub.GetStatus(pb.GetStatusRequest(), metadata=keyed(dk.key), timeout=5).session == "default",
      "default's own key on the empty session name")

# DeleteSession: admin only; its streams end NOT_FOUND; a linked one is
# removed on WhatsApp
check(code_of(lambda: stub.DeleteSession(pb.DeleteSessionRequest(name="support"), metadata=keyed(support_key),
                                         timeout=5)) == grpc.StatusCode.PERMISSION_DENIED, "delete with a session key")
check(code_of(lambda: stub.DeleteSession(pb.DeleteSessionRequest(name="default"), metadata=MD, timeout=5))
      == grpc.StatusCode.FAILED_PRECONDITION, "delete default")
check(code_of(lambda: stub.DeleteSession(pb.DeleteSessionRequest(name="nope"), metadata=MD, timeout=5))
      == grpc.StatusCode.NOT_FOUND, "delete an unknown session")
dl = stub.DeleteSession(pb.DeleteSessionRequest(name="support"), metadata=MD, timeout=15)
check(dl.message == "Session deleted", "DeleteSession %s" % dl)
sup_end = None
try:
    for _ in sup_it:
        pass
except grpc.RpcError as e:
    sup_end = e.code()
check(sup_end == grpc.StatusCode.NOT_FOUND, "a deleted session's stream ended with %s" % sup_end)
check(code_of(lambda: stub.GetStatus(pb.GetStatusRequest(session="support"), timeout=5)) == grpc.StatusCode.NOT_FOUND,
      "a deleted session is still there")
check(code_of(lambda: stub.GetQR(pb.GetQRRequest(session="support"), metadata=keyed(support_key), timeout=5))
      in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.NOT_FOUND), "a deleted session's key")
_, body = control("/control/state")
check(sales_jid.encode() in body, "sales not paired on the fake server")
stub.DeleteSession(pb.DeleteSessionRequest(name="sales"), metadata=MD, timeout=15)
_, body = control("/control/state")
check(sales_jid.encode() not in body, "the deleted linked session is still a device on WhatsApp")

# WatchSessions saw every session, each change in order per session
all_it.cancel()
wa.join(10)
check(all_end == [grpc.StatusCode.CANCELLED], "WatchSessions end %s" % all_end)
by = {}
for name, seq, state, detail in all_seen:
    by.setdefault(name, []).append((seq, state))
check({"default", "sales", "support"} <= set(by), "WatchSessions sessions %s" % sorted(by))
for name, seen in by.items():
    seqs = [x[0] for x in seen]
    check(seqs == sorted(seqs) and len(set(seqs)) == len(seqs), "%s: out of order %s" % (name, seqs))
check(by["sales"][0][0] == 1 and pb.QR_READY in [x[1] for x in by["sales"]]
      and pb.CONNECTED in [x[1] for x in by["sales"]], "sales changes %s" % by["sales"])
check(pb.QR_READY in [x[1] for x in by["support"]], "support changes %s" % by["support"])
print("WatchSessions ok:", {k: len(v) for k, v in by.items()})
check(code_of(lambda: next(stub.WatchSessions(pb.WatchSessionsRequest(), metadata=keyed(dk.key), timeout=5)))
      == grpc.StatusCode.PERMISSION_DENIED, "WatchSessions with a session key")
check(code_of(lambda: next(stub.WatchSessions(pb.WatchSessionsRequest(), timeout=5)))
      == grpc.StatusCode.UNAUTHENTICATED, "WatchSessions without a key")
# cancelled (above) and deadline-expired streams are released
it = stub.WatchSessions(pb.WatchSessionsRequest(), metadata=MD, timeout=0.7)
got = []
try:
    for st in it:
        got.append(st.session)
except grpc.RpcError as e:
    got.append(e.code())
check("default" in got and got[-1] == grpc.StatusCode.DEADLINE_EXCEEDED, "WatchSessions deadline %s" % got)
for _ in range(50):
    if grpc_subscribers() == 0:
        break
    time.sleep(0.1)
check(grpc_subscribers() == 0, "session streams not released: %d" % grpc_subscribers())

# the session methods through `buf curl`, with nothing but reflection
def buf(method, data, key=KEY, stream=False):
    args = ["buf", "curl", "--protocol", "grpc", "--http2-prior-knowledge", "-H", "x-api-key: " + key,
            "-d", data, "http://127.0.0.1:%d/wagateway.v1.Gateway/%s" % (gport, method)]
    if not stream:
        out = subprocess.run(args, capture_output=True, text=True, timeout=30)
        return out.stdout + out.stderr
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    procs.append(p)
    return p


w = buf("WatchSessions", "{}", stream=True)
out = buf("CreateSession", '{"name":"bufs","deviceName":"buf curl"}')
check('"key"' in out and '"session": "bufs"' in out, "buf curl CreateSession: %s" % out)
bufs_key = json.loads(out)["key"]
out = buf("ListSessions", "{}")
check('"session": "bufs"' in out and '"session": "default"' in out, "buf curl ListSessions: %s" % out)
out = buf("ListSessions", '{"state":"CONNECTED"}')
check('"sessions"' not in out or '"state": "CONNECTED"' in out and '"bufs"' not in out,
      "buf curl ListSessions CONNECTED: %s" % out)
out = buf("RotateSessionKey", '{"session":"bufs"}', key=bufs_key)
check('"key"' in out and json.loads(out)["key"] != bufs_key, "buf curl RotateSessionKey: %s" % out)
out = buf("DeleteSession", '{"name":"bufs"}')
check('"Session deleted"' in out, "buf curl DeleteSession: %s" % out)
out = buf("DeleteSession", '{"name":"bufs"}')
check("not_found" in out.lower(), "buf curl DeleteSession twice: %s" % out)
lines, end = [], time.time() + 10
while time.time() < end and not any('"bufs"' in l for l in lines):
    lines.append(w.stdout.readline())
w.kill()
w.wait()
check(any('"bufs"' in l for l in lines), "buf curl WatchSessions did not see bufs: %s" % "".join(lines)[:400])
print("sessions ok")

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
