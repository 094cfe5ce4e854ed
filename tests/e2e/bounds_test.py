#!/usr/bin/python3
"""Issue 13 point 6, bounds on the gRPC side (the node decoder's bounds are
in tests/wa_node/node_test.c), against a WhatsApp endpoint that never
answers so that every reconnect waits: Reconnect's wait_ms has the HTTP
range (before, any value was taken: a 49-day wait for 4294967295); a
Reconnect whose client goes away (deadline, cancel) has its wait cancelled
at once (before, it ran to its end, holding the session's reconnect, a
subscription and a timer), as a POST reconnect whose client disconnects
already had."""
import http.client, os, socket, sys, threading, time
import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import TMP, procs, fail, check, start_gateway, grpc_stubs

pb, pbg, _, _ = grpc_stubs()
KEY = "bounds-test-key-0123456789abcdef"
MD = [("x-api-key", KEY)]

hole = socket.socket()  # accepts WhatsApp connections, never answers
hole.bind(("127.0.0.1", 0))
hole.listen(64)
held = []
threading.Thread(target=lambda: [held.append(hole.accept()) for _ in iter(int, 1)], daemon=True).start()
env = dict(os.environ, WA_URL="ws://127.0.0.1:%d/ws/chat" % hole.getsockname()[1], WA_ROOT_KEY="00" * 32)
gw, port, gport, log = start_gateway(None, "bounds", ["--api-key", KEY], env=env)


def waits():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", "/metrics")
    for line in c.getresponse().read().decode().splitlines():
        if line.startswith("wagw_reconnect_waits "):
            return int(line.split()[1])
    return -1


def wait_for(n, secs=3):
    end = time.time() + secs
    while time.time() < end:
        if waits() == n:
            return True
        time.sleep(0.05)
    return False


ch = grpc.insecure_channel("127.0.0.1:%d" % gport)
stub = pbg.GatewayStub(ch)


def code(fn):
    try:
        fn()
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK


# wait_ms outside 0..300000 is refused, like waitMs over HTTP
for bad in (300001, 4294967295):
    got = code(lambda: stub.Reconnect(pb.ReconnectRequest(wait_ms=bad), metadata=MD, timeout=3))
    check(got == grpc.StatusCode.INVALID_ARGUMENT, "wait_ms=%d gave %s" % (bad, got))
check(wait_for(0), "a refused Reconnect left a wait")

# a Reconnect whose client gives up: the wait goes with it
got = code(lambda: stub.Reconnect(pb.ReconnectRequest(wait_ms=300000), metadata=MD, timeout=1))
check(got == grpc.StatusCode.DEADLINE_EXCEEDED, "the pending Reconnect gave %s" % got)
check(wait_for(0), "a cancelled Reconnect kept its wait (%d waiting)" % waits())
fut = stub.Reconnect.future(pb.ReconnectRequest(wait_ms=300000), metadata=MD)
check(wait_for(1), "the Reconnect is not waiting (%d)" % waits())
fut.cancel()
check(wait_for(0), "a cancelled Reconnect kept its wait (%d waiting)" % waits())

# the same over HTTP: a client that disconnects ends its wait
c = socket.create_connection(("127.0.0.1", port))
c.sendall(b"POST /api/whatsapp/reconnect HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: %s\r\n"
          b"Content-Length: 0\r\n\r\n" % KEY.encode())
check(wait_for(1), "the POST reconnect is not waiting (%d)" % waits())
c.close()
check(wait_for(0), "a disconnected POST reconnect kept its wait (%d waiting)" % waits())
ch.close()
gw.terminate()
check(gw.wait(10) == 0, "gateway exit status")
print("PASS")
