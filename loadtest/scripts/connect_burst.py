#!/usr/bin/env python3
"""A burst of simultaneous WebSocket connects against a gateway.

When a gateway dies, its clients reconnect to the others at once. This
opens N connections as close to simultaneously as one process can (every
connect() is issued before the first answer is read), upgrades each to a
WebSocket on /connect, and reports how long the connects took (one Python
process on one core: its own pace dominates the times, so compare backlogs
within one run), how many SYNs had to be sent again, and whether
the kernel dropped any for a full accept queue (`nstat`
TcpExtListenOverflows / TcpExtListenDrops, system-wide, so run it on a quiet
machine). A dropped SYN costs its client a retransmission: one second.

By default it starts a standalone gateway per backlog given (`--backlogs
128,4096`), pinned to one core with taskset while the burst runs on the
other, and prints one line per backlog:

    python3 loadtest/scripts/connect_burst.py --connects 5000

Exits non-zero if the last backlog listed saw an overflow or a connect
failed (`--fail-on-overflow`).
"""

import argparse
import asyncio
import base64
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster_procs import nstat  # noqa: E402


async def one(host, port, go, results):
    await go.wait()
    start = time.monotonic()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 30)
        connected = time.monotonic() - start
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET /connect HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 30)
        ok = b" 101 " in status
        results.append((connected, time.monotonic() - start, ok, writer))
    except (OSError, asyncio.TimeoutError) as e:
        results.append((time.monotonic() - start, time.monotonic() - start, False, None))
        print(f"connect failed: {e!r}", file=sys.stderr)


async def burst(host, port, n):
    go = asyncio.Event()
    results = []
    tasks = [asyncio.create_task(one(host, port, go, results)) for _ in range(n)]
    await asyncio.sleep(0.2)
    t0 = time.monotonic()
    go.set()
    await asyncio.gather(*tasks)
    total = time.monotonic() - t0
    for *_, w in results:
        if w is not None:
            w.close()
    return total, results


def pct(sorted_values, p):
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, int(p / 100 * len(sorted_values)))
    return sorted_values[i]


def start_gateway(binary, backlog, core):
    cmd = [binary, "--listen", "127.0.0.1:0", "--listen-backlog", str(backlog), "--no-data-dir"]
    if core is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(core)] + cmd
    env = dict(os.environ, SNAKEPIT_LOG_FORMAT="text", RUST_LOG="warn")
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    line = p.stdout.readline()
    m = re.search(r"listening on http://([\d.]+):(\d+)", line)
    if not m:
        p.kill()
        raise SystemExit(f"gateway did not start: {line!r}")
    return p, m.group(1), int(m.group(2))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connects", type=int, default=5000)
    ap.add_argument("--backlogs", default="128,4096", help="comma-separated; a gateway per value")
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "gateway"))
    ap.add_argument("--target", help="host:port of a running gateway instead (backlogs ignored)")
    ap.add_argument("--server-core", type=int, default=0)
    ap.add_argument("--client-core", type=int, default=1)
    ap.add_argument("--fail-on-overflow", action="store_true")
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.connects + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    if shutil.which("taskset") and args.client_core is not None:
        os.sched_setaffinity(0, {args.client_core})

    runs = [(None, args.target)] if args.target else [(int(b), None) for b in args.backlogs.split(",")]
    failed = False
    for backlog, target in runs:
        proc = None
        if target:
            host, port = target.rsplit(":", 1)
            port = int(port)
        else:
            proc, host, port = start_gateway(args.binary, backlog, args.server_core)
        try:
            before = nstat()
            total, results = asyncio.run(burst(host, port, args.connects))
            after = nstat()
        finally:
            if proc:
                proc.terminate()
                proc.wait(10)
        connects = sorted(c for c, _, _, _ in results)
        times = sorted(t for _, t, _, _ in results)
        ok = sum(1 for _, _, good, _ in results if good)
        overflows = after.get("TcpExtListenOverflows", 0) - before.get("TcpExtListenOverflows", 0)
        drops = after.get("TcpExtListenDrops", 0) - before.get("TcpExtListenDrops", 0)
        retrans = after.get("TcpExtTCPSynRetrans", 0) - before.get("TcpExtTCPSynRetrans", 0)
        print(f"backlog {backlog if backlog is not None else '?'}: {ok}/{args.connects} upgraded in {total:.2f} s; "
              f"TCP connect p50 {pct(connects, 50) * 1000:.0f} ms, p99 {pct(connects, 99) * 1000:.0f} ms, "
              f"max {connects[-1] * 1000 if connects else float('nan'):.0f} ms; "
              f"connect+upgrade p99 {pct(times, 99) * 1000:.0f} ms; "
              f"ListenOverflows +{overflows}, ListenDrops +{drops}, SYN retransmits +{retrans}")
        failed = ok < args.connects or overflows > 0 or drops > 0
    if args.fail_on_overflow and failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
