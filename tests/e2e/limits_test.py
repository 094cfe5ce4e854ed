#!/usr/bin/python3
"""Issue 13 point 3, resource limits, against the real gateway with small
limits (MAX_CONNECTIONS=20, STALL_TIMEOUT_MS=2000, GRPC_MAX_STREAMS=10,
GRPC_MAX_UNAUTH_STREAMS=4). Each check reproduces a way one client could
exhaust the service before the fix:
- the open-files limit is raised to its hard limit at start (it was left low);
- connections over MAX_CONNECTIONS are closed at once (there was no cap);
- an HTTP/1.1 client that pipelines requests and stops reading is closed
  within the stall timeout (it was kept, with its responses, forever);
- an HTTP/2 client that keeps its flow-control window at zero is closed
  within the stall timeout (h2o's idle timeout stops while a response is
  open: it was kept forever);
- a WebSocket message declaring 1 MB is closed with 1009 from its header
  (the gateway waited for, and allocated, the whole message);
- a WebSocket client that sends pings without reading the pongs is closed
  (the pongs queued without bound);
- gRPC calls over the total and unauthenticated caps, and health Watch
  streams over theirs, end with RESOURCE_EXHAUSTED (there were no caps);
- a gRPC stream whose client keeps a zero window is cancelled within the
  stall timeout (it held its slot forever)."""
import http.client, os, resource, socket, struct, sys, time
import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import TMP, procs, fail, check, start_fakewa, start_gateway, grpc_stubs, gateway_env
import h2raw

pb, pbg, hpb, hpbg = grpc_stubs()
KEY = "limits-test-key-0123456789abcdef"
STALL = 2.0


def metric(port, name):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return int(line.split()[1])
    return -1  # no such metric


def closed_within(sock, secs, max_bytes=None):
    """Reads until the peer ends the connection; True when it did within
    `secs` (and before `max_bytes` when given)."""
    sock.settimeout(0.5)
    end, got = time.time() + secs, 0
    while time.time() < end:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return True
        if not chunk:
            return True
        got += len(chunk)
        if max_bytes is not None and got >= max_bytes:
            return False
    return False


def low_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))


fw = start_fakewa("--refs", "5", "--qr-first-ms", "60000", "--qr-next-ms", "20000")
# the limits through the environment, so that the same test runs (and
# fails) against a gateway that does not know them
gw, port, gport, log = start_gateway(
    fw, "limits", ["--api-key", KEY], preexec_fn=low_nofile,
    env=dict(gateway_env(fw), MAX_CONNECTIONS="20", STALL_TIMEOUT_MS=str(int(STALL * 1000)),
             GRPC_MAX_STREAMS="10", GRPC_MAX_UNAUTH_STREAMS="4"))

# --- the open-files limit is raised to its hard limit ---
limits = open("/proc/%d/limits" % gw.pid).read()
row = [l for l in limits.splitlines() if l.startswith("Max open files")][0].split()
check(row[3] == row[4], "open-files limit not raised: soft %s, hard %s" % (row[3], row[4]))

# --- a cap on connections ---
socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(30)]
time.sleep(0.5)
closed = 0
for s in socks:
    s.settimeout(0.2)
    try:
        if s.recv(1) == b"":
            closed += 1
    except socket.timeout:
        pass
    except ConnectionResetError:
        closed += 1
check(closed >= 10, "connections over MAX_CONNECTIONS kept open (%d of 30 closed)" % closed)
for s in socks:
    s.close()
time.sleep(0.3)
check(metric(port, 'wagw_limit_hits_total{limit="http_connections"}') >= 10, "refused connections not counted")
print("connection cap ok: %d of 30 closed" % closed)

# --- HTTP/1.1: a client that pipelines requests and stops reading ---
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("127.0.0.1", port))
n = 1500  # the link page, ~8 KB each: far more than the socket buffers hold
s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * n)
time.sleep(STALL + 2)
check(closed_within(s, 3, max_bytes=n * 4000), "a client that stopped reading was not closed")
s.close()
print("HTTP/1.1 stalled reader closed")

# --- HTTP/2: a client that keeps its flow-control window at zero ---
t0 = time.time()
h = h2raw.H2("127.0.0.1", port, settings=[(h2raw.SETTINGS_INITIAL_WINDOW_SIZE, 0)])
h.s.settimeout(1)
h.request(1, [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "127.0.0.1:%d" % port)])
data, closed = 0, False
while time.time() - t0 < STALL + 6:
    f = h.read_frame()
    if f is None:
        closed = True
        break
    if f != "timeout" and f[0] == h2raw.DATA:
        data += len(f[3])
check(closed, "an HTTP/2 client with a zero window was not closed")
check(data == 0, "DATA sent into a zero window")
check(time.time() - t0 <= STALL + 3, "zero-window client closed after %.1f s" % (time.time() - t0))
h.close()
print("HTTP/2 zero-window client closed after %.1f s" % (time.time() - t0))


# --- WebSocket: size limit and a client that does not read ---
def ws_open(rcvbuf=None):
    w = socket.socket()
    if rcvbuf:
        w.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    w.connect(("127.0.0.1", port))
    w.settimeout(5)
    w.sendall(("GET /api/whatsapp/ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Sec-WebSocket-Version: 13\r\nX-API-Key: %s\r\n\r\n" % (port, KEY)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += w.recv(1)
    check(b" 101 " in head.split(b"\r\n")[0], "WebSocket upgrade: %r" % head[:40])
    return w


w = ws_open()
# a text frame declaring 1 MiB, with its first 100 bytes only
w.sendall(bytes([0x81, 0x80 | 127]) + struct.pack(">Q", 1 << 20) + b"\x01\x02\x03\x04" + b"x" * 100)
buf, code, t0 = b"", None, time.time()
while code is None and time.time() - t0 < 3:
    try:
        chunk = w.recv(4096)
    except socket.timeout:
        break
    if not chunk:
        break
    buf += chunk
    while len(buf) >= 2:  # server frames are unmasked, short here
        n = buf[1] & 0x7F
        hl = 2 + (2 if n == 126 else 8 if n == 127 else 0)
        if n == 126 and len(buf) >= 4:
            n = int.from_bytes(buf[2:4], "big")
        if len(buf) < hl + n:
            break
        if buf[0] & 0x0F == 8:
            code = int.from_bytes(buf[hl:hl + 2], "big")
        buf = buf[hl + n:]
check(code == 1009, "a 1 MiB WebSocket message was not closed with 1009 (got %s)" % code)
w.close()
print("WebSocket 1009 after %.2f s" % (time.time() - t0))

w = ws_open(rcvbuf=4096)
ping = bytes([0x89, 0x80 | 125]) + b"\0\0\0\0" + b"p" * 125
sent, ended = 0, False
try:
    w.settimeout(0.5)
    for _ in range(20000):
        w.sendall(ping)
        sent += 1
except (BrokenPipeError, ConnectionResetError, socket.timeout):
    ended = True
if not ended:
    ended = closed_within(w, STALL + 3, max_bytes=20000 * 127)
check(ended, "a WebSocket client sending pings without reading was kept (%d pings)" % sent)
w.close()
check(metric(port, 'wagw_limit_hits_total{limit="ws_unread"}') + metric(port, 'wagw_limit_hits_total{limit="stalled"}') >= 1,
      "the unread WebSocket close was not counted")
print("WebSocket unread pings closed after %d pings" % sent)

# --- gRPC: stream caps ---
ch = grpc.insecure_channel("127.0.0.1:%d" % gport)
hstub, gstub = hpbg.HealthStub(ch), pbg.GatewayStub(ch)
held = []


def code_of_stream(it):
    try:
        next(it)
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK


for i in range(4):  # health Watch needs no key: the unauthenticated cap
    it = hstub.Watch(hpb.HealthCheckRequest(), timeout=30)
    check(code_of_stream(it) == grpc.StatusCode.OK, "health Watch %d refused" % i)
    held.append(it)
it = hstub.Watch(hpb.HealthCheckRequest(), timeout=30)
check(code_of_stream(it) == grpc.StatusCode.RESOURCE_EXHAUSTED, "a 5th unauthenticated stream was accepted")
for i in range(6):  # with the key: up to the total cap
    it = gstub.WatchStatus(pb.WatchStatusRequest(), metadata=[("x-api-key", KEY)], timeout=30)
    check(code_of_stream(it) == grpc.StatusCode.OK, "WatchStatus %d refused" % i)
    held.append(it)
it = gstub.WatchStatus(pb.WatchStatusRequest(), metadata=[("x-api-key", KEY)], timeout=30)
check(code_of_stream(it) == grpc.StatusCode.RESOURCE_EXHAUSTED, "an 11th stream was accepted")
for it in held:
    it.cancel()
time.sleep(0.5)
it = gstub.WatchStatus(pb.WatchStatusRequest(), metadata=[("x-api-key", KEY)], timeout=30)
check(code_of_stream(it) == grpc.StatusCode.OK, "streams not released after cancel")
it.cancel()
ch.close()
print("gRPC caps ok")

# --- gRPC: a stream whose client keeps a zero window ---
t0 = time.time()
h = h2raw.H2("127.0.0.1", gport, settings=[(h2raw.SETTINGS_INITIAL_WINDOW_SIZE, 0)])
h.request(1, [(":method", "POST"), (":scheme", "http"), (":path", "/wagateway.v1.Gateway/WatchStatus"),
              (":authority", "127.0.0.1:%d" % gport), ("content-type", "application/grpc"), ("te", "trailers"),
              ("x-api-key", KEY)], body=b"\0\0\0\0\0")
h.s.settimeout(1)
ended = None
while ended is None:
    f = h.read_frame()
    if f is None or time.time() - t0 > STALL + 6:
        break
    if f == "timeout":
        continue
    if f[0] == h2raw.RST_STREAM and f[2] == 1:
        ended = "RST_STREAM"
    elif f[0] == h2raw.HEADERS and f[2] == 1 and f[1] & h2raw.END_STREAM:
        ended = "trailers"
check(ended is not None, "a zero-window gRPC stream was not ended")
check(time.time() - t0 <= STALL + 3, "zero-window gRPC stream ended after %.1f s" % (time.time() - t0))
h.close()
print("gRPC zero-window stream ended (%s) after %.1f s" % (ended, time.time() - t0))

gw.terminate()
check(gw.wait(10) == 0, "gateway exit status")
fw["proc"].terminate()
print("PASS")
