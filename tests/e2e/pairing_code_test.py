#!/usr/bin/python3
"""End-to-end tests of linking by pairing code with the real programs on
loopback (wa-gateway + the fake WhatsApp server, whose phone types the
code): over HTTP, from DISCONNECTED, POST pairing-code starts a registration
and answers with the code (both prefixes), the status shows it to key
holders only, 401 / 400 / 429 / 409, a wrong code is refused by the phone
and the right one then links, with an SSE subscriber seeing QR_READY with
the code and then CONNECTED, and the code never in the log; over gRPC
(python3-grpcio), RequestPairingCode with its errors, the code in Status for
key holders, WatchStatus to CONNECTED, the method visible through
reflection, and --qr-terminal printing the code on the terminal, never in
the log."""
import http.client, json, os, re, subprocess, sys, threading, time

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import SRC, TMP, GW, procs, fail, check, free_port, start_fakewa, gateway_env, req

KEY = "pairing-code-key"
CODE_RE = re.compile(r"^[1-9A-HJ-NP-TV-Z]{4}-[1-9A-HJ-NP-TV-Z]{4}$")
MESSAGE = "Enter this code on the phone: Linked devices > Link with phone number"
PHONE = "+1 555-123-4567"  # the fake phone's number, as a person writes it


def request(port, method, path, body=None, key=KEY):
    h = {"Content-Type": "application/json"}
    if key is not None:
        h["X-API-Key"] = key
    st, hd, b = req(port, method, path, body=body, headers=h, timeout=40)
    return st, hd, (json.loads(b) if b else None)


def control(cport, path, body=None):
    st, _, b = req(cport, "POST" if body is not None else "GET", path, body=body)
    return st, json.loads(b)


def wait_until(cond, what, secs=10):
    end = time.time() + secs
    while time.time() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    fail("timed out waiting for " + what)


def start_gateway(fw, extra=(), name="gw", **popen):
    port, gport = free_port(), free_port()
    log = os.path.join(TMP, name + ".log")
    p = subprocess.Popen([GW, "--port", str(port), "--grpc-port", str(gport), "--api-key", KEY,
                          "--data-dir", os.path.join(TMP, "data-" + name), "--qr-first-ms", "30000",
                          "--qr-next-ms", "20000"] + list(extra),
                         env=gateway_env(fw), stderr=open(log, "w"), **popen)
    procs.append(p)
    wait_until(lambda: _up(port), "the gateway to listen")
    return p, port, gport, log


def _up(port):
    try:
        return req(port, "GET", "/healthz")[0] == 200
    except OSError:
        return False


def state(port, key=KEY):
    return request(port, "GET", "/api/whatsapp/status", key=key)[2]["data"]


class SSE(threading.Thread):
    """Collects the status events of /api/whatsapp/events."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.events, self.port = [], port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.conn.request("GET", "/api/whatsapp/events", headers={"X-API-Key": KEY})
        self.resp = self.conn.getresponse()
        check(self.resp.status == 200, "SSE status %d" % self.resp.status)
        self.start()

    def run(self):
        buf = b""
        while True:
            try:
                chunk = self.resp.read1(4096)
            except Exception:
                return
            if not chunk:
                return
            buf += chunk
            while b"\n\n" in buf:
                ev, buf = buf.split(b"\n\n", 1)
                for line in ev.split(b"\n"):
                    if line.startswith(b"data: "):
                        self.events.append(json.loads(line[6:]))

    def wait(self, pred, what, secs=15):
        return wait_until(lambda: next((e for e in self.events if pred(e)), None), what, secs)


fw = start_fakewa("--refs", "3", "--qr-first-ms", "30000", "--qr-next-ms", "20000")
cport = fw["cport"]
gw, port, gport, log = start_gateway(fw)
wait_until(lambda: state(port)["state"] == "QR_READY", "QR_READY")

# from DISCONNECTED (logged out, no connection): the request starts a registration
st, _, b = request(port, "POST", "/api/whatsapp/logout")
check(st == 200, "logout %s" % st)
wait_until(lambda: state(port)["state"] == "DISCONNECTED", "DISCONNECTED")
regs = control(cport, "/control/state")[1]["registrations"]
sse = SSE(port)

# 401 without or with a wrong key, 400 for malformed numbers and bodies
for key in (None, "wrong"):
    st, _, b = request(port, "POST", "/api/whatsapp/pairing-code", json.dumps({"phoneNumber": PHONE}), key=key)
    check(st == 401 and b["success"] is False, "key %r: %s %s" % (key, st, b))
for body in (None, b"{bad", b"[]", b'{"phoneNumber":15551234567}', b'{"phoneNumber":"1234567"}',
             b'{"phoneNumber":"1234567890123456"}', b'{"phoneNumber":"+1 (555) 123-4567"}',
             b'{"phoneNumber":"0812 3456 7890"}', b'{"phone":"15551234567"}', b'{"phoneNumber":"\xff"}'):
    st, _, b = request(port, "POST", "/api/whatsapp/pairing-code", body)
    check(st == 400 and b["success"] is False and b["message"], "body %r: %s %s" % (body, st, b))
st, h, _ = request(port, "GET", "/api/whatsapp/pairing-code")
check(st == 405 and "POST" in h.get("allow", ""), "GET pairing-code %s" % st)
check(control(cport, "/control/state")[1]["pairCodeHellos"] == 0, "a refused request reached WhatsApp")

# 200: the code, its lifetime, the contract's message
t0 = time.time()
st, _, b = request(port, "POST", "/whatsapp/pairing-code", json.dumps({"phoneNumber": PHONE}))
check(st == 200 and b["success"] is True and b["message"] == MESSAGE, "pairing-code %s %s" % (st, b))
code, left = b["data"]["pairingCode"], b["data"]["expiresIn"]
check(CODE_RE.match(code) and 60 <= left <= 70, "code %r expiresIn %r" % (code, left))
fs = control(cport, "/control/state")[1]
check(fs["registrations"] == regs + 1 and fs["pairCodeHellos"] == 1 and fs["pairCodeBadHellos"] == 0,
      "fake server state %s" % fs)
print("code after %.2f s" % (time.time() - t0))

# the status shows it to key holders only, next to the QR
d = state(port)
check(d["state"] == "QR_READY" and d["hasQR"] and d["linkCode"] == code and 0 < d["linkCodeExpiresIn"] <= left,
      "status with key %s" % d)
d = state(port, key=None)
check("linkCode" not in d and code not in json.dumps(d), "status without key shows the code: %s" % d)
st, _, _ = request(port, "GET", "/api/whatsapp/qr")
check(st == 200, "no QR beside the code")
sse.wait(lambda e: e.get("linkCode") == code and e["state"] == "QR_READY", "the code on the event stream")

# 429 within 10 s, with Retry-After
st, h, b = request(port, "POST", "/api/whatsapp/pairing-code", json.dumps({"phoneNumber": PHONE}))
check(st == 429 and b["success"] is False and h.get("retry-after") == "10", "second request %s %s" % (st, b))
check(control(cport, "/control/state")[1]["pairCodeHellos"] == 1, "the second request reached WhatsApp")

# a wrong code: the phone cannot open the key bundle, nothing links
wrong = ("Z" if code[0] != "Z" else "Y") + code[1:]
st, j = control(cport, "/control/pair-code", wrong.encode())
check(st == 200 and j["ok"], "typing a wrong code %s" % j)
wait_until(lambda: control(cport, "/control/state")[1]["pairCodeRefused"] == 1, "the wrong code refused")
time.sleep(0.3)
d = state(port)
check(d["state"] == "QR_READY" and d["linkCode"] == code, "after a wrong code %s" % d)
check(control(cport, "/control/state")[1]["paired"] == 0, "a wrong code linked")

# the right code links: the subscriber sees CONNECTED
st, j = control(cport, "/control/pair-code", code.lower().encode())
check(st == 200 and j["ok"], "typing the code %s" % j)
sse.wait(lambda e: e["state"] == "CONNECTED", "CONNECTED on the event stream")
fs = control(cport, "/control/state")[1]
check(fs["pairCodeAccepted"] == 1 and fs["pairCodeRefused"] == 1 and fs["paired"] == 1
      and fs["pairErrors"] == 0 and fs["pairCodeEntries"] == 2, "fake server after linking %s" % fs)
states = [e["state"] for e in sse.events]
check("DISCONNECTED" in states and states.index("QR_READY") < states.index("CONNECTED"), "states %s" % states)
d = state(port)
check(d["connected"] and d["account"]["phone"] == "15551234567" and d["linkCode"] is None, "linked %s" % d)

# 409 when linked (after the 10 s window too: the linked check comes first)
st, _, b = request(port, "POST", "/api/whatsapp/pairing-code", json.dumps({"phoneNumber": PHONE}))
check(st == 409 and b["success"] is False and b["state"] == "CONNECTED" and "linked" in b["message"].lower(),
      "linked request %s %s" % (st, b))
_, _, b = req(port, "GET", "/metrics")
check('route="pairing_code"' in b.decode(), "pairing_code not in /metrics")
print("HTTP ok")

sse.resp.close()  # (a client keeping its connection past shutdown makes h2o assert)
sse.conn.close()
gw.terminate()
rc = gw.wait(10)
check(rc == 0, "gateway exit status %s: %s" % (rc, open(log).read()[-3000:]))
text = open(log).read()
check(code not in text and code.replace("-", "") not in text, "the pairing code reached the log")
check(KEY not in text, "the API key reached the log")

# --- gRPC, on a second gateway (new device) with --qr-terminal ---
gen = os.path.join(TMP, "gen")
os.makedirs(gen, exist_ok=True)
subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I" + os.path.join(SRC, "proto"),
                "-I/usr/share/grpc-proto", "--python_out=" + gen, "--grpc_python_out=" + gen,
                "gateway.proto", "grpc/reflection/v1/reflection.proto"], check=True)
sys.path.insert(0, gen)
grpc.__path__.append(os.path.join(gen, "grpc"))
import gateway_pb2 as pb, gateway_pb2_grpc as pbg
from grpc.reflection.v1 import reflection_pb2 as r1, reflection_pb2_grpc as r1g
from google.protobuf import descriptor_pb2

# --qr-terminal writes to the controlling terminal (never the log): a pty
import fcntl, pty, termios
master, slave = pty.openpty()


def _controlling_tty():
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)


gw2, port2, gport2, log2 = start_gateway(fw, ("--qr-terminal",), name="gw2", stdin=slave, stdout=slave,
                                         preexec_fn=_controlling_tty)
os.close(slave)
tty_out = []


def _read_tty():
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            return
        if not chunk:
            return
        tty_out.append(chunk)


threading.Thread(target=_read_tty, daemon=True).start()
ch = grpc.insecure_channel("127.0.0.1:%d" % gport2)
grpc.channel_ready_future(ch).result(timeout=10)
stub = pbg.GatewayStub(ch)
MD = [("x-api-key", KEY)]


def code_of(fn):
    try:
        fn()
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK


wait_until(lambda: stub.GetStatus(pb.GetStatusRequest(), timeout=5).state == pb.QR_READY, "gRPC QR_READY")
ask = lambda number, md=MD: stub.RequestPairingCode(pb.PairingCodeRequest(phone_number=number), metadata=md, timeout=40)
check(code_of(lambda: ask(PHONE, [])) == grpc.StatusCode.UNAUTHENTICATED, "no key")
check(code_of(lambda: ask(PHONE, [("x-api-key", "nope")])) == grpc.StatusCode.UNAUTHENTICATED, "wrong key")
check(code_of(lambda: ask("12-34")) == grpc.StatusCode.INVALID_ARGUMENT, "short number")
check(code_of(lambda: ask("")) == grpc.StatusCode.INVALID_ARGUMENT, "empty number")
check(code_of(lambda: stub.RequestPairingCode(pb.PairingCodeRequest(session="nope", phone_number=PHONE),
                                              metadata=MD, timeout=5)) == grpc.StatusCode.NOT_FOUND, "session")

# reflection shows the method and the new Status fields
rs = r1g.ServerReflectionStub(ch)
resp = list(rs.ServerReflectionInfo(iter([r1.ServerReflectionRequest(file_containing_symbol="wagateway.v1.Gateway")]),
                                    timeout=5))[0]
fds = [descriptor_pb2.FileDescriptorProto.FromString(b) for b in resp.file_descriptor_response.file_descriptor_proto]
gwf = [f for f in fds if f.package == "wagateway.v1"][0]
methods = {m.name: (m.input_type, m.output_type) for m in gwf.service[0].method}
check(methods.get("RequestPairingCode") == (".wagateway.v1.PairingCodeRequest", ".wagateway.v1.PairingCodeReply"),
      "reflection: %s" % methods)
fields = {f.name: f.number for m in gwf.message_type if m.name == "Status" for f in m.field}
check(fields.get("link_code") == 11 and fields.get("link_code_expires_in") == 12, "Status fields %s" % fields)

watch = stub.WatchStatus(pb.WatchStatusRequest(), metadata=MD, timeout=60)
rep = ask(PHONE)
check(rep.message == MESSAGE and CODE_RE.match(rep.pairing_code) and 60 <= rep.expires_in <= 70,
      "RequestPairingCode %s" % rep)
code2 = rep.pairing_code
check(code_of(lambda: ask(PHONE)) == grpc.StatusCode.RESOURCE_EXHAUSTED, "second request within 10 s")
s_key = stub.GetStatus(pb.GetStatusRequest(), metadata=MD, timeout=5)
s_nokey = stub.GetStatus(pb.GetStatusRequest(), timeout=5)
check(s_key.link_code == code2 and 0 < s_key.link_code_expires_in <= rep.expires_in and s_key.has_qr,
      "GetStatus with key %s" % s_key)
check(s_nokey.link_code == "" and s_nokey.link_code_expires_in == 0, "GetStatus without key shows the code")
st, j = control(cport, "/control/pair-code", code2.encode())
check(st == 200 and j["ok"], "typing the gRPC code %s" % j)
saw_code = False
for s in watch:
    saw_code |= s.link_code == code2
    if s.state == pb.CONNECTED:
        break
watch.cancel()
check(saw_code, "WatchStatus never carried the code")
check(code_of(lambda: ask(PHONE)) == grpc.StatusCode.FAILED_PRECONDITION, "linked: FAILED_PRECONDITION")
gw2.terminate()
check(gw2.wait(10) == 0, "second gateway exit status")
time.sleep(0.2)
term = b"".join(tty_out).decode("utf-8", "replace").replace("\r\n", "\n")
check(("    %s\n" % code2) in term, "--qr-terminal did not print the code on the terminal")
check(code2 not in open(log2).read(), "--qr-terminal put the code in the log")
check(not any(code2 in l for l in term.splitlines() if " INFO " in l), "the code in an INFO log line")
print("gRPC ok")

fw["proc"].terminate()
fw["proc"].wait(10)
print("PASS")
