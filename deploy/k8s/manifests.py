"""Rendered manifests and the local processes that stand in for their pods.

Shared by `test_manifests.py` (what the manifests promise) and `run-local.py`
(the dev overlay run as local processes). Everything here reads the output
of `kubectl kustomize`, never the hand-written files, so what is checked is
what `kubectl apply -k` would send.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import yaml

K8S = Path(__file__).resolve().parent
REPO = K8S.parents[1]
BIN_DIR = Path(os.environ.get("SNAKEPIT_BIN_DIR", REPO / "target" / "debug"))

# The Kubernetes version the manifests are validated against.
KUBERNETES_VERSION = "1.32"

# Objects each variant expects to exist in the cluster already, created
# outside git (docs/deploy.md): the prod Redis URL and TLS certificate.
PROD_EXTERNAL = {("Secret", "snakepit-redis"), ("Secret", "snakepit-tls")}


@dataclass(frozen=True)
class Variant:
    name: str
    # Directory of a kustomization under deploy/k8s, or None for `parts`.
    path: str | None = None
    # For a composed variant: (resources, components) relative to deploy/k8s.
    parts: tuple[tuple[str, ...], tuple[str, ...]] | None = None
    load_restrictor_none: bool = False
    external: frozenset = field(default_factory=frozenset)


VARIANTS = [
    Variant("dev", path="overlays/dev"),
    Variant("prod", path="overlays/prod", external=frozenset(PROD_EXTERNAL)),
    # prod with both optional components, so that they are checked too.
    Variant(
        "prod+redis-ca+connections-hpa",
        parts=(("overlays/prod",), ("components/redis-ca", "components/connections-hpa")),
        external=frozenset(PROD_EXTERNAL | {("ConfigMap", "snakepit-redis-ca")}),
    ),
    # prod with the dashboards and rules of deploy/monitoring.
    Variant(
        "prod+monitoring",
        parts=(("overlays/prod",), ("components/monitoring",)),
        external=frozenset(PROD_EXTERNAL),
    ),
    Variant("k6", path="k6", load_restrictor_none=True),
]


def kustomize(directory: Path, load_restrictor_none: bool = False) -> list[dict]:
    cmd = ["kubectl", "kustomize", str(directory)]
    if load_restrictor_none:
        cmd += ["--load-restrictor", "LoadRestrictionsNone"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=60).stdout
    return [o for o in yaml.safe_load_all(out) if o]


def render(variant: Variant) -> list[dict]:
    if variant.path is not None:
        return kustomize(K8S / variant.path, variant.load_restrictor_none)
    assert variant.parts is not None
    resources, components = variant.parts
    # kustomize takes no absolute roots: a throwaway overlay beside the others.
    with tempfile.TemporaryDirectory(dir=K8S, prefix=".render-") as tmp:
        doc = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": [f"../{r}" for r in resources],
            "components": [f"../{c}" for c in components],
        }
        Path(tmp, "kustomization.yaml").write_text(yaml.safe_dump(doc))
        return kustomize(Path(tmp))


def variant(name: str) -> Variant:
    return next(v for v in VARIANTS if v.name == name)


# ---- reading objects ------------------------------------------------------

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job")


def find(objs: list[dict], kind: str, name: str) -> dict | None:
    return next((o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name), None)


def workloads(objs: list[dict]) -> Iterator[dict]:
    return (o for o in objs if o["kind"] in WORKLOAD_KINDS)


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def pod_labels(workload: dict) -> dict:
    return workload["spec"]["template"]["metadata"].get("labels", {})


def selector_matches(selector: dict, labels: dict) -> bool:
    """A LabelSelector (matchLabels and matchExpressions) against labels."""
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], e.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def binary_of(container: dict) -> str | None:
    """`gateway` or `room-worker` for a container running one of ours."""
    command = container.get("command") or []
    name = Path(command[0]).name if command else None
    return name if name in ("gateway", "room-worker") else None


def _data(obj: dict) -> dict[str, str]:
    data = dict(obj.get("data") or {})
    if obj["kind"] == "Secret":
        data = {k: base64.b64decode(v).decode() for k, v in data.items()}
        data.update(obj.get("stringData") or {})
    return data


def container_env(
    objs: list[dict], container: dict, pod_name: str, namespace: str = "default", external: frozenset = frozenset()
) -> dict[str, str]:
    """The environment a container gets, as the kubelet would build it.

    A key of an object in `external` (created outside git) gets a
    placeholder value; any other ConfigMap or Secret (or key) not in `objs`
    raises KeyError.
    """
    env: dict[str, str] = {}
    for src in container.get("envFrom") or []:
        for kind, ref in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if ref in src:
                obj = find(objs, kind, src[ref]["name"])
                if obj is None:
                    raise KeyError(f"{kind} {src[ref]['name']}")
                env.update({src.get("prefix", "") + k: v for k, v in _data(obj).items()})
    for e in container.get("env") or []:
        if "value" in e:
            env[e["name"]] = e["value"]
            continue
        vf = e.get("valueFrom") or {}
        if "fieldRef" in vf:
            path = vf["fieldRef"]["fieldPath"]
            env[e["name"]] = {"metadata.name": pod_name, "metadata.namespace": namespace}[path]
            continue
        for kind, ref in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
            if ref in vf:
                obj = find(objs, kind, vf[ref]["name"])
                if obj is None and (kind, vf[ref]["name"]) in external:
                    env[e["name"]] = f"<{vf[ref]['key']} from {kind} {vf[ref]['name']}>"
                    continue
                if obj is None:
                    raise KeyError(f"{kind} {vf[ref]['name']}")
                env[e["name"]] = _data(obj)[vf[ref]["key"]]
    return env


def port_number(container: dict, port: int | str) -> int:
    """A probe's or policy's port (a number or a container port's name)."""
    if isinstance(port, int):
        return port
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return p["containerPort"]
    raise KeyError(f"container {container['name']} has no port named {port!r}")


# ---- the binaries' command lines -----------------------------------------


@dataclass
class Help:
    flags: set[str]
    envs: dict[str, str]  # SNAKEPIT_X -> --x
    defaults: dict[str, str]  # --x -> default


def binary_help(binary: str) -> Help:
    """The flags, `SNAKEPIT_*` variables and defaults `binary --help` lists."""
    # No SNAKEPIT_* from this shell: clap would print their values instead.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAKEPIT_")}
    text = subprocess.run(
        [str(BIN_DIR / binary), "--help"], check=True, capture_output=True, text=True, env=env, timeout=30
    ).stdout
    flags: set[str] = set()
    envs: dict[str, str] = {}
    defaults: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        m = re.match(r"^\s+(?:-\w, )?(--[a-z0-9-]+)", line)
        if m:
            current = m.group(1)
            flags.add(current)
        for name in re.findall(r"\[env: (\w+)=", line):
            if current:
                envs[name] = current
        d = re.search(r"\[default: ([^\]]*)\]", line)
        if d and current:
            defaults[current] = d.group(1)
    return Help(flags, envs, defaults)


# ---- local processes ------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """The status of a GET, or None when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, OSError):
        return None


def wait_for(check, timeout: float, what: str, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


class Redis:
    """A throwaway `redis-server` on a free loopback port."""

    def __init__(self, args: list[str] | None = None):
        self.port = free_port()
        # Later options win: the port and address are always these.
        cmd = ["redis-server", "--save", "", "--appendonly", "no", *(args or [])]
        cmd += ["--port", str(self.port), "--bind", "127.0.0.1"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._answers, 10, f"redis-server on port {self.port}")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"*1\r\n$4\r\nPING\r\n")
                # +PONG, or -NOAUTH when a password is set: either way it is up.
                return s.recv(64)[:1] in (b"+", b"-")
        except OSError:
            return False

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


class Process:
    """One of our binaries, its output in a log file, its address parsed
    from the "listening on http://ADDR" line it prints."""

    def __init__(self, binary: str, env: dict[str, str], args: list[str] | None = None, name: str | None = None):
        self.name = name or binary
        self.log = tempfile.NamedTemporaryFile(prefix=f"{self.name}-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [str(BIN_DIR / binary), *(args or [])], env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        self.addr = wait_for(self._address, 20, f"{self.name} to listen")

    def _address(self) -> str | None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.output()}")
        m = re.search(r"listening on http://(\S+)", self.output())
        return m.group(1) if m else None

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def url(self, path: str) -> str:
        return f"http://{self.addr}{path}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        Path(self.log.name).unlink(missing_ok=True)


def base_env() -> dict[str, str]:
    """A process environment with nothing of ours from the calling shell."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SNAKEPIT_")}
