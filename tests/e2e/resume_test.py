#!/usr/bin/python3
"""Resumable streams during a pairing storm (issue 15, "Resume on every
stream"): four sessions against the fake WhatsApp server keep showing and
rotating QRs, timing out, being reconnected, linked by the simulated phone,
dropped and logged out, while five clients each drop their stream
RESUME_CYCLES (default 100) times and resume it:
  - SSE on one session (resuming with ?since=, with Last-Event-ID, and with
    both, a stale ?since= and a newer Last-Event-ID, as an EventSource does),
  - WebSocket on another (?since=),
  - gRPC WatchStatus on a third (since_seq),
  - gRPC WatchSessions (since_seq: the highest event_id received),
  - SSE /api/events (Last-Event-ID: the last SSE id received).
Each disconnects after 0 to 2 events or a fraction of a second, often with
events in flight. When the storm is over and the sessions are quiet, every
client has seen every seq of its session(s) exactly once, in order, from
its first event to the session's final seq: no gap, no duplicate, no "gap"
notice (the retention is the default); stream ids and event ids only grow."""
import http.client, json, os, random, socket, sys, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2elib  # noqa: E402
from e2elib import check, fail, req, start_fakewa, start_gateway  # noqa: E402
from wsclient import WS  # noqa: E402

# an uncaught exception still stops what the test started
sys.excepthook = lambda t, v, tb: (sys.__excepthook__(t, v, tb), fail("%s: %s" % (t.__name__, v)))

CYCLES = int(os.environ.get("RESUME_CYCLES", "100"))
MIN_SECONDS = float(os.environ.get("RESUME_SECONDS", "20"))  # the storm lasts at least this
KEY = "resume-admin-key-0123456789abcdef"
A = {"X-API-Key": KEY}
NAMES = ["default", "s1", "s2", "s3"]
QR = ["--qr-first-ms", "700", "--qr-next-ms", "250"]
stop = threading.Event()
problems = []


def route(name):
    return "/api/whatsapp" if name == "default" else "/api/sessions/" + name


fw = start_fakewa("--refs", "5", "--account-per-scan", *QR)
gw, port, gport, log = start_gateway(fw, "resume", ["--api-key", KEY, "--heartbeat-ms", "500",
                                                    "--reconnect-wait-ms", "2000"] + QR)
for name in NAMES[1:]:
    st, _, b = req(port, "POST", "/api/sessions", body=json.dumps({"name": name}), headers=A)
    check(st == 201, "create %s: %d %s" % (name, st, b))


def status(name):
    st, _, b = req(port, "GET", route(name) + "/status", headers=A)
    if st != 200:
        raise OSError("status %s: %d" % (name, st))
    return json.loads(b)["data"]


# --- the storm: QRs rotate by themselves; this links, drops, logs out and
# reconnects the sessions at random ---
counts = {"scans": 0, "reconnects": 0, "logouts": 0, "drops": 0}


def storm():
    rnd = random.Random(1)
    while not stop.is_set():
        time.sleep(rnd.uniform(0.05, 0.2))
        name = rnd.choice(NAMES)
        try:
            s = status(name)
            r = rnd.random()
            if s["state"] == "QR_READY" and r < 0.25:
                st, _, raw = req(port, "GET", route(name) + "/qr?format=raw", headers=A)
                if st == 200 and raw:
                    req(fw["cport"], "POST", "/control/scan", body=raw)
                    counts["scans"] += 1
            elif s["state"] == "DISCONNECTED":
                body = json.dumps({"keepCredentials": bool(s.get("linked")) and r < 0.5, "waitMs": 300})
                req(port, "POST", route(name) + "/reconnect", body=body, headers=A)
                counts["reconnects"] += 1
            elif s["state"] == "CONNECTED" and r < 0.3:
                phone = (s.get("account") or {}).get("phone")
                if r < 0.1 and phone:
                    req(fw["cport"], "POST", "/control/fault", body=("drop %s" % phone).encode())
                    counts["drops"] += 1
                elif r < 0.2:
                    req(port, "POST", route(name) + "/logout", headers=A)
                    counts["logouts"] += 1
                else:
                    req(port, "POST", route(name) + "/reconnect", body=b'{"waitMs":300}', headers=A)
                    counts["reconnects"] += 1
        except (OSError, http.client.HTTPException, ValueError):
            pass


# --- the clients: each keeps what it saw, in order ---
class Client:
    def __init__(self, name):
        self.name = name
        self.seen = []  # (session, seq, event id) in the order received
        self.ids = []  # SSE ids / event ids in the order received
        self.gaps = []
        self.cycles = 0

    def last_seq(self):
        return self.seen[-1][1] if self.seen else 0

    def max_id(self):
        return max(self.ids) if self.ids else 0


def sse_events(path, headers, want, secs, on_event):
    """One SSE connection: up to `want` events within `secs`, then an abrupt
    close. on_event(kind, id, data) for each event."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", path, headers=dict(A, **headers))
    r = c.getresponse()
    if r.status != 200:
        problems.append("%s: %d %s" % (path, r.status, r.read()[:200]))
        c.close()
        return
    sock = c.sock
    end = time.time() + secs
    buf, n = b"", 0
    try:
        while n < want and time.time() < end:
            sock.settimeout(max(0.01, end - time.time()))
            chunk = r.read1(65536)
            if not chunk:
                break
            buf += chunk
            while b"\n\n" in buf and n < want:
                block, buf = buf.split(b"\n\n", 1)
                ev = {}
                for line in block.split(b"\n"):
                    if b": " in line and not line.startswith(b":"):
                        k, v = line.split(b": ", 1)
                        ev[k.decode()] = v.decode()
                if "data" in ev:
                    on_event(ev.get("event", "message"), int(ev["id"]) if "id" in ev else None,
                             json.loads(ev["data"]))
                    n += 1
    except (socket.timeout, TimeoutError):
        pass
    except (OSError, http.client.HTTPException) as e:
        problems.append("%s: %r" % (path, e))
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    c.close()


def sse_session_client(cl, name):
    def on_event(kind, sid, data):
        if kind == "gap":
            cl.gaps.append(data)
            return
        cl.seen.append((data["session"], data["seq"], data.get("eventId")))
        cl.ids.append(sid)
        if sid != data["seq"]:
            problems.append("%s: SSE id %s is not the seq %d" % (cl.name, sid, data["seq"]))

    first = 0
    while not stop.is_set() and (cl.cycles <= CYCLES or time.time() < t_min):
        last = cl.last_seq()
        if not first:
            first = last
        how = cl.cycles % 3
        if not last:
            path, h = route(name) + "/events", {}
        elif how == 0:
            path, h = route(name) + "/events?since=%d" % last, {}
        elif how == 1:
            path, h = route(name) + "/events", {"Last-Event-ID": str(last)}
        else:  # an EventSource opened with ?since= reconnecting: the header wins
            path, h = route(name) + "/events?since=%d" % first, {"Last-Event-ID": str(last)}
        sse_events(path, h, random.randint(0, 2), random.uniform(0.05, 0.4), on_event)
        cl.cycles += 1


def sse_all_client(cl):
    def on_event(kind, sid, data):
        if kind == "gap":
            cl.gaps.append(data)
        else:
            cl.seen.append((data["session"], data["seq"], data.get("eventId")))
        cl.ids.append(sid)

    while not stop.is_set() and (cl.cycles <= CYCLES or time.time() < t_min):
        h = {"Last-Event-ID": str(cl.ids[-1])} if cl.ids else {}
        sse_events("/api/events", h, random.randint(0, 3), random.uniform(0.05, 0.4), on_event)
        cl.cycles += 1


def ws_recv(ws, end):
    """The next text message of `ws` before time `end` (pings and pongs
    skipped), or None when `end` passed first."""
    while time.time() < end:
        ws.s.settimeout(max(0.01, end - time.time()))
        try:
            b0, b1 = ws._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = int.from_bytes(ws._read(2), "big")
            elif n == 127:
                n = int.from_bytes(ws._read(8), "big")
            ws.s.settimeout(5)  # the rest of a started frame comes at once
            payload = ws._read(n)
        except (socket.timeout, TimeoutError):
            return None
        if b0 & 0x0F == 8:
            raise EOFError
        if b0 & 0x0F == 1:  # the gateway sends each message in one frame
            return json.loads(payload)
    return None


def ws_client(cl, name):
    while not stop.is_set() and (cl.cycles <= CYCLES or time.time() < t_min):
        last = cl.last_seq()
        path = route(name) + "/ws" + ("?since=%d" % last if last else "")
        ws = None
        try:
            ws = WS("127.0.0.1", port, path, timeout=5, headers=A)
            if ws.status != 101:
                problems.append("%s: upgrade %d" % (path, ws.status))
            else:
                end, want, n = time.time() + random.uniform(0.05, 0.4), random.randint(0, 2), 0
                while n < want:
                    m = ws_recv(ws, end)
                    if m is None:
                        break
                    if m.get("type") == "gap":
                        cl.gaps.append(m)
                    else:
                        cl.seen.append((m["session"], m["seq"], m.get("eventId")))
                    n += 1
        except (socket.timeout, TimeoutError):
            pass
        except (OSError, EOFError, ValueError) as e:
            problems.append("%s: %r" % (path, e))
        if ws:
            try:
                ws.s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            ws.close()
        cl.cycles += 1


def grpc_client(cl, name, pb, pbg, grpc):
    ch = grpc.insecure_channel("127.0.0.1:%d" % gport)
    stub = pbg.GatewayStub(ch)
    while not stop.is_set() and (cl.cycles <= CYCLES or time.time() < t_min):
        if name:
            it = stub.WatchStatus(pb.WatchStatusRequest(session=name, since_seq=cl.last_seq()),
                                  metadata=[("x-api-key", KEY)], timeout=10)
        else:
            it = stub.WatchSessions(pb.WatchSessionsRequest(since_seq=cl.max_id()),
                                    metadata=[("x-api-key", KEY)], timeout=10)
        t = threading.Timer(random.uniform(0.05, 0.4), it.cancel)
        t.start()
        want, n = random.randint(0, 3), 0
        try:
            while n < want:
                st = next(it)
                if st.gap_to:
                    cl.gaps.append((st.gap_from, st.gap_to))
                cl.seen.append((st.session, st.seq, st.event_id))
                if st.event_id:
                    cl.ids.append(st.event_id)
                elif not name:
                    problems.append("%s: a Status without event_id" % cl.name)
                n += 1
            it.cancel()
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                problems.append("%s: %s %s" % (cl.name, e.code(), e.details()))
        except StopIteration:
            problems.append("%s: the stream ended" % cl.name)
        t.cancel()
        cl.cycles += 1
        if cl.cycles % 25 == 0:  # now and then a whole new connection
            ch.close()
            ch = grpc.insecure_channel("127.0.0.1:%d" % gport)
            stub = pbg.GatewayStub(ch)
    ch.close()


pb, pbg = e2elib.grpc_stubs()[:2]
import grpc  # noqa: E402

clients = {
    "sse": Client("sse s1"), "ws": Client("ws s2"), "grpc": Client("grpc WatchStatus s3"),
    "grpc_all": Client("grpc WatchSessions"), "sse_all": Client("sse /api/events"),
}
t0 = time.time()
t_min = t0 + MIN_SECONDS
storm_t = threading.Thread(target=storm, daemon=True)
storm_t.start()
threads = [threading.Thread(target=f, args=a, daemon=True) for f, a in [
    (sse_session_client, (clients["sse"], "s1")),
    (ws_client, (clients["ws"], "s2")),
    (grpc_client, (clients["grpc"], "s3", pb, pbg, grpc)),
    (grpc_client, (clients["grpc_all"], "", pb, pbg, grpc)),
    (sse_all_client, (clients["sse_all"],)),
]]
for t in threads:
    t.start()
for t in threads:
    t.join(100)
    if t.is_alive():
        fail("a client did not finish its %d cycles in time: %s" % (
            CYCLES, {k: c.cycles for k, c in clients.items()}))
t_storm = time.time() - t0
print("clients done in %.1f s" % t_storm, flush=True)
stop.set()
storm_t.join(10)

# --- quiet: every session logged out (no more QRs), its final seq read ---
for name in NAMES:
    req(port, "POST", route(name) + "/logout", headers=A)
final, quiet_since = {}, time.time()
for _ in range(100):
    now = {n: status(n)["seq"] for n in NAMES}
    if now != final:
        final, quiet_since = now, time.time()
    elif time.time() - quiet_since > 1.5 and all(status(n)["state"] == "DISCONNECTED" for n in NAMES):
        break
    time.sleep(0.1)

# --- each client resumes once more and reads up to the final seqs ---
stop.clear()


def on_sse(cl, all_sessions=False):
    def f(kind, sid, data):
        if kind == "gap":
            cl.gaps.append(data)
        else:
            cl.seen.append((data["session"], data["seq"], data.get("eventId")))
        if all_sessions or kind != "gap":
            cl.ids.append(sid)
    return f


def drain_once(key):
    cl = clients[key]
    if key == "sse":
        sse_events(route("s1") + "/events", {"Last-Event-ID": str(cl.last_seq())}, 1000, 0.7, on_sse(cl))
    elif key == "sse_all":
        sse_events("/api/events", {"Last-Event-ID": str(cl.ids[-1])}, 1000, 0.7, on_sse(cl, True))
    elif key == "ws":
        ws_client_drain(cl, "s2")
    else:
        grpc_drain(cl, "s3" if key == "grpc" else "")


def ws_client_drain(cl, name):
    ws = WS("127.0.0.1", port, route(name) + "/ws?since=%d" % cl.last_seq(), timeout=5, headers=A)
    end = time.time() + 0.7
    while True:
        m = ws_recv(ws, end)
        if m is None:
            break
        if m.get("type") == "gap":
            cl.gaps.append(m)
        else:
            cl.seen.append((m["session"], m["seq"], m.get("eventId")))
    ws.close()


def grpc_drain(cl, name):
    ch = grpc.insecure_channel("127.0.0.1:%d" % gport)
    stub = pbg.GatewayStub(ch)
    if name:
        it = stub.WatchStatus(pb.WatchStatusRequest(session=name, since_seq=cl.last_seq()),
                              metadata=[("x-api-key", KEY)], timeout=10)
    else:
        it = stub.WatchSessions(pb.WatchSessionsRequest(since_seq=cl.max_id()),
                                metadata=[("x-api-key", KEY)], timeout=10)
    t = threading.Timer(0.7, it.cancel)
    t.start()
    try:
        for st in it:
            if st.gap_to:
                cl.gaps.append((st.gap_from, st.gap_to))
            cl.seen.append((st.session, st.seq, st.event_id))
            if st.event_id:
                cl.ids.append(st.event_id)
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.CANCELLED:
            problems.append("%s drain: %s" % (cl.name, e.code()))
    t.cancel()
    ch.close()


for key in clients:
    drain_once(key)

# --- every seq exactly once, in order ---
watched = {"sse": ["s1"], "ws": ["s2"], "grpc": ["s3"], "grpc_all": NAMES, "sse_all": NAMES}
total = 0
for key, cl in clients.items():
    check(not cl.gaps, "%s: gap notices %s with the default retention" % (cl.name, cl.gaps[:3]))
    for s in watched[key]:
        seqs = [seq for sess, seq, _ in cl.seen if sess == s]
        check(seqs, "%s: nothing of %s" % (cl.name, s))
        if not seqs:
            continue
        want = list(range(seqs[0], final[s] + 1))
        if seqs != want:
            dup = len(seqs) - len(set(seqs))
            missing = sorted(set(want) - set(seqs))
            order = [(a, b) for a, b in zip(seqs, seqs[1:]) if b != a + 1][:5]
            check(False, "%s/%s: not every seq %d..%d once in order: %d duplicates, missing %s, jumps %s"
                  % (cl.name, s, seqs[0], final[s], dup, missing[:10], order))
        total += len(seqs)
    others = {sess for sess, _, _ in cl.seen} - set(watched[key])
    check(not others, "%s: events of other sessions %s" % (cl.name, others))
    # ids: SSE ids of a session stream are seqs (checked above); event ids
    # of the streams of every session only grow once the first states are in
    if key in ("grpc_all", "sse_all"):
        first_batch = len(NAMES)
        ids = cl.ids[first_batch:]
        check(all(b > a for a, b in zip(ids, ids[1:])) if key == "grpc_all" else
              all(b >= a for a, b in zip(ids, ids[1:])),
              "%s: ids went back: %s" % (cl.name, [(a, b) for a, b in zip(ids, ids[1:]) if b < a][:5]))
check(not problems, "%d problems, first: %s" % (len(problems), problems[:5]))
check(sum(final.values()) > 4 * 30, "too few events in the storm: final seqs %s" % final)

gw.terminate()
check(gw.wait(20) == 0, "gateway exit status %s" % gw.returncode)
fw["proc"].terminate()
logtext = open(log).read()
check("AddressSanitizer" not in logtext and "runtime error" not in logtext, "sanitizer report in the gateway log")
print("resume: %s cycles in %.0f s; storm: %s; final seqs %s; %d events checked"
      % ({k: c.cycles for k, c in clients.items()}, t_storm, counts, final, total))
if not e2elib.failed:
    print("PASS")
