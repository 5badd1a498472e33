"""The seeded nemesis: faults injected into a running cluster, each held for a while, then
healed; every fault is recorded (same clock as the history) in faults.jsonl.

Kinds (KINDS):
  kill_one      SIGKILL one member (the leader or a random one); restart it when healed
  kill_all      SIGKILL every member; restart them all
  stop_one      SIGSTOP one member (leader or random); SIGCONT
  isolate       cut one member (leader or random) off from the other raftnodes
  split         cut the raftnodes into two random groups
  oneway        a's Raft messages to b are lost, b's to a still arrive (a's connection to b's
                peer port is dropped); a and/or b may be the leader
  bridge        two groups that cannot talk, and one member that talks to both
  gateway_kill  SIGKILL the gateway; restart it at the same address
Partitions never involve the gateway: it keeps reaching every node.

The schedule is a pure function of the seed (schedule()): kinds, hold times (1-4 s), quiet
gaps, targets and groups. "The leader" is resolved when the fault starts, so which member that
is depends on the run; everything else is reproduced by the seed. After healing, the nemesis
waits (bounded) until the workload has an ok write and an ok read that started after the heal:
a fault the cluster does not recover from fails the run there and then.

Every process is started from the thread that runs the nemesis (the driver's main thread):
PR_SET_PDEATHSIG fires when the *thread* that forked a child exits.
"""
import json
import os
import random
import signal
import time

import cluster as h

KINDS = ("kill_one", "kill_all", "stop_one", "isolate", "split", "oneway", "bridge", "gateway_kill")
HOLD_S = (1.0, 4.0)
GAP_S = (1.0, 2.5)


def _target(rng, n):
    return "leader" if rng.random() < 0.5 else rng.randrange(n)


def fault_spec(rng, kind, n):
    """One fault of `kind` for n members, its random choices drawn from rng."""
    spec = {"kind": kind, "hold": round(rng.uniform(*HOLD_S), 2), "gap": round(rng.uniform(*GAP_S), 2)}
    if kind in ("kill_one", "stop_one", "isolate"):
        spec["target"] = _target(rng, n)
    elif kind == "split":
        order = list(range(n))
        rng.shuffle(order)
        cut = rng.randrange(1, n)
        spec["groups"] = [sorted(order[:cut]), sorted(order[cut:])]
    elif kind == "oneway":
        a = rng.randrange(n)
        b = (a + rng.randrange(1, n)) % n
        shape = rng.choice(("leader->x", "x->leader", "x->y"))
        spec["src"] = "leader" if shape == "leader->x" else a
        spec["dst"] = "leader" if shape == "x->leader" else b
    elif kind == "bridge":
        order = list(range(n))
        rng.shuffle(order)
        spec["bridge"] = "leader" if rng.random() < 0.3 else order[0]
        spec["order"] = order
    return spec


def schedule(seed, n, kinds=KINDS, every_kind_first=True):
    """An endless iterator of fault specs: with every_kind_first, first every kind once in a
    seeded order, then kinds at random."""
    rng = random.Random(seed)
    first = list(kinds) if every_kind_first else []
    rng.shuffle(first)
    for kind in first:
        yield fault_spec(rng, kind, n)
    while True:
        yield fault_spec(rng, rng.choice(kinds), n)


class RecoveryTimeout(AssertionError):
    pass


class Nemesis:
    """Applies and heals faults on a NsCluster + Gateway in a Topology."""

    def __init__(self, topo, cl, gateway, recorder, faults_path, peer_port, seed, recovery_s=30):
        self.topo = topo
        self.cl = cl
        self.gw = gateway
        self.rec = recorder
        self.path = faults_path
        self.peer_port = peer_port
        self.rng = random.Random(seed ^ 0x5EED)  # fallbacks when no leader is found
        self.recovery_s = recovery_s
        self.stopped = set()
        self.faults = []
        self.counts = {}
        self.on_partition = None  # control mode: callback(isolated node or None)

    # -- helpers
    def n(self):
        return len(self.cl.nodes)

    def leader_index(self, timeout=3.0):
        """Index of the member that says it leads (the highest term if several), polled with a
        bound; None if there is none."""
        LEADER = h.stubs().cl.StatusResponse.LEADER

        def find():
            best = None
            for i, nd in enumerate(self.cl.nodes):
                if i in self.stopped:
                    continue
                st = nd.try_status(timeout=0.5)
                if st is not None and st.role == LEADER and (best is None or st.term > best[1]):
                    best = (i, st.term)
            return best
        try:
            return h.until(find, timeout, "a leader", interval=0.1)[0]
        except h.Timeout:
            return None

    def resolve(self, t, avoid=None):
        if t == "leader":
            i = self.leader_index()
            if i is None or i == avoid:
                i = self.rng.choice([j for j in range(self.n()) if j != avoid])
            return i
        if t == avoid:
            return (t + 1) % self.n()
        return t

    def names(self, idxs):
        return [self.cl.nodes[i].name for i in idxs]

    def cut(self, a_group, b_group):
        for a in a_group:
            for b in b_group:
                self.topo.block(a, b)
                self.topo.block(b, a)

    # -- one fault
    def run(self, spec):
        """Apply `spec`, hold it, heal it, wait for recovery; returns the fault's record."""
        kind = spec["kind"]
        fid = len(self.faults) + 1
        f = {"id": fid, "kind": kind, "spec": spec, "start": time.monotonic_ns()}
        self.faults.append(f)
        heal = self.apply(kind, spec, f)
        f["applied"] = time.monotonic_ns()
        h.log("fault #%d %s %s: held %.2fs" % (fid, kind, f.get("detail", ""), spec["hold"]))
        time.sleep(h.scaled(spec["hold"]))
        f["heal"] = time.monotonic_ns()
        heal()
        f["healed"] = time.monotonic_ns()
        self.counts[kind] = self.counts.get(kind, 0) + 1
        try:
            self.wait_recovered(f["healed"], "fault #%d (%s)" % (fid, kind))
        except RecoveryTimeout:
            f["recovery_failed"] = True
            raise
        finally:
            f["recovered"] = time.monotonic_ns() if "recovery_failed" not in f else None
            self._write(f)
        f["recovery_s"] = round((f["recovered"] - f["healed"]) / 1e9, 3)
        h.log("fault #%d healed; ok write and read %.2fs after the heal" % (fid, f["recovery_s"]))
        return f

    def wait_recovered(self, since_ns, what):
        def ok():
            return self.rec.last_ok["write"] >= since_ns and self.rec.last_ok["read"] >= since_ns
        try:
            h.until(ok, self.recovery_s, "an ok write and an ok read after healing " + what, interval=0.05)
        except h.Timeout as e:
            raise RecoveryTimeout(str(e)) from None

    def _write(self, f):
        with open(self.path, "a") as out:
            out.write(json.dumps(f, separators=(",", ":")) + "\n")

    def apply(self, kind, spec, f):
        """Inject the fault; return the function that heals it."""
        nodes = self.cl.nodes
        if kind == "kill_one":
            i = self.resolve(spec["target"])
            f["detail"] = "SIGKILL %s" % nodes[i].name
            nodes[i].kill()

            def heal():
                nodes[i].start()
                nodes[i].wait_ready()
            return heal
        if kind == "kill_all":
            f["detail"] = "SIGKILL %s" % " ".join(self.names(range(self.n())))
            for nd in nodes:
                nd.kill()

            def heal():
                for nd in nodes:
                    nd.start()
                for nd in nodes:
                    nd.wait_ready()
            return heal
        if kind == "stop_one":
            i = self.resolve(spec["target"])
            f["detail"] = "SIGSTOP %s" % nodes[i].name
            os.kill(nodes[i].proc.pid, signal.SIGSTOP)
            self.stopped.add(i)

            def heal():
                os.kill(nodes[i].proc.pid, signal.SIGCONT)
                self.stopped.discard(i)
            return heal
        if kind == "gateway_kill":
            f["detail"] = "SIGKILL %s" % self.gw.name
            self.gw.kill()

            def heal():
                self.gw.start(wait=True)
            return heal
        if kind == "isolate":
            i = self.resolve(spec["target"])
            rest = [j for j in range(self.n()) if j != i]
            f["detail"] = "%s | %s" % (nodes[i].name, " ".join(self.names(rest)))
            self.cut([i], rest)
        elif kind == "split":
            a, b = spec["groups"]
            f["detail"] = "%s | %s" % (" ".join(self.names(a)), " ".join(self.names(b)))
            self.cut(a, b)
        elif kind == "oneway":
            src = self.resolve(spec["src"])
            dst = self.resolve(spec["dst"], avoid=src)
            f["detail"] = "%s -/-> %s" % (nodes[src].name, nodes[dst].name)
            self.topo.block(src, dst, port=self.peer_port)
        elif kind == "isolate_follower":  # the control's partition
            ld = self.leader_index()
            followers = [j for j in range(self.n()) if j != ld]
            i = self.rng.choice(followers)
            rest = [j for j in range(self.n()) if j != i]
            f["detail"] = "%s | %s (leader %s)" % (
                nodes[i].name, " ".join(self.names(rest)), None if ld is None else nodes[ld].name)
            self.cut([i], rest)
            if self.on_partition:
                self.on_partition(nodes[i])
        elif kind == "bridge":
            order = list(spec["order"])
            b = self.resolve(spec["bridge"])
            order.remove(b)
            half = max(1, len(order) // 2)
            x, y = order[:half], order[half:]
            f["detail"] = "%s | %s | %s (bridge %s)" % (
                " ".join(self.names(x)), nodes[b].name, " ".join(self.names(y)), nodes[b].name)
            self.cut(x, y)
        else:
            raise ValueError("unknown fault kind %r" % kind)
        f["blocks"] = sorted([list(k) for k in self.topo.blocks], key=str)

        def heal():
            self.topo.heal()
            if self.on_partition:
                self.on_partition(None)
        return heal

    # -- the end
    def heal_all(self):
        """Remove partitions, continue stopped members, restart dead ones and the gateway."""
        self.topo.heal()
        if self.on_partition:
            self.on_partition(None)
        for i in list(self.stopped):
            nd = self.cl.nodes[i]
            if nd.alive():
                os.kill(nd.proc.pid, signal.SIGCONT)
            self.stopped.discard(i)
        dead = [nd for nd in self.cl.nodes if not nd.alive()]
        for nd in dead:
            h.log("heal_all: restarting %s" % nd.name)
            nd.start()
        for nd in dead:
            nd.wait_ready()
        if not self.gw.alive():
            h.log("heal_all: restarting the gateway")
            self.gw.start(wait=True)
