#!/usr/bin/python3
# Starts a server command and measures the time from exec to its first
# "200" answer on http://127.0.0.1:PORT/PATH, polling every 0.5 ms with a raw
# socket (no client start-up cost in the figure). Prints "<pid> <ms>" and
# leaves the server running (its output goes to /dev/null). Benchmarks only.
# Usage: first200.py PORT PATH CMD [ARG...]
import os, socket, subprocess, sys, time

port, path, cmd = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" % path).encode()
t0 = time.monotonic()
p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True)
deadline = t0 + 30
while time.monotonic() < deadline:
    if p.poll() is not None:
        sys.exit("server exited with %d" % p.returncode)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(req)
            head = s.recv(64)
            if head.startswith(b"HTTP/1.1 200") or head.startswith(b"HTTP/1.0 200"):
                print(p.pid, round((time.monotonic() - t0) * 1000, 1), flush=True)
                os._exit(0)
    except OSError:
        pass
    time.sleep(0.0005)
p.kill()
sys.exit("no 200 within 30 s")
