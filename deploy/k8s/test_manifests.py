"""What the rendered manifests promise, checked against the schema and
against the real binaries.

    python3 deploy/k8s/test_manifests.py      # after cargo build -p snakepit-gateway -p snakepit-room-worker

Every variant (the overlays, prod with its optional components, the k6 Job)
is rendered with `kubectl kustomize` and then: each object is validated
strictly with kubernetes-validate against Kubernetes 1.32 (the PodMonitor, a
custom resource with no schema there, against the fields the
prometheus-operator requires); the probes and the PodMonitor's path are
asked of a real `gateway` and `room-worker` (with a real `redis-server`);
every flag and `SNAKEPIT_*` variable set must be one the binaries list in
`--help`; grace periods must cover the drain and hand-over; PDBs, HPAs,
Services, Ingresses and NetworkPolicies must select what exists; and every
container runs as non-root with resources, probes and a locked-down
security context.
"""

from __future__ import annotations

import re
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import kubernetes_validate  # noqa: E402
import yaml  # noqa: E402

import manifests as m  # noqa: E402

RENDERED: dict[str, list[dict]] = {}
HELP: dict[str, m.Help] = {}
# Seconds of margin a pod's grace period must leave over its own shutdown.
GRACE_MARGIN = 5
# The worker's HTTP side gets this long after the hand-over (main.rs).
WORKER_HTTP_CLOSE_SECS = 1


def setUpModule() -> None:
    for v in m.VARIANTS:
        RENDERED[v.name] = m.render(v)
    for binary in ("gateway", "room-worker"):
        if not (m.BIN_DIR / binary).exists():
            raise RuntimeError(
                f"{m.BIN_DIR / binary} is missing: cargo build -p snakepit-gateway -p snakepit-room-worker"
            )
        HELP[binary] = m.binary_help(binary)


def each_variant():
    for v in m.VARIANTS:
        yield v, RENDERED[v.name]


def our_containers(objs):
    """(workload, container, binary) for every container running ours."""
    for w in m.workloads(objs):
        for c in m.pod_spec(w)["containers"]:
            b = m.binary_of(c)
            if b:
                yield w, c, b


def external_of(objs) -> frozenset:
    return next(v.external for v in m.VARIANTS if RENDERED[v.name] is objs)


def env_of(objs, w, c):
    name = f"{w['metadata']['name']}-0"
    return m.container_env(objs, c, name, w["metadata"].get("namespace", ""), external_of(objs))


def setting(objs, w, c, binary, flag) -> str | None:
    """A flag's value in a container: --flag=V in args, its variable, or the default."""
    for a in (c.get("command") or [])[1:] + (c.get("args") or []):
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    env = env_of(objs, w, c)
    for name, f in HELP[binary].envs.items():
        if f == flag and name in env:
            return env[name]
    return HELP[binary].defaults.get(flag)


# Fields the prometheus-operator's PodMonitor CRD (monitoring.coreos.com/v1)
# requires or that these manifests use, with their types.
PODMONITOR_ENDPOINT_FIELDS = {"port": str, "path": str, "interval": str, "scrapeTimeout": str, "scheme": str}
PROMETHEUS_DURATION = re.compile(r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$")


def check_podmonitor(test: unittest.TestCase, objs: list[dict], pm: dict) -> None:
    test.assertEqual(pm["apiVersion"], "monitoring.coreos.com/v1")
    test.assertEqual(set(pm) - {"apiVersion", "kind", "metadata", "spec"}, set())
    spec = pm["spec"]
    test.assertIn("selector", spec, "PodMonitor.spec.selector is required")
    test.assertEqual(set(spec) - {"selector", "podMetricsEndpoints", "namespaceSelector", "jobLabel"}, set())
    endpoints = spec.get("podMetricsEndpoints") or []
    test.assertTrue(endpoints, "a PodMonitor with no endpoints scrapes nothing")
    selected = [w for w in m.workloads(objs) if m.selector_matches(spec["selector"], m.pod_labels(w))]
    test.assertEqual(
        {w["metadata"]["name"] for w in selected}, {"gateway", "room-worker"}, "PodMonitor selects gateways and workers"
    )
    # Series carry job="gateway" / job="room-worker", as the rules and dashboards expect.
    test.assertEqual(spec.get("jobLabel"), "app.kubernetes.io/component")
    test.assertEqual({m.pod_labels(w).get(spec["jobLabel"]) for w in selected}, {"gateway", "room-worker"})
    for ep in endpoints:
        for k, v in ep.items():
            test.assertIn(k, PODMONITOR_ENDPOINT_FIELDS, f"unexpected PodMonitor endpoint field {k}")
            test.assertIsInstance(v, PODMONITOR_ENDPOINT_FIELDS[k])
        for k in ("interval", "scrapeTimeout"):
            if k in ep:
                test.assertRegex(ep[k], PROMETHEUS_DURATION)
        test.assertIn(ep.get("scheme", "http"), ("http", "https"))
        for w in selected:
            c = m.pod_spec(w)["containers"][0]
            m.port_number(c, ep["port"])  # the named port exists on every selected pod


def check_prometheusrule(test: unittest.TestCase, pr: dict) -> None:
    """The fields the prometheus-operator's PrometheusRule CRD requires: each
    group a name and rules, each rule an expr and exactly one of record and
    alert; alert-only fields only on alerts; durations well formed. The
    rules themselves are checked by promtool (.ci/monitoring-check)."""
    test.assertEqual(pr["apiVersion"], "monitoring.coreos.com/v1")
    test.assertEqual(set(pr) - {"apiVersion", "kind", "metadata", "spec"}, set())
    groups = pr["spec"]["groups"]
    test.assertTrue(groups)
    names = [g["name"] for g in groups]
    test.assertEqual(len(names), len(set(names)), "group names are unique")
    for g in groups:
        test.assertEqual(set(g) - {"name", "rules", "interval", "partial_response_strategy", "limit"}, set())
        test.assertTrue(g["rules"], g["name"])
        for r in g["rules"]:
            test.assertEqual(set(r) - {"record", "alert", "expr", "for", "keep_firing_for", "labels", "annotations"}, set())
            test.assertIsInstance(r["expr"], str)
            test.assertEqual(("record" in r) + ("alert" in r), 1, r)
            if "record" in r:
                test.assertEqual(set(r) & {"for", "annotations"}, set(), "alert fields on a recording rule")
            if "for" in r:
                test.assertRegex(r["for"], PROMETHEUS_DURATION)
            for k in ("labels", "annotations"):
                test.assertTrue(all(isinstance(v, str) for v in (r.get(k) or {}).values()), f"{k} are strings")


class Schema(unittest.TestCase):
    def test_every_object_is_valid_for_kubernetes_1_32(self):
        for v, objs in each_variant():
            for o in objs:
                with self.subTest(variant=v.name, object=f"{o['kind']}/{o['metadata']['name']}"):
                    if o["apiVersion"].startswith("monitoring.coreos.com/"):
                        # A custom resource: kubernetes-validate has no schema.
                        self.assertIn(o["kind"], ("PodMonitor", "PrometheusRule"))
                        if o["kind"] == "PodMonitor":
                            check_podmonitor(self, objs, o)
                        else:
                            check_prometheusrule(self, o)
                        continue
                    try:
                        kubernetes_validate.validate(o, m.KUBERNETES_VERSION, strict=True)
                    except kubernetes_validate.ValidationError as e:
                        self.fail(f"{'.'.join(str(p) for p in e.path)}: {e.message}")

    def test_schema_version_has_native_prestop_sleep(self):
        # The gateway's preStop is the native sleep action (no shell in the
        # image); a schema without it would reject the Deployment above, and
        # this makes the reason plain.
        bad = yaml.safe_load(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n"
            "spec: {containers: [{name: x, image: x, lifecycle: {preStop: {sleep: {secondz: 1}}}}]}"
        )
        with self.assertRaises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(bad, m.KUBERNETES_VERSION, strict=True)


class Binaries(unittest.TestCase):
    """The probe paths and ports, and the PodMonitor's path, answered by the
    real binaries in cluster mode (as the pods run them)."""

    @classmethod
    def setUpClass(cls):
        cls.redis = m.Redis()
        url = f"redis://127.0.0.1:{cls.redis.port}/"
        env = m.base_env() | {"SNAKEPIT_REDIS_PREFIX": "k8s-check"}
        cls.procs = {}
        try:
            cls.procs["room-worker"] = m.Process("room-worker", env, ["--redis-url", url, "--listen", "127.0.0.1:0"])
            cls.procs["gateway"] = m.Process("gateway", env, ["--redis-url", url, "--listen", "127.0.0.1:0"])
            # Ready once each has reached Redis (the worker: announced).
            for p in cls.procs.values():
                m.wait_for(lambda p=p: m.http_status(p.url("/readyz")) == 200, 20, f"{p.name} /readyz")
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for p in cls.procs.values():
            p.stop()
        cls.redis.stop()

    def test_probes_ask_what_the_binaries_serve_where_they_listen(self):
        for v, objs in each_variant():
            for w, c, binary in our_containers(objs):
                with self.subTest(variant=v.name, container=c["name"]):
                    listen = setting(objs, w, c, binary, "--listen")
                    self.assertIsNotNone(listen)
                    host, _, port = listen.rpartition(":")
                    # The kubelet probes the pod IP: loopback would not do.
                    self.assertIn(host, ("0.0.0.0", "[::]"), f"{binary} listens on {listen}")
                    ports = {p["containerPort"] for p in c.get("ports") or []}
                    self.assertEqual(ports, {int(port)}, "the container port is the one the binary listens on")
                    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
                        probe = c.get(kind)
                        self.assertIsNotNone(probe, f"{kind} missing")
                        self.assertIn("httpGet", probe, f"{kind} of ours is an HTTP probe")
                        self.assertEqual(m.port_number(c, probe["httpGet"]["port"]), int(port))
                        path = probe["httpGet"]["path"]
                        self.assertEqual(
                            m.http_status(self.procs[binary].url(path)), 200, f"{kind} {path} on {binary}"
                        )
                    self.assertEqual(c["readinessProbe"]["httpGet"]["path"], "/readyz")
                    self.assertEqual(c["livenessProbe"]["httpGet"]["path"], "/healthz")

    def test_podmonitor_path_is_served(self):
        for v, objs in each_variant():
            for pm in (o for o in objs if o["kind"] == "PodMonitor"):
                for ep in pm["spec"]["podMetricsEndpoints"]:
                    for binary, p in self.procs.items():
                        with self.subTest(variant=v.name, binary=binary):
                            self.assertEqual(m.http_status(p.url(ep.get("path", "/metrics"))), 200)

    def test_connections_metric_of_the_custom_hpa_is_exported(self):
        objs = RENDERED["prod+redis-ca+connections-hpa"]
        hpa = m.find(objs, "HorizontalPodAutoscaler", "gateway")
        names = [x["pods"]["metric"]["name"] for x in hpa["spec"]["metrics"] if x["type"] == "Pods"]
        self.assertEqual(names, ["snakepit_connections"])
        import urllib.request

        with urllib.request.urlopen(self.procs["gateway"].url("/metrics"), timeout=5) as r:
            text = r.read().decode()
        self.assertRegex(text, r"(?m)^# TYPE snakepit_connections gauge$")


class Flags(unittest.TestCase):
    def test_every_flag_and_variable_set_is_one_the_binary_accepts(self):
        for v, objs in each_variant():
            for w, c, binary in our_containers(objs):
                with self.subTest(variant=v.name, container=c["name"]):
                    help_ = HELP[binary]
                    unknown_env = sorted(set(env_of(objs, w, c)) - set(help_.envs))
                    self.assertEqual(unknown_env, [], f"variables {binary} --help does not list")
                    args = (c.get("command") or [])[1:] + (c.get("args") or [])
                    unknown_flags = sorted(
                        a.split("=", 1)[0] for a in args if a.startswith("--") and a.split("=", 1)[0] not in help_.flags
                    )
                    self.assertEqual(unknown_flags, [], f"flags {binary} --help does not list")


class Lifecycle(unittest.TestCase):
    @staticmethod
    def _secs(value) -> float:
        return float(value)

    def test_grace_periods_cover_drain_and_hand_over(self):
        for v, objs in each_variant():
            for w, c, binary in our_containers(objs):
                with self.subTest(variant=v.name, container=c["name"]):
                    spec = m.pod_spec(w)
                    grace = spec.get("terminationGracePeriodSeconds", 30)
                    pre_stop = ((c.get("lifecycle") or {}).get("preStop") or {}).get("sleep", {}).get("seconds", 0)
                    shutdown = self._secs(setting(objs, w, c, binary, "--shutdown-grace-secs"))
                    env = env_of(objs, w, c)
                    if binary == "gateway":
                        # Set explicitly: the defaults (0 and 1) are for a local Ctrl-C.
                        self.assertIn("SNAKEPIT_DRAIN_DELAY_SECS", env)
                        self.assertIn("SNAKEPIT_DRAIN_CLOSE_SECS", env)
                        self.assertGreater(pre_stop, 0, "the gateway pauses before SIGTERM for endpoint removal")
                        need = (
                            pre_stop
                            + self._secs(env["SNAKEPIT_DRAIN_DELAY_SECS"])
                            + self._secs(env["SNAKEPIT_DRAIN_CLOSE_SECS"])
                            + shutdown
                        )
                    else:
                        need = pre_stop + shutdown + WORKER_HTTP_CLOSE_SECS
                    self.assertGreaterEqual(grace, need + GRACE_MARGIN, f"{grace} s against {need} s of shutdown")
                    self.assertNotIn("exec", (c.get("lifecycle") or {}).get("preStop") or {}, "no shell in the image")

    def test_rolling_updates_keep_every_pod_until_its_successor_is_ready(self):
        for v, objs in each_variant():
            for d in (o for o in objs if o["kind"] == "Deployment"):
                with self.subTest(variant=v.name, deployment=d["metadata"]["name"]):
                    strategy = d["spec"]["strategy"]
                    self.assertEqual(strategy["type"], "RollingUpdate")
                    self.assertEqual(strategy["rollingUpdate"]["maxUnavailable"], 0)
                    self.assertGreaterEqual(strategy["rollingUpdate"]["maxSurge"], 1)

    def test_gateways_spread_over_nodes_and_zones(self):
        for v, objs in each_variant():
            d = m.find(objs, "Deployment", "gateway")
            if not d:
                continue
            keys = {t["topologyKey"] for t in m.pod_spec(d).get("topologySpreadConstraints") or []}
            self.assertEqual(keys, {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}, v.name)
            for t in m.pod_spec(d)["topologySpreadConstraints"]:
                self.assertTrue(m.selector_matches(t["labelSelector"], m.pod_labels(d)))


class Selection(unittest.TestCase):
    """Every selector and reference lands on something that exists."""

    def test_pdbs_and_hpas_target_existing_workloads(self):
        for v, objs in each_variant():
            for pdb in (o for o in objs if o["kind"] == "PodDisruptionBudget"):
                with self.subTest(variant=v.name, pdb=pdb["metadata"]["name"]):
                    hits = [w for w in m.workloads(objs) if m.selector_matches(pdb["spec"]["selector"], m.pod_labels(w))]
                    self.assertEqual(len(hits), 1, "a PDB selects exactly one workload")
                    # maxUnavailable, not minAvailable: one replica must not block node drains.
                    self.assertEqual(pdb["spec"].get("maxUnavailable"), 1)
            for hpa in (o for o in objs if o["kind"] == "HorizontalPodAutoscaler"):
                with self.subTest(variant=v.name, hpa=hpa["metadata"]["name"]):
                    ref = hpa["spec"]["scaleTargetRef"]
                    target = m.find(objs, ref["kind"], ref["name"])
                    self.assertIsNotNone(target, f"HPA targets missing {ref['kind']}/{ref['name']}")
                    self.assertEqual(ref["apiVersion"], "apps/v1")
                    self.assertLessEqual(hpa["spec"].get("minReplicas", 1), hpa["spec"]["maxReplicas"])
                    for metric in hpa["spec"]["metrics"]:
                        if metric["type"] == "Resource":
                            # Utilization is a share of the request: it must exist.
                            name = metric["resource"]["name"]
                            for c in m.pod_spec(target)["containers"]:
                                self.assertIn(name, c["resources"]["requests"])

    def test_hpas_are_on_in_prod_and_off_in_dev(self):
        kinds = lambda objs: {o["metadata"]["name"] for o in objs if o["kind"] == "HorizontalPodAutoscaler"}  # noqa: E731
        self.assertEqual(kinds(RENDERED["dev"]), set())
        self.assertEqual(kinds(RENDERED["prod"]), {"gateway", "room-worker"})
        for name in ("gateway", "room-worker"):
            self.assertEqual(m.find(RENDERED["dev"], "Deployment", name)["spec"]["replicas"], 1)
            self.assertGreaterEqual(m.find(RENDERED["prod"], "HorizontalPodAutoscaler", name)["spec"]["minReplicas"], 2)

    def test_replicas_are_set_by_the_hpa_or_by_the_deployment_never_both(self):
        # A Deployment's spec.replicas under an HPA is reset by every apply:
        # the extra pods the HPA had added die at once, with their players.
        # Without an HPA the count must be stated, not left to a default.
        for v, objs in each_variant():
            scaled = {
                o["spec"]["scaleTargetRef"]["name"]
                for o in objs
                if o["kind"] == "HorizontalPodAutoscaler" and o["spec"]["scaleTargetRef"]["kind"] == "Deployment"
            }
            for d in (o for o in objs if o["kind"] == "Deployment"):
                name = d["metadata"]["name"]
                with self.subTest(variant=v.name, deployment=name):
                    if name in scaled:
                        self.assertIsNone(d["spec"].get("replicas"), "the HPA owns the count: no spec.replicas")
                    else:
                        self.assertIsNotNone(d["spec"].get("replicas"), "no HPA: the Deployment states its count")

    def test_references_resolve(self):
        for v, objs in each_variant():
            have = {(o["kind"], o["metadata"]["name"]) for o in objs} | set(v.external)
            for w in m.workloads(objs):
                spec = m.pod_spec(w)
                refs = set()
                for c in spec["containers"]:
                    for src in c.get("envFrom") or []:
                        refs |= {("ConfigMap", src["configMapRef"]["name"])} if "configMapRef" in src else set()
                        refs |= {("Secret", src["secretRef"]["name"])} if "secretRef" in src else set()
                    for e in c.get("env") or []:
                        vf = e.get("valueFrom") or {}
                        refs |= {("ConfigMap", vf["configMapKeyRef"]["name"])} if "configMapKeyRef" in vf else set()
                        refs |= {("Secret", vf["secretKeyRef"]["name"])} if "secretKeyRef" in vf else set()
                    mounts = {vm["name"] for vm in c.get("volumeMounts") or []}
                    self.assertLessEqual(mounts, {vol["name"] for vol in spec.get("volumes") or []})
                for vol in spec.get("volumes") or []:
                    refs |= {("ConfigMap", vol["configMap"]["name"])} if "configMap" in vol else set()
                    refs |= {("Secret", vol["secret"]["secretName"])} if "secret" in vol else set()
                with self.subTest(variant=v.name, workload=w["metadata"]["name"]):
                    self.assertEqual(refs - have, set(), "referenced but neither rendered nor expected outside git")
            for ing in (o for o in objs if o["kind"] == "Ingress"):
                for tls in ing["spec"].get("tls") or []:
                    self.assertIn(("Secret", tls["secretName"]), have)

    def test_services_and_ingress_reach_pods(self):
        for v, objs in each_variant():
            for svc in (o for o in objs if o["kind"] == "Service"):
                with self.subTest(variant=v.name, service=svc["metadata"]["name"]):
                    hits = [w for w in m.workloads(objs) if m.selector_matches({"matchLabels": svc["spec"]["selector"]}, m.pod_labels(w))]
                    self.assertEqual(len(hits), 1)
                    c = m.pod_spec(hits[0])["containers"][0]
                    for p in svc["spec"]["ports"]:
                        m.port_number(c, p["targetPort"])
            for ing in (o for o in objs if o["kind"] == "Ingress"):
                with self.subTest(variant=v.name, ingress=ing["metadata"]["name"]):
                    a = ing["metadata"]["annotations"]
                    self.assertEqual(a["nginx.ingress.kubernetes.io/proxy-read-timeout"], "3600")
                    self.assertEqual(a["nginx.ingress.kubernetes.io/proxy-send-timeout"], "3600")
                    public = set()
                    for rule in ing["spec"]["rules"]:
                        for path in rule["http"]["paths"]:
                            b = path["backend"]["service"]
                            svc = m.find(objs, "Service", b["name"])
                            self.assertIsNotNone(svc)
                            self.assertIn(b["port"]["name"], [p["name"] for p in svc["spec"]["ports"]])
                            # Exact paths only: a prefix would publish the
                            # gateway's /metrics and probes too.
                            self.assertEqual(path["pathType"], "Exact", path)
                            public.add(path["path"])
                    # The page, its files and the WebSocket; nothing else.
                    self.assertEqual(public, {"/", "/client.js", "/style.css", "/connect"})

    def test_network_policies(self):
        for v, objs in each_variant():
            policies = [o for o in objs if o["kind"] == "NetworkPolicy"]
            if not policies:
                continue
            pods = {w["metadata"]["name"]: w for w in m.workloads(objs)}

            def allowed(target: str, source_labels: dict | None, source_ns: str | None) -> set[int]:
                """Ports of `target` a pod (labels, same namespace) or a namespace may reach."""
                w = pods[target]
                c = m.pod_spec(w)["containers"][0]
                ports: set[int] = set()
                for p in policies:
                    if not m.selector_matches(p["spec"]["podSelector"], m.pod_labels(w)):
                        continue
                    for rule in p["spec"].get("ingress") or []:
                        peers = rule.get("from")
                        ok = peers is None or any(
                            ("podSelector" in peer and "namespaceSelector" not in peer and source_labels is not None
                             and m.selector_matches(peer["podSelector"], source_labels))
                            or ("namespaceSelector" in peer and "podSelector" not in peer and source_ns is not None
                                and m.selector_matches(peer["namespaceSelector"], {"kubernetes.io/metadata.name": source_ns}))
                            for peer in peers
                        )
                        if ok:
                            ports |= {m.port_number(c, x["port"]) for x in rule.get("ports") or []}
                return ports

            with self.subTest(variant=v.name):
                # Nothing comes in unless a rule lets it.
                self.assertTrue(any(p["spec"]["podSelector"] == {} and not p["spec"].get("ingress") for p in policies))
                stranger = {"app": "somebody-else"}
                self.assertEqual(allowed("gateway", stranger, "elsewhere"), {8080}, "game port open to all")
                self.assertEqual(allowed("room-worker", stranger, "elsewhere"), set())
                self.assertEqual(allowed("room-worker", None, "monitoring"), {9091}, "metrics from monitoring")
                if "redis" in pods:
                    for who in ("gateway", "room-worker"):
                        self.assertEqual(allowed("redis", m.pod_labels(pods[who]), None), {6379}, who)
                    self.assertEqual(allowed("redis", stranger, None), set())
                    self.assertEqual(allowed("redis", None, "monitoring"), set())

    def test_k6_job_runs_the_repository_script_against_the_gateway_service(self):
        objs = RENDERED["k6"]
        job = m.find(objs, "Job", "k6")
        spec = m.pod_spec(job)
        cm_name = next(v["configMap"]["name"] for v in spec["volumes"] if "configMap" in v)
        cm = m.find(objs, "ConfigMap", cm_name)
        self.assertEqual(cm["data"]["snakepit.js"], (m.REPO / "loadtest/k6/snakepit.js").read_text())
        c = spec["containers"][0]
        self.assertTrue(c["image"].startswith("grafana/k6:"))
        self.assertIn("/scripts/snakepit.js", c["args"])
        url = next(a for a in c["args"] if a.startswith("URL="))
        dev = RENDERED["dev"]
        svc = m.find(dev, "Service", "gateway")
        self.assertEqual(job["metadata"]["namespace"], svc["metadata"]["namespace"])
        self.assertEqual(url, f"URL=ws://gateway:{svc['spec']['ports'][0]['port']}/connect")


class Pods(unittest.TestCase):
    def test_no_container_runs_as_root_or_with_privileges(self):
        for v, objs in each_variant():
            for w in m.workloads(objs):
                pod = m.pod_spec(w).get("securityContext") or {}
                for c in m.pod_spec(w)["containers"] + (m.pod_spec(w).get("initContainers") or []):
                    with self.subTest(variant=v.name, container=c["name"]):
                        sc = c.get("securityContext") or {}
                        eff = lambda k: sc.get(k, pod.get(k))  # noqa: E731
                        self.assertIs(eff("runAsNonRoot"), True)
                        self.assertIsInstance(eff("runAsUser"), int)
                        self.assertGreater(eff("runAsUser"), 0)
                        self.assertIsInstance(eff("runAsGroup"), int)
                        self.assertGreater(eff("runAsGroup"), 0)
                        self.assertEqual((eff("seccompProfile") or {}).get("type"), "RuntimeDefault")
                        self.assertIs(sc.get("readOnlyRootFilesystem"), True)
                        self.assertIs(sc.get("allowPrivilegeEscalation"), False)
                        self.assertEqual((sc.get("capabilities") or {}).get("drop"), ["ALL"])
                        self.assertFalse((sc.get("capabilities") or {}).get("add"))
                        self.assertNotIn("privileged", {k for k, val in sc.items() if val})
                with self.subTest(variant=v.name, workload=w["metadata"]["name"]):
                    self.assertIs(m.pod_spec(w).get("automountServiceAccountToken"), False)

    def test_every_container_has_resources_and_probes(self):
        for v, objs in each_variant():
            for w in m.workloads(objs):
                for c in m.pod_spec(w)["containers"]:
                    with self.subTest(variant=v.name, container=c["name"]):
                        r = c.get("resources") or {}
                        self.assertTrue({"cpu", "memory"} <= set(r.get("requests") or {}))
                        self.assertIn("memory", r.get("limits") or {})
                        if w["kind"] != "Job":
                            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                                self.assertIn(probe, c)


class Monitoring(unittest.TestCase):
    """The monitoring component ships deploy/monitoring as it is: each
    dashboard as a ConfigMap the Grafana sidecar loads, the rule files as
    one PrometheusRule."""

    def test_dashboards_and_rules_are_the_files_of_deploy_monitoring(self):
        import json

        objs = RENDERED["prod+monitoring"]
        mon = m.REPO / "deploy" / "monitoring"
        shipped = {}
        for cm in (o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("snakepit-dashboard-")):
            self.assertEqual(cm["metadata"]["labels"].get("grafana_dashboard"), "1")
            for key, text in cm["data"].items():
                shipped[key] = json.loads(text)
        files = {p.name: json.loads(p.read_text()) for p in (mon / "dashboards").glob("*.json")}
        self.assertEqual(shipped, files)
        (rule,) = [o for o in objs if o["kind"] == "PrometheusRule"]
        groups = []
        for f in ("recording.yaml", "alerts.yaml"):
            groups += yaml.safe_load((mon / "rules" / f).read_text())["groups"]
        self.assertEqual(rule["spec"]["groups"], groups, "python3 deploy/monitoring/prometheusrule.py")
        for o in objs:
            if o["kind"] in ("ConfigMap", "PrometheusRule") and o["metadata"]["name"].startswith("snakepit"):
                # kubectl apply keeps the whole object in an annotation of at most 256 KiB.
                self.assertLess(len(json.dumps(o)), 200_000, o["metadata"]["name"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
