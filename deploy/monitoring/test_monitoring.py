"""The dashboards and rules of deploy/monitoring, checked against the
Grafana dashboard model they declare, against the real binaries' /metrics,
and against a real Prometheus scraping a real local cluster.

    python3 deploy/monitoring/test_monitoring.py            # all (about 3 minutes)
    python3 deploy/monitoring/test_monitoring.py Static Exported   # no Prometheus
    python3 deploy/monitoring/test_monitoring.py Live

Needs target/debug/{gateway,room-worker,swarm} (cargo build -p snakepit-gateway
-p snakepit-room-worker -p snakepit-loadtest), redis-server, and Debian's
`prometheus` (apt-get install prometheus) for Live. Everything listens on
127.0.0.1 (free ports) and stops at the end.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "deploy" / "k8s"))

import manifests as k8s  # noqa: E402
import monitoring as mon  # noqa: E402

# The Grafana dashboard model (the "classic" JSON model, schemaVersion 39 to
# 41: Grafana 10.3 to 11.x). What a dashboard of that model must have.
SCHEMA_VERSIONS = range(39, 42)
DASHBOARD_FIELDS = {"uid": str, "title": str, "tags": list, "editable": bool, "schemaVersion": int,
                    "version": int, "time": dict, "templating": dict, "annotations": dict, "panels": list,
                    "refresh": str, "timezone": str, "graphTooltip": int}
PANEL_TYPES = {"timeseries", "stat", "heatmap", "row", "gauge", "bargauge", "table", "text"}
# Grafana unit ids these dashboards may use (Grafana's valueFormats registry).
UNITS = {"s", "ms", "percentunit", "percent", "none", "short", "ops", "reqps", "cps", "cpm", "bytes"}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
BUILTIN_VARIABLES = {"__rate_interval", "__interval", "__range"}

# The contract's tick buckets: the 5 ms budget and the 25 ms "late" line are exact buckets.
CONTRACT_BUCKETS = {"snakepit_room_tick_duration_seconds_bucket": "0.005", "snakepit_room_tick_lag_seconds_bucket": "0.025"}


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


class Static(unittest.TestCase):
    """The JSON model and the rules, without running anything."""

    @classmethod
    def setUpClass(cls):
        cls.dashboards = {p.name: json.loads(p.read_text()) for p in mon.DASHBOARDS}

    def test_there_are_the_two_dashboards(self):
        self.assertEqual(set(self.dashboards), {"snakepit-overview.json", "snakepit-tick-latency.json"})

    def test_dashboard_model(self):
        uids = set()
        for name, d in self.dashboards.items():
            with self.subTest(dashboard=name):
                for k, t in DASHBOARD_FIELDS.items():
                    self.assertIsInstance(d.get(k), t, f"dashboard field {k}")
                self.assertIn(d["schemaVersion"], SCHEMA_VERSIONS)
                self.assertNotIn("id", d, "no database id in a provisioned dashboard")
                self.assertRegex(d["uid"], r"^[a-zA-Z0-9_-]{1,40}$")
                self.assertNotIn(d["uid"], uids)
                uids.add(d["uid"])
                self.assertEqual(set(d["time"]), {"from", "to"})
                self.assertIsInstance(d["templating"]["list"], list)
                self.assertIsInstance(d["annotations"]["list"], list)

    def test_panel_ids_unique_and_grid_without_overlap(self):
        for name, d in self.dashboards.items():
            ids = [p["id"] for p in mon.panels(d)]
            self.assertEqual(len(ids), len(set(ids)), f"{name}: duplicate panel ids")
            self.assertTrue(all(isinstance(i, int) and i > 0 for i in ids))
            cells = {}
            for p in mon.panels(d):
                with self.subTest(dashboard=name, panel=p["title"]):
                    self.assertIn(p["type"], PANEL_TYPES)
                    g = p["gridPos"]
                    self.assertEqual(set(g), {"h", "w", "x", "y"})
                    self.assertTrue(all(isinstance(v, int) and v >= 0 for v in g.values()))
                    self.assertTrue(1 <= g["w"] <= 24 and g["x"] + g["w"] <= 24 and g["h"] >= 1)
                    for x in range(g["x"], g["x"] + g["w"]):
                        for y in range(g["y"], g["y"] + g["h"]):
                            self.assertFalse((x, y) in cells, f"overlaps {cells.get((x, y))} at {(x, y)}")
                            cells[(x, y)] = p["title"]

    def test_every_panel_has_a_unit_the_datasource_variable_and_queries(self):
        for name, d in self.dashboards.items():
            for p in mon.panels(d):
                if p["type"] == "row":
                    continue
                with self.subTest(dashboard=name, panel=p["title"]):
                    self.assertTrue(p.get("description"), "a panel says what it shows")
                    unit = p["fieldConfig"]["defaults"].get("unit")
                    self.assertTrue(unit in UNITS or (unit or "").startswith("suffix:"), f"unit {unit!r}")
                    self.assertEqual(p["datasource"], DATASOURCE)
                    targets = p["targets"]
                    self.assertTrue(targets)
                    self.assertEqual(len({t["refId"] for t in targets}), len(targets), "refIds unique")
                    for t in targets:
                        self.assertEqual(t["datasource"], DATASOURCE)
                        self.assertTrue(t["expr"].strip())
                    if p["type"] == "heatmap":
                        self.assertFalse(p["options"]["calculate"], "Prometheus buckets, not Grafana's")
                        self.assertEqual(p["options"]["yAxis"]["unit"], unit)
                        for t in targets:
                            self.assertEqual(t["format"], "heatmap")
                            self.assertEqual(t["legendFormat"], "{{le}}")

    def test_template_variables(self):
        for name, d in self.dashboards.items():
            with self.subTest(dashboard=name):
                vs = {v["name"]: v for v in d["templating"]["list"]}
                self.assertEqual(set(vs), {"datasource", "namespace", "job", "instance"})
                self.assertEqual(vs["datasource"]["type"], "datasource")
                self.assertEqual(vs["datasource"]["query"], "prometheus")
                for n in ("namespace", "job", "instance"):
                    self.assertEqual(vs[n]["type"], "query")
                    self.assertEqual(vs[n]["datasource"], DATASOURCE)
                    self.assertTrue(vs[n]["includeAll"])
                    self.assertEqual(vs[n]["allValue"], ".*", "All matches series without the label too")
                    mon.variable_selector(vs[n]["query"]["query"])
                defined = set(vs) | BUILTIN_VARIABLES
                for p in mon.panels(d):
                    for t in p.get("targets") or []:
                        used = set(re.findall(r"\$\{?(\w+)", t["expr"]))
                        self.assertLessEqual(used, defined, f"{p['title']}: undefined variables")

    def test_rates_use_rate_interval_and_selectors_use_the_variables(self):
        for where, expr in mon.dashboard_expressions():
            if "variable" in where:
                continue
            with self.subTest(where=where):
                ranges = re.findall(r"\[([^\]]+)\]", expr)
                self.assertTrue(all(r == "$__rate_interval" for r in ranges), f"ranges {ranges}")
                for sel_name, matchers in re.findall(r"([a-zA-Z_:][\w:]*)\{([^}]*)\}", expr):
                    if sel_name.startswith("namespace:"):  # a recording rule: per namespace
                        self.assertIn('namespace=~"$namespace"', matchers)
                        continue
                    for var in ("job", "namespace", "instance"):
                        self.assertIn(f'{var}=~"${var}"', matchers, f"{sel_name} filters by ${var}")

    def test_alerts_have_summary_description_severity_and_a_runbook_section(self):
        headings = {slug(h) for h in re.findall(r"(?m)^#+\s+(.*)$", mon.RUNBOOK.read_text())}
        alerts = [r for r in mon.rules() if "alert" in r]
        self.assertGreaterEqual(len(alerts), 10)
        for r in alerts:
            with self.subTest(alert=r["alert"]):
                a = r["annotations"]
                self.assertTrue(a.get("summary") and a.get("description"))
                self.assertIn(r["labels"]["severity"], ("page", "ticket"))
                url = a["runbook_url"]
                self.assertEqual(url, f"docs/runbook.md#{r['alert'].lower()}")
                self.assertIn(url.split("#")[1], headings, "docs/runbook.md has the section")

    def test_every_alert_has_unit_tests_that_fire_it_and_keep_it_silent(self):
        tests = yaml.safe_load(mon.ALERT_TESTS.read_text())["tests"]
        fires, silent = set(), set()
        for t in tests:
            for a in t.get("alert_rule_test") or []:
                (fires if a.get("exp_alerts") else silent).add(a["alertname"])
        alerts = {r["alert"] for r in mon.rules() if "alert" in r}
        self.assertEqual(alerts - fires, set(), "alerts no test fires")
        self.assertEqual(alerts - silent, set(), "alerts no test keeps silent")

    def test_no_label_of_a_room_or_player(self):
        for where, expr in mon.dashboard_expressions() + mon.rule_expressions():
            self.assertNotRegex(expr, r"\b(room|room_id|player|player_id)\b\s*[=!~,)]", where)

    def test_grafana_provisioning_points_at_a_folder_of_json(self):
        p = yaml.safe_load((HERE / "grafana/provisioning/dashboards/snakepit.yaml").read_text())
        self.assertEqual(p["apiVersion"], 1)
        (prov,) = p["providers"]
        self.assertEqual(prov["type"], "file")
        self.assertTrue(prov["options"]["path"].startswith("/"))


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120)


class Promtool(unittest.TestCase):
    def test_check_rules(self):
        r = promtool("check", "rules", *map(str, mon.RULE_FILES))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_unit_tests(self):
        r = promtool("test", "rules", str(mon.ALERT_TESTS))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_check_local_config(self):
        r = promtool("check", "config", str(HERE / "prometheus-local.yml"))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_check_kubernetes_config(self):
        # Debian builds Prometheus without Kubernetes discovery: the file is
        # checked with its discovery swapped for file discovery (the same
        # relabelling, run for real in Live.test_kubernetes_relabelling).
        config = yaml.safe_load((HERE / "prometheus-kubernetes.yml").read_text())
        (job,) = config["scrape_configs"]
        self.assertEqual([sd["role"] for sd in job["kubernetes_sd_configs"]], ["pod"])
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp, "prometheus.yml")
            path.write_text(yaml.safe_dump(kubernetes_as_file_sd(config, str(Path(tmp, "pods.json")))))
            r = promtool("check", "config", str(path))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


def kubernetes_as_file_sd(config: dict, pods_file: str) -> dict:
    c = copy.deepcopy(config)
    # Rule paths are relative to the config file, which moves to a temporary directory.
    c["rule_files"] = [str(HERE / f) for f in c.get("rule_files") or []]
    for job in c["scrape_configs"]:
        job.pop("kubernetes_sd_configs")
        job["file_sd_configs"] = [{"files": [pods_file], "refresh_interval": "1s"}]
    return c


class Cluster:
    """redis-server, room-workers and gateways from target/debug on loopback."""

    def __init__(self, workers: int, gateways: int):
        self.redis = k8s.Redis()
        url = f"redis://127.0.0.1:{self.redis.port}/"
        env = k8s.base_env() | {"SNAKEPIT_REDIS_PREFIX": "monitoring-check"}
        self.workers, self.gateways = [], []
        try:
            for i in range(workers):
                self.workers.append(k8s.Process("room-worker", env, [
                    "--redis-url", url, "--listen", "127.0.0.1:0", "--worker-id", f"check-worker-{i + 1}",
                    "--lease-secs", "3"], name=f"worker-{i + 1}"))
            for i in range(gateways):
                self.gateways.append(k8s.Process("gateway", env, ["--redis-url", url, "--listen", "127.0.0.1:0"],
                                                 name=f"gateway-{i + 1}"))
            for p in self.workers + self.gateways:
                k8s.wait_for(lambda p=p: k8s.http_status(p.url("/readyz")) == 200, 20, f"{p.name} /readyz")
        except BaseException:
            self.stop()
            raise

    def swarm(self, players: int, duration: str, room_size: int = 2) -> subprocess.Popen:
        urls = ",".join(f"ws://{g.addr}/connect" for g in self.gateways)
        return subprocess.Popen(
            [str(k8s.BIN_DIR / "swarm"), "--url", urls, "--players", str(players), "--duration", duration,
             "--ramp", "1s", "--room-size", str(room_size)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self):
        for p in self.gateways + self.workers:
            p.stop()
        self.redis.stop()


class Exported(unittest.TestCase):
    """Every metric name the dashboards and rules read is one the binaries
    export: scraped from a running worker and gateway that have served a
    little play, not a list kept by hand."""

    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster(workers=1, gateways=1)
        try:
            swarm = cls.cluster.swarm(20, "5s")
            swarm.wait(60)
            cls.text = {p.name: mon.get(p.url("/metrics")) for p in cls.cluster.workers + cls.cluster.gateways}
        finally:
            cls.cluster.stop()
        cls.exported = set().union(*(mon.exported_names(t) for t in cls.text.values()))

    def test_histograms_have_samples(self):
        # Otherwise the play above did not happen and the names below prove little.
        for name in ("snakepit_room_tick_duration_seconds_count", "snakepit_input_to_broadcast_seconds_count"):
            values = [float(m) for t in self.text.values() for m in re.findall(rf"(?m)^{name}(?:{{[^}}]*}})? (\S+)$", t)]
            self.assertTrue(values and max(values) > 0, name)

    def test_every_metric_name_is_exported(self):
        known = self.exported | mon.recorded_names() | mon.PROMETHEUS_SERIES
        missing = {}
        for where, expr in mon.dashboard_expressions() + mon.rule_expressions():
            names = mon.metric_names(expr)
            self.assertTrue(names, f"{where}: no metric name found in {expr}")
            for n in sorted(names - known):
                missing.setdefault(n, []).append(where)
        self.assertEqual(missing, {}, "names the dashboards or rules read but no binary exports")

    def test_tick_histograms_have_the_contract_buckets(self):
        worker = self.text["worker-1"]
        for name, le in CONTRACT_BUCKETS.items():
            with self.subTest(bucket=f'{name}{{le="{le}"}}'):
                les = re.findall(rf'(?m)^{name}{{[^}}]*le="([^"]+)"', worker)
                self.assertIn(le, les, f"the worker's buckets of {name}")


def finite(result: list[dict]) -> bool:
    return any(not math.isnan(float(r["value"][1])) for r in result)


class Live(unittest.TestCase):
    """A real Prometheus (the local config, pointed at free ports, scraping
    every second) over a cluster of 2 workers and 2 gateways under the swarm;
    every dashboard expression and recording rule returns data; then a worker
    is killed and the failover alert fires."""

    PLAY_SECS = 45

    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster(workers=2, gateways=2)
        cls.prom = None
        cls.swarm = None
        cls.tmp = Path(tempfile.mkdtemp(prefix="snakepit-live-rules-"))
        try:
            # Short play first: connections close, so per-close-code series exist.
            cls.cluster.swarm(10, "3s").wait(60)
            cls.swarm = cls.cluster.swarm(40, f"{cls.PLAY_SECS + 90}s")
            cls.prom = Prometheus_for(cls.cluster, cls.tmp)
            time.sleep(cls.PLAY_SECS)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.swarm and cls.swarm.poll() is None:
            cls.swarm.send_signal(signal.SIGINT)
            try:
                cls.swarm.wait(10)
            except subprocess.TimeoutExpired:
                cls.swarm.kill()
        if cls.prom:
            cls.prom.stop()
        cls.cluster.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_1_targets_are_up(self):
        targets = self.prom.api("targets")["activeTargets"]
        self.assertEqual(sorted(t["labels"]["job"] for t in targets), ["gateway", "gateway", "room-worker", "room-worker"])
        self.assertTrue(all(t["health"] == "up" for t in targets), targets)

    def test_2_every_dashboard_expression_returns_data(self):
        empty = []
        for where, expr in mon.dashboard_expressions():
            if not finite(self.prom.query(mon.substitute(expr))):
                empty.append(where)
        self.assertEqual(empty, [], "expressions without data")

    def test_3_every_recording_rule_returns_data(self):
        groups = self.prom.api("rules", type="record")["groups"]
        for g in groups:
            for r in g["rules"]:
                self.assertEqual(r["health"], "ok", r)
        self.assertEqual({r["name"] for g in groups for r in g["rules"]}, mon.recorded_names())
        empty = [n for n in sorted(mon.recorded_names()) if not finite(self.prom.query(n))]
        self.assertEqual(empty, [], "recording rules without data")
        # Per worker: one series for each.
        workers = {r["metric"]["worker"] for r in self.prom.query("worker:snakepit_room_tick_duration_seconds:p99_rate5m")}
        self.assertEqual(workers, {"check-worker-1", "check-worker-2"})

    def test_4_every_alert_rule_evaluates(self):
        for g in self.prom.api("rules", type="alert")["groups"]:
            for r in g["rules"]:
                self.assertEqual(r["health"], "ok", r)

    def test_5_killed_worker_fires_the_failover_alert(self):
        def firing():
            return {a["labels"]["alertname"] for a in self.prom.api("alerts")["alerts"] if a["state"] == "firing"}

        self.assertNotIn("SnakepitRoomsFailingOver", firing(), "fires on a healthy cluster")
        self.assertNotIn("SnakepitTargetDown", firing(), "fires on a healthy cluster")
        victim = self.cluster.workers[0]
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait()
        seen = k8s.wait_for(lambda: {"SnakepitRoomsFailingOver", "SnakepitTargetDown"} <= firing(), 60,
                            "the failover and target-down alerts to fire", every=1)
        self.assertTrue(seen)
        survivor = self.prom.query('increase(snakepit_failovers_total{worker="check-worker-2"}[2m])')
        self.assertGreater(float(survivor[0]["value"][1]), 0, "the survivor took rooms over")


def Prometheus_for(cluster: Cluster, tmp: Path) -> mon.Prometheus:
    """prometheus-local.yml with the cluster's ports, a 1 s scrape, and a
    test copy of the rules whose `for:` are 0 s (alerts fire at once)."""
    tmp.mkdir(exist_ok=True)
    config = yaml.safe_load((HERE / "prometheus-local.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    for job in config["scrape_configs"]:
        procs = {"gateway": cluster.gateways, "room-worker": cluster.workers}[job["job_name"]]
        job["static_configs"] = [{"targets": [p.addr for p in procs]}]
    files = []
    for f in mon.RULE_FILES:
        doc = yaml.safe_load(f.read_text())
        for g in doc["groups"]:
            for r in g["rules"]:
                if "for" in r:
                    r["for"] = "0s"
        (tmp / f.name).write_text(yaml.safe_dump(doc))
        files.append(str(tmp / f.name))
    config["rule_files"] = files
    return mon.Prometheus(config, k8s.free_port())


class KubernetesRelabelling(unittest.TestCase):
    """prometheus-kubernetes.yml's relabelling, run by a real Prometheus on
    pods described as Kubernetes discovery describes them (file discovery
    standing in: Debian's build has no Kubernetes discovery)."""

    def test_pods_become_gateway_and_room_worker_targets(self):
        config = yaml.safe_load((HERE / "prometheus-kubernetes.yml").read_text())
        tmp = Path(tempfile.mkdtemp(prefix="snakepit-k8s-relabel-"))
        pods = tmp / "pods.json"

        def pod(name, component, port_name, app="snakepit", phase="Running", ns="snakepit"):
            return {"targets": [f"127.0.0.1:{k8s.free_port()}"], "labels": {
                "__meta_kubernetes_namespace": ns, "__meta_kubernetes_pod_name": name,
                "__meta_kubernetes_pod_phase": phase,
                "__meta_kubernetes_pod_label_app_kubernetes_io_name": app,
                "__meta_kubernetes_pod_label_app_kubernetes_io_component": component,
                "__meta_kubernetes_pod_container_port_name": port_name}}

        pods.write_text(json.dumps([
            pod("gateway-abc", "gateway", "http"), pod("room-worker-def", "room-worker", "http"),
            pod("room-worker-def", "room-worker", "debug"),  # another port of a pod
            pod("redis-0", "redis", "redis"), pod("other-1", "gateway", "http", app="other"),
            pod("gateway-old", "gateway", "http", phase="Succeeded"),
        ]))
        prom = mon.Prometheus(kubernetes_as_file_sd(config, str(pods)), k8s.free_port())
        try:
            got = k8s.wait_for(lambda: prom.api("targets")["activeTargets"], 20, "targets")
            labels = sorted((t["labels"]["job"], t["labels"]["namespace"], t["labels"]["pod"]) for t in got)
            self.assertEqual(labels, [("gateway", "snakepit", "gateway-abc"), ("room-worker", "snakepit", "room-worker-def")])
            self.assertEqual(len(prom.api("targets")["droppedTargets"]), 4)
        finally:
            prom.stop()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    os.chdir(HERE.parents[1])
    unittest.main(verbosity=2)
