#!/usr/bin/env python3
"""The dev overlay's Deployments as local processes: their pods, minus
Kubernetes.

    python3 deploy/k8s/run-local.py [--overlay overlays/dev] [--bin-dir target/debug]

Renders the overlay and, for each replica of each Deployment, starts the
container's command (`/usr/local/bin/X` becomes `BIN_DIR/X`) with the
environment the kubelet would build from the rendered ConfigMap, Secret and
downward-API values, and with the rendered args. What cannot be the same on
one machine is rewritten: every `0.0.0.0:PORT` (or `[::]:PORT`) listen
address becomes a free 127.0.0.1 port, and the Redis URL's host and port
point at a `redis-server` started here with the URL's password. Then:

1. every startup, liveness and readiness probe path answers 200 within the
   time the probe allows (period x failure threshold);
2. one game is played through each gateway: the bot swarm
   (`BIN_DIR/swarm`) with 4 players for 5 s; every bot must stay connected,
   receive frames with no gap and see no error;
3. each pod is stopped as the kubelet would: its preStop sleep (the
   process keeps running), then SIGTERM; it must exit, with status 0,
   within terminationGracePeriodSeconds of the start of preStop.

Exits non-zero with the reason when any step fails; processes it started
are stopped in every case.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import manifests as m  # noqa: E402

LISTEN = re.compile(r"^(0\.0\.0\.0|\[::\]):(\d+)$")


@dataclass
class Pod:
    name: str
    workload: dict
    container: dict
    binary: str
    proc: subprocess.Popen
    log: Path
    ports: dict[int, int]  # container port -> local port

    def url(self, probe: dict) -> str:
        port = self.ports[m.port_number(self.container, probe["httpGet"]["port"])]
        return f"http://127.0.0.1:{port}{probe['httpGet']['path']}"


def log(msg: str) -> None:
    print(f"[run-local] {msg}", flush=True)


def rewrite(value: str, ports: dict[int, int], redis_port: int) -> str:
    """A listen address or Redis URL as it must be on this machine."""
    lm = LISTEN.match(value)
    if lm:
        port = int(lm.group(2))
        ports.setdefault(port, m.free_port())
        return f"127.0.0.1:{ports[port]}"
    if value.startswith(("redis://", "rediss://")):
        u = urllib.parse.urlsplit(value)
        auth = u.netloc.rpartition("@")[0]
        netloc = (auth + "@" if auth else "") + f"127.0.0.1:{redis_port}"
        # A local redis-server speaks no TLS.
        return urllib.parse.urlunsplit(("redis", netloc, u.path, u.query, u.fragment))
    return value


def redis_args(objs: list[dict]) -> list[str]:
    """The rendered Redis container's args with its $(VAR)s resolved, so that
    the local Redis asks for the password the dev Redis pod would; with no
    Redis in the overlay (prod), the password of our Redis URL."""
    for w in m.workloads(objs):
        for c in m.pod_spec(w)["containers"]:
            if c.get("image", "").startswith("redis:"):
                env = m.container_env(objs, c, w["metadata"]["name"] + "-0", w["metadata"].get("namespace", ""))
                return [re.sub(r"\$\((\w+)\)", lambda v: env[v.group(1)], a) for a in c.get("args") or []]
    for w in m.workloads(objs):
        for c in m.pod_spec(w)["containers"]:
            if m.binary_of(c):
                url = m.container_env(objs, c, "x", w["metadata"].get("namespace", "")).get("SNAKEPIT_REDIS_URL")
                password = urllib.parse.urlsplit(url).password if url else None
                if password:
                    return ["--requirepass", password]
    return []


def start_pods(objs: list[dict], redis_port: int, logs: Path) -> list[Pod]:
    pods = []
    for w in (o for o in objs if o["kind"] == "Deployment"):
        for i in range(w["spec"].get("replicas", 1)):
            name = f"{w['metadata']['name']}-local-{i}"
            for c in m.pod_spec(w)["containers"]:
                binary = m.binary_of(c)
                if binary is None:
                    raise SystemExit(f"{name}: container {c['name']} runs {c.get('command')}, not one of ours")
                ports: dict[int, int] = {}
                env = m.container_env(objs, c, name, w["metadata"].get("namespace", ""))
                env = {k: rewrite(v, ports, redis_port) for k, v in env.items()}
                args = [rewrite(a, ports, redis_port) for a in (c.get("command") or [])[1:] + (c.get("args") or [])]
                for p in c.get("ports") or []:
                    if p["containerPort"] not in ports:
                        raise SystemExit(f"{name}: port {p['containerPort']} is not one the container listens on")
                logfile = logs / f"{name}.log"
                proc = subprocess.Popen(
                    [str(m.BIN_DIR / binary), *args],
                    env=m.base_env() | env,
                    stdout=logfile.open("w"),
                    stderr=subprocess.STDOUT,
                )
                log(f"started {name} ({binary}, pid {proc.pid}, ports {ports})")
                pods.append(Pod(name, w, c, binary, proc, logfile, ports))
    return pods


def wait_probes(pods: list[Pod]) -> None:
    for pod in pods:
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            probe = pod.container[kind]
            allowed = probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3)
            if kind != "startupProbe":
                # These start once the startup probe has passed.
                allowed += pod.container["startupProbe"].get("periodSeconds", 10)
            url = pod.url(probe)

            def ok(pod=pod, url=url):
                if pod.proc.poll() is not None:
                    raise SystemExit(f"{pod.name} exited with {pod.proc.returncode}:\n{pod.log.read_text()}")
                return m.http_status(url) == 200

            m.wait_for(ok, allowed, f"{pod.name} {kind} {url}", every=0.2)
            log(f"{pod.name}: {kind} {probe['httpGet']['path']} answers 200")


def play(pods: list[Pod]) -> None:
    swarm = m.BIN_DIR / "swarm"
    for pod in (p for p in pods if p.binary == "gateway"):
        port = pod.ports[m.port_number(pod.container, "http")]
        cmd = [str(swarm), "--url", f"ws://127.0.0.1:{port}/connect", "--players", "4", "--duration", "5s",
               "--ramp", "1s", "--json"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise SystemExit(f"swarm failed ({out.returncode}):\n{out.stderr}")
        r = json.loads(out.stdout)
        figures = {k: r[k] for k in ("players_held", "failed", "unexpected_closes", "errors_total", "tick_gaps",
                                     "frames_received")}
        log(f"{pod.name}: swarm {figures}")
        if not (r["players_held"] == 4 and r["failed"] == 0 and r["unexpected_closes"] == 0
                and r["errors_total"] == 0 and r["tick_gaps"] == 0 and r["frames_received"] >= 4 * 20):
            raise SystemExit(f"the game through {pod.name} did not go well: {figures}")


def stop(pod: Pod, results: dict[str, str]) -> None:
    """preStop sleep, SIGTERM, and the exit within the grace period."""
    grace = m.pod_spec(pod.workload).get("terminationGracePeriodSeconds", 30)
    pre_stop = ((pod.container.get("lifecycle") or {}).get("preStop") or {}).get("sleep", {}).get("seconds", 0)
    start = time.monotonic()
    time.sleep(pre_stop)
    if pod.proc.poll() is not None:
        results[pod.name] = f"exited with {pod.proc.returncode} during its preStop sleep"
        return
    pod.proc.send_signal(signal.SIGTERM)
    try:
        code = pod.proc.wait(timeout=max(grace - (time.monotonic() - start), 0))
    except subprocess.TimeoutExpired:
        pod.proc.kill()
        pod.proc.wait()
        results[pod.name] = f"still running {grace} s after preStop began: the kubelet would SIGKILL it"
        return
    took = time.monotonic() - start
    results[pod.name] = "ok" if code == 0 else f"exited with {code}"
    log(f"{pod.name}: preStop {pre_stop} s + SIGTERM, exited {code} after {took:.1f} s (grace {grace} s)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--overlay", default="overlays/dev", help="kustomization under deploy/k8s")
    ap.add_argument("--bin-dir", type=Path, default=m.BIN_DIR, help="where gateway, room-worker and swarm are")
    args = ap.parse_args()
    m.BIN_DIR = args.bin_dir.resolve()

    objs = m.kustomize(m.K8S / args.overlay)
    redis = m.Redis(redis_args(objs))
    log(f"redis-server on 127.0.0.1:{redis.port}")
    logs = Path(tempfile.mkdtemp(prefix="run-local-"))
    pods: list[Pod] = []
    try:
        pods = start_pods(objs, redis.port, logs)
        wait_probes(pods)
        play(pods)
        results: dict[str, str] = {}
        threads = [threading.Thread(target=stop, args=(p, results)) for p in pods]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        bad = {k: v for k, v in results.items() if v != "ok"}
        if bad:
            for name, why in bad.items():
                log(f"{name}: {why}\n{next(p for p in pods if p.name == name).log.read_text()}")
            return 1
        log(f"ok: {len(pods)} pods ready, played, stopped within their grace periods")
        shutil.rmtree(logs, ignore_errors=True)
        return 0
    finally:
        for p in pods:
            if p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait()
        redis.stop()


if __name__ == "__main__":
    sys.exit(main())
