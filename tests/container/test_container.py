#!/usr/bin/python3
"""Container test: the raftnode and kvgateway images, and a cluster of containers run from the
Helm chart's rendered manifests.

1. Builds the images (scripts/build-images.sh; the first run takes many minutes, later runs
   reuse the layer cache) and checks their basics: numeric user 65532, exec-form entrypoint,
   no default arguments, `--help` under a read-only root filesystem, kvctl present, a fresh
   volume at /data writable by the image's user.
2. Renders the chart (`helm template`, helm from scripts/install-helm.sh) and turns the
   StatefulSet and the gateway Deployment into `docker run`s, as Kubernetes would run them:
   every env entry (`value`, `valueFrom.fieldRef` metadata.name/namespace, configMapKeyRef,
   secretKeyRef from the rendered objects) with `$(VAR)` references expanded in order; the
   pod's hostname; runAsUser/runAsGroup, readOnlyRootFilesystem (the root filesystem is
   read-only in any case), dropped capabilities, no-new-privileges; one Docker volume per
   replica for the volumeClaimTemplate, tmpfs for emptyDir volumes. On a private Docker
   network each raftnode container gets the StatefulSet DNS names of its pod
   (<pod>.<headless>.<ns>.svc.<clusterDomain> and the shorter search-path forms) and the
   names of every Service selecting it (so the headless name resolves to all replicas), the
   gateway the names of the Services selecting it.
3. The cluster forms (kvctl status on every member), kvctl writes and reads through the
   gateway, `docker kill` of the leader is survived (writes through the gateway go on; the
   killed container is started again on its volume and catches up), a follower cut off with
   `docker network disconnect` misses writes (kvctl inside it, serializable), is reconnected
   with the same aliases and catches up, and `docker stop` (SIGTERM) of every container
   exits 0.

Everything the test creates carries the label raftkv.container-test=<run id> and is removed
at the end, on failure too (and, at the next run, anything left by a run that was SIGKILLed).
No Docker engine (docker info fails): prints SKIPPED and exits 0.

Environment:
  RAFTKV_CT_SEED          seed of the random choices (printed)
  RAFTKV_CT_TIME_SCALE    multiply every deadline (default 1)
  RAFTKV_CT_KEEP=1        keep containers, network and volumes (for inspection)
  RAFTKV_CT_NO_BUILD=1    use existing images (raftkv/raftnode:<tag>, raftkv/kvgateway:<tag>)
  RAFTKV_CT_REPLICAS      --set replicas=N for the chart (default: the chart's default)
  RAFTKV_CT_KUBE_VERSION  helm template --kube-version (default 1.30.0)
  HELM                    helm binary (default: scripts/install-helm.sh)
"""
import json
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
CHART = os.path.join(REPO, "helm", "raftkv")
TIME_SCALE = float(os.environ.get("RAFTKV_CT_TIME_SCALE", "1") or 1)
KEEP = os.environ.get("RAFTKV_CT_KEEP", "") not in ("", "0")
LABEL = "raftkv.container-test"
RUN_ID = "%d-%d" % (os.getpid(), int(time.time()))
PREFIX = "rkct%d" % os.getpid()
RELEASE = "rk"
NAMESPACE = "default"

_T0 = time.monotonic()


def log(msg):
    print("[%8.3f] %s" % (time.monotonic() - _T0, msg), flush=True)


def scaled(s):
    return s * TIME_SCALE


class Timeout(AssertionError):
    pass


def until(fn, timeout, what, interval=0.5):
    """Call fn until it returns something truthy (returned) or `timeout` s (scaled) pass."""
    deadline = time.monotonic() + scaled(timeout)
    last = None
    while True:
        try:
            v = fn()
            if v:
                return v
            last = v
        except Exception as e:  # noqa: BLE001 - keep polling, remember the last failure
            last = e
        if time.monotonic() >= deadline:
            raise Timeout("timed out after %.0fs waiting for %s; last: %r" % (scaled(timeout), what, last))
        time.sleep(interval)


# ----------------------------------------------------------------------------- docker
def run(cmd, check=True, timeout=120, quiet=False, input_text=None):
    """Run a command; returns CompletedProcess (text). Raises on failure when check."""
    if not quiet:
        log("$ " + " ".join(shlex.quote(c) for c in cmd))
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=scaled(timeout), input=input_text)
    if check and r.returncode != 0:
        raise AssertionError("%s exited %d\nstdout: %s\nstderr: %s" %
                             (" ".join(cmd), r.returncode, r.stdout[-3000:], r.stderr[-3000:]))
    return r


def docker(*args, **kw):
    return run(["docker"] + list(args), **kw)


def inspect(obj, fmt):
    return docker("inspect", "--format", fmt, obj, quiet=True).stdout.strip()


def docker_available():
    try:
        r = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, str(e)
    if r.returncode != 0:
        return False, (r.stderr or r.stdout).strip()
    return True, r.stdout.strip()


# ----------------------------------------------------------------------------- cleanup
def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def remove_labelled(value=None, quiet=False):
    """Remove containers, then networks and volumes labelled LABEL (=value, or every run id
    whose process is gone when value is None)."""
    def ids(kind_cmd):
        out = subprocess.run(["docker"] + kind_cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True).stdout
        res = []
        for line in out.splitlines():
            if not line.strip():
                continue
            ident, _, lab = line.partition(" ")
            if value is not None:
                if lab == value:
                    res.append(ident)
            else:
                try:
                    pid = int(lab.split("-")[0])
                except ValueError:
                    continue
                if not _pid_alive(pid):
                    res.append(ident)
        return res

    fmt = '{{.ID}} {{.Label "%s"}}' % LABEL
    cs = ids(["ps", "-a", "--filter", "label=" + LABEL, "--format", fmt])
    if cs:
        subprocess.run(["docker", "rm", "-f", "-v"] + cs, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ns = ids(["network", "ls", "--filter", "label=" + LABEL, "--format", fmt])
    if ns:
        subprocess.run(["docker", "network", "rm"] + ns, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    vfmt = '{{.Name}} {{.Label "%s"}}' % LABEL
    vs = ids(["volume", "ls", "--filter", "label=" + LABEL, "--format", vfmt])
    if vs:
        subprocess.run(["docker", "volume", "rm", "-f"] + vs, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not quiet and (cs or ns or vs):
        log("removed %d containers, %d networks, %d volumes (%s)" %
            (len(cs), len(ns), len(vs), "this run" if value else "left by earlier runs"))


_cleaned = False


def cleanup():
    global _cleaned
    if _cleaned:
        return
    _cleaned = True
    if KEEP:
        log("RAFTKV_CT_KEEP: leaving containers, network and volumes labelled %s=%s" % (LABEL, RUN_ID))
        return
    remove_labelled(RUN_ID)


def _on_signal(signum, _frame):
    log("signal %d: cleaning up" % signum)
    cleanup()
    os._exit(128 + signum)


# ----------------------------------------------------------------------------- chart
def helm_binary():
    h = os.environ.get("HELM", "")
    if h:
        return h
    script = os.path.join(REPO, "scripts", "install-helm.sh")
    if not os.access(script, os.X_OK):
        raise SystemExit("scripts/install-helm.sh is missing: no helm to render the chart with")
    r = run([script], timeout=1200)
    return r.stdout.strip().splitlines()[-1]


def render_chart(helm, replicas):
    import yaml  # python3-yaml
    # helm built by `go install` assumes Kubernetes v1.20 unless told; the chart wants >= 1.27.
    cmd = [helm, "template", RELEASE, CHART, "--namespace", NAMESPACE,
           "--kube-version", os.environ.get("RAFTKV_CT_KUBE_VERSION", "1.30.0")]
    if replicas:
        cmd += ["--set", "replicas=%s" % replicas]
    r = run(cmd, timeout=120)
    docs = [d for d in yaml.safe_load_all(r.stdout) if isinstance(d, dict) and d.get("kind")]
    log("rendered %d objects: %s" % (len(docs), ", ".join("%s/%s" % (d["kind"], d["metadata"]["name"])
                                                          for d in docs)))
    return docs


def find_container(pod_spec, binary):
    cs = pod_spec.get("containers") or []
    for c in cs:
        if c.get("name") == binary:
            return c
    for c in cs:
        if binary in (c.get("image") or ""):
            return c
    raise AssertionError("no %s container in %s" % (binary, [c.get("name") for c in cs]))


_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text, env):
    """Kubernetes' $(VAR) expansion: defined names are replaced, undefined references are left
    as they are, $$ is an escaped $."""
    def sub(m):
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)
    return _VAR_REF.sub(sub, text)


def resolve_env(container, pod_name, objects):
    """The container's environment as the kubelet computes it (envFrom, then env in order)."""
    def lookup(kind, name, key):
        for o in objects:
            if o["kind"] == kind and o["metadata"]["name"] == name:
                data = dict(o.get("data") or {})
                if kind == "Secret":
                    import base64
                    data = {k: base64.b64decode(v).decode() for k, v in data.items()}
                    data.update(o.get("stringData") or {})
                return data if key is None else data[key]
        raise AssertionError("%s %s not in the rendered chart" % (kind, name))

    env = {}
    for src in container.get("envFrom") or []:
        prefix = src.get("prefix", "")
        if "configMapRef" in src:
            data = lookup("ConfigMap", src["configMapRef"]["name"], None)
        elif "secretRef" in src:
            data = lookup("Secret", src["secretRef"]["name"], None)
        else:
            raise AssertionError("unsupported envFrom %r" % src)
        for k, v in data.items():
            env[prefix + k] = str(v)
    for e in container.get("env") or []:
        name = e["name"]
        if "value" in e:
            env[name] = expand(str(e["value"]), env)
        elif "valueFrom" in e:
            vf = e["valueFrom"]
            if "fieldRef" in vf:
                path = vf["fieldRef"]["fieldPath"]
                if path == "metadata.name":
                    env[name] = pod_name
                elif path == "metadata.namespace":
                    env[name] = NAMESPACE
                else:
                    raise AssertionError("env %s: fieldRef %s cannot be emulated with Docker" % (name, path))
            elif "configMapKeyRef" in vf:
                env[name] = str(lookup("ConfigMap", vf["configMapKeyRef"]["name"], vf["configMapKeyRef"]["key"]))
            elif "secretKeyRef" in vf:
                env[name] = str(lookup("Secret", vf["secretKeyRef"]["name"], vf["secretKeyRef"]["key"]))
            else:
                raise AssertionError("env %s: unsupported valueFrom %r" % (name, vf))
        else:
            env[name] = ""
    return env


def selects(service, labels):
    sel = (service.get("spec") or {}).get("selector") or {}
    return bool(sel) and all(labels.get(k) == v for k, v in sel.items())


def service_aliases(svc_name, domain):
    return [svc_name, "%s.%s" % (svc_name, NAMESPACE), "%s.%s.svc" % (svc_name, NAMESPACE),
            "%s.%s.svc.%s" % (svc_name, NAMESPACE, domain)]


class Pod:
    """One container standing in for one pod."""

    def __init__(self, kind, pod_name, pod_spec, container, env, aliases, volumes, tmpfs):
        self.kind = kind  # "raftnode" or "kvgateway"
        self.pod = pod_name
        self.spec = pod_spec
        self.c = container
        self.env = env
        self.aliases = aliases
        self.volumes = volumes  # [(docker volume, mountPath)]
        self.tmpfs = tmpfs
        self.cname = "%s-%s" % (PREFIX, pod_name)

    def __repr__(self):
        return self.cname

    def run_args(self, network, image):
        sc_pod = self.spec.get("securityContext") or {}
        sc = self.c.get("securityContext") or {}
        args = ["run", "-d", "--name", self.cname, "--hostname", self.pod, "--label", "%s=%s" % (LABEL, RUN_ID),
                "--network", network, "--read-only"]
        for a in self.aliases:
            args += ["--network-alias", a]
        uid = sc.get("runAsUser", sc_pod.get("runAsUser"))
        gid = sc.get("runAsGroup", sc_pod.get("runAsGroup"))
        if uid is not None:
            args += ["--user", "%s:%s" % (uid, gid if gid is not None else uid)]
        if sc_pod.get("fsGroup") is not None:
            args += ["--group-add", str(sc_pod["fsGroup"])]
        for cap in (sc.get("capabilities") or {}).get("drop") or []:
            args += ["--cap-drop", cap]
        for cap in (sc.get("capabilities") or {}).get("add") or []:
            args += ["--cap-add", cap]
        if sc.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        for vol, path in self.volumes:
            args += ["--mount", "type=volume,source=%s,target=%s" % (vol, path)]
        for path in self.tmpfs:
            args += ["--tmpfs", path]
        for k, v in self.env.items():
            args += ["--env", "%s=%s" % (k, v)]
        cmd = self.c.get("command")
        if cmd:
            args += ["--entrypoint", expand(cmd[0], self.env)]
        args.append(image)
        if cmd:
            args += [expand(x, self.env) for x in cmd[1:]]
        args += [expand(str(x), self.env) for x in self.c.get("args") or []]
        return args


def pods_from_chart(objects):
    """(raftnode pods, gateway pods, clusterDomain) from the rendered manifests."""
    sts = [o for o in objects if o["kind"] == "StatefulSet"]
    assert len(sts) == 1, "expected one StatefulSet, got %d" % len(sts)
    sts = sts[0]
    deps = [o for o in objects if o["kind"] == "Deployment"]
    assert len(deps) >= 1, "no Deployment (kvgateway) rendered"
    dep = None
    for d in deps:
        try:
            find_container(d["spec"]["template"]["spec"], "kvgateway")
            dep = d
        except AssertionError:
            pass
    assert dep is not None, "no Deployment with a kvgateway container"
    services = [o for o in objects if o["kind"] == "Service"]

    headless = sts["spec"]["serviceName"]
    replicas = int(sts["spec"].get("replicas", 1))
    tpl = sts["spec"]["template"]
    pspec = tpl["spec"]
    labels = tpl["metadata"].get("labels") or {}
    rn = find_container(pspec, "raftnode")

    pod_names = ["%s-%d" % (sts["metadata"]["name"], i) for i in range(replicas)]
    envs = {p: resolve_env(rn, p, objects) for p in pod_names}

    # The cluster domain, from the addresses the chart builds (<...>.svc.<domain>[:port]).
    domain = None
    for v in envs[pod_names[0]].values():
        m = re.search(r"\.%s\.svc\.([A-Za-z0-9.-]+?)\.?(?::\d+|,|$)" % re.escape(NAMESPACE), v)
        if m:
            domain = m.group(1)
            break
    domain = domain or "cluster.local"
    log("StatefulSet %s: %d replicas, headless Service %s, cluster domain %s" %
        (sts["metadata"]["name"], replicas, headless, domain))

    claims = {c["metadata"]["name"] for c in sts["spec"].get("volumeClaimTemplates") or []}
    pod_volumes = {v["name"]: v for v in pspec.get("volumes") or []}

    def mounts(container, pod):
        vols, tmpfs = [], []
        for m in container.get("volumeMounts") or []:
            if m["name"] in claims:
                vols.append(("%s-%s-%s" % (PREFIX, m["name"], pod), m["mountPath"]))
            elif "emptyDir" in pod_volumes.get(m["name"], {}):
                tmpfs.append(m["mountPath"])
            else:
                raise AssertionError("volume %s of %s cannot be emulated" % (m["name"], pod))
        return vols, tmpfs

    svc_for_rn = [s["metadata"]["name"] for s in services if selects(s, labels)]
    assert headless in svc_for_rn, "the headless Service %s does not select the raftnode pods" % headless
    rpods = []
    for p in pod_names:
        aliases = [p + "." + headless, "%s.%s.%s" % (p, headless, NAMESPACE),
                   "%s.%s.%s.svc" % (p, headless, NAMESPACE), "%s.%s.%s.svc.%s" % (p, headless, NAMESPACE, domain)]
        for s in svc_for_rn:
            aliases += service_aliases(s, domain)
        vols, tmpfs = mounts(rn, p)
        if not vols:
            raise AssertionError("the raftnode container mounts no volumeClaimTemplate")
        rpods.append(Pod("raftnode", p, pspec, rn, envs[p], aliases, vols, tmpfs))

    gtpl = dep["spec"]["template"]
    gspec = gtpl["spec"]
    glabels = gtpl["metadata"].get("labels") or {}
    gw = find_container(gspec, "kvgateway")
    gsvcs = [s for s in services if selects(s, glabels)]
    galiases = []
    for s in gsvcs:
        galiases += service_aliases(s["metadata"]["name"], domain)
    # The client port: the gateway Service's targetPort (by name or number), else the
    # container's first port, else RAFTKV_LISTEN's.
    ports = gw.get("ports") or []
    gport = None
    if gsvcs and ports:
        tp = gsvcs[0]["spec"]["ports"][0].get("targetPort", gsvcs[0]["spec"]["ports"][0]["port"])
        for p in ports:
            if p.get("name") == tp or p["containerPort"] == tp:
                gport = p["containerPort"]
    if gport is None and ports:
        gport = ports[0]["containerPort"]
    rng_pod = random.Random(RUN_ID)
    hash_ = "%08x" % rng_pod.getrandbits(32)
    gpods = []
    for _ in range(max(1, int(dep["spec"].get("replicas", 1)))):
        gpod = "%s-%s-%s" % (dep["metadata"]["name"], hash_,
                             "".join(rng_pod.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5)))
        genv = resolve_env(gw, gpod, objects)
        gvols, gtmpfs = mounts(gw, gpod)
        g = Pod("kvgateway", gpod, gspec, gw, genv, galiases, gvols, gtmpfs)
        port = gport or int(genv.get("RAFTKV_LISTEN", "x:7100").rsplit(":", 1)[1])
        g.endpoint = "%s:%d" % (gsvcs[0]["metadata"]["name"] if gsvcs else g.cname, port)
        gpods.append(g)

    for p in rpods:
        adv = p.env.get("RAFTKV_ADVERTISE_CLIENT") or p.env.get("RAFTKV_ADVERTISE_PEER")
        assert adv, "%s: neither RAFTKV_ADVERTISE_CLIENT nor RAFTKV_ADVERTISE_PEER set" % p.pod
        p.endpoint = adv
        lc = p.env.get("RAFTKV_LISTEN_CLIENT") or p.env.get("RAFTKV_LISTEN_PEER") or adv
        p.local_endpoint = "127.0.0.1:" + lc.rsplit(":", 1)[1]
    return rpods, gpods, domain


# ----------------------------------------------------------------------------- the test
class Test:
    def __init__(self, rnode_image, gw_image, rng):
        self.rimg = rnode_image
        self.gimg = gw_image
        self.rng = rng
        self.net = PREFIX + "-net"

    def kvctl(self, endpoints, *args, timeout="5s", check=False, quiet=True):
        cmd = ["docker", "run", "--rm", "--network", self.net, "--read-only", "--label", "%s=%s" % (LABEL, RUN_ID),
               "--entrypoint", "/usr/local/bin/kvctl", self.rimg, "--endpoints", endpoints, "--timeout", timeout]
        cmd += list(args)
        return run(cmd, check=check, timeout=120, quiet=quiet)

    def kvctl_in(self, pod, *args, timeout="3s"):
        """kvctl inside a pod's container (docker exec), against its own loopback address."""
        cmd = ["docker", "exec", pod.cname, "/usr/local/bin/kvctl", "--endpoints", pod.local_endpoint,
               "--timeout", timeout] + list(args)
        return run(cmd, check=False, timeout=60, quiet=True)

    # -------------------------------------------------------------- image basics
    def image_basics(self):
        for image, binary in ((self.rimg, "raftnode"), (self.gimg, "kvgateway")):
            cfg = json.loads(docker("image", "inspect", "--format", "{{json .Config}}", image, quiet=True).stdout)
            assert cfg.get("User") == "65532:65532", "%s: User %r" % (image, cfg.get("User"))
            assert cfg.get("Entrypoint") == ["/usr/local/bin/" + binary], \
                "%s: Entrypoint %r (want the exec form)" % (image, cfg.get("Entrypoint"))
            assert not cfg.get("Cmd"), "%s: default arguments %r" % (image, cfg.get("Cmd"))
            r = docker("run", "--rm", "--read-only", "--label", "%s=%s" % (LABEL, RUN_ID), image, "--help")
            assert ("usage: " + binary) in r.stdout + r.stderr, "%s --help: %r" % (binary, r.stdout[:200])
            r = docker("run", "--rm", "--read-only", "--label", "%s=%s" % (LABEL, RUN_ID),
                       "--entrypoint", "/usr/local/bin/kvctl", image, "--help")
            assert "kvctl" in r.stdout, r.stdout[:200]
            r = docker("run", "--rm", "--read-only", "--label", "%s=%s" % (LABEL, RUN_ID),
                       "--entrypoint", "/usr/bin/id", image)
            assert r.stdout.strip().startswith("uid=65532") and "gid=65532" in r.stdout, r.stdout
            size = int(inspect(image, "{{.Size}}"))
            log("%s: user 65532:65532, entrypoint %s, %.1f MB" % (image, cfg["Entrypoint"], size / 1e6))
        # A fresh volume at /data takes the image's /data (owner 65532) and is writable.
        vol = PREFIX + "-probe"
        docker("volume", "create", "--label", "%s=%s" % (LABEL, RUN_ID), vol, quiet=True)
        r = docker("run", "--rm", "--read-only", "--label", "%s=%s" % (LABEL, RUN_ID),
                   "--mount", "type=volume,source=%s,target=/data" % vol, "--entrypoint", "/bin/sh", self.rimg,
                   "-c", "stat -c %u:%g /data && touch /data/probe && ! touch /probe 2>/dev/null && echo ok")
        assert r.stdout.split() == ["65532:65532", "ok"], r.stdout
        docker("volume", "rm", vol, quiet=True)
        log("image basics ok")

    # -------------------------------------------------------------- cluster
    def start(self, pod):
        img = self.rimg if pod.kind == "raftnode" else self.gimg
        docker(*pod.run_args(self.net, img))

    def status(self, pods):
        """{pod name: status entry} of the members that answered kvctl status."""
        r = self.kvctl(",".join(p.endpoint for p in pods), "--json", "status", timeout="2s")
        out = {}
        try:
            doc = json.loads(r.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return out
        by_ep = {p.endpoint: p for p in pods}
        for e in doc.get("endpoints", []):
            if "error" in e and e["error"]:
                continue
            p = by_ep.get(e.get("endpoint"))
            if p is not None:
                out[p.pod] = e
        return out

    def leader(self, pods, want=None):
        """The pod all answering members of `pods` agree leads (None if they don't)."""
        st = self.status(pods)
        if len(st) < (want if want is not None else len(pods)):
            return None
        leaders = {e.get("leader_id") for e in st.values()}
        if len(leaders) != 1 or not next(iter(leaders)):
            return None
        lid = next(iter(leaders))
        for p in pods:
            e = st.get(p.pod)
            if e and e.get("id") == lid and str(e.get("role", "")).lower().endswith("leader"):
                return p
        return None

    def put_via_gateway(self, key, value, timeout=30):
        def put():
            r = self.kvctl(self.gw_endpoint, "put", key, value, timeout="5s")
            if r.returncode != 0:
                raise AssertionError("put exit %d: %s" % (r.returncode, r.stderr.strip()))
            return True
        until(put, timeout, "put %s through the gateway" % key)

    def get_via_gateway(self, key):
        r = self.kvctl(self.gw_endpoint, "--json", "get", key, timeout="5s")
        if r.returncode != 0:
            raise AssertionError("get exit %d: %s" % (r.returncode, r.stderr.strip()))
        kv = json.loads(r.stdout)["kv"]
        return kv and kv.get("value")

    def serializable_get(self, endpoint, key, inside=None):
        if inside is not None:
            r = self.kvctl_in(inside, "--json", "get", key, "--serializable")
        else:
            r = self.kvctl(endpoint, "--json", "get", key, "--serializable", timeout="2s")
        if r.returncode not in (0, 3):
            raise AssertionError("serializable get exit %d: %s %s" % (r.returncode, r.stdout.strip(), r.stderr.strip()))
        kv = json.loads(r.stdout)["kv"]
        return kv.get("value") if kv else None

    def exit_code(self, pod):
        return int(inspect(pod.cname, "{{.State.ExitCode}}"))

    def running(self, pod):
        return inspect(pod.cname, "{{.State.Running}}") == "true"

    def dump_logs(self, lines=40):
        for p in getattr(self, "all_pods", []):
            r = subprocess.run(["docker", "logs", "--tail", str(lines), p.cname], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
            print("---- last %d log lines of %s (%s) ----\n%s" % (lines, p.cname, p.pod, r.stdout.rstrip()), flush=True)

    def cluster(self, rpods, gws):
        self.rpods, self.gws = rpods, gws
        self.gw_endpoint = gws[0].endpoint  # the gateway Service: every gateway replica
        self.all_pods = rpods + gws
        docker("network", "create", "--label", "%s=%s" % (LABEL, RUN_ID), self.net)
        for p in rpods:
            for vol, _ in p.volumes:
                docker("volume", "create", "--label", "%s=%s" % (LABEL, RUN_ID), vol, quiet=True)
        for p in rpods:
            self.start(p)
        for p in rpods:
            # Exec-form entrypoint: the daemon itself is PID 1 (and gets docker stop's SIGTERM).
            comm = docker("exec", p.cname, "cat", "/proc/1/comm", quiet=True).stdout.strip()
            assert comm == "raftnode", "%s: PID 1 is %r" % (p.cname, comm)
            log("%s: aliases %s" % (p.cname, " ".join(p.aliases)))
            log("%s: %s" % (p.cname, " ".join("%s=%s" % kv for kv in sorted(p.env.items()) if kv[0].startswith("RAFTKV_"))))
        t0 = time.monotonic()
        leader = until(lambda: self.leader(rpods), 90, "a leader that every member reports")
        log("cluster formed in %.1fs: leader %s" % (time.monotonic() - t0, leader.pod))

        for gw in gws:
            self.start(gw)
            log("%s: aliases %s" % (gw.cname, " ".join(gw.aliases)))
        log("gateway endpoint %s (%d replicas)" % (self.gw_endpoint, len(gws)))
        self.put_via_gateway("hello", "world", timeout=60)
        v = self.get_via_gateway("hello")
        assert v == "world", "get hello through the gateway: %r" % v
        log("put/get through the gateway ok")

        # ---- docker kill of the leader
        leader = until(lambda: self.leader(rpods), 30, "the leader")
        log("docker kill %s (leader)" % leader.cname)
        t0 = time.monotonic()
        docker("kill", leader.cname)
        self.put_via_gateway("after-kill", "1", timeout=30)
        log("write through the gateway %.1fs after killing the leader" % (time.monotonic() - t0))
        rest = [p for p in rpods if p is not leader]
        newl = until(lambda: self.leader(rest), 30, "a new leader among the survivors")
        assert newl is not leader
        log("new leader %s" % newl.pod)
        for i in range(5):
            self.put_via_gateway("k%d" % i, "v%d" % i, timeout=15)
        # Back on its volume: it rejoins and catches up.
        docker("start", leader.cname)
        until(lambda: self.serializable_get(leader.endpoint, "k4") == "v4", 60,
              "%s restarted on its volume to catch up" % leader.pod)
        log("%s restarted on its volume and caught up" % leader.pod)

        # ---- a follower cut off from the network
        cur = until(lambda: self.leader(rpods), 60, "a leader every member reports")
        followers = [p for p in rpods if p is not cur]
        f = self.rng.choice(followers)
        self.put_via_gateway("part", "before", timeout=15)
        until(lambda: self.serializable_get(f.endpoint, "part") == "before", 30, "%s to have part=before" % f.pod)
        log("docker network disconnect %s (follower)" % f.cname)
        docker("network", "disconnect", self.net, f.cname)
        for i in range(3):
            self.put_via_gateway("part", "during-%d" % i, timeout=30)
        assert self.get_via_gateway("part") == "during-2"
        v = self.serializable_get(None, "part", inside=f)
        assert v == "before", "the cut-off follower should have missed the writes; it has part=%r" % v
        log("writes went on without %s, which still has part=%r" % (f.pod, v))
        reconnect = ["network", "connect"]
        for a in f.aliases:
            reconnect += ["--alias", a]
        docker(*(reconnect + [self.net, f.cname]))
        t0 = time.monotonic()
        self.put_via_gateway("part", "after", timeout=30)
        until(lambda: self.serializable_get(f.endpoint, "part") == "after", 60,
              "%s to catch up after reconnecting" % f.pod)
        log("%s reconnected and caught up in %.1fs" % (f.pod, time.monotonic() - t0))
        assert self.serializable_get(None, "part", inside=f) == "after"
        until(lambda: self.leader(rpods), 30, "every member agreeing on the leader")

        # ---- SIGTERM: every container exits 0
        for p in gws + rpods:
            t0 = time.monotonic()
            docker("stop", "--time", str(int(scaled(60))), p.cname, timeout=scaled(90))
            code = self.exit_code(p)
            log("docker stop %s: exit code %d after %.1fs" % (p.cname, code, time.monotonic() - t0))
            assert code == 0, "%s exited %d on SIGTERM" % (p.cname, code)
            assert inspect(p.cname, "{{.State.OOMKilled}}") == "false"


def main():
    ok, info = docker_available()
    if not ok:
        print("SKIPPED: no Docker engine (docker info failed: %s)" % info, flush=True)
        return 0
    log("Docker engine %s" % info)
    seed_env = os.environ.get("RAFTKV_CT_SEED", "")
    seed = int(seed_env) if seed_env else random.SystemRandom().randrange(1, 2**31)
    print("seed %d (rerun with RAFTKV_CT_SEED=%d)" % (seed, seed), flush=True)
    rng = random.Random(seed)

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    remove_labelled(None)  # whatever a SIGKILLed earlier run left behind

    test = None
    try:
        if os.environ.get("RAFTKV_CT_NO_BUILD", "") in ("", "0"):
            t0 = time.monotonic()
            r = subprocess.run([os.path.join(REPO, "scripts", "build-images.sh")], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
            lines = r.stdout.splitlines()
            if r.returncode != 0:
                print("\n".join(lines[-60:]), flush=True)
                raise AssertionError("scripts/build-images.sh exited %d" % r.returncode)
            for line in lines:
                if line.startswith(("build-images:", "docker-base:")):
                    print(line, flush=True)
            log("images built in %.0fs" % (time.monotonic() - t0))
            images = [l.split()[2:] for l in lines if l.startswith("build-images: images:")][-1]
        else:
            tag = "0.6.0"
            m = re.search(r'^appVersion:\s*"?([^"\s]+)', open(os.path.join(CHART, "Chart.yaml")).read(), re.M)
            if m:
                tag = m.group(1)
            images = ["raftkv/raftnode:" + tag, "raftkv/kvgateway:" + tag]
        rimg, gimg = images
        test = Test(rimg, gimg, rng)
        test.image_basics()

        if not os.path.isfile(os.path.join(CHART, "Chart.yaml")):
            raise AssertionError("helm/raftkv/Chart.yaml is missing: no chart to run the cluster from")
        helm = helm_binary()
        objects = render_chart(helm, os.environ.get("RAFTKV_CT_REPLICAS", ""))
        rpods, gws, _ = pods_from_chart(objects)
        for o in objects:  # the images the chart names are the ones just built
            if o["kind"] in ("StatefulSet", "Deployment"):
                for c in o["spec"]["template"]["spec"]["containers"]:
                    want = rimg if "raftnode" in c["image"] else gimg
                    if c["image"] != want:
                        log("note: the chart's image %s differs from the tested %s" % (c["image"], want))
        assert len(rpods) >= 3, "the test needs at least 3 replicas (got %d)" % len(rpods)
        test.cluster(rpods, gws)
        log("PASS")
        return 0
    except BaseException:  # noqa: BLE001 - report, dump logs, clean up, fail
        traceback.print_exc()
        if test is not None:
            test.dump_logs()
        print("FAILED (seed %d; RAFTKV_CT_KEEP=1 keeps the containers)" % seed, flush=True)
        return 1
    finally:
        cleanup()


if __name__ == "__main__":
    sys.exit(main())
