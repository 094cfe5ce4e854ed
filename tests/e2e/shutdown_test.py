#!/usr/bin/python3
"""Issue 13 point 4, memory safety and shutdown. SIGTERM while the gateway
has every kind of client must end with status 0 within the grace period
(3 s, plus a second for the forced close), with no sanitizer report (this
test also runs under --config=asan) and no hang:
- idle HTTP/1.1 keep-alive and HTTP/2 connections, a half-sent request (the
  review's reproduction: exit status 134, an h2o_timeout_dispose assertion),
  a client that stopped reading, SSE streams over HTTP/1.1 and HTTP/2, a
  WebSocket stream;
- POST reconnect and gRPC Reconnect waiting for a WhatsApp that never
  answers: both answered (503 / UNAVAILABLE) before the server goes away;
- a gRPC WatchStatus stream, ended with UNAVAILABLE;
- WebSocket upgrades arriving while the signal is handled: no call on a
  WebSocket whose upgrade has not completed (before, h2o_websocket_proceed
  dereferenced its NULL socket: SIGSEGV in every run)."""
import http.client, json, os, signal, socket, subprocess, sys, threading, time
import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import TMP, GW, procs, fail, check, free_port, start_gateway, grpc_stubs
from wsclient import WS
import h2raw

pb, pbg, _, _ = grpc_stubs()
KEY = "shutdown-test-key-0123456789abcdef"
GRACE = 3.0

# A WhatsApp endpoint that accepts connections and never answers: every
# connection attempt, and so every reconnect, stays pending.
hole = socket.socket()
hole.bind(("127.0.0.1", 0))
hole.listen(64)
held = []
threading.Thread(target=lambda: [held.append(hole.accept()) for _ in iter(int, 1)], daemon=True).start()
fw = {"WA_URL": "ws://127.0.0.1:%d/ws/chat" % hole.getsockname()[1], "WA_ROOT_KEY": "00" * 32}


def env():
    return dict(os.environ, WA_URL=fw["WA_URL"], WA_ROOT_KEY=fw["WA_ROOT_KEY"])


def stop_and_wait(gw, log, what):
    t0 = time.time()
    gw.send_signal(signal.SIGTERM)
    try:
        rc = gw.wait(GRACE + 5)
    except subprocess.TimeoutExpired:
        fail("%s: no exit %.0f s after SIGTERM (hang)" % (what, GRACE + 5))
    took = time.time() - t0
    text = open(log).read()
    check(rc == 0, "%s: exit status %d after SIGTERM: %s" % (what, rc, text[-600:]))
    check(took <= GRACE + 2, "%s: exit took %.1f s" % (what, took))
    check("ERROR: AddressSanitizer" not in text and "runtime error" not in text, "%s: sanitizer report" % what)
    return took


# --- every kind of client at once ---
gw, port, gport, log = start_gateway(fw, "all", ["--api-key", KEY], env=env())
H = {"X-API-Key": KEY}
keep = http.client.HTTPConnection("127.0.0.1", port, timeout=10)  # idle keep-alive
keep.request("GET", "/api/whatsapp/status")
check(keep.getresponse().read() != b"", "status")
half = socket.create_connection(("127.0.0.1", port))  # half-sent request
half.sendall(b"GET /api/whatsapp/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ")
h2idle = h2raw.H2("127.0.0.1", port)  # idle HTTP/2
stalled = socket.socket()  # a client that stopped reading
stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
stalled.connect(("127.0.0.1", port))
stalled.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 800)
sse = http.client.HTTPConnection("127.0.0.1", port, timeout=10)  # SSE over HTTP/1.1
sse.request("GET", "/api/whatsapp/events", headers=H)
sse_r = sse.getresponse()
check(sse_r.status == 200, "SSE status %d" % sse_r.status)
sse_r.read1(4096)
h2sse = h2raw.H2("127.0.0.1", port)  # SSE over HTTP/2
h2sse.request(1, [(":method", "GET"), (":scheme", "http"), (":path", "/api/whatsapp/events"),
                  (":authority", "127.0.0.1:%d" % port), ("x-api-key", KEY)])
ws = WS("127.0.0.1", port, "/api/whatsapp/ws", headers=H)  # WebSocket
check(ws.status == 101 and ws.recv()["state"], "WebSocket")
answers = {}


def http_reconnect():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    c.request("POST", "/api/whatsapp/reconnect", headers=H)
    r = c.getresponse()
    answers["http"] = (r.status, r.read())


def grpc_calls():
    ch = grpc.insecure_channel("127.0.0.1:%d" % gport)
    stub = pbg.GatewayStub(ch)
    md = [("x-api-key", KEY)]
    it = stub.WatchStatus(pb.WatchStatusRequest(), metadata=md, timeout=15)
    next(it)

    def watch():
        try:
            for _ in it:
                pass
            answers["watch"] = "OK"
        except grpc.RpcError as e:
            answers["watch"] = e.code()
    threading.Thread(target=watch, daemon=True).start()
    try:
        stub.Reconnect(pb.ReconnectRequest(), metadata=md, timeout=15)
        answers["grpc"] = "OK"
    except grpc.RpcError as e:
        answers["grpc"] = e.code()


threads = [threading.Thread(target=http_reconnect), threading.Thread(target=grpc_calls)]
for t in threads:
    t.start()
time.sleep(1.0)  # both reconnects are waiting now
check(not answers, "a reconnect was answered before the stop: %s" % answers)
took = stop_and_wait(gw, log, "all clients")
for t in threads:
    t.join(10)
check(answers.get("http", (0,))[0] == 503 and json.loads(answers["http"][1])["success"] is False,
      "pending POST reconnect answered %s" % (answers.get("http"),))
check(answers.get("grpc") == grpc.StatusCode.UNAVAILABLE, "pending gRPC Reconnect ended with %s" % answers.get("grpc"))
for _ in range(50):
    if "watch" in answers:
        break
    time.sleep(0.1)
check(answers.get("watch") == grpc.StatusCode.UNAVAILABLE, "WatchStatus ended with %s" % answers.get("watch"))
print("every kind of client: exit 0 after %.1f s" % took)

# --- WebSocket upgrades arriving while SIGTERM is handled ---
req = None
for run in range(5):
    gw, port, gport, log = start_gateway(fw, "ws%d" % run, ["--heartbeat-ms", "10"], env=env())
    req = ("GET /api/whatsapp/ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n" % port).encode()
    stop, socks = [False], []

    def blast():
        while not stop[0] and len(socks) < 3000:
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.sendall(req)
                socks.append(s)
            except OSError:
                break
    ths = [threading.Thread(target=blast) for _ in range(4)]
    for t in ths:
        t.start()
    time.sleep(0.2)
    stop_and_wait(gw, log, "upgrades during SIGTERM (run %d, %d upgrades)" % (run, len(socks)))
    stop[0] = True
    for t in ths:
        t.join()
    for s in socks:
        s.close()
print("upgrades during SIGTERM: 5 clean exits")
print("PASS")
