#!/usr/bin/python3
# gRPC fan-out load for the benchmark: opens N WatchStatus streams (spread
# over connections of at most 100 streams each), prints "ready <n> <errors>"
# once every stream has its first Status, then reads K (the number of further
# changes the driver made) from stdin and waits until every stream saw K more
# messages (or --timeout-s). Latency = receive time - Status.changed_unix_ms.
# Prints the same "result ..." line as sse-load. Benchmarks only.
import argparse, asyncio, os, subprocess, sys, tempfile, time

import grpc

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--n", type=int, default=1000)
ap.add_argument("--key", default="")
ap.add_argument("--timeout-s", type=float, default=30)
ap.add_argument("--per-connection", type=int, default=100)
args = ap.parse_args()

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
gen = tempfile.mkdtemp(prefix="wagw-bench-")
subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I" + os.path.join(SRC, "proto"),
                "--python_out=" + gen, "--grpc_python_out=" + gen, "gateway.proto"], check=True)
sys.path.insert(0, gen)
import gateway_pb2 as pb, gateway_pb2_grpc as pbg  # noqa: E402


class Stream:
    __slots__ = ("first_seq", "last_seq", "after_first", "gaps", "order_errors", "failed")

    def __init__(self):
        self.first_seq = None
        self.last_seq = 0
        self.after_first = 0
        self.gaps = 0
        self.order_errors = 0
        self.failed = False


async def main():
    md = [("x-api-key", args.key)] if args.key else []
    per = args.per_connection
    channels = [grpc.aio.insecure_channel("127.0.0.1:%d" % args.port,
                                          options=[("grpc.wa_bench_channel", i)])
                for i in range((args.n + per - 1) // per)]
    streams = [Stream() for _ in range(args.n)]
    lat = []
    state = {"k": None, "first": 0}
    progress = asyncio.Event()

    async def run(i):
        st = streams[i]
        stub = pbg.GatewayStub(channels[i // per])
        try:
            async for msg in stub.WatchStatus(pb.WatchStatusRequest(), metadata=md):
                now_us = time.time_ns() // 1000
                if st.first_seq is None:
                    st.first_seq = st.last_seq = msg.seq
                    state["first"] += 1
                    progress.set()
                    continue
                if msg.seq <= st.last_seq:
                    st.order_errors += 1
                else:
                    st.gaps += msg.seq - st.last_seq - 1
                st.last_seq = msg.seq
                st.after_first += 1
                if msg.changed_unix_ms:
                    lat.append(now_us - msg.changed_unix_ms * 1000)
                progress.set()
        except grpc.aio.AioRpcError:
            st.failed = True
            progress.set()

    tasks = [asyncio.ensure_future(run(i)) for i in range(args.n)]
    # phase 1: every stream has its first message (or failed)
    while sum(1 for s in streams if s.first_seq is not None or s.failed) < args.n:
        progress.clear()
        await progress.wait()
    errors = sum(1 for s in streams if s.failed)
    print("ready %d %d" % (args.n - errors, errors), flush=True)
    # phase 2: K from the driver
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    if not line.strip():
        print("no K on stdin", file=sys.stderr)
        sys.exit(1)
    k = int(line)
    deadline = time.monotonic() + args.timeout_s
    while time.monotonic() < deadline:
        if all(s.failed or s.after_first >= k for s in streams):
            break
        progress.clear()
        try:
            await asyncio.wait_for(progress.wait(), max(0.01, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            break
    live = [s for s in streams if not s.failed]
    lost = sum(max(0, k - s.after_first) for s in live) + k * sum(1 for s in streams if s.failed)
    lat.sort()

    def pct(p):
        if not lat:
            return 0.0
        return lat[min(len(lat) - 1, max(0, int(-(-p * len(lat) // 100)) - 1))] / 1000.0

    print("result subs=%d errors=%d events=%d lost=%d gaps=%d order_errors=%d "
          "p50_ms=%.2f p99_ms=%.2f max_ms=%.2f" %
          (len(live), sum(1 for s in streams if s.failed), sum(s.after_first for s in live), lost,
           sum(s.gaps for s in live), sum(s.order_errors for s in live), pct(50), pct(99),
           lat[-1] / 1000.0 if lat else 0.0), flush=True)
    # the streams stay open until the server goes; nothing to tidy up here
    os._exit(0)


asyncio.run(main())
