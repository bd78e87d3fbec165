"""Real cluster processes on loopback for the fault scripts (rolling_restart,
failover, chaos): a redis-server, room-workers and gateways from
target/release, each with its log, its port and its /metrics figures, the
servers pinned to one half of the cores and the swarm to the other.

Only the standard library: the scripts run on a fresh machine with Python 3
and nothing else installed.
"""
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.join(ROOT, "target", "release")
PREFIX = "snakepit"
BUILD = "cargo build --release -p snakepit-gateway -p snakepit-room-worker -p snakepit-loadtest"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cores():
    """Server cores and swarm cores (taskset lists), or None without taskset."""
    try:
        mine = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return None
    if len(mine) < 2 or not any(os.access(os.path.join(d, "taskset"), os.X_OK) for d in os.environ["PATH"].split(":")):
        return None
    half = len(mine) // 2
    return ",".join(map(str, mine[:half])), ",".join(map(str, mine[half:]))


def pinned(cmd, cpus):
    return ["taskset", "-c", cpus, *cmd] if cpus else cmd


def help_flags(binary):
    out = subprocess.run([binary, "--help"], capture_output=True, text=True).stdout
    return set(re.findall(r"--[a-z][a-z0-9-]*", out))


def binaries():
    """Paths of gateway, room-worker and swarm; exits if one is missing."""
    paths = [os.path.join(BIN, b) for b in ("gateway", "room-worker", "swarm")]
    for b in paths:
        if not os.access(b, os.X_OK):
            raise SystemExit(f"{b} missing: {BUILD}")
    return paths


def run_setup(name):
    """A run's log folder (target/<name>-logs), its event log path, and the
    server and swarm cores (None each without taskset)."""
    logs = os.path.join(ROOT, "target", f"{name}-logs")
    os.makedirs(logs, exist_ok=True)
    pins = cores()
    server_cpus, swarm_cpus = pins if pins else (None, None)
    return logs, os.path.join(logs, "events.jsonl"), server_cpus, swarm_cpus


def now_ms():
    return int(time.time() * 1000)


class Proc:
    """A server process: its command, log, port and last /metrics figures."""

    def __init__(self, name, cmd, log, cpus, kind=None):
        self.name = name
        self.log = log
        self.kind = kind
        self.cmd = cmd
        self.p = subprocess.Popen(pinned(cmd, cpus), stdout=subprocess.PIPE, stderr=open(log, "w"), text=True)
        line = self.p.stdout.readline()
        if not line.startswith("listening on"):
            raise SystemExit(f"{name} did not start: {line!r} (see {log})")
        self.port = int(line.strip().rsplit(":", 1)[1])
        self.metrics = {}

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def alive(self):
        return self.p.poll() is None

    def ready(self, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.p.poll() is not None:
                raise SystemExit(f"{self.name} exited before it was ready (see {self.log})")
            try:
                with urllib.request.urlopen(self.url("/readyz"), timeout=2) as r:
                    if r.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        return False

    def scrape(self, names):
        """Sums each metric over its label sets into self.metrics; False if
        the process did not answer (the figures of the last answer stay)."""
        try:
            text = urllib.request.urlopen(self.url("/metrics"), timeout=5).read().decode()
        except (urllib.error.URLError, OSError):
            return False
        for name in names:
            total = 0.0
            for line in text.splitlines():
                if line.startswith(name) and line[len(name)] in " {":
                    total += float(line.rsplit(" ", 1)[1])
            self.metrics[name] = total
        return True

    def signal(self, sig):
        if self.p.poll() is None:
            self.p.send_signal(sig)

    def kill(self):
        self.signal(signal.SIGKILL)
        self.p.wait()

    def stop(self, timeout):
        """SIGTERM (after SIGCONT, should it be stopped), then the seconds
        until it exited (None: killed)."""
        t0 = time.monotonic()
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGCONT)
            self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(timeout=timeout)
            return round(time.monotonic() - t0, 2)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            return None


def nstat():
    """Absolute values of the kernel's listen-queue counters."""
    out = subprocess.run(["nstat", "-az", "TcpExtListenOverflows", "TcpExtListenDrops", "TcpExtTCPSynRetrans"],
                         capture_output=True, text=True, check=True).stdout
    values = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith("TcpExt"):
            values[parts[0]] = int(parts[1])
    return values


def cpu_seconds(pid):
    """User + system CPU seconds of a process so far (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def swarm_report(swarm, timeout=60):
    """Stops a `swarm --json` run (SIGINT) and returns its report."""
    import json
    swarm.send_signal(signal.SIGINT)
    out, _ = swarm.communicate(timeout=timeout)
    return json.loads(out)


def tear_down(swarm, procs, redis):
    """Whatever happened: the swarm killed, servers stopped, Redis too."""
    if swarm and swarm.poll() is None:
        swarm.kill()
    for p in procs:
        p.stop(15)
    if redis:
        redis.stop()


def report_checks(checks, out, passed):
    """Prints each check and where the JSON went; exits 0 only if `passed`."""
    import sys
    for name, ok in checks.items():
        print(f"check       {'ok  ' if ok else 'FAIL'} {name}")
    print(f"written     {out}")
    sys.exit(0 if passed else 1)


def redis_cmd(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True).stdout


class Redis:
    """A redis-server of our own on a free port, with no persistence (as
    the dev deployment runs it); restart() brings it back empty."""

    def __init__(self, log, cpus):
        self.port = free_port()
        self.log = log
        self.cpus = cpus
        self.p = None
        self.start()

    def start(self):
        self.p = subprocess.Popen(
            pinned(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                   self.cpus),
            stdout=open(self.log, "a"),
        )
        for _ in range(200):
            if redis_cmd(self.port, "PING").strip() == "PONG":
                return
            time.sleep(0.05)
        raise SystemExit(f"redis-server did not answer (see {self.log})")

    def url(self):
        return f"redis://127.0.0.1:{self.port}/"

    def cmd(self, *args):
        return redis_cmd(self.port, *args)

    def stop(self):
        if self.p and self.p.poll() is None:
            self.p.terminate()
            self.p.wait(timeout=10)

    def restart(self):
        self.stop()
        self.start()


def room_directory(port):
    """Room id -> seats taken, from the directory sorted set."""
    out = redis_cmd(port, "ZRANGE", f"{PREFIX}:rooms", "0", "-1", "WITHSCORES").split("\n")
    items = [x for x in out if x != ""]
    return {items[i]: int(float(items[i + 1])) for i in range(0, len(items) - 1, 2)}


def top_scores(port, n=15):
    """Name -> best score of the best `n` (the list players are shown: the
    sorted set holds more names, ranked below it)."""
    out = redis_cmd(port, "ZREVRANGE", f"{PREFIX}:top_scores", "0", str(n - 1), "WITHSCORES").split("\n")
    items = [x for x in out if x != ""]
    return {items[i]: int(float(items[i + 1])) for i in range(0, len(items) - 1, 2)}


def percentile(values, q):
    """The q-th percentile (0..100) of values, nearest rank; None if empty."""
    if not values:
        return None
    v = sorted(values)
    rank = max(1, -(-len(v) * q // 100))
    return v[int(rank) - 1]


def read_events(path):
    """The swarm's event log as a list of dicts (a torn last line skipped)."""
    import json
    events = []
    try:
        with open(path) as f:
            for line in f:
                try:
                    events.append(json.loads(line))
                except ValueError:
                    pass
    except FileNotFoundError:
        pass
    return events
