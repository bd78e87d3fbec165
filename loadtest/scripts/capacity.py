#!/usr/bin/env python3
"""One capacity run: starts a Snakepit deployment on loopback (standalone, or
a cluster of G gateways, W workers and one redis-server, or a Redis Cluster
of N masters), runs the bot swarm against it, and reports the swarm's
figures together with the server side: process CPU time from /proc
(gateway + worker + Redis) per delivered frame, RSS, and Redis commands per
room per tick (per shard on a Redis Cluster, with the bytes in and out).

    capacity.py --mode standalone --players 1000 --duration 30
    capacity.py --mode cluster --gateways 1 --workers 1 --players 1000 --duration 30
    capacity.py --mode cluster --redis-shards 3 --players 1000 --duration 30
    capacity.py ... --server-cpus 0 --swarm-cpus 1     # pinned (taskset)
    capacity.py --mode standalone --floor --server-cpus 0 --swarm-cpus 1
    capacity.py ... --server-bin ../before/target/release  # another tree's servers

With --floor, the same swarm then runs against `floor` (a bare
tokio-tungstenite fan-out of the same game's frames, loadtest/src/floor.rs)
on the same cores, and the report states the gateway's CPU per delivered
frame and memory per connection as a ratio to the floor's, from one run.

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
import threading
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


def run_floor(args, pin, swarm_pin, logs):
    """The same swarm against the floor: its CPU per delivered frame and
    memory per connection, measured as the gateway's are."""
    f = start([*pin, f"{BIN}/floor", "--tick-rate", args.tick_rate], f"{logs}/floor.log")
    seen = {"frames": 0}

    def follow():
        for line in f.stdout:
            if line.startswith("frames "):
                seen["frames"] = int(line.split()[1])

    threading.Thread(target=follow, daemon=True).start()
    try:
        time.sleep(1)
        rss0 = rss_kib(f.pid)
        total = args.ramp + args.duration
        swarm = subprocess.Popen(
            [*swarm_pin, f"{BIN}/swarm", "--url", f"ws://127.0.0.1:{f.port}/connect", "--players", str(args.players),
             "--duration", f"{total}s", "--ramp", f"{args.ramp}s", "--json", *args.swarm_args.split()],
            stdout=subprocess.PIPE, stderr=open(f"{logs}/swarm-floor.log", "w"), text=True,
        )
        time.sleep(args.ramp)
        cpu0, frames0, t0 = cpu_seconds(f.pid), seen["frames"], time.monotonic()
        time.sleep(max(0, args.duration - 1))
        cpu1, frames1, window = cpu_seconds(f.pid), seen["frames"], time.monotonic() - t0
        rss1 = rss_kib(f.pid)
        out, _ = swarm.communicate(timeout=args.duration + 120)
        report = json.loads(out)
    finally:
        f.send_signal(signal.SIGTERM)
        try:
            f.wait(timeout=15)
        except subprocess.TimeoutExpired:
            f.kill()
    frames = frames1 - frames0
    return {
        "frames_delivered_per_s": round(frames / window),
        "cpu_percent_of_one_core": round(100 * (cpu1 - cpu0) / window, 1),
        "cpu_us_per_frame": round(1e6 * (cpu1 - cpu0) / max(frames, 1), 2),
        "rss_kib": {"before": rss0, "after": rss1},
        "kib_per_connection": round((rss1 - rss0) / args.players, 2),
        "swarm": {k: report.get(k) for k in ("tick_interval_ms", "connections", "errors", "frames") if k in report},
    }


def redis_cmd(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True).stdout


def net_bytes(port):
    """Bytes Redis read from and wrote to its clients so far."""
    stats = dict(
        line.split(":", 1) for line in redis_cmd(port, "INFO", "stats").splitlines() if ":" in line
    )
    return int(stats.get("total_net_input_bytes", 0)), int(stats.get("total_net_output_bytes", 0))


def start_redis_cluster(shards, procs, pin):
    """N masters (no replicas: a capacity run measures the masters' work),
    made one cluster; their processes (also added to `procs` at once, to be
    stopped whatever happens) and ports."""
    mine, ports, buses = [], [], []
    folder = tempfile.mkdtemp(prefix="snakepit-capacity-cluster-")
    for _ in range(shards):
        port, bus = free_port(), free_port()
        p = subprocess.Popen(
            [*pin, "redis-server", "--port", str(port), "--cluster-port", str(bus), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--cluster-enabled", "yes",
             "--cluster-config-file", f"{folder}/nodes-{port}.conf", "--dbfilename", f"dump-{port}.rdb"],
            stdout=subprocess.DEVNULL, cwd=folder,
        )
        procs.append(p)
        mine.append(p)
        ports.append(port)
        buses.append(bus)
    for port in ports:
        for _ in range(100):
            if redis_cmd(port, "PING").strip() == "PONG":
                break
            time.sleep(0.05)
    # Made by hand (redis-cli --cluster create wants three masters at least):
    # every node meets the first, and each serves an even share of slots.
    for port in ports[1:]:
        redis_cmd(port, "CLUSTER", "MEET", "127.0.0.1", str(ports[0]), str(buses[0]))
    for i, port in enumerate(ports):
        first, last = 16384 * i // shards, 16384 * (i + 1) // shards - 1
        redis_cmd(port, "CLUSTER", "ADDSLOTSRANGE", str(first), str(last))
    for _ in range(400):
        if all("cluster_state:ok" in redis_cmd(p, "CLUSTER", "INFO") for p in ports) and all(
            redis_cmd(p, "CLUSTER", "INFO").count("cluster_known_nodes:" + str(shards)) for p in ports
        ):
            break
        time.sleep(0.05)
    else:
        raise SystemExit("the Redis Cluster did not settle")
    return mine, ports


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


def server_redis(procs, ports):
    """The redis-server processes, in the order of their ports."""
    redis = [p for p in procs if "redis-server" in " ".join(p.args)]
    return redis[: len(ports)]


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
    ap.add_argument("--redis-shards", type=int, default=0,
                    help="cluster mode on a Redis Cluster of this many masters (0: one plain redis-server)")
    ap.add_argument("--server-cpus", default="", help="taskset CPU list for the servers (Redis included)")
    ap.add_argument("--swarm-cpus", default="", help="taskset CPU list for the swarm")
    ap.add_argument("--gateway-cpus", default="",
                    help="cluster mode: taskset CPU list for the gateways (default: --server-cpus), to measure a "
                         "worker on a core of its own, with Redis, when one core cannot hold all the servers")
    ap.add_argument("--server-bin", default=BIN,
                    help="where the gateway and room-worker binaries come from (another tree's target/release, for a "
                         "before/after run with the same swarm and floor)")
    ap.add_argument("--floor", action="store_true",
                    help="then run the same swarm against the bare floor server and report the ratios")
    args = ap.parse_args()
    pin = ["taskset", "-c", args.server_cpus] if args.server_cpus else []
    swarm_pin = ["taskset", "-c", args.swarm_cpus] if args.swarm_cpus else []
    gateway_pin = ["taskset", "-c", args.gateway_cpus] if args.gateway_cpus else pin

    logs = os.path.join(ROOT, "target", "capacity-logs")
    os.makedirs(logs, exist_ok=True)
    procs, server = [], {}
    game = ["--tick-rate", args.tick_rate]
    redis_port = None
    shard_ports = []
    data = None
    try:
        if args.mode == "standalone":
            port = free_port()
            # Its top scores go to a temporary folder, not the user's.
            data = tempfile.mkdtemp(prefix="snakepit-capacity-")
            g = start([*pin, f"{args.server_bin}/gateway", "--listen", f"127.0.0.1:{port}", "--data-dir", data, *game],
                      f"{logs}/gateway.log")
            procs.append(g)
            server["gateway"] = [g.pid]
            urls = [f"ws://127.0.0.1:{port}/connect"]
            metric_ports = [port]
        elif args.redis_shards > 0:
            rs, shard_ports = start_redis_cluster(args.redis_shards, procs, pin)
            server["redis"] = [r.pid for r in rs]
            url = ",".join(f"redis://127.0.0.1:{p}/" for p in shard_ports)
        else:
            redis_port = free_port()
            r = subprocess.Popen(
                [*pin, "redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                stdout=subprocess.DEVNULL,
            )
            procs.append(r)
            server["redis"] = [r.pid]
            shard_ports = [redis_port]
            for _ in range(100):
                if redis_cmd(redis_port, "PING").strip() == "PONG":
                    break
                time.sleep(0.05)
            url = f"redis://127.0.0.1:{redis_port}/"
        if args.mode == "cluster":
            sharded = ["--redis-cluster"] if args.redis_shards > 0 else []
            server["worker"], server["gateway"], urls, metric_ports = [], [], [], []
            worker_ports = []
            for i in range(args.workers):
                w = start(
                    [*pin, f"{args.server_bin}/room-worker", "--redis-url", url, *sharded, "--listen", "127.0.0.1:0",
                     "--worker-id", f"cap-w{i}", *game],
                    f"{logs}/worker-{i}.log",
                )
                procs.append(w)
                server["worker"].append(w.pid)
                worker_ports.append(w.port)
            for i in range(args.gateways):
                port = free_port()
                g = start([*gateway_pin, f"{args.server_bin}/gateway", "--redis-url", url, *sharded, "--listen", f"127.0.0.1:{port}", *game],
                          f"{logs}/gateway-{i}.log")
                procs.append(g)
                server["gateway"].append(g.pid)
                urls.append(f"ws://127.0.0.1:{port}/connect")
                metric_ports.append(port)
        time.sleep(1)
        rss0 = {k: sum(rss_kib(p) for p in v) for k, v in server.items()}
        total = args.ramp + args.duration
        swarm = subprocess.Popen(
            [*swarm_pin, f"{BIN}/swarm", "--url", ",".join(urls), "--players", str(args.players), "--duration", f"{total}s",
             "--ramp", f"{args.ramp}s", "--spectators", str(args.spectators), "--json", *args.swarm_args.split()],
            stdout=subprocess.PIPE, stderr=open(f"{logs}/swarm.log", "w"), text=True,
        )
        time.sleep(args.ramp)
        # The measured window: after the ramp, until the swarm ends.
        cpu0 = {k: sum(cpu_seconds(p) for p in v) for k, v in server.items()}
        swarm_cpu0 = cpu_seconds(swarm.pid)
        sent0 = sum(metric(p, "snakepit_frames_sent_total") for p in metric_ports)
        shard0 = {p: (commandstats(p), net_bytes(p), cpu_seconds(r.pid)) for p, r in zip(shard_ports, server_redis(procs, shard_ports))}
        ticks0 = time.monotonic()
        time.sleep(max(0, args.duration - 1))
        cpu1 = {k: sum(cpu_seconds(p) for p in v) for k, v in server.items()}
        swarm_cpu1 = cpu_seconds(swarm.pid)
        sent1 = sum(metric(p, "snakepit_frames_sent_total") for p in metric_ports)
        shard1 = {p: (commandstats(p), net_bytes(p), cpu_seconds(r.pid)) for p, r in zip(shard_ports, server_redis(procs, shard_ports))}
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
            # Each death ends a one-player room's game (snapshots, scores, a
            # new join): runs whose bots died at different rates (a core
            # near saturation makes them steer late) did different work.
            "deaths_per_s": round(report.get("deaths", 0) / max(report["run"]["duration_ms"] / 1000, 1), 1),
            "swarm": report,
        }
        if shard_ports:
            room_ticks = max(rooms * float(args.tick_rate) * window, 1)
            total = {}
            per_shard = []
            for p in shard_ports:
                (c0, (in0, out0), t0), (c1, (in1, out1), t1) = shard0[p], shard1[p]
                delta = {k: c1.get(k, 0) - c0.get(k, 0) for k in c1}
                delta = {k: v for k, v in delta.items() if v > 0}
                for k, v in delta.items():
                    total[k] = total.get(k, 0) + v
                per_shard.append({
                    "port": p,
                    "commands_per_room_tick": round(sum(delta.values()) / room_ticks, 3),
                    "bytes_in_per_room_tick": round((in1 - in0) / room_ticks),
                    "bytes_out_per_room_tick": round((out1 - out0) / room_ticks),
                    "cpu_percent_of_one_core": round(100 * (t1 - t0) / window, 1),
                    "commands": delta,
                })
            result["redis_commands"] = total
            result["redis_commands_per_room_tick"] = round(sum(total.values()) / room_ticks, 2)
            result["redis_shards"] = per_shard
        result["rooms"] = rooms
        gateway_rss = result["rss_kib"]["gateway"]
        result["gateway_kib_per_connection"] = round((gateway_rss["after"] - gateway_rss["before"]) / args.players, 2)
        if args.floor:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                p.wait(timeout=15)
            floor = run_floor(args, pin, swarm_pin, logs)
            gateway_us = 1e6 * cpu["gateway"] / max(frames, 1)
            result["floor"] = floor
            result["gateway_cpu_us_per_frame"] = round(gateway_us, 2)
            result["ratio_gateway_to_floor"] = {
                "cpu_per_frame": round(gateway_us / max(floor["cpu_us_per_frame"], 1e-9), 3),
                "memory_per_connection": round(
                    result["gateway_kib_per_connection"] / max(floor["kib_per_connection"], 1e-9), 3),
            }
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
