#!/usr/bin/env python3
"""The rolling-restart run: a cluster on loopback (one redis-server, 2
room-workers, 2 gateways) carries a bot swarm while every process is
replaced one by one, the way a Kubernetes rolling update with
maxUnavailable 0 does it: start the replacement, wait until its /readyz
answers 200, SIGTERM the old process, wait for it to exit, next.

It checks what players must not notice: no room lost (the room directory
`P:rooms` before the first restart is still there at the end, same seat
counts), the swarm's fault ledger all zeros (no snake lost, every bot back)
and every bot connected and playing at the end. It reports how long bots
took to get back (p50/p99/max) and the workers' failover and lease figures
from /metrics, prints a summary and writes JSON.

    rolling_restart.py                       # 1,000 bots
    rolling_restart.py --bots 100 --quick    # small and quick, for CI

Binaries come from target/release (cargo build --release -p snakepit-gateway
-p snakepit-room-worker -p snakepit-loadtest). Gateways listen on fresh ports
as pods would get fresh addresses, so the swarm gets a URL list covering the
old and the replacement ports; a bot on a port nobody listens on is refused
and moves on to the next URL. Drain flags (--drain-delay-secs,
--drain-close-secs) are passed only to binaries whose --help lists them.
Exit status 0 only if every check passed.
"""
import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster_procs import (report_checks, ROOT, Proc, Redis, binaries, cores, free_port, help_flags, pinned,  # noqa: E402
                           room_directory, swarm_report, tear_down)


WORKER_METRICS = ["snakepit_failovers_total", "snakepit_leases_lost_total", "snakepit_rooms"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bots", type=int, default=1000)
    ap.add_argument("--quick", action="store_true", help="short waits (CI)")
    ap.add_argument("--warmup", type=float, help="seconds after the ramp before the first restart (default 20, quick 5)")
    ap.add_argument("--pause", type=float, help="seconds between two restarts (default 10, quick 3)")
    ap.add_argument("--settle", type=float, help="seconds after the last restart before the checks (default 25, quick 15)")
    ap.add_argument("--ramp", type=float, help="swarm ramp seconds (default 10, quick 3)")
    ap.add_argument("--tick-rate", default="10")
    ap.add_argument("--max-players", default="10",
                    help="seats of a room; 6 or fewer gives every snake a colour of its own, so the "
                         "swarm knows each head for sure and the ledger checks the cell too")
    ap.add_argument("--drain-delay-secs", default="1", help="passed to gateways that know the flag")
    ap.add_argument("--drain-close-secs", default="3", help="passed to gateways that know the flag")
    ap.add_argument("--exit-timeout", type=float, default=60, help="longest wait for an old process to exit")
    ap.add_argument("--swarm-args", default="", help="extra arguments for swarm")
    ap.add_argument("--out", default=os.path.join(ROOT, "target", "rolling-restart.json"))
    args = ap.parse_args()
    q = args.quick
    warmup = args.warmup if args.warmup is not None else (5 if q else 20)
    pause = args.pause if args.pause is not None else (3 if q else 10)
    settle = args.settle if args.settle is not None else (15 if q else 25)
    ramp = args.ramp if args.ramp is not None else (3 if q else 10)

    logs = os.path.join(ROOT, "target", "rolling-restart-logs")
    os.makedirs(logs, exist_ok=True)
    pins = cores()
    server_cpus, swarm_cpus = pins if pins else (None, None)
    game = ["--tick-rate", args.tick_rate, "--max-players", args.max_players]
    gateway_bin, worker_bin, swarm_bin = binaries()
    gw_flags = help_flags(gateway_bin)
    drain = []
    for flag, value in (("--drain-delay-secs", args.drain_delay_secs), ("--drain-close-secs", args.drain_close_secs)):
        if flag in gw_flags:
            drain += [flag, value]

    redis = None
    live, swarm, all_procs = [], None, []
    result = {"bots": args.bots, "quick": q, "pinned": {"servers": server_cpus, "swarm": swarm_cpus},
              "gateway_drain_flags": drain, "steps": []}
    t_start = time.monotonic()

    def stamp():
        return round(time.monotonic() - t_start, 1)

    try:
        redis = Redis(f"{logs}/redis.log", server_cpus)
        redis_port = redis.port
        redis_url = f"redis://127.0.0.1:{redis_port}/"

        def start_worker(name):
            p = Proc(name, [worker_bin, "--redis-url", redis_url, "--listen", "127.0.0.1:0", "--worker-id", name, *game],
                     f"{logs}/{name}.log", server_cpus, kind="worker")
            all_procs.append(p)
            return p

        def start_gateway(name, port):
            p = Proc(name, [gateway_bin, "--redis-url", redis_url, "--listen", f"127.0.0.1:{port}", *game, *drain],
                     f"{logs}/{name}.log", server_cpus, kind="gateway")
            all_procs.append(p)
            return p

        # Every port a gateway will ever listen on, known up front.
        gw_ports = [free_port() for _ in range(4)]
        live = [start_worker("rr-w0"), start_worker("rr-w1"),
                start_gateway("rr-g0", gw_ports[0]), start_gateway("rr-g1", gw_ports[1])]
        for p in live:
            if not p.ready(30):
                raise SystemExit(f"{p.name} not ready (see {p.log})")
        urls = ",".join(f"ws://127.0.0.1:{port}/connect" for port in gw_ports)
        swarm_cmd = [swarm_bin, "--url", urls, "--players", str(args.bots), "--duration", "3600s",
                     "--ramp", f"{ramp}s", "--json", *args.swarm_args.split()]
        swarm = subprocess.Popen(pinned(swarm_cmd, swarm_cpus), stdout=subprocess.PIPE,
                                 stderr=open(f"{logs}/swarm.log", "w"), text=True)
        print(f"[{stamp()}s] swarm of {args.bots} bots on {len(gw_ports)} URLs; warm-up {ramp + warmup:.0f} s", flush=True)
        time.sleep(ramp + warmup)
        if swarm.poll() is not None:
            raise SystemExit("the swarm exited early (see target/rolling-restart-logs/swarm.log)")

        rooms_before = room_directory(redis_port)
        result["rooms_before"] = len(rooms_before)
        result["seats_before"] = sum(rooms_before.values())
        print(f"[{stamp()}s] {len(rooms_before)} rooms, {sum(rooms_before.values())} seats; rolling", flush=True)

        # Workers first, then gateways, each once, one by one.
        plan = [("rr-w0", lambda: start_worker("rr-w0b")), ("rr-w1", lambda: start_worker("rr-w1b")),
                ("rr-g0", lambda: start_gateway("rr-g0b", gw_ports[2])),
                ("rr-g1", lambda: start_gateway("rr-g1b", gw_ports[3]))]
        for old_name, make in plan:
            old = next(p for p in live if p.name == old_name)
            t0 = time.monotonic()
            new = make()
            ready = new.ready(60)
            ready_s = round(time.monotonic() - t0, 2)
            if not ready:
                raise SystemExit(f"{new.name} not ready within 60 s (see {new.log})")
            if old.kind == "worker":
                old.scrape(WORKER_METRICS)
            exit_s = old.stop(args.exit_timeout)
            live = [p for p in live if p is not old] + [new]
            step = {"replaced": old.name, "by": new.name, "ready_s": ready_s, "old_exit_s": exit_s,
                    "old_exit_code": old.p.returncode, "at_s": stamp()}
            result["steps"].append(step)
            print(f"[{stamp()}s] {old.name} -> {new.name}: ready in {ready_s} s, old one exited in {exit_s} s "
                  f"(code {old.p.returncode})", flush=True)
            time.sleep(pause)

        print(f"[{stamp()}s] settling {settle:.0f} s", flush=True)
        time.sleep(settle)
        rooms_after = room_directory(redis_port)
        for p in live:
            if p.kind == "worker":
                p.scrape(WORKER_METRICS)
        report = swarm_report(swarm)
    finally:
        tear_down(swarm, live, redis)

    lost_rooms = sorted(set(rooms_before) - set(rooms_after))
    changed = {r: [rooms_before[r], rooms_after[r]] for r in rooms_before
               if r in rooms_after and rooms_before[r] != rooms_after[r]}
    ledger = report["ledger"]
    workers = [p for p in all_procs if p.kind == "worker"]
    held = report["connections_held"]
    result.update({
        "rooms_after": len(rooms_after),
        "seats_after": sum(rooms_after.values()),
        "rooms_lost": lost_rooms,
        "rooms_seats_changed": changed,
        "rooms_new": sorted(set(rooms_after) - set(rooms_before)),
        "ledger": ledger,
        "connections_held_at_end": held,
        "players_held_at_end": report["players_held"],
        "close_codes": report["close_codes"],
        "connect_errors": report["connect_errors"],
        "deaths": report["deaths"],
        "tick_gaps": report["tick_gaps"],
        "resyncs": report["resyncs"],
        "workers": {p.name: {k: p.metrics.get(k) for k in WORKER_METRICS} for p in workers},
        "failovers_total": sum(p.metrics.get("snakepit_failovers_total", 0) for p in workers),
        "leases_lost_total": sum(p.metrics.get("snakepit_leases_lost_total", 0) for p in workers),
        "swarm": report,
    })
    checks = {
        "no_room_lost": not lost_rooms,
        "seat_counts_kept": not changed,
        "no_snake_lost": ledger["snakes_lost"] == 0,
        "every_bot_back": ledger["bots_not_back"] == 0,
        "every_bot_connected": held == args.bots,
        "old_processes_exited": all(s["old_exit_s"] is not None for s in result["steps"]),
    }
    result["checks"] = checks
    result["passed"] = all(checks.values())
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)

    b = ledger["back_ms"]
    print()
    print(f"rolling restart: {args.bots} bots, {len(result['steps'])} processes replaced "
          f"(servers on cpus {server_cpus}, swarm on {swarm_cpus})")
    print(f"rooms       {len(rooms_before)} before, {len(rooms_after)} after; lost {len(lost_rooms)}, "
          f"seat counts changed {len(changed)}, new {len(result['rooms_new'])}")
    print(f"ledger      {ledger['faults']} faults, {ledger['snakes_at_fault']} with a snake alive: "
          f"{ledger['snakes_back']} back the same ({ledger['snakes_placed']} in the very cell: colour their own), "
          f"{ledger['snakes_lost']} lost ({ledger['snakes_gone']} gone, "
          f"{ledger['snakes_changed']} changed, {ledger['snakes_moved']} moved); "
          f"{ledger['bots_not_back']} bots not back")
    print(f"back in     p50 {b['p50']:.0f} ms, p99 {b['p99']:.0f} ms, max {b['max']:.0f} ms (n={b['count']})")
    print(f"end         {held}/{args.bots} connected ({report['players_held']} playing); close codes "
          f"{report['close_codes']}; connect errors {report['connect_errors']}")
    print(f"workers     failovers {result['failovers_total']:.0f}, leases lost {result['leases_lost_total']:.0f}")
    report_checks(checks, args.out, result["passed"])


if __name__ == "__main__":
    main()
