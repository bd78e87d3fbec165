#!/usr/bin/env python3
"""One capacity run: starts a Snakepit deployment on loopback (standalone, or
a cluster of G gateways, W workers and one redis-server), runs the bot swarm
against it, and reports the swarm's figures together with the server side:
process CPU time from /proc (gateway + worker + Redis) per delivered frame,
RSS, and Redis commands per room per tick.

    capacity.py --mode standalone --players 1000 --duration 30
    capacity.py --mode cluster --gateways 1 --workers 1 --players 1000 --duration 30

Binaries come from target/release (build them first: cargo build --release
--workspace). Everything listens on 127.0.0.1 and stops at the end.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.join(ROOT, "target", "release")
TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def start(cmd, log):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=open(log, "w"), text=True)
    line = p.stdout.readline()
    if not line.startswith("listening on"):
        sys.exit(f"{cmd[0]} did not start: {line!r} (see {log})")
    p.port = int(line.strip().rsplit(":", 1)[1])
    return p


def redis_cmd(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True).stdout


def commandstats(port):
    calls = {}
    for line in redis_cmd(port, "INFO", "commandstats").splitlines():
        m = re.match(r"cmdstat_(\S+?):calls=(\d+)", line)
        if m:
            calls[m.group(1)] = int(m.group(2))
    return calls


def metric(port, name):
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name)] in " {":
            total += float(line.rsplit(" ", 1)[1])
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["standalone", "cluster"], default="standalone")
    ap.add_argument("--gateways", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--players", type=int, default=1000)
    ap.add_argument("--spectators", type=float, default=0.0)
    ap.add_argument("--duration", type=int, default=30, help="seconds measured, after the ramp")
    ap.add_argument("--ramp", type=int, default=10)
    ap.add_argument("--tick-rate", default="10")
    ap.add_argument("--swarm-args", default="", help="extra arguments for swarm")
    args = ap.parse_args()

    logs = os.path.join(ROOT, "target", "capacity-logs")
    os.makedirs(logs, exist_ok=True)
    procs, server = [], {}
    game = ["--tick-rate", args.tick_rate]
    redis_port = None
    data = None
    try:
        if args.mode == "standalone":
            port = free_port()
            # Its top scores go to a temporary folder, not the user's.
            data = tempfile.mkdtemp(prefix="snakepit-capacity-")
            g = start([f"{BIN}/gateway", "--listen", f"127.0.0.1:{port}", "--data-dir", data, *game],
                      f"{logs}/gateway.log")
            procs.append(g)
            server["gateway"] = [g.pid]
            urls = [f"ws://127.0.0.1:{port}/connect"]
            metric_ports = [port]
        else:
            redis_port = free_port()
            r = subprocess.Popen(
                ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                stdout=subprocess.DEVNULL,
            )
            procs.append(r)
            server["redis"] = [r.pid]
            for _ in range(100):
                if redis_cmd(redis_port, "PING").strip() == "PONG":
                    break
                time.sleep(0.05)
            url = f"redis://127.0.0.1:{redis_port}/"
            server["worker"], server["gateway"], urls, metric_ports = [], [], [], []
            worker_ports = []
            for i in range(args.workers):
                w = start(
                    [f"{BIN}/room-worker", "--redis-url", url, "--listen", "127.0.0.1:0", "--worker-id", f"cap-w{i}", *game],
                    f"{logs}/worker-{i}.log",
                )
                procs.append(w)
                server["worker"].append(w.pid)
                worker_ports.append(w.port)
            for i in range(args.gateways):
                port = free_port()
                g = start([f"{BIN}/gateway", "--redis-url", url, "--listen", f"127.0.0.1:{port}", *game], f"{logs}/gateway-{i}.log")
                procs.append(g)
                server["gateway"].append(g.pid)
                urls.append(f"ws://127.0.0.1:{port}/connect")
                metric_ports.append(port)
        time.sleep(1)
        rss0 = {k: sum(rss_kib(p) for p in v) for k, v in server.items()}
        total = args.ramp + args.duration
        swarm = subprocess.Popen(
            [f"{BIN}/swarm", "--url", ",".join(urls), "--players", str(args.players), "--duration", f"{total}s",
             "--ramp", f"{args.ramp}s", "--spectators", str(args.spectators), "--json", *args.swarm_args.split()],
            stdout=subprocess.PIPE, stderr=open(f"{logs}/swarm.log", "w"), text=True,
        )
        time.sleep(args.ramp)
        # The measured window: after the ramp, until the swarm ends.
        cpu0 = {k: sum(cpu_seconds(p) for p in v) for k, v in server.items()}
        swarm_cpu0 = cpu_seconds(swarm.pid)
        sent0 = sum(metric(p, "snakepit_frames_sent_total") for p in metric_ports)
        cmds0 = commandstats(redis_port) if redis_port else {}
        ticks0 = time.monotonic()
        time.sleep(max(0, args.duration - 1))
        cpu1 = {k: sum(cpu_seconds(p) for p in v) for k, v in server.items()}
        swarm_cpu1 = cpu_seconds(swarm.pid)
        sent1 = sum(metric(p, "snakepit_frames_sent_total") for p in metric_ports)
        cmds1 = commandstats(redis_port) if redis_port else {}
        window = time.monotonic() - ticks0
        rss1 = {k: sum(rss_kib(p) for p in v) for k, v in server.items()}
        if args.mode == "cluster":
            rooms = sum(metric(p, "snakepit_rooms") for p in worker_ports)
        else:
            rooms = metric(metric_ports[0], "snakepit_rooms")
        out, _ = swarm.communicate(timeout=args.duration + 120)
        report = json.loads(out)
        frames = sent1 - sent0
        cpu = {k: round(cpu1[k] - cpu0[k], 2) for k in cpu1}
        result = {
            "mode": args.mode,
            "gateways": args.gateways if args.mode == "cluster" else 1,
            "workers": args.workers if args.mode == "cluster" else 0,
            "players": args.players,
            "window_s": round(window, 1),
            "frames_delivered_per_s": round(frames / window),
            "server_cpu_s": cpu,
            "server_cpu_percent_of_one_core": {k: round(100 * v / window, 1) for k, v in cpu.items()},
            "swarm_cpu_percent_of_one_core": round(100 * (swarm_cpu1 - swarm_cpu0) / window, 1),
            "server_cpu_us_per_frame": round(1e6 * sum(cpu.values()) / max(frames, 1), 2),
            "rss_kib": {k: {"before": rss0[k], "after": rss1[k]} for k in rss1},
            "swarm": report,
        }
        if redis_port:
            delta = {k: cmds1.get(k, 0) - cmds0.get(k, 0) for k in cmds1}
            delta = {k: v for k, v in delta.items() if v > 0}
            room_ticks = rooms * float(args.tick_rate) * window
            result["redis_commands"] = delta
            result["redis_commands_per_room_tick"] = round(sum(delta.values()) / max(room_ticks, 1), 2)
        result["rooms"] = rooms
        print(json.dumps(result, indent=1))
    finally:
        for p in procs:
            try:
                p.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        if data:
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
