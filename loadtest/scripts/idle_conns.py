#!/usr/bin/env python3
"""Opens N idle WebSocket connections to a gateway (loopback only), holds
them for a while, and prints the gateway's RSS before and after: the memory
one connected (not yet playing) client costs.

    idle_conns.py --url ws://127.0.0.1:8080/connect --pid <gateway pid> -n 10000 --hold 10
"""
import argparse
import asyncio
import base64
import ipaddress
import os
import socket
import sys
import time
from urllib.parse import urlparse


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from capacity import rss_kib  # noqa: E402


async def open_one(host, port, path):
    reader, writer = await asyncio.open_connection(host, port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    status = await reader.readuntil(b"\r\n\r\n")
    if b" 101 " not in status.split(b"\r\n", 1)[0]:
        raise RuntimeError(status[:60])
    return writer


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="ws://127.0.0.1:8080/connect")
    ap.add_argument("--pid", type=int, required=True, help="gateway process id, for its RSS")
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("--hold", type=float, default=10.0)
    ap.add_argument("--rate", type=int, default=2000, help="new connections per second")
    args = ap.parse_args()
    u = urlparse(args.url)
    host = u.hostname or "127.0.0.1"
    if host != "localhost" and not ipaddress.ip_address(socket.gethostbyname(host)).is_loopback:
        sys.exit("refusing a non-loopback target")
    port = u.port or 80
    before = rss_kib(args.pid)
    writers, failed = [], 0
    started = time.monotonic()
    batch = max(1, args.rate // 20)
    for i in range(0, args.n, batch):
        results = await asyncio.gather(
            *(open_one(host, port, u.path or "/") for _ in range(min(batch, args.n - i))), return_exceptions=True
        )
        for r in results:
            if isinstance(r, Exception):
                failed += 1
            else:
                writers.append(r)
        await asyncio.sleep(0.05)
    await asyncio.sleep(args.hold)
    after = rss_kib(args.pid)
    held = len(writers)
    print(
        f"connections held {held}, failed {failed}, opened in {time.monotonic() - started - args.hold:.1f}s; "
        f"gateway RSS {before} KiB -> {after} KiB: {(after - before) / max(held, 1):.1f} KiB per connection"
    )
    for w in writers:
        w.close()


if __name__ == "__main__":
    asyncio.run(main())
