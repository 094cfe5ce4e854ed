#!/usr/bin/python3
"""Who may call which gRPC method: the "grpc" rows of the shared
authorization table (authz_table.py; authz_test.py runs its "http" rows)
against the live gateway: every method of the gateway, health and
reflection against four callers.

Callers, in the order of each row's expectations:
  admin  API_KEY
  own    the key of the session the row acts on ("default" for an empty
         session name; on admin methods, a session's key)
  other  the key of another session
  none   no key at all
The gateway runs with an API key; every session is unlinked and shows a QR
(the fake server's QR lives long), so each answer is deterministic. Rows
whose call would change what later rows see send a request refused after
authorization (INVALID_ARGUMENT), or act on a session made for that one call
(FRESH). The test fails when a method of the service has no row."""
import os, subprocess, sys, time
import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import TMP, fail, check, free_port, gateway_env, start_fakewa, start_gateway, grpc_stubs  # noqa: E402

import authz_table as T  # noqa: E402
from authz_table import STREAM, FRESH, SEED, WEBHOOK  # noqa: E402

ROWS = [r for r in T.ROWS if r.transport == "grpc"]

pb, pbg, hpb, hpbg = grpc_stubs()
subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I/usr/share/grpc-proto",
                "--python_out=" + os.path.join(TMP, "gen"), "--grpc_python_out=" + os.path.join(TMP, "gen"),
                "grpc/reflection/v1alpha/reflection.proto", "grpc/reflection/v1/reflection.proto"], check=True)
from grpc.reflection.v1alpha import reflection_pb2 as ra, reflection_pb2_grpc as rag  # noqa: E402
from grpc.reflection.v1 import reflection_pb2 as r1, reflection_pb2_grpc as r1g  # noqa: E402

KEY_ADMIN = "authz-grpc-admin-key-0123456789"
fw = start_fakewa("--refs", "5", "--qr-first-ms", "120000", "--qr-next-ms", "120000")
# webhook targets on a closed loopback port: test calls never leave loopback
gw, port, gport, log = start_gateway(fw, "authz", ["--api-key", KEY_ADMIN],
                                     env=dict(gateway_env(fw), WEBHOOK_ALLOW_PRIVATE="1"))
CLOSED = "http://127.0.0.1:%d/hook" % free_port()
ch = grpc.insecure_channel("127.0.0.1:%d" % gport)
grpc.channel_ready_future(ch).result(timeout=10)
stub = pbg.GatewayStub(ch)
ADMIN_MD = [("x-api-key", KEY_ADMIN)]

# every method of the service has a row
service = pb.DESCRIPTOR.services_by_name["Gateway"]
covered = {r.method for r in ROWS}
missing = [m.name for m in service.methods if m.name not in covered]
check(not missing, "gRPC methods without a row in authz_table.py: %s" % missing)


def create(name):
    return stub.CreateSession(pb.CreateSessionRequest(name=name), metadata=ADMIN_MD, timeout=10).key


keys = {"alpha": create("alpha"), "beta": create("beta")}
keys["default"] = stub.RotateSessionKey(pb.RotateSessionKeyRequest(session="default"), metadata=ADMIN_MD,
                                        timeout=10).key
for name in ("default", "alpha", "beta"):
    end = time.time() + 20
    while stub.GetStatus(pb.GetStatusRequest(session=name), timeout=5).state != pb.QR_READY:
        if time.time() > end:
            fail("%s never showed a QR" % name)
        time.sleep(0.05)

OTHER = "beta"
fresh_n = [0]


def fresh():
    fresh_n[0] += 1
    name = "fresh-%d" % fresh_n[0]
    keys[name] = create(name)
    return name


def invoke(row, session, md):
    """Calls the row's method; returns the status-code name."""
    fields = {k: (v.replace("{s}", session) if isinstance(v, str) else v) for k, v in row.target.items()}
    if WEBHOOK in row.flags:  # a target of the row's session, for this call
        w = stub.CreateWebhook(pb.CreateWebhookRequest(url=CLOSED, session=session or "default",
                                                       events=["never.sent"]), metadata=ADMIN_MD, timeout=10)
        fields = {k: (v.replace("{w}", w.webhook.id) if isinstance(v, str) else v) for k, v in fields.items()}
    try:
        if row.method.startswith("grpc.health."):
            h = hpbg.HealthStub(ch)
            if row.method.endswith("/Check"):
                h.Check(hpb.HealthCheckRequest(**fields), metadata=md, timeout=5)
            else:
                it = h.Watch(hpb.HealthCheckRequest(**fields), metadata=md, timeout=5)
                next(it)
                it.cancel()
        elif row.method.startswith("grpc.reflection."):
            mod, g = (r1, r1g) if ".v1." in row.method else (ra, rag)
            resp = list(g.ServerReflectionStub(ch).ServerReflectionInfo(
                iter([mod.ServerReflectionRequest(**fields)]), metadata=md, timeout=5))
            check(resp and resp[0].list_services_response.service, "%s: no services" % row.method)
        else:
            req = getattr(pb, service.methods_by_name[row.method].input_type.name)(**fields)
            call = getattr(stub, row.method)
            if STREAM in row.flags:
                it = call(req, metadata=md, timeout=10)
                next(it)
                it.cancel()
            else:
                call(req, metadata=md, timeout=15)
    except grpc.RpcError as e:
        return e.code().name
    return "OK"


results = []
for row in ROWS:
    for who, want in zip(("admin", "own", "other", "none"), row.expect):
        if FRESH in row.flags:
            session = fresh()
        elif SEED in row.flags:
            session = "default"
        else:
            session = "alpha"
        md = {"admin": ADMIN_MD,
              "own": [("x-api-key", keys[session])],
              "other": [("x-api-key", keys[OTHER])],
              "none": []}[who]
        got = invoke(row, "" if SEED in row.flags else session, md)
        ok = got in (want if isinstance(want, tuple) else (want,))
        results.append((row.method, row.target, who, want, got, ok))
        if FRESH in row.flags:  # gone already when the row deleted it
            try:
                stub.DeleteSession(pb.DeleteSessionRequest(name=session), metadata=ADMIN_MD, timeout=15)
            except grpc.RpcError as e:
                check(e.code() == grpc.StatusCode.NOT_FOUND, "deleting %s: %s" % (session, e))
        check(ok, "%s %s as %s: want %s, got %s" % (row.method, row.target, who, want, got))
print("%d calls, %d rows, all as the table says" % (len(results), len(ROWS)))

# the table did not lock anyone out: no key and other sessions' keys are not guesses
check(invoke(T.Row("grpc", "GetQR", {"session": "alpha"}, None, ()), "alpha", [("x-api-key", keys["alpha"])]) == "OK",
      "own key after the table")
gw.terminate()
check(gw.wait(10) == 0, "gateway exit status")
text = open(log).read()
for k in keys.values():
    check(k not in text, "a session key was logged")
check(KEY_ADMIN not in text, "the admin key was logged")
fw["proc"].terminate()
print("PASS")
