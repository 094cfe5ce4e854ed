#!/usr/bin/python3
"""Resuming streams at their edges (issue 15, "Resume on every stream"):
  1. with a tiny retention (EVENT_RETENTION=5), a resume from an old seq
     gets the gap notice first, then the first event kept, never a silent
     skip: SSE (event: gap, its id the last event missed), WebSocket
     ({"type":"gap"}), gRPC WatchStatus and WatchSessions (gap_from/gap_to),
     SSE /api/events (event ids);
  2. a malformed cursor is refused: 400 JSON for ?since= and Last-Event-ID
     on SSE and WebSocket, INVALID_ARGUMENT for an undecodable since_seq;
     a since_seq from another store (above anything ever given) is taken as
     0 (the current state);
  3. Last-Event-ID after a restart of the gateway (SIGKILL) resumes exactly
     after the last event received: seqs and event ids continue across
     restarts."""
import http.client, json, os, signal, socket, sys, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2elib  # noqa: E402
from e2elib import TMP, check, fail, req, start_fakewa, start_gateway, gateway_env  # noqa: E402
from wsclient import WS  # noqa: E402

# an uncaught exception still stops what the test started
sys.excepthook = lambda t, v, tb: (sys.__excepthook__(t, v, tb), fail("%s: %s" % (t.__name__, v)))

KEY = "resume-gap-admin-key-0123456789ab"
A = {"X-API-Key": KEY}


def sse(port, path, headers, want, secs=5):
    """Reads up to `want` SSE events (kind, id, data) within `secs`."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=secs)
    c.request("GET", path, headers=dict(A, **headers))
    r = c.getresponse()
    if r.status != 200:
        b = r.read()
        c.close()
        return r.status, r.getheader("content-type"), b
    out, buf, end = [], b"", time.time() + secs
    try:
        while len(out) < want and time.time() < end:
            c.sock.settimeout(max(0.01, end - time.time()))
            chunk = r.read1(65536)
            if not chunk:
                break
            buf += chunk
            while b"\n\n" in buf:
                block, buf = buf.split(b"\n\n", 1)
                ev = dict(line.decode().split(": ", 1) for line in block.split(b"\n")
                          if b": " in line and not line.startswith(b":"))
                if "data" in ev and len(out) < want:
                    out.append((ev.get("event"), int(ev["id"]), json.loads(ev["data"])))
    except (socket.timeout, TimeoutError):
        pass
    c.close()
    return 200, None, out


def seq_of(port, path="/api/whatsapp/status"):
    st, _, b = req(port, "GET", path, headers=A)
    check(st == 200, "status: %d" % st)
    return json.loads(b)["data"]["seq"]


def wait_seq(port, n, secs=30, name="default"):
    """Waits until session `name` reaches seq n; QRs rotate by themselves,
    and a session whose QRs ran out is reconnected (new QRs)."""
    path = "/api/whatsapp" if name == "default" else "/api/sessions/" + name
    end = time.time() + secs
    while time.time() < end:
        st, _, b = req(port, "GET", path + "/status", headers=A)
        d = json.loads(b)["data"]
        if d["seq"] >= n:
            return
        if d["state"] == "DISCONNECTED":
            req(port, "POST", path + "/reconnect", body=b'{"waitMs":200}', headers=A)
        time.sleep(0.1)
    fail("seq of %s did not reach %d (at %d)" % (name, n, seq_of(port, path + "/status")))


class Churn:
    """Keeps sessions changing: a session whose QRs ran out (DISCONNECTED)
    is reconnected, and shows new QRs."""

    def __init__(self, port, names):
        self.port, self.names, self.stop = port, names, threading.Event()
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while not self.stop.is_set():
            for name in self.names:
                path = "/api/whatsapp" if name == "default" else "/api/sessions/" + name
                try:
                    st, _, b = req(self.port, "GET", path + "/status", headers=A)
                    if st == 200 and json.loads(b)["data"]["state"] == "DISCONNECTED":
                        req(self.port, "POST", path + "/reconnect", body=b'{"waitMs":200}', headers=A)
                except (OSError, http.client.HTTPException, ValueError):
                    pass
            time.sleep(0.1)


pb, pbg, _, _ = e2elib.grpc_stubs()
import grpc  # noqa: E402


def grpc_first(gport, request, method="WatchStatus"):
    ch = grpc.insecure_channel("127.0.0.1:%d" % gport)
    stub = pbg.GatewayStub(ch)
    it = getattr(stub, method)(request, metadata=[("x-api-key", KEY)], timeout=10)
    msgs = [next(it), next(it)]
    it.cancel()
    ch.close()
    return msgs


# QRs rotate every 150 ms: plenty of events on "default" (and on "other")
QR = ["--qr-first-ms", "300", "--qr-next-ms", "150"]
fw = start_fakewa("--refs", "200", *QR)

# --- 1. gaps with a tiny retention: events made with the default one, then
# the gateway restarted with EVENT_RETENTION=5 (its first prune runs at
# start) ---
gw, port, gport, log = start_gateway(fw, "gap", ["--api-key", KEY] + QR)
st, _, b = req(port, "POST", "/api/sessions", body=b'{"name":"other"}', headers=A)
check(st == 201, "create other: %d %s" % (st, b))
churn = Churn(port, ["default", "other"])
wait_seq(port, 12, name="other")
wait_seq(port, 25)
churn.stop.set()
gw.terminate()
check(gw.wait(20) == 0, "gateway exit status %s" % gw.returncode)
env = dict(gateway_env(fw), EVENT_RETENTION="5")
gw, port, gport, log = start_gateway(fw, "gap", ["--api-key", KEY] + QR, port=port, gport=gport, env=env)
for _ in range(100):
    st, _, b = req(port, "GET", "/metrics", headers=A)
    pruned = [ln for ln in b.decode().splitlines() if ln.startswith("wagw_events_pruned_total")]
    if pruned and float(pruned[0].split()[-1]) > 0:
        break
    time.sleep(0.1)
else:
    fail("EVENT_RETENTION=5 pruned nothing at start: %s" % pruned)
churn = Churn(port, ["default", "other"])

st, _, evs = sse(port, "/api/whatsapp/events", {"Last-Event-ID": "2"}, 3)
check(st == 200 and len(evs) == 3, "SSE resume from 2: %s %s" % (st, evs))
kind, gid, gap = evs[0]
check(kind == "gap" and gap["from"] == 3 and gap["to"] >= 3 and gid == gap["to"],
      "SSE: the first event after an old Last-Event-ID is not the gap: %s" % (evs[0],))
check(evs[1][0] == "status" and evs[1][2]["seq"] == gap["to"] + 1 and evs[1][1] == gap["to"] + 1
      and evs[2][2]["seq"] == gap["to"] + 2, "SSE: after the gap %s: %s" % (gap, evs[1:]))
# the gap's id resumes past it: no second notice
st, _, evs2 = sse(port, "/api/whatsapp/events", {"Last-Event-ID": str(gid)}, 1)
check(st == 200 and evs2 and (evs2[0][0] == "status" or evs2[0][2]["from"] > gid),
      "SSE: resuming from the gap's id told the same gap again: %s" % evs2)
# ?since= alike
st, _, evs = sse(port, "/api/sessions/other/events?since=1", {}, 2)
check(st == 200 and evs and evs[0][0] == "gap" and evs[0][2]["from"] == 2
      and evs[1][2]["seq"] == evs[0][2]["to"] + 1 and evs[1][2]["session"] == "other",
      "SSE ?since=1 on other: %s" % evs)

ws = WS("127.0.0.1", port, "/api/whatsapp/ws?since=2", headers=A)
check(ws.status == 101, "ws upgrade %d" % ws.status)
m1, m2 = ws.recv(), ws.recv()
ws.close()
check(m1.get("type") == "gap" and m1["from"] == 3 and m2["seq"] == m1["to"] + 1 and "type" not in m2,
      "WebSocket ?since=2: %s then %s" % (m1, m2))

s1, s2 = grpc_first(gport, pb.WatchStatusRequest(since_seq=2))
check(s1.gap_from == 3 and s1.gap_to >= 3 and s1.seq == s1.gap_to + 1 and s2.seq == s1.seq + 1
      and s2.gap_to == 0, "WatchStatus since_seq=2: %s / %s" % ((s1.gap_from, s1.gap_to, s1.seq), s2.seq))
a1, a2 = grpc_first(gport, pb.WatchSessionsRequest(since_seq=2), "WatchSessions")
check(a1.gap_from == 3 and a1.gap_to >= 3 and a1.event_id > a1.gap_to and a2.event_id > a1.event_id,
      "WatchSessions since_seq=2: %s" % ((a1.gap_from, a1.gap_to, a1.event_id, a2.event_id),))
st, _, evs = sse(port, "/api/events", {"Last-Event-ID": "2"}, 2)
check(st == 200 and evs and evs[0][0] == "gap" and evs[0][2]["from"] == 3 and evs[0][1] == evs[0][2]["to"]
      and evs[1][1] > evs[0][1] and evs[1][2]["eventId"] == evs[1][1],
      "SSE /api/events Last-Event-ID: 2: %s" % evs)

# a cursor at the newest event: nothing until the next change, then it
now = seq_of(port)
st, _, evs = sse(port, "/api/whatsapp/events?since=%d" % now, {}, 1)
check(st == 200 and evs and evs[0][0] == "status" and evs[0][2]["seq"] == now + 1,
      "SSE ?since=newest: %s (newest %d)" % (evs, now))

# reflection shows the new fields (grpcurl -d '{"since_seq": N}' needs them)
import subprocess  # noqa: E402
from google.protobuf import descriptor_pb2  # noqa: E402
gen = os.path.join(TMP, "gen")
subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I/usr/share/grpc-proto", "--python_out=" + gen,
                "--grpc_python_out=" + gen, "grpc/reflection/v1/reflection.proto"], check=True)
from grpc.reflection.v1 import reflection_pb2 as r1, reflection_pb2_grpc as r1g  # noqa: E402
ch = grpc.insecure_channel("127.0.0.1:%d" % gport)
resp = next(r1g.ServerReflectionStub(ch).ServerReflectionInfo(
    iter([r1.ServerReflectionRequest(file_containing_symbol="wagateway.v1.WatchStatusRequest")]), timeout=5))
fields = {}
for b in resp.file_descriptor_response.file_descriptor_proto:
    for m in descriptor_pb2.FileDescriptorProto.FromString(b).message_type:
        fields[m.name] = {f.name: (f.number, f.type) for f in m.field}
U64 = descriptor_pb2.FieldDescriptorProto.TYPE_UINT64
check(fields.get("WatchStatusRequest", {}).get("since_seq") == (2, U64)
      and fields.get("WatchSessionsRequest", {}).get("since_seq") == (1, U64)
      and all(fields.get("Status", {}).get(f) == (n, U64) for f, n in (("event_id", 14), ("gap_from", 15), ("gap_to", 16))),
      "reflection: %s" % {k: fields.get(k) for k in ("WatchStatusRequest", "WatchSessionsRequest", "Status")})
ch.close()

# --- 2. malformed cursors ---
for path, h in [("/api/whatsapp/events?since=abc", {}), ("/api/whatsapp/events?since=", {}),
                ("/api/whatsapp/events?since=-1", {}), ("/api/whatsapp/events?since=1.5", {}),
                ("/api/whatsapp/events?since=18446744073709551616", {}),
                ("/whatsapp/events", {"Last-Event-ID": "abc"}),
                ("/api/sessions/other/events?since=1", {"Last-Event-ID": "12x"}),
                ("/api/events?since=%2B5", {}), ("/api/events", {"Last-Event-ID": "-3"})]:
    st, ctype, b = sse(port, path, h, 1)
    body = json.loads(b) if st != 200 else {}
    check(st == 400 and ctype.startswith("application/json") and body.get("success") is False
          and "since" in body.get("message", ""), "%s %s: %s %s %s" % (path, h, st, ctype, b))
ws = WS("127.0.0.1", port, "/api/whatsapp/ws?since=x1", headers=A)
check(ws.status == 400, "WebSocket ?since=x1: %d" % ws.status)
ws.close()
# the largest cursor is well-formed: from another store, taken as 0
st, _, evs = sse(port, "/api/whatsapp/events?since=18446744073709551615", {}, 1)
check(st == 200 and evs and evs[0][0] == "status", "SSE ?since=UINT64_MAX: %s %s" % (st, evs))
# an empty Last-Event-ID (an EventSource whose id was reset) counts as absent
st, _, evs = sse(port, "/api/whatsapp/events", {"Last-Event-ID": ""}, 1)
check(st == 200 and evs and evs[0][0] == "status", "SSE empty Last-Event-ID: %s %s" % (st, evs))

# gRPC: since_seq sent as a string (wire type 2) does not decode
ch = grpc.insecure_channel("127.0.0.1:%d" % gport)
raw = ch.unary_stream("/wagateway.v1.Gateway/WatchStatus", request_serializer=lambda x: x,
                      response_deserializer=pb.Status.FromString)
try:
    list(raw(b"\x12\x03abc", metadata=[("x-api-key", KEY)], timeout=5))
    check(False, "WatchStatus with a string since_seq was accepted")
except grpc.RpcError as e:
    check(e.code() == grpc.StatusCode.INVALID_ARGUMENT, "WatchStatus with a string since_seq: %s" % e.code())
ch.close()
# a since_seq above anything ever given: the current state first
s1, _ = grpc_first(gport, pb.WatchStatusRequest(since_seq=10 ** 15))
check(s1.gap_to == 0 and abs(s1.seq - seq_of(port)) <= 3, "WatchStatus since_seq=1e15: seq %d" % s1.seq)

churn.stop.set()
gw.terminate()
check(gw.wait(20) == 0, "gateway exit status %s" % gw.returncode)

# --- 3. Last-Event-ID across a restart (SIGKILL) ---
data_args = ["--api-key", KEY] + QR
gw, port, gport, log = start_gateway(fw, "restart", data_args)
churn = Churn(port, ["default"])
wait_seq(port, 8)
st, _, evs = sse(port, "/api/whatsapp/events", {}, 3)
last = evs[-1][1]
st, _, aevs = sse(port, "/api/events", {}, 2)
last_all = max(e[1] for e in aevs)
wait_seq(port, last + 5)
gw.send_signal(signal.SIGKILL)
gw.wait()
gw, port, gport, log = start_gateway(fw, "restart", data_args, port=port, gport=gport)
st, _, evs = sse(port, "/api/whatsapp/events", {"Last-Event-ID": str(last)}, 12, secs=10)
seqs = [e[2]["seq"] for e in evs if e[0] == "status"]
check(st == 200 and seqs == list(range(last + 1, last + 1 + len(seqs))) and len(seqs) == 12
      and all(e[0] == "status" for e in evs),
      "SSE Last-Event-ID %d after a restart: %s" % (last, [(e[0], e[1]) for e in evs]))
check(seq_of(port) >= last + 5, "the seq did not continue across the restart: %d" % seq_of(port))
st, _, aevs = sse(port, "/api/events", {"Last-Event-ID": str(last_all)}, 6, secs=10)
ids = [e[1] for e in aevs]
check(st == 200 and ids and ids[0] > last_all and ids == sorted(set(ids)) and all(e[0] == "status" for e in aevs),
      "SSE /api/events Last-Event-ID %d after a restart: %s" % (last_all, ids))
s1, s2 = grpc_first(gport, pb.WatchStatusRequest(since_seq=last))
check(s1.seq == last + 1 and s2.seq == last + 2 and s1.gap_to == 0,
      "WatchStatus since_seq=%d after a restart: %d, %d" % (last, s1.seq, s2.seq))

churn.stop.set()
gw.terminate()
check(gw.wait(20) == 0, "gateway exit status %s" % gw.returncode)
fw["proc"].terminate()
for name in ("gap", "restart"):
    text = open(os.path.join(TMP, "gw-%s.log" % name)).read()
    check("AddressSanitizer" not in text and "runtime error" not in text, "sanitizer report in gw-%s.log" % name)
if not e2elib.failed:
    print("PASS")
