#!/usr/bin/python3
"""Integration-test harness: real raftnode processes on loopback, driven over gRPC from Python.

Used by tests/integration/test_*.py (one ctest test per module) and tests/bench/kv_bench.py.
Needs only Debian's python3-grpcio / python3-protobuf, protoc and grpc_python_plugin; run with
/usr/bin/python3.

Environment:
  RAFTNODE               path of the raftnode binary (default: the newest
                         <repo>/build*/server/node/raftnode)
  KVGATEWAY              path of the kvgateway binary (default: the newest
                         <repo>/build*/server/gateway/kvgateway); used by Gateway only
  RAFTKV_PROTOS          the protos/ directory (default <repo>/protos)
  RAFTKV_IT_SEED         seed for every random choice of a test module (printed at start)
  RAFTKV_IT_TIME_SCALE   multiply every harness deadline (default 1; e.g. 3 under valgrind)
  RAFTKV_IT_KEEP=1       keep the temporary directory (data dirs, node logs) even on success
  RAFTKV_IT_LOG_LINES    lines of each node's log printed on a failure (default 40)
  RAFTKV_IT_TMPDIR       where temporary directories go (default $TMPDIR or /tmp)

Gateways: Gateway(cluster) (or cluster.gateway()) runs a kvgateway in front of a cluster's
client addresses, with its own log in the cluster's directory; run() stops it like the nodes.

Cleanup: raftnodes and gateways are started with a parent-death signal (SIGKILL), so they die with the
test process even when that is SIGKILLed (ctest timeout); an atexit hook and SIGTERM/SIGINT
handlers kill whatever is left otherwise.
"""
import atexit
import ctypes
import glob
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import types

IT_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(IT_DIR, "..", ".."))
TIME_SCALE = float(os.environ.get("RAFTKV_IT_TIME_SCALE", "1") or 1)
LOG_LINES = int(os.environ.get("RAFTKV_IT_LOG_LINES", "40") or 40)
KEEP = os.environ.get("RAFTKV_IT_KEEP", "") not in ("", "0")

# Sanitizer and crash markers looked for in node logs.
BAD_LOG_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "SUMMARY: UndefinedBehaviorSanitizer", "AddressSanitizer:DEADLYSIGNAL")

# Client channels: short reconnect backoff, so a restarted node is reachable quickly. Without
# dns_min_time_between_resolutions_ms, grpcio 1.51 keeps failing a channel whose first connect
# was refused for 5-10 s after the server is up (re-resolution is throttled), even for
# numeric 127.0.0.1 targets.
CHANNEL_OPTIONS = [
    ("grpc.dns_min_time_between_resolutions_ms", 50),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
    ("grpc.max_send_message_length", 64 << 20),
    ("grpc.max_receive_message_length", 64 << 20),
]

rng = random.Random()  # seeded by run() (or seed())
_seed = None


def seed(value=None):
    """Seed the module-wide rng (from RAFTKV_IT_SEED or the clock) and print the seed."""
    global _seed
    if value is None:
        env = os.environ.get("RAFTKV_IT_SEED", "")
        value = int(env) if env else random.SystemRandom().randrange(1, 2**31)
    _seed = value
    rng.seed(value)
    print("seed %d (rerun with RAFTKV_IT_SEED=%d)" % (value, value), flush=True)
    return value


def scaled(seconds):
    return seconds * TIME_SCALE


def log(msg):
    print("[%8.3f] %s" % (time.monotonic() - _T0, msg), flush=True)


_T0 = time.monotonic()


# ------------------------------------------------------------------------- bounded polling
class Timeout(AssertionError):
    pass


class Fatal(AssertionError):
    """Raised inside an until() condition: stop polling now (e.g. the process exited)."""


def until(fn, timeout, what, interval=0.02):
    """Call fn until it returns a truthy value (returned) or `timeout` seconds (scaled) pass:
    then raise Timeout naming `what` and fn's last result or exception."""
    deadline = time.monotonic() + scaled(timeout)
    last = None
    while True:
        try:
            v = fn()
            if v:
                return v
            last = v
        except Fatal:
            raise
        except AssertionError as e:
            last = e
        except Exception as e:  # noqa: BLE001 - any RPC error: keep polling
            last = e
        if time.monotonic() >= deadline:
            raise Timeout("timed out after %.1fs waiting for %s; last: %r" %
                          (scaled(timeout), what, last))
        time.sleep(interval)


# ------------------------------------------------------------------------- binary, stubs
def raftnode_path():
    p = os.environ.get("RAFTNODE", "")
    if p:
        if not os.access(p, os.X_OK):
            raise SystemExit("RAFTNODE=%s is not an executable file" % p)
        return p
    found = [c for c in glob.glob(os.path.join(REPO, "build*", "server", "node", "raftnode"))
             if os.access(c, os.X_OK)]
    if found:  # the most recently built one
        return max(found, key=os.path.getmtime)
    raise SystemExit("raftnode not found: build it (cmake --build <build> --target raftnode) "
                     "and/or set RAFTNODE=<path>")


def kvgateway_path():
    """$KVGATEWAY, else the newest <repo>/build*/server/gateway/kvgateway."""
    p = os.environ.get("KVGATEWAY", "")
    if p:
        if not os.access(p, os.X_OK):
            raise SystemExit("KVGATEWAY=%s is not an executable file" % p)
        return p
    found = [c for c in glob.glob(os.path.join(REPO, "build*", "server", "gateway", "kvgateway"))
             if os.access(c, os.X_OK)]
    if found:
        return max(found, key=os.path.getmtime)
    raise SystemExit("kvgateway not found: build it (cmake --build <build> --target kvgateway) "
                     "and/or set KVGATEWAY=<path>")


_tmp_dirs = []
_stubs = None


def _mkdtemp(prefix):
    base = os.environ.get("RAFTKV_IT_TMPDIR") or None
    d = tempfile.mkdtemp(prefix=prefix, dir=base)
    _tmp_dirs.append(d)
    return d


def _protoc(include, out, files):
    cmd = ["protoc", "-I", include, "--python_out=" + out, "--grpc_python_out=" + out,
           "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin"] + files
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        raise SystemExit("protoc failed (%s):\n%s" % (" ".join(cmd), r.stdout.decode(errors="replace")))


def generate_stubs(out_dir):
    """Generate the Python stubs of raftkv's protos, health and reflection into out_dir.
    grpc.health/reflection protos are copied under gp/ first: a generated top-level `grpc`
    package would shadow the grpc module (only package names matter on the wire)."""
    protos = os.environ.get("RAFTKV_PROTOS") or os.path.join(REPO, "protos")
    _protoc(protos, out_dir, ["raftkv/v1/kv.proto", "raftkv/v1/cluster.proto", "raftkv/v1/raft.proto"])
    src = os.path.join(out_dir, "_gpsrc")
    rels = ["health/v1/health.proto", "reflection/v1/reflection.proto",
            "reflection/v1alpha/reflection.proto"]
    for rel in rels:
        dst = os.path.join(src, "gp", rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(os.path.join("/usr/share/grpc-proto/grpc", rel)) as f:
            text = f.read()
        # These protos import nothing today; keep any grpc/ import pointing at the copies.
        text = text.replace('import "grpc/', 'import "gp/')
        with open(dst, "w") as f:
            f.write(text)
    _protoc(src, out_dir, ["gp/" + r for r in rels])


def stubs():
    """Generated modules (generated once per process into a temporary directory)."""
    global _stubs
    if _stubs is not None:
        return _stubs
    d = os.environ.get("RAFTKV_STUBS_DIR", "")
    if not d or not os.path.isdir(os.path.join(d, "raftkv")):
        d = _mkdtemp("raftkv-stubs-")
        generate_stubs(d)
        os.environ["RAFTKV_STUBS_DIR"] = d  # children (helpers, loadgen workers) reuse them
    if d not in sys.path:
        sys.path.insert(0, d)
    import importlib
    m = lambda name: importlib.import_module(name)  # noqa: E731
    _stubs = types.SimpleNamespace(
        dir=d,
        kv=m("raftkv.v1.kv_pb2"), kv_grpc=m("raftkv.v1.kv_pb2_grpc"),
        cl=m("raftkv.v1.cluster_pb2"), cl_grpc=m("raftkv.v1.cluster_pb2_grpc"),
        raft=m("raftkv.v1.raft_pb2"),
        health=m("gp.health.v1.health_pb2"), health_grpc=m("gp.health.v1.health_pb2_grpc"),
        refl=m("gp.reflection.v1.reflection_pb2"),
        refl_grpc=m("gp.reflection.v1.reflection_pb2_grpc"),
        refla=m("gp.reflection.v1alpha.reflection_pb2"),
        refla_grpc=m("gp.reflection.v1alpha.reflection_pb2_grpc"),
    )
    return _stubs


# ------------------------------------------------------------------------- ports
_given_ports = set()


def free_ports(n):
    """n distinct free loopback TCP ports, below the kernel's ephemeral range (so outgoing
    connections cannot grab them) and never handed out twice by this process."""
    sysrng = random.SystemRandom()  # independent of the test seed: parallel tests differ
    socks, ports = [], []
    try:
        tries = 0
        while len(ports) < n:
            tries += 1
            if tries > 2000:
                raise RuntimeError("no free ports found")
            p = sysrng.randrange(20000, 32700)
            if p in _given_ports:
                continue
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                s.close()
                continue
            socks.append(s)
            ports.append(p)
            _given_ports.add(p)
    finally:
        for s in socks:
            s.close()
    return ports


def free_port_block(n):
    """The first of n consecutive free loopback TCP ports (for scripts that number their
    ports from a base, like scripts/cluster.sh); never handed out twice by this process."""
    sysrng = random.SystemRandom()
    for _ in range(500):
        base = sysrng.randrange(20000, 32700 - n)
        block = range(base, base + n)
        if any(p in _given_ports for p in block):
            continue
        socks = []
        try:
            for p in block:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        _given_ports.update(block)
        return base
    raise RuntimeError("no block of %d free ports found" % n)


# ------------------------------------------------------------------------- processes
_all_nodes = []
_all_gateways = []
_clusters = []
_cleanup_installed = False


def _kill_everything():
    for nd in _all_gateways + _all_nodes:
        p = nd.proc
        if p is not None and p.poll() is None:
            try:
                p.kill()
                p.wait(5)
            except Exception:  # noqa: BLE001
                pass


def _on_signal(signum, _frame):
    _kill_everything()
    raise SystemExit(128 + signum)


def _install_cleanup():
    global _cleanup_installed
    if _cleanup_installed:
        return
    _cleanup_installed = True
    atexit.register(_kill_everything)
    if threading.current_thread() is threading.main_thread():
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, _on_signal)


_SETPRIV = shutil.which("setpriv")


def _pdeathsig():  # fallback when setpriv is missing
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001
        pass


def status_name(stub_mod, role):
    return stub_mod.cl.StatusResponse.Role.Name(role)


class Node:
    """One raftnode process (restartable with the same flags and data dir)."""

    def __init__(self, cluster, name, peer_port, client_port):
        self.cluster = cluster
        self.name = name
        self.peer_port = peer_port
        self.client_port = client_port
        self.peer_addr = "127.0.0.1:%d" % peer_port
        # Without --listen-client, clients use the peer port.
        self.client_addr = "127.0.0.1:%d" % client_port if client_port else self.peer_addr
        self.data_dir = os.path.join(cluster.dir, name, "data")
        self.log_path = os.path.join(cluster.dir, name + ".log")
        self.proc = None
        self.starts = 0
        self.id = None  # learned from Cluster.Status
        self.expected_exit = False
        self._chans = {}
        self.extra_args = []
        self.env = {}  # this node's own environment, over the cluster's (e.g. RAFTKV_FAILPOINTS)
        _all_nodes.append(self)

    def __repr__(self):
        return "<%s %s pid=%s>" % (self.name, self.client_addr, self.proc.pid if self.proc else None)

    # -- process control
    def args(self):
        c = self.cluster
        a = [c.binary, "--name", self.name, "--data-dir", self.data_dir,
             "--listen-peer", self.peer_addr, "--initial-cluster", c.initial_cluster()]
        if self.client_port:
            a += ["--listen-client", self.client_addr]
        for k, v in c.flags.items():
            a += ["--" + k.replace("_", "-"), str(v)]
        return a + self.extra_args

    def start(self):
        assert not self.alive(), "%s already running" % self.name
        _install_cleanup()
        self.close_channels()
        self.starts += 1
        self.expected_exit = False
        os.makedirs(os.path.dirname(self.data_dir), exist_ok=True)
        args = self.args()
        with open(self.log_path, "ab") as f:
            f.write(("==== harness: start #%d at %.3f: %s\n" %
                     (self.starts, time.time(), " ".join(args))).encode())
        logf = open(self.log_path, "ab")
        env = dict(os.environ)
        env.update(self.cluster.env)
        env.update(self.env)
        if _SETPRIV:
            cmd, pre = [_SETPRIV, "--pdeathsig", "KILL", "--"] + args, None
        else:
            cmd, pre = args, _pdeathsig
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=subprocess.STDOUT, env=env, preexec_fn=pre)
        finally:
            logf.close()
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """SIGKILL and reap."""
        self.expected_exit = True
        self.close_channels()
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(scaled(10))

    def terminate(self, timeout=15):
        """SIGTERM; wait (bounded) for the exit; returns the exit status (None if still
        running at the deadline: then it is SIGKILLed)."""
        self.expected_exit = True
        if not self.alive():
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def wait_exit(self, timeout=15):
        try:
            rc = self.proc.wait(scaled(timeout))
        except subprocess.TimeoutExpired:
            log("%s did not exit within %.1fs of SIGTERM: SIGKILL" % (self.name, scaled(timeout)))
            self.proc.kill()
            self.proc.wait(scaled(10))
            rc = None
        self.close_channels()
        return rc

    def restart(self, wait=True):
        if self.alive():
            self.kill()
        self.start()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=20):
        """Poll Status until the node answers (fails fast if the process exits)."""
        def ready():
            if not self.alive():
                raise Fatal("%s exited with status %s during startup" % (self.name, self.proc.returncode))
            return self.status(timeout=1)
        try:
            until(ready, timeout, "%s to answer Cluster.Status" % self.name, interval=0.05)
        except AssertionError:
            if not self.alive():
                raise AssertionError("%s exited with status %s during startup:\n%s" %
                                     (self.name, self.proc.returncode, self.log_tail()))
            raise
        return self

    # -- gRPC
    def channel(self, addr=None):
        import grpc
        addr = addr or self.client_addr
        ch = self._chans.get(addr)
        if ch is None:
            ch = grpc.insecure_channel(addr, options=CHANNEL_OPTIONS)
            self._chans[addr] = ch
        return ch

    def close_channels(self):
        for ch in self._chans.values():
            try:
                ch.close()
            except Exception:  # noqa: BLE001
                pass
        self._chans = {}

    def kv(self, addr=None):
        return stubs().kv_grpc.KVStub(self.channel(addr))

    def cl(self, addr=None):
        return stubs().cl_grpc.ClusterStub(self.channel(addr))

    def health(self, addr=None):
        return stubs().health_grpc.HealthStub(self.channel(addr))

    def status(self, timeout=1.0):
        """Cluster.Status (raises grpc.RpcError when the node does not answer)."""
        st = self.cl().Status(stubs().cl.StatusRequest(), timeout=scaled(timeout))
        if self.id is None:
            self.id = st.id
        return st

    def try_status(self, timeout=1.0):
        if not self.alive():
            return None
        try:
            return self.status(timeout)
        except Exception:  # noqa: BLE001
            return None

    # -- logs
    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n=None):
        lines = self.log_text().splitlines()
        return "\n".join(lines[-(n or LOG_LINES):])

    def bad_log_lines(self):
        return [l for l in self.log_text().splitlines() if any(m in l for m in BAD_LOG_MARKERS)]


class Gateway:
    """One kvgateway process in front of raftnode client addresses (restartable, same port).

    cluster: a Cluster whose nodes' client addresses make --raftnodes (and whose directory
    holds the log), or None with `raftnodes` (a list or comma-separated string).
    flags: extra kvgateway flags, e.g. {"probe-interval-ms": 100, "default-timeout-ms": 2000},
    on top of DEFAULT_FLAGS (faster probes for tests) unless harness_defaults=False (the
    gateway's own defaults, for benchmarks).
    """

    DEFAULT_FLAGS = {"probe-interval-ms": 100}

    def __init__(self, cluster=None, raftnodes=None, flags=None, env=None, binary=None,
                 name="gw", port=None, directory=None, harness_defaults=True):
        self.binary = binary or kvgateway_path()
        self.cluster = cluster
        self.name = name
        if raftnodes is None:
            if cluster is None:
                raise ValueError("Gateway needs a cluster or raftnodes")
            raftnodes = [n.client_addr for n in cluster.nodes]
        self.raftnodes = raftnodes if isinstance(raftnodes, str) else ",".join(raftnodes)
        self.flags = dict(self.DEFAULT_FLAGS) if harness_defaults else {}
        self.flags.update(flags or {})
        self.env = dict(env or {})
        self.port = port or free_ports(1)[0]
        self.addr = "127.0.0.1:%d" % self.port
        self.dir = directory or (cluster.dir if cluster is not None else _mkdtemp("raftkv-gw-"))
        self.log_path = os.path.join(self.dir, name + ".log")
        self.proc = None
        self.starts = 0
        self.expected_exit = False
        self.extra_args = []
        self._chans = {}
        if cluster is not None:
            cluster.gateways.append(self)
        _all_gateways.append(self)
        _install_cleanup()

    def __repr__(self):
        return "<gateway %s %s pid=%s>" % (self.name, self.addr, self.proc.pid if self.proc else None)

    def args(self):
        a = [self.binary, "--listen", self.addr, "--raftnodes", self.raftnodes]
        for k, v in self.flags.items():
            a += ["--" + k.replace("_", "-"), str(v)]
        return a + self.extra_args

    def start(self, wait=True, serving=False, timeout=20):
        """Start; wait (bounded) until it answers health (and, with serving=True, until it
        says SERVING)."""
        assert not self.alive(), "%s already running" % self.name
        self.close_channels()
        self.starts += 1
        self.expected_exit = False
        args = self.args()
        with open(self.log_path, "ab") as f:
            f.write(("==== harness: start #%d at %.3f: %s\n" %
                     (self.starts, time.time(), " ".join(args))).encode())
        logf = open(self.log_path, "ab")
        env = dict(os.environ)
        env.update(self.env)
        if _SETPRIV:
            cmd, pre = [_SETPRIV, "--pdeathsig", "KILL", "--"] + args, None
        else:
            cmd, pre = args, _pdeathsig
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=subprocess.STDOUT, env=env, preexec_fn=pre)
        finally:
            logf.close()
        log("started gateway %s on %s -> %s (pid %d)" % (self.name, self.addr, self.raftnodes, self.proc.pid))
        if serving:
            self.wait_serving(timeout)
        elif wait:
            self.wait_ready(timeout)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def _check_alive(self):
        if not self.alive():
            raise Fatal("gateway %s exited with status %s:\n%s" % (
                self.name, self.proc.returncode if self.proc else None, self.log_tail()))

    def health_status(self, service="", timeout=1.0):
        """The Health.Check status name ("SERVING", "NOT_SERVING", ...); raises RpcError."""
        H = stubs().health
        r = self.health().Check(H.HealthCheckRequest(service=service), timeout=scaled(timeout))
        return H.HealthCheckResponse.ServingStatus.Name(r.status)

    def wait_ready(self, timeout=20):
        """Bounded poll until the gateway answers Health.Check (any status)."""
        def ready():
            self._check_alive()
            return self.health_status("", timeout=1)
        return until(ready, timeout, "gateway %s to answer Health.Check" % self.name, interval=0.05)

    def wait_health(self, want, timeout=20, services=("", "raftkv.v1.KV")):
        """Bounded poll until Health.Check says `want` for every service in `services`."""
        def check():
            self._check_alive()
            got = [self.health_status(s, timeout=1) for s in services]
            return all(g == want for g in got) or AssertionError("health %s" % got)
        try:
            return until(check, timeout, "gateway %s health %s" % (self.name, want), interval=0.05)
        except Timeout as e:
            raise Timeout("%s\n%s" % (e, self.log_tail(15))) from None

    def wait_serving(self, timeout=20):
        return self.wait_health("SERVING", timeout)

    def kill(self):
        """SIGKILL and reap."""
        self.expected_exit = True
        self.close_channels()
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(scaled(10))

    def terminate(self, timeout=15):
        """SIGTERM; bounded wait; the exit status (None if it had to be SIGKILLed)."""
        self.expected_exit = True
        if not self.alive():
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(scaled(timeout))
        except subprocess.TimeoutExpired:
            log("gateway %s did not exit within %.1fs of SIGTERM: SIGKILL" % (self.name, scaled(timeout)))
            self.proc.kill()
            self.proc.wait(scaled(10))
            rc = None
        self.close_channels()
        return rc

    def restart(self, **kw):
        if self.alive():
            self.kill()
        return self.start(**kw)

    def stop(self, timeout=15):
        """SIGTERM if running; a list of problems (unexpected death, non-zero exit, sanitizer
        reports in the log)."""
        problems = []
        if self.proc is not None and not self.alive() and not self.expected_exit:
            problems.append("gateway %s died unexpectedly (exit status %s)" % (self.name, self.proc.returncode))
        if self.alive():
            rc = self.terminate(timeout)
            if rc != 0:
                problems.append("gateway %s: exit status %s after SIGTERM (expected 0)" % (self.name, rc))
        self.expected_exit = True
        bad = self.bad_log_lines()
        if bad:
            problems.append("gateway %s log has sanitizer/crash reports: %s" % (self.name, bad[:3]))
        return problems

    # -- gRPC (channels are closed when the process is killed or restarted)
    def channel(self):
        import grpc
        ch = self._chans.get(self.addr)
        if ch is None:
            ch = grpc.insecure_channel(self.addr, options=CHANNEL_OPTIONS)
            self._chans[self.addr] = ch
        return ch

    def new_channel(self):
        """A channel of its own (not cached): one TCP connection per client thread."""
        import grpc
        self._nchan = getattr(self, "_nchan", 0) + 1
        return grpc.insecure_channel(self.addr, options=CHANNEL_OPTIONS + [("grpc.channel_id", self._nchan)])

    def close_channels(self):
        for ch in self._chans.values():
            try:
                ch.close()
            except Exception:  # noqa: BLE001
                pass
        self._chans = {}

    def kv(self):
        return stubs().kv_grpc.KVStub(self.channel())

    def cl(self):
        return stubs().cl_grpc.ClusterStub(self.channel())

    def health(self):
        return stubs().health_grpc.HealthStub(self.channel())

    # -- logs
    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n=None):
        lines = self.log_text().splitlines()
        return "\n".join(lines[-(n or LOG_LINES):])

    def bad_log_lines(self):
        return [l for l in self.log_text().splitlines() if any(m in l for m in BAD_LOG_MARKERS)]

    def dump_log(self, n=None):
        state = "running" if self.alive() else ("exit %s" % (self.proc.returncode if self.proc else "-"))
        print("----- gateway %s (%s, %s) log tail: %s" % (self.name, state, self.addr, self.log_path),
              file=sys.stderr)
        print(self.log_tail(n), file=sys.stderr)
        sys.stderr.flush()


def stop_gateways():
    """Stop every gateway this process started without a cluster; a list of problems
    (Cluster.stop() stops its own)."""
    problems = []
    for g in _all_gateways:
        if g.cluster is None:
            problems += g.stop()
    return problems


class Cluster:
    """N raftnodes n1..nN on free loopback ports, each with its own temp data dir.

    flags: extra raftnode flags, e.g. {"election-ms": 3000, "snapshot-entries": 50}.
    listen_client: give each node a separate client port (else clients use the peer port).
    """

    DEFAULT_FLAGS = {"tick-ms": 10, "heartbeat-ms": 50, "election-ms": 250}

    def __init__(self, n=3, flags=None, listen_client=True, env=None, binary=None, label="c"):
        self.binary = binary or raftnode_path()
        self.flags = dict(self.DEFAULT_FLAGS)
        self.flags.update(flags or {})
        self.env = dict(env or {})
        self.label = label
        self._chans = {}
        self.gateways = []
        self.dir = _mkdtemp("raftkv-it-%s-" % label)
        ports = free_ports(2 * n if listen_client else n)
        self.nodes = []
        for i in range(n):
            pp = ports[i]
            cp = ports[n + i] if listen_client else None
            self.nodes.append(Node(self, "n%d" % (i + 1), pp, cp))
        _clusters.append(self)
        _install_cleanup()

    def __repr__(self):
        return "<cluster %s %s>" % (self.label, self.nodes)

    def initial_cluster(self):
        return ",".join("%s=%s" % (n.name, n.peer_addr) for n in self.nodes)

    def start(self, wait=True):
        log("starting %s (%s) in %s" % (self.label, " ".join(
            "%s=%s/%s" % (n.name, n.peer_addr, n.client_addr) for n in self.nodes), self.dir))
        for n in self.nodes:
            n.start()
        if wait:
            for n in self.nodes:
                n.wait_ready()
        return self

    def alive(self):
        return [n for n in self.nodes if n.alive()]

    def gateway(self, flags=None, start=True, serving=True, timeout=20, **kw):
        """A kvgateway in front of this cluster's client addresses (started, and by default
        waited for until its health is SERVING)."""
        g = Gateway(self, flags=flags, name=kw.pop("name", "gw%d" % (len(self.gateways) + 1)), **kw)
        if start:
            g.start(serving=serving, timeout=timeout)
        return g

    def revive(self):
        """Start every node that is not running (a test that failed half-way may have left
        some down), so that the next test starts from a whole cluster."""
        dead = [n for n in self.nodes if n.proc is not None and not n.alive()]
        for n in dead:
            log("reviving %s" % n.name)
            n.start()
        for n in dead:
            n.wait_ready()
        return self

    def by_id(self, node_id):
        for n in self.nodes:
            if n.id == node_id:
                return n
        return None

    def by_client_addr(self, addr):
        for n in self.nodes:
            if n.client_addr == addr:
                return n
        return None

    def statuses(self, nodes=None):
        return {n: n.try_status() for n in (nodes if nodes is not None else self.alive())}

    def leader_view(self, nodes=None):
        """(leader node, {node: status}) when exactly one polled node is LEADER and every
        polled node answers and agrees on its id and term; else (None, statuses)."""
        sts = self.statuses(nodes)
        if not sts or any(s is None for s in sts.values()):
            return None, sts
        leaders = [(n, s) for n, s in sts.items() if s.role == stubs().cl.StatusResponse.LEADER]
        if len(leaders) != 1:
            return None, sts
        ln, ls = leaders[0]
        for s in sts.values():
            if s.leader_id != ls.id or s.term != ls.term:
                return None, sts
        return ln, sts

    def wait_leader(self, timeout=15, nodes=None, exclude=None):
        """Poll Status (bounded) until the alive nodes (or `nodes`) agree on one leader."""
        pick = nodes
        if pick is None:
            pick = [n for n in self.alive() if n is not exclude]
        if not pick:
            raise Fatal("no node of cluster %s is running" % self.label)

        def check():
            ln, _ = self.leader_view(pick)
            return ln

        def describe():
            return "; ".join("%s:%s" % (n.name, None if s is None else "%s term=%d leader=%d" % (
                status_name(stubs(), s.role), s.term, s.leader_id)) for n, s in self.statuses(pick).items())
        try:
            return until(check, timeout, "one agreed leader among %s" % [n.name for n in pick])
        except Timeout as e:
            raise Timeout("%s [%s]" % (e, describe())) from None

    def followers(self, leader):
        return [n for n in self.alive() if n is not leader]

    def wait_caught_up(self, nodes=None, timeout=15):
        """Bounded wait until every node's applied_index reaches the leader's commit index."""
        ln = self.wait_leader()
        target = ln.status().commit_index
        for n in (nodes or self.alive()):
            until(lambda: n.status().applied_index >= target, timeout,
                  "%s applied_index >= %d" % (n.name, target))
        return ln

    def channel(self, addr):
        """A cached client channel to any address (survives node restarts)."""
        import grpc
        ch = self._chans.get(addr)
        if ch is None:
            ch = grpc.insecure_channel(addr, options=CHANNEL_OPTIONS)
            self._chans[addr] = ch
        return ch

    # -- leader-following client calls
    def call(self, method, request, timeout=5, deadline=20):
        """Call KV.<method> on whichever node is leader, following `raftkv-leader` hints and
        re-polling Status on UNAVAILABLE, until `deadline` seconds (scaled) pass."""
        import grpc
        end = time.monotonic() + scaled(deadline)
        target = None
        last = None
        while time.monotonic() < end:
            if target is None:
                ln, _ = self.leader_view()
                target = ln.client_addr if ln else None
                if target is None:
                    time.sleep(0.05)
                    continue
            try:
                stub = stubs().kv_grpc.KVStub(self.channel(target))
                return getattr(stub, method)(request, timeout=scaled(timeout))
            except grpc.RpcError as e:
                last = e
                if e.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                hint = leader_hint(e)
                target = hint[1] if hint else None
                if target is None:
                    time.sleep(0.05)
        raise Timeout("KV.%s did not succeed within %.1fs; last error: %r" % (method, scaled(deadline), last))

    # -- shutdown
    def stop(self, timeout=20):
        """SIGTERM every running node at once, wait (bounded); return a list of problems:
        non-zero exits, unexpected deaths, sanitizer reports in the logs. Gateways in front
        of the cluster are stopped first."""
        problems = []
        for g in self.gateways:
            problems += g.stop()
        for n in self.nodes:
            if n.proc is not None and not n.alive() and not n.expected_exit:
                problems.append("%s died unexpectedly (exit status %s)" % (n.name, n.proc.returncode))
                n.expected_exit = True
        running = self.alive()
        for n in running:
            n.expected_exit = True
            n.proc.send_signal(signal.SIGTERM)
        for n in running:
            rc = n.wait_exit(timeout)
            if rc != 0:
                problems.append("%s: exit status %s after SIGTERM (expected 0)" % (n.name, rc))
        for n in self.nodes:
            bad = n.bad_log_lines()
            if bad:
                problems.append("%s log has sanitizer/crash reports: %s" % (n.name, bad[:3]))
        return problems

    def dump_logs(self, n=None):
        for nd in self.nodes:
            state = "running" if nd.alive() else ("exit %s" % (nd.proc.returncode if nd.proc else "-"))
            print("----- %s/%s (%s, %s) log tail: %s" % (self.label, nd.name, state, nd.client_addr, nd.log_path),
                  file=sys.stderr)
            print(nd.log_tail(n), file=sys.stderr)
        for g in self.gateways:
            g.dump_log(n)
        sys.stderr.flush()


# ------------------------------------------------------------------------- gRPC helpers
def leader_hint(err):
    """(leader id, client address) from an RpcError's `raftkv-leader` trailing metadata."""
    try:
        md = err.trailing_metadata() or ()
    except Exception:  # noqa: BLE001
        return None
    for k, v in md:
        if k == "raftkv-leader":
            if isinstance(v, bytes):
                v = v.decode()
            ident, _, addr = v.partition("@")
            try:
                return int(ident), addr
            except ValueError:
                return None
    return None


def metadata_dict(md):
    return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in (md or ())}


def expect_error(fn, code, what=""):
    """Run fn(); it must raise grpc.RpcError with status `code`. Returns the error."""
    import grpc
    try:
        r = fn()
    except grpc.RpcError as e:
        assert e.code() == code, "%s: expected %s, got %s (%s)" % (what, code, e.code(), e.details())
        return e
    raise AssertionError("%s: expected %s, got success: %r" % (what, code, r))


def wid(client_id, seq):
    return stubs().kv.WriteId(client_id=client_id, sequence=seq)


# ------------------------------------------------------------------------- test runner
def run(tests, argv=None):
    """Run test functions in order; print node log tails after a failure; at the end stop
    every cluster with SIGTERM (a non-zero exit or a sanitizer report is a failure too).
    Arguments: substrings selecting tests by name. Exits 0 or 1."""
    argv = sys.argv[1:] if argv is None else argv
    seed()
    print("raftnode: %s" % raftnode_path(), flush=True)
    _install_cleanup()
    stubs()
    failures = []
    t_all = time.monotonic()
    for fn in tests:
        name = fn.__name__
        if argv and not any(a in name for a in argv):
            continue
        log("=== %s" % name)
        t0 = time.monotonic()
        try:
            fn()
            log("--- ok %s (%.1fs)" % (name, time.monotonic() - t0))
        except KeyboardInterrupt:
            raise
        except BaseException:  # noqa: BLE001 - includes SystemExit from helpers
            traceback.print_exc()
            sys.stderr.flush()
            log("--- FAIL %s (%.1fs)" % (name, time.monotonic() - t0))
            failures.append(name)
            for c in _clusters:
                c.dump_logs()
            for g in _all_gateways:
                if g.cluster is None:
                    g.dump_log()
    problems = stop_gateways()
    if problems:
        failures.append("shutdown of gateways")
        print("gateway shutdown problems:\n  %s" % "\n  ".join(problems), file=sys.stderr)
    for c in _clusters:
        problems = c.stop()
        if problems:
            failures.append("shutdown of cluster %s" % c.label)
            print("cluster %s shutdown problems:\n  %s" % (c.label, "\n  ".join(problems)), file=sys.stderr)
            c.dump_logs()
    _kill_everything()
    if failures and not KEEP:
        print("kept for inspection: %s" % " ".join([c.dir for c in _clusters] + [
            g.dir for g in _all_gateways if g.cluster is None]), file=sys.stderr)
    if not KEEP:
        keep = {c.dir for c in _clusters} | {g.dir for g in _all_gateways} if failures else set()
        for d in _tmp_dirs:
            if d not in keep:
                shutil.rmtree(d, ignore_errors=True)
    log("%s: %d failure(s) %s in %.1fs (seed %s)" % (
        os.path.basename(sys.argv[0]), len(failures), failures, time.monotonic() - t_all, _seed))
    sys.exit(1 if failures else 0)
