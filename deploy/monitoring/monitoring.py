"""What the monitoring tests share: the expressions of the dashboards and
rules, the metric names in a PromQL expression, and a Prometheus process.

The processes (redis-server, gateway, room-worker) come from
deploy/k8s/manifests.py, as the manifest tests start them.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

MON = Path(__file__).resolve().parent
REPO = MON.parents[1]
DASHBOARDS = sorted((MON / "dashboards").glob("*.json"))
RULE_FILES = [MON / "rules" / "recording.yaml", MON / "rules" / "alerts.yaml"]
ALERT_TESTS = MON / "rules" / "tests" / "alerts_test.yaml"
RUNBOOK = REPO / "docs" / "runbook.md"

# What a query gets for Grafana's variables when evaluated outside Grafana.
SUBSTITUTIONS = {"$__rate_interval": "1m", "$namespace": ".*", "$job": ".*", "$instance": ".*"}

# Series Prometheus makes itself for every target.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_series_added",
                     "scrape_samples_post_metric_relabeling"}

KEYWORDS = {"sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
            "count_values", "group", "by", "without", "on", "ignoring", "group_left", "group_right",
            "and", "or", "unless", "bool", "offset", "inf", "nan"}


def substitute(expr: str) -> str:
    for var, value in SUBSTITUTIONS.items():
        expr = expr.replace(var, value)
    return expr


def variable_selector(query: str) -> str:
    """`label_values(up{...}, label)` -> `up{...}` (what it asks Prometheus)."""
    m = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", query, re.S)
    if not m:
        raise ValueError(f"not a label_values() query: {query}")
    return m.group(1)


def dashboard_expressions() -> list[tuple[str, str]]:
    """(where, expr) of every panel target and variable query, as written."""
    out = []
    for path in DASHBOARDS:
        d = json.loads(path.read_text())
        for p in panels(d):
            for t in p.get("targets") or []:
                out.append((f"{path.name}: {p['title']} ({t['refId']})", t["expr"]))
        for v in d["templating"]["list"]:
            if v["type"] == "query":
                q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
                out.append((f"{path.name}: variable {v['name']}", variable_selector(q)))
    return out


def panels(dashboard: dict) -> list[dict]:
    """Every panel, those inside collapsed rows too."""
    out = []
    for p in dashboard["panels"]:
        out.append(p)
        out.extend(p.get("panels") or [])
    return out


def rules() -> list[dict]:
    out = []
    for f in RULE_FILES:
        for g in yaml.safe_load(f.read_text())["groups"]:
            out.extend(g["rules"])
    return out


def rule_expressions() -> list[tuple[str, str]]:
    return [(r.get("record") or r["alert"], r["expr"]) for r in rules()]


def recorded_names() -> set[str]:
    return {r["record"] for r in rules() if "record" in r}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, labels or keywords)."""
    e = substitute(expr)
    e = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', e)  # strings
    e = re.sub(r"\{[^}]*\}", " ", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", " ", e)  # ranges
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)  # label lists
    e = re.sub(r"(?<![\w:])\d+(\.\d+)?([eE][-+]?\d+)?", " ", e)  # numbers
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", e):
        word = m.group(0)
        if word.lower() in KEYWORDS or re.match(r"\s*\(", e[m.end():]):
            continue  # a keyword, or a function / aggregation called
        names.add(word)
    return names


def exported_names(metrics_text: str) -> set[str]:
    """Sample names in a /metrics page (histograms as _bucket, _sum, _count)."""
    names = set()
    for line in metrics_text.splitlines():
        if line and not line.startswith("#"):
            names.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
    return names


def get(url: str, timeout: float = 5) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


class Prometheus:
    """A Debian `prometheus` on a free loopback port with its own storage."""

    def __init__(self, config: dict, port: int):
        self.dir = tempfile.TemporaryDirectory(prefix="snakepit-prometheus-")
        self.config = Path(self.dir.name, "prometheus.yml")
        self.config.write_text(yaml.safe_dump(config))
        self.port = port
        self.log = open(Path(self.dir.name, "prometheus.log"), "w")
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={self.config}", f"--storage.tsdb.path={self.dir.name}/data",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited {self.proc.returncode}:\n{self.output()}")
            try:
                if "Ready" in get(f"http://127.0.0.1:{port}/-/ready", 2):
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError("prometheus not ready after 30 s")

    def output(self) -> str:
        return Path(self.dir.name, "prometheus.log").read_text(errors="replace")

    def api(self, path: str, **params) -> dict:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        body = json.loads(get(url, 30))
        if body.get("status") != "success":
            raise RuntimeError(f"{path} {params}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        return self.api("query", query=expr)["result"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        self.dir.cleanup()
