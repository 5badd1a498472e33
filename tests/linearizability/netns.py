"""Private test hosts for the linearizability test: one network namespace per raftnode, one for
the gateway and the workload, and a hub namespace holding a Linux bridge.

    rkl<pid>-hub   bridge br0; one veth end per member: v-n1, v-n2, ..., v-gw
    rkl<pid>-n1    eth0 = 10.213.X.11/24            (raftnode n1)
    rkl<pid>-n2    eth0 = 10.213.X.12/24            ...
    rkl<pid>-gw    eth0 = 10.213.X.2/24             (kvgateway, and this Python process)

X is random per run. The addresses exist only inside these namespaces: nothing here touches the
root namespace's interfaces, routes or firewall (every `ip` command names its namespace with
`-n`, every iptables command runs through `ip netns exec`). The driver moves its own process
into the gateway namespace (setns, before any thread exists), so the workload's and the
harness's gRPC traffic and the gateway it starts stay inside the test's namespaces.

Partitions are iptables DROP rules in the INPUT chain of the receiving node's namespace,
matching the sending raftnode's address only (the gateway keeps reaching every node):
  block(a, b)              every packet from a to b (a TCP connection either way then stalls)
  block(a, b, port=P)      only a's connection to b's peer port P: a's Raft messages do not
                           reach b, b's messages to a (over b's own connection) still do.

Names carry the owner's pid; names of dead owners are removed (with any process still inside)
by Topology.clean_stale() at the start of a run. Topology.destroy() runs from atexit too.
"""
import ctypes
import os
import random
import re
import signal
import shutil
import subprocess
import threading

PREFIX = "rkl"
NETNS_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
_NAME_RE = re.compile(r"^%s(\d+)-" % PREFIX)


class Unsupported(Exception):
    """This machine cannot host the topology (not root, no netns/veth/bridge/iptables)."""


def _run(args, check=True, timeout=20):
    r = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout)
    out = r.stdout.decode(errors="replace").strip()
    if check and r.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(args), r.returncode, out))
    return r.returncode, out


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def precheck():
    """Raise Unsupported when the basic tools are missing or we are not root."""
    if os.geteuid() != 0:
        raise Unsupported("not root (network namespaces, veth pairs and iptables need root)")
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            raise Unsupported("%s is not installed (Debian packages iproute2, iptables)" % tool)


def clean_stale(log=print):
    """Remove namespaces named by this module whose owner process is gone."""
    try:
        names = os.listdir(NETNS_DIR)
    except OSError:
        return []
    removed = []
    for name in sorted(names):
        m = _NAME_RE.match(name)
        if not m or _pid_alive(int(m.group(1))):
            continue
        # Processes of a dead run still inside (pdeathsig normally killed them).
        _, pids = _run(["ip", "netns", "pids", name], check=False)
        for p in pids.split():
            try:
                os.kill(int(p), signal.SIGKILL)
            except (ValueError, OSError):
                pass
        _run(["ip", "netns", "del", name], check=False)
        removed.append(name)
    if removed:
        log("removed stale namespaces of dead runs: %s" % " ".join(removed))
    return removed


class Topology:
    """The namespaces, bridge, veth pairs and addresses of one run."""

    def __init__(self, n_nodes, subnet=None):
        self.tag = "%s%d" % (PREFIX, os.getpid())
        self.hub = self.tag + "-hub"
        self.gw_ns = self.tag + "-gw"
        self.node_ns = ["%s-n%d" % (self.tag, i + 1) for i in range(n_nodes)]
        x = subnet if subnet is not None else random.SystemRandom().randrange(1, 255)
        self.net = "10.213.%d" % x
        self.gw_ip = self.net + ".2"
        self.node_ips = ["%s.%d" % (self.net, 11 + i) for i in range(n_nodes)]
        self.created = []
        self._lock = threading.Lock()
        self.blocks = set()  # (src index, dst index, port or None)

    def members(self):
        return [(self.gw_ns, self.gw_ip, "v-gw")] + [
            (ns, ip, "v-n%d" % (i + 1)) for i, (ns, ip) in enumerate(zip(self.node_ns, self.node_ips))]

    # -- creation
    def create(self):
        """Create everything; Unsupported when the kernel or tools refuse (nothing is left)."""
        try:
            self._netns_add(self.hub)
        except RuntimeError as e:
            raise Unsupported("cannot create a network namespace: %s" % e) from None
        try:
            _run(["ip", "-n", self.hub, "link", "set", "lo", "up"])
            _run(["ip", "-n", self.hub, "link", "add", "br0", "type", "bridge"])
            _run(["ip", "-n", self.hub, "link", "set", "br0", "up"])
        except RuntimeError as e:
            self.destroy()
            raise Unsupported("cannot create a bridge: %s" % e) from None
        for ns, ip, veth in self.members():
            self._netns_add(ns)
            _run(["ip", "-n", ns, "link", "set", "lo", "up"])
            try:
                _run(["ip", "-n", self.hub, "link", "add", veth, "type", "veth",
                      "peer", "name", "eth0", "netns", ns])
            except RuntimeError as e:
                self.destroy()
                raise Unsupported("cannot create a veth pair: %s" % e) from None
            _run(["ip", "-n", self.hub, "link", "set", veth, "master", "br0", "up"])
            _run(["ip", "-n", ns, "addr", "add", ip + "/24", "dev", "eth0"])
            _run(["ip", "-n", ns, "link", "set", "eth0", "up"])
        # iptables must work inside a node namespace (nf_tables or legacy, whichever is set up).
        probe = self.node_ns[0]
        rc, out = _run(["ip", "netns", "exec", probe, "iptables", "-w", "-A", "INPUT", "-s",
                        self.net + ".254", "-j", "DROP"], check=False)
        if rc != 0:
            self.destroy()
            raise Unsupported("iptables does not work in a network namespace: %s" % out)
        _run(["ip", "netns", "exec", probe, "iptables", "-w", "-F", "INPUT"])
        return self

    def _netns_add(self, name):
        _run(["ip", "netns", "add", name])
        self.created.append(name)

    def enter_gateway_ns(self):
        """Move this process into the gateway namespace. Network namespaces are per thread:
        call it before any thread starts, so that every later thread (gRPC's too) and every
        child process inherits it."""
        if threading.active_count() != 1:
            raise RuntimeError("enter_gateway_ns() must run before any thread is started")
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(os.path.join(NETNS_DIR, self.gw_ns), os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                e = ctypes.get_errno()
                raise Unsupported("setns(%s): %s" % (self.gw_ns, os.strerror(e)))
        finally:
            os.close(fd)

    def destroy(self):
        """Delete every namespace of this run (veths and the bridge go with them)."""
        for name in reversed(self.created):
            _run(["ip", "netns", "del", name], check=False)
        self.created = []

    # -- partitions
    def _iptables(self, dst, *args):
        _run(["ip", "netns", "exec", self.node_ns[dst], "iptables", "-w"] + list(args))

    def block(self, src, dst, port=None):
        """Drop packets from node src at node dst (all of them, or only those of src's
        connection to dst's TCP `port`)."""
        with self._lock:
            key = (src, dst, port)
            if key in self.blocks:
                return
            rule = ["-s", self.node_ips[src]]
            if port is not None:
                rule += ["-p", "tcp", "--dport", str(port)]
            self._iptables(dst, "-A", "INPUT", *(rule + ["-j", "DROP"]))
            self.blocks.add(key)

    def heal(self):
        """Remove every partition rule."""
        with self._lock:
            for i in range(len(self.node_ns)):
                self._iptables(i, "-F", "INPUT")
            self.blocks = set()

    def rules(self, i):
        """The INPUT rules of node i (for logs)."""
        return _run(["ip", "netns", "exec", self.node_ns[i], "iptables", "-w", "-S", "INPUT"],
                    check=False)[1]
