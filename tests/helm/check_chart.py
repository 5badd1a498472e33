#!/usr/bin/env python3
"""Checks of the Helm chart helm/raftkv (ctest label "helm"; driver: tests/helm/run.sh).

  HELM=.tools/bin/helm VALIDATOR=.tools/bin/validate-k8s [RAFTNODE=... KVGATEWAY=...] \
      /usr/bin/python3 tests/helm/check_chart.py

1. `helm lint --strict` with the defaults and with each ci/*-values.yaml;
2. `helm template` of each (and of a few --set variants) piped to validate-k8s, which decodes
   every object into its k8s.io/api type with unknown fields rejected;
3. assertions on the rendered objects: the founding membership, DNS names, Services, probes,
   security contexts, PodDisruptionBudgets, test hooks, the env-only contract with the images;
4. the schema rejects typos and wrong types; the README documents every value.
Prints one line per check and a closing "N passed, N failed".
"""
import json
import math
import os
import re
import subprocess
import sys

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHART = os.environ.get("RAFTKV_CHART", os.path.join(ROOT, "helm", "raftkv"))
HELM = os.environ.get("HELM", os.path.join(ROOT, ".tools", "bin", "helm"))
VALIDATOR = os.environ.get("VALIDATOR", os.path.join(ROOT, ".tools", "bin", "validate-k8s"))
NS = "raftkv-ci"
RELEASE = "ci"

passed = 0
failed = 0


def check(name, fn):
    global passed, failed
    try:
        fn()
    except AssertionError as e:
        failed += 1
        print(f"FAIL {name}: {e}", flush=True)
        return
    except Exception as e:  # a bug in a check or an unexpected shape: a failure too
        failed += 1
        print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
        return
    passed += 1
    print(f"ok   {name}", flush=True)


def run(args, stdin=None):
    p = subprocess.run(args, input=stdin, capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def helm_template(*extra):
    rc, out, err = run([HELM, "template", RELEASE, CHART, "--namespace", NS, *extra])
    assert rc == 0, f"helm template {' '.join(extra)} failed: {err.strip()}"
    return out


def objects(stream):
    return [d for d in yaml.safe_load_all(stream) if d]


def one(objs, kind, name=None, pred=None):
    found = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
             and (pred is None or pred(o))]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def env_map(container):
    return {e["name"]: e for e in container.get("env", [])}


def expand(env_list, pod_name, namespace):
    """Expand env values the way the kubelet does: $(VAR) of an earlier variable, $$ -> $."""
    out = {}
    for e in env_list:
        if "valueFrom" in e:
            path = e["valueFrom"]["fieldRef"]["fieldPath"]
            out[e["name"]] = {"metadata.name": pod_name, "metadata.namespace": namespace}[path]
            continue

        def sub(m):
            if m.group(0) == "$$":
                return "$"
            var = m.group(1)
            assert var in out, f"{e['name']} refers to $({var}) before it is defined"
            return out[var]

        out[e["name"]] = re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", sub, e.get("value", ""))
    return out


def load_values(path):
    with open(path) as f:
        return yaml.safe_load(f) or {}


def merge(a, b):
    r = dict(a)
    for k, v in b.items():
        r[k] = merge(r[k], v) if isinstance(v, dict) and isinstance(r.get(k), dict) else v
    return r


DEFAULTS = load_values(os.path.join(CHART, "values.yaml"))
CHART_META = load_values(os.path.join(CHART, "Chart.yaml"))
APP = CHART_META["appVersion"]


def help_env(binary_var):
    """The RAFTKV_* variables a binary's --help lists (None when the binary is not given)."""
    path = os.environ.get(binary_var)
    if not path or not os.access(path, os.X_OK):
        return None
    p = subprocess.run([path, "--help"], capture_output=True, text=True)
    return set(re.findall(r"env (RAFTKV_[A-Z_]+)", p.stdout + p.stderr))


RAFTNODE_HELP = help_env("RAFTNODE")
GATEWAY_HELP = help_env("KVGATEWAY")


def assert_restricted(pod_spec, where):
    sc = pod_spec.get("securityContext", {})
    assert sc.get("runAsNonRoot") is True, f"{where}: pod runAsNonRoot"
    assert sc.get("runAsUser") == 65532 and sc.get("runAsGroup") == 65532, f"{where}: pod user/group 65532"
    assert sc.get("fsGroup") == 65532, f"{where}: fsGroup 65532"
    assert sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{where}: pod seccomp"
    for c in pod_spec.get("initContainers", []) + pod_spec["containers"]:
        csc = c.get("securityContext", {})
        w = f"{where}/{c['name']}"
        assert csc.get("allowPrivilegeEscalation") is False, f"{w}: allowPrivilegeEscalation"
        assert csc.get("capabilities", {}).get("drop") == ["ALL"], f"{w}: capabilities.drop ALL"
        assert not csc.get("capabilities", {}).get("add"), f"{w}: capabilities.add"
        assert csc.get("readOnlyRootFilesystem") is True, f"{w}: readOnlyRootFilesystem"
        assert csc.get("runAsNonRoot") is True, f"{w}: runAsNonRoot"
        assert csc.get("privileged") in (None, False), f"{w}: privileged"
        assert csc.get("seccompProfile", {}).get("type", "RuntimeDefault") == "RuntimeDefault", f"{w}: seccomp"
    assert pod_spec.get("automountServiceAccountToken") is False, f"{where}: automountServiceAccountToken"
    for v in pod_spec.get("volumes", []):
        assert "hostPath" not in v, f"{where}: hostPath volume"
    assert not pod_spec.get("hostNetwork") and not pod_spec.get("hostPID"), f"{where}: host namespaces"


def assert_env_contract(container, where):
    """Only env (no args/command), entries with value or valueFrom.fieldRef of name/namespace."""
    assert "args" not in container and "command" not in container, f"{where}: args/command set"
    for e in container["env"]:
        keys = set(e) - {"name"}
        assert keys in ({"value"}, {"valueFrom"}), f"{where}: env {e['name']} has {keys}"
        if "valueFrom" in e:
            vf = e["valueFrom"]
            assert set(vf) == {"fieldRef"}, f"{where}: env {e['name']} valueFrom {vf}"
            assert vf["fieldRef"]["fieldPath"] in ("metadata.name", "metadata.namespace"), \
                f"{where}: env {e['name']} fieldPath {vf['fieldRef']['fieldPath']}"
        else:
            assert isinstance(e["value"], str), f"{where}: env {e['name']} value is not a string"


def grpc_probe(container, kind, port, service, where):
    p = container.get(kind)
    assert p, f"{where}: no {kind}"
    assert "grpc" in p, f"{where}: {kind} is not a grpc probe: {p}"
    assert p["grpc"]["port"] == port, f"{where}: {kind} port {p['grpc']['port']} != {port}"
    assert p["grpc"].get("service", "") == service, \
        f"{where}: {kind} service {p['grpc'].get('service', '')!r} != {service!r}"


def check_render(case, values, extra):
    """All assertions on one rendering; values = the merged values it was rendered with."""
    out = helm_template(*extra)
    rc, vout, verr = run([VALIDATOR], stdin=out)
    assert rc == 0, f"validate-k8s: {verr.strip()}"
    objs = objects(out)

    full = values.get("fullnameOverride") or f"{RELEASE}-raftkv"
    sts_name = f"{full}-raftnode"
    headless = f"{full}-raftnode-headless"
    domain = values["clusterDomain"]
    rn = values["raftnode"]
    gw = values["gateway"]
    n = rn["replicas"]
    port = rn["port"]
    fqdn = f"{headless}.{NS}.svc.{domain}"

    for o in objs:
        assert o["metadata"].get("namespace") == NS, f"{o['kind']} {o['metadata']['name']}: namespace"

    # The StatefulSet and its founding membership.
    sts = one(objs, "StatefulSet", sts_name)
    spec = sts["spec"]
    assert spec["replicas"] == n, f"replicas {spec['replicas']} != {n}"
    assert spec["podManagementPolicy"] == "Parallel", "podManagementPolicy"
    assert spec["serviceName"] == headless, f"serviceName {spec['serviceName']}"
    pod = spec["template"]["spec"]
    c = one([dict(x, kind="c", metadata={"name": x["name"]}) for x in pod["containers"]], "c", "raftnode")
    assert c["image"] == f"{rn['image']['repository']}:{rn['image']['tag'] or APP}", f"image {c['image']}"
    assert_env_contract(c, "raftnode")
    env = env_map(c)
    members = env["RAFTKV_INITIAL_CLUSTER"]["value"].split(",")
    want = [f"{sts_name}-{i}={sts_name}-{i}.{fqdn}:{port}" for i in range(n)]
    assert members == want, f"RAFTKV_INITIAL_CLUSTER {members} != {want}"
    assert len(set(m.split("=")[0] for m in members)) == n, "member names not unique"
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name", "POD_NAME"
    assert env["RAFTKV_NAME"]["value"] == "$(POD_NAME)", "RAFTKV_NAME"
    assert env["RAFTKV_DATA_DIR"]["value"] == "/data", "RAFTKV_DATA_DIR"
    assert env["RAFTKV_LISTEN_PEER"]["value"] == f"0.0.0.0:{port}", "RAFTKV_LISTEN_PEER"
    for var in ("RAFTKV_ADVERTISE_PEER", "RAFTKV_ADVERTISE_CLIENT"):
        assert env[var]["value"] == f"$(POD_NAME).{fqdn}:{port}", f"{var} {env[var]['value']}"
    cfg = rn["config"]
    expect = {"RAFTKV_TICK_MS": cfg["tickMs"], "RAFTKV_HEARTBEAT_MS": cfg["heartbeatMs"],
              "RAFTKV_ELECTION_MS": cfg["electionMs"], "RAFTKV_SNAPSHOT_ENTRIES": cfg["snapshotEntries"],
              "RAFTKV_SNAPSHOT_BYTES": cfg["snapshotBytes"],
              "RAFTKV_SNAPSHOT_LOG_PERCENT": cfg["snapshotLogPercent"], "RAFTKV_SNAPSHOT_TRAILING": cfg["snapshotTrailing"],
              "RAFTKV_MAX_REQUEST_BYTES": cfg["maxRequestBytes"], "RAFTKV_MAX_KEY_BYTES": cfg["maxKeyBytes"],
              "RAFTKV_MAX_VALUE_BYTES": cfg["maxValueBytes"], "RAFTKV_MAX_TXN_OPS": cfg["maxTxnOps"],
              "RAFTKV_SESSION_TTL_MS": cfg["sessionTtlMs"], "RAFTKV_MIN_FREE_BYTES": cfg["minFreeBytes"],
              "RAFTKV_QUOTA_BYTES": cfg["quotaBytes"],
              "RAFTKV_SHUTDOWN_TIMEOUT_MS": cfg["shutdownTimeoutMs"], "RAFTKV_LOG_LEVEL": cfg["logLevel"],
              "RAFTKV_LOG_FORMAT": cfg["logFormat"]}
    for var, v in expect.items():
        assert env[var]["value"] == str(v), f"{var} {env[var]['value']!r} != {v!r} (numbers must not render as 6.7e+07)"
    if RAFTNODE_HELP is not None:
        unknown = {k for k in env if k.startswith("RAFTKV_")} - RAFTNODE_HELP
        assert not unknown, f"raftnode --help has no {sorted(unknown)}"
    # Each pod, expanded as the kubelet would, is the member its name says.
    for i in range(n):
        pod_name = f"{sts_name}-{i}"
        x = expand(c["env"], pod_name, NS)
        assert x["RAFTKV_NAME"] == pod_name
        assert f"{x['RAFTKV_NAME']}={x['RAFTKV_ADVERTISE_PEER']}" == members[i], \
            f"pod {i}: advertised {x['RAFTKV_ADVERTISE_PEER']} is not its --initial-cluster entry"
        for label in pod_name.split(".") + fqdn.split("."):
            assert len(label) <= 63, f"DNS label {label} too long"
    assert c["ports"] == [{"name": "grpc", "containerPort": port, "protocol": "TCP"}], f"ports {c['ports']}"
    # Probes: liveness and startup never depend on quorum; readiness is the KV service.
    grpc_probe(c, "livenessProbe", port, "", "raftnode")
    grpc_probe(c, "startupProbe", port, "", "raftnode")
    grpc_probe(c, "readinessProbe", port, "raftkv.v1.KV", "raftnode")
    assert_restricted(pod, "raftnode")
    grace = pod["terminationGracePeriodSeconds"]
    need = math.ceil(cfg["shutdownTimeoutMs"] / 1000) + 5
    assert grace >= need, f"terminationGracePeriodSeconds {grace} < shutdown timeout + 5 s ({need})"
    assert c.get("resources", {}).get("requests"), "raftnode resources.requests"
    assert c["resources"] == rn["resources"], f"raftnode resources {c['resources']} != {rn['resources']}"
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert mounts.get("/data") == "data", "/data mount"
    if rn["persistence"]["enabled"]:
        vct = spec["volumeClaimTemplates"]
        assert [v["metadata"]["name"] for v in vct] == ["data"], "volumeClaimTemplates"
        assert vct[0]["spec"]["resources"]["requests"]["storage"] == rn["persistence"]["size"], "claim size"
        sc = rn["persistence"]["storageClassName"]
        assert vct[0]["spec"].get("storageClassName", "") == sc, "storageClassName"
        assert not any(v["name"] == "data" for v in pod.get("volumes", [])), "data both claim and volume"
    else:
        assert "volumeClaimTemplates" not in spec, "claims without persistence"
        assert any(v["name"] == "data" and "emptyDir" in v for v in pod["volumes"]), "data emptyDir"
    pod_labels = spec["template"]["metadata"]["labels"]
    aff = pod.get("affinity", {}).get("podAntiAffinity", {})
    mode = rn["podAntiAffinity"]
    if mode == "soft":
        terms = aff.get("preferredDuringSchedulingIgnoredDuringExecution", [])
        assert len(terms) == 1 and not aff.get("requiredDuringSchedulingIgnoredDuringExecution"), "soft anti-affinity"
        term = terms[0]["podAffinityTerm"]
    elif mode == "hard":
        terms = aff.get("requiredDuringSchedulingIgnoredDuringExecution", [])
        assert len(terms) == 1, "hard anti-affinity"
        term = terms[0]
    else:
        term = None
        assert not aff, "anti-affinity with podAntiAffinity none"
    if term:
        assert term["topologyKey"] == "kubernetes.io/hostname", "anti-affinity topologyKey"
        sel = term["labelSelector"]["matchLabels"]
        assert all(pod_labels.get(k) == v for k, v in sel.items()), "anti-affinity selector misses the pods"

    # Headless Service.
    hs = one(objs, "Service", headless)
    assert hs["spec"]["clusterIP"] == "None", "headless clusterIP"
    assert hs["spec"]["publishNotReadyAddresses"] is True, "publishNotReadyAddresses"
    assert hs["spec"]["ports"][0]["port"] == port and hs["spec"]["ports"][0]["name"] == "grpc", "headless port"
    assert all(pod_labels.get(k) == v for k, v in hs["spec"]["selector"].items()), "headless selector"
    assert spec["selector"]["matchLabels"] == hs["spec"]["selector"], "sts selector != headless selector"
    client = [o for o in objs if o["kind"] == "Service" and o["metadata"]["name"] == sts_name]
    assert len(client) == (1 if rn["clientService"]["enabled"] else 0), "client Service"
    if client:
        assert client[0]["spec"].get("clusterIP") != "None", "client Service is headless"
        assert not client[0]["spec"].get("publishNotReadyAddresses"), "client Service publishes not ready"

    # raftnode PDB.
    pdbs = [o for o in objs if o["kind"] == "PodDisruptionBudget"]
    rpdb = [p for p in pdbs if p["spec"]["selector"]["matchLabels"] == spec["selector"]["matchLabels"]]
    if rn["podDisruptionBudget"]["enabled"]:
        assert len(rpdb) == 1, "raftnode PDB"
        assert rpdb[0]["spec"]["maxUnavailable"] == rn["podDisruptionBudget"]["maxUnavailable"], "raftnode PDB spec"
        assert "minAvailable" not in rpdb[0]["spec"], "raftnode PDB minAvailable"
    else:
        assert not rpdb, "raftnode PDB while disabled"

    # Gateway.
    gw_name = f"{full}-kvgateway"
    deps = [o for o in objs if o["kind"] == "Deployment"]
    if gw["enabled"]:
        dep = one(objs, "Deployment", gw_name)
        assert dep["spec"]["replicas"] == gw["replicas"], "gateway replicas"
        gpod = dep["spec"]["template"]["spec"]
        g = gpod["containers"][0]
        assert g["image"] == f"{gw['image']['repository']}:{gw['image']['tag'] or APP}", f"gateway image {g['image']}"
        assert_env_contract(g, "kvgateway")
        genv = {e["name"]: e["value"] for e in g["env"]}
        assert genv["RAFTKV_LISTEN"] == f"0.0.0.0:{gw['port']}", "RAFTKV_LISTEN"
        assert genv["RAFTKV_RAFTNODES"] == f"{fqdn}:{port}", f"RAFTKV_RAFTNODES {genv['RAFTKV_RAFTNODES']}"
        if GATEWAY_HELP is not None:
            unknown = {k for k in genv if k.startswith("RAFTKV_")} - GATEWAY_HELP
            assert not unknown, f"kvgateway --help has no {sorted(unknown)}"
        grpc_probe(g, "readinessProbe", gw["port"], "", "kvgateway")
        for kind in ("livenessProbe", "startupProbe"):
            assert g[kind].get("tcpSocket", {}).get("port") == "grpc" or "grpc" in g[kind], f"gateway {kind}"
        assert_restricted(gpod, "kvgateway")
        assert g["resources"] == gw["resources"], "gateway resources"
        svc = one(objs, "Service", gw_name)
        assert svc["spec"]["type"] == gw["service"]["type"], "gateway Service type"
        sp = svc["spec"]["ports"][0]
        assert sp["appProtocol"] == "kubernetes.io/h2c", "gateway Service appProtocol"
        assert sp["port"] == gw["service"]["port"] and sp["targetPort"] == "grpc", "gateway Service port"
        glabels = dep["spec"]["template"]["metadata"]["labels"]
        assert all(glabels.get(k) == v for k, v in svc["spec"]["selector"].items()), "gateway Service selector"
        assert not any(pod_labels.get(k) == v for k, v in svc["spec"]["selector"].items()
                       if k == "app.kubernetes.io/component"), "gateway Service selects raftnodes"
        gpdb = [p for p in pdbs if p["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]]
        want_pdb = gw["replicas"] > 1 and gw["podDisruptionBudget"]["enabled"]
        assert len(gpdb) == (1 if want_pdb else 0), f"gateway PDB (replicas {gw['replicas']})"
        if gpdb:
            assert gpdb[0]["spec"]["maxUnavailable"] == gw["podDisruptionBudget"]["maxUnavailable"], "gateway PDB"
    else:
        assert not deps, "gateway Deployment while disabled"
        assert not [o for o in objs if o["kind"] == "Service" and o["metadata"]["name"] == gw_name], "gateway Service"

    # helm test hooks.
    tests = [o for o in objs if o["kind"] == "Pod"]
    if values["tests"]["enabled"]:
        assert len(tests) == 2, f"{len(tests)} test pods"
        kvctl_args = []
        for t in tests:
            assert t["metadata"]["annotations"]["helm.sh/hook"] == "test", "hook annotation"
            assert t["spec"]["restartPolicy"] == "Never", "test restartPolicy"
            assert_restricted(t["spec"], t["metadata"]["name"])
            for tc in t["spec"].get("initContainers", []) + t["spec"]["containers"]:
                assert tc["command"] == ["/usr/local/bin/kvctl"], "tests use kvctl"
                tenv = {e["name"]: e["value"] for e in tc["env"]}
                kvctl_args.append((tc["args"], tenv["RAFTKV_ENDPOINTS"]))
        status = [e for a, e in kvctl_args if a == ["status"]]
        assert status == [",".join(f"{sts_name}-{i}.{fqdn}:{port}" for i in range(n))], f"status test {status}"
        puts = [(a, e) for a, e in kvctl_args if a[0] == "put"]
        txns = [(a, e) for a, e in kvctl_args if a[0] == "txn"]
        assert len(puts) == 1 and len(txns) == 1, "put/get test"
        key, value = puts[0][0][1], puts[0][0][2]
        assert f'value({key}) = "{value}"' in txns[0][0], f"txn does not compare what was put: {txns[0][0]}"
        want_ep = f"{gw_name}.{NS}.svc.{domain}:{gw['service']['port']}" if gw["enabled"] else status[0]
        assert puts[0][1] == want_ep and txns[0][1] == want_ep, f"put/get endpoints {puts[0][1]}"
    else:
        assert not tests, "test pods while disabled"
    return objs


def lint(*extra):
    return run([HELM, "lint", "--strict", CHART, *extra])


def expect_lint_ok(*extra):
    rc, out, err = lint(*extra)
    assert rc == 0, f"helm lint --strict {' '.join(extra)}: {out}{err}"


def expect_rejected(args, needle, by_lint=True):
    """helm template (and, for schema errors, helm lint --strict) must refuse the values.
    A template's `fail` is only an INFO line to helm lint, so those are checked by template."""
    if by_lint:
        rc, out, err = lint(*args)
        assert rc != 0, f"helm lint --strict {' '.join(args)} passed"
        assert needle in out + err, f"no {needle!r} in: {out}{err}"
    rc, out, err = run([HELM, "template", RELEASE, CHART, *args])
    assert rc != 0, f"helm template {' '.join(args)} passed"
    assert needle in out + err, f"no {needle!r} in: {out}{err}"


def flatten(d, prefix=""):
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            yield from flatten(v, key + ".")
        else:
            yield key


def main():
    for tool in (HELM, VALIDATOR):
        if not os.access(tool, os.X_OK):
            print(f"FAIL missing {tool}")
            sys.exit(1)

    def chart_meta():
        assert CHART_META["apiVersion"] == "v2"
        assert CHART_META["version"] == "0.6.0" and CHART_META["appVersion"] == "0.6.0", "versions"
    check("Chart.yaml", chart_meta)

    def validator_rejects():
        bad = ("apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  ports: [{port: 1}]\n  bogus: 1\n"
               "---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: b}\nspec:\n  template:\n"
               "    spec:\n      containers: [{name: c, image: i, livenessProbe: {grpc: {port: 1, servce: x}}}]\n"
               "---\napiVersion: v1\nkind: Gizmo\nmetadata: {name: c}\n")
        rc, out, err = run([VALIDATOR], stdin=bad)
        assert rc == 1, f"exit {rc}"
        for needle in ('unknown field "bogus"', 'unknown field "servce"', "unknown kind v1/Gizmo"):
            assert needle in err, f"no {needle!r} in {err}"
    check("validate-k8s rejects unknown fields and kinds", validator_rejects)

    ci_files = sorted(f for f in os.listdir(os.path.join(CHART, "ci")) if f.endswith("-values.yaml"))
    def ci_present():
        assert len(ci_files) >= 3, ci_files
    check("ci files present", ci_present)
    check("lint --strict defaults", lambda: expect_lint_ok())
    check("render defaults", lambda: check_render("defaults", DEFAULTS, []))
    for f in ci_files:
        path = os.path.join(CHART, "ci", f)
        vals = merge(DEFAULTS, load_values(path))
        check(f"lint --strict -f ci/{f}", lambda path=path: expect_lint_ok("-f", path))
        check(f"render -f ci/{f}", lambda path=path, vals=vals: check_render(f, vals, ["-f", path]))

    # The ci files cover what the brief asks for.
    def ci_coverage():
        vs = [merge(DEFAULTS, load_values(os.path.join(CHART, "ci", f))) for f in ci_files]
        assert any(v["raftnode"]["replicas"] == 3 for v in vs), "3 members"
        assert any(v["raftnode"]["replicas"] == 5 and v["clusterDomain"] != "cluster.local"
                   and v["raftnode"]["resources"] != DEFAULTS["raftnode"]["resources"] for v in vs), "5 members"
        assert any(v["raftnode"]["replicas"] == 1 and v["gateway"]["replicas"] == 2 for v in vs), "1 member"
    check("ci files cover 3, 5 (custom domain, resources) and 1 member(s)", ci_coverage)

    variants = [
        ("gateway.replicas=1 (no gateway PDB)", {"gateway": {"replicas": 1}}),
        ("gateway disabled", {"gateway": {"enabled": False}}),
        ("tests disabled, raftnode PDB disabled, anti-affinity none",
         {"tests": {"enabled": False}, "raftnode": {"podDisruptionBudget": {"enabled": False}, "podAntiAffinity": "none"}}),
        ("7 members, image tags", {"raftnode": {"replicas": 7, "image": {"tag": "dev"}}, "gateway": {"image": {"tag": "dev"}}}),
    ]
    for name, over in variants:
        vals = merge(DEFAULTS, over)
        args = []
        for k in flatten(over):
            v = over
            for part in k.split("."):
                v = v[part]
            args += ["--set", f"{k}={json.dumps(v) if isinstance(v, bool) else v}"]
        check(f"render --set {name}", lambda vals=vals, args=args: check_render(name, vals, args))

    def grace_explicit():
        objs = objects(helm_template("--set", "raftnode.terminationGracePeriodSeconds=90"))
        assert one(objs, "StatefulSet")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 90
        objs = objects(helm_template("--set", "raftnode.config.shutdownTimeoutMs=30500"))
        g = one(objs, "StatefulSet")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert g == 31 + DEFAULTS["raftnode"]["terminationGraceMarginSeconds"], g
    check("terminationGracePeriodSeconds derived from the shutdown timeout", grace_explicit)

    # The schema (and the template's own checks) refuse bad values.
    rejects = [
        (["--set", "raftnode.replicsa=3"], "replicsa"),
        (["--set", "clusterDomian=example.org"], "clusterDomian"),
        (["--set", "gateway.config.probeIntervalMS=100"], "probeIntervalMS"),
        (["--set", "raftnode.replicas=three"], "replicas"),
        (["--set", "raftnode.replicas=0"], "replicas"),
        (["--set-string", "raftnode.config.electionMs=250"], "electionMs"),
        (["--set", "gateway.config.logLevel=verbose"], "logLevel"),
        (["--set", "raftnode.podAntiAffinity=sometimes"], "podAntiAffinity"),
    ]
    for args, needle in rejects:
        check(f"rejected: {' '.join(args)}", lambda args=args, needle=needle: expect_rejected(args, needle))
    for args, needle in [(["--set", "raftnode.config.heartbeatMs=55"], "multiple of"),
                         (["--set", "raftnode.config.electionMs=50"], "greater than")]:
        check(f"rejected by the templates: {' '.join(args)}",
              lambda args=args, needle=needle: expect_rejected(args, needle, by_lint=False))

    def readme_lists_every_value():
        with open(os.path.join(CHART, "README.md")) as f:
            readme = f.read()
        documented = set(re.findall(r"^\| `([A-Za-z0-9_.]+)` \|", readme, re.M))
        # A leaf is documented by its own row or by a row of an enclosing object.
        missing = [k for k in flatten(DEFAULTS)
                   if not any(".".join(k.split(".")[:i]) in documented for i in range(1, k.count(".") + 2))]
        assert not missing, f"README.md values table misses {missing}"
    check("README documents every value", readme_lists_every_value)

    def schema_strict():
        with open(os.path.join(CHART, "values.schema.json")) as f:
            s = json.load(f)
        assert s.get("additionalProperties") is False, "top level"
        for k in ("raftnode", "gateway", "tests", "serviceAccount"):
            assert s["properties"][k].get("additionalProperties") is False, k
    check("values.schema.json closes its objects", schema_strict)

    print(f"helm: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
