#!/usr/bin/python3
"""Linearizability test: a real raftkv cluster on private network namespaces, a seeded nemesis,
concurrent clients through the gateway, and the history checked by lincheck (porcupine).

  lin_test.py nemesis [--seconds 90]   every fault kind at least once, then random ones
  lin_test.py control [--seconds 30]   the known-bad control: SERIALIZABLE reads straight to a
                                        member isolated by a partition while writes go on
                                        through the gateway; lincheck must say NOT linearizable
  lin_test.py soak --minutes 30        every fault kind for a long time, the history checked in
                                        segments (fresh keys per segment) while the run goes on

Topology (netns.py): one namespace per raftnode (10.213.X.11, .12, ...), one for the gateway
and this process (10.213.X.2), bridged in a hub namespace. Faults (nemesis.py): SIGKILL / SIGSTOP
of members, kill of all, partitions between raftnodes (symmetric, one-way, bridge), gateway
kill. Workload (workload.py): Put/Append/Delete/linearizable Get through the gateway, one
attempt each with a 1-2 s deadline. At the end everything is healed, every key is read once
more, the cluster is stopped with SIGTERM, and the history is checked.

Pass (nemesis, soak): lincheck says linearizable (exit 0); every node and the gateway exit 0
on SIGTERM with no sanitizer report in their logs; at least --min-ok ok operations; an ok write
and an ok read after every healed fault (bounded wait); every kind injected at least once.
Pass (control): lincheck says NOT linearizable (exit 1) and the run holds at least one stale
read the driver can see on its own (an acknowledged append missing from a later read).

Not root, or no working netns/veth/bridge/iptables: prints "SKIPPED: <reason>" and exits 0;
so does a machine without Go (scripts/install-lincheck.sh exits 2).

Environment: RAFTKV_LIN_SEED (the nemesis schedule and the clients' choices; printed as
"seed N (rerun with RAFTKV_LIN_SEED=N)"), RAFTKV_LIN_SECONDS (the fault phase's length),
LINCHECK (a lincheck binary instead of scripts/install-lincheck.sh), and cluster.py's:
RAFTNODE, KVGATEWAY, RAFTKV_PROTOS, RAFTKV_IT_TIME_SCALE, RAFTKV_IT_KEEP=1 (keep the run
directory), RAFTKV_IT_TMPDIR, RAFTKV_IT_LOG_LINES.

The run directory (history*.jsonl, faults.jsonl, lincheck output and HTML, node and gateway
logs, data dirs) is kept on failure, its path printed; deleted on success unless
RAFTKV_IT_KEEP=1.
"""
import argparse
import atexit
import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)
import cluster as h  # noqa: E402
import netns  # noqa: E402

PEER_PORT, CLIENT_PORT, GW_PORT = 7001, 7002, 7100
DEADLINE_S = (1.0, 2.0)  # per call, drawn uniformly

MODES = {
    # ~100 s under ASan: the 8 fault kinds once (~5 s each with recovery and gaps), then random.
    "nemesis": dict(seconds=90, nodes=3, clients=6, keys=8, epoch_s=30, min_ok=600,
                    flags={"snapshot-entries": 400, "snapshot-trailing": 50,
                           "snapshot-log-percent": 0}),
    "control": dict(seconds=20, nodes=3, clients=8, keys=4, epoch_s=0, min_ok=100, flags={}),
    "soak": dict(seconds=1800, nodes=3, clients=6, keys=8, epoch_s=60, min_ok=600,
                 flags={"snapshot-entries": 1000, "snapshot-trailing": 100,
                        "snapshot-log-percent": 0}),
}


def skip(reason):
    print("SKIPPED: %s" % reason, flush=True)
    sys.exit(0)


def find_lincheck():
    """The lincheck binary: $LINCHECK, else what scripts/install-lincheck.sh prints.
    SKIPPED when the script says Go is missing (exit 2)."""
    p = os.environ.get("LINCHECK", "")
    if p:
        if not os.access(p, os.X_OK):
            raise SystemExit("LINCHECK=%s is not an executable file" % p)
        return p
    script = os.path.join(h.REPO, "scripts", "install-lincheck.sh")
    if not os.path.exists(script):
        raise SystemExit("%s is missing: cannot build the checker" % script)
    r = subprocess.run(["bash", script], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=900)
    if r.returncode == 2:
        skip("Go is not installed: cannot build lincheck (%s)" % r.stderr.decode(errors="replace").strip())
    out = r.stdout.decode().strip().splitlines()
    if r.returncode != 0 or not out or not os.access(out[-1], os.X_OK):
        raise SystemExit("scripts/install-lincheck.sh failed (exit %d):\n%s%s" % (
            r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")))
    return out[-1]


# ------------------------------------------------------------------------- nodes in namespaces
class NsNode(h.Node):
    """A raftnode in its own network namespace, at its namespace's address."""

    def __init__(self, cl, name, ns, ip):
        super().__init__(cl, name, PEER_PORT, CLIENT_PORT)
        self.netns = ns
        self.ip = ip
        self.peer_addr = "%s:%d" % (ip, PEER_PORT)
        self.client_addr = "%s:%d" % (ip, CLIENT_PORT)

    def args(self):
        # cluster.Node.start runs `setpriv --pdeathsig KILL -- <args>`: `ip netns exec` enters
        # the namespace and execs raftnode (no fork), so the pid, the parent-death signal and
        # the signals the nemesis sends all concern raftnode itself.
        return ["ip", "netns", "exec", self.netns] + super().args()


class NsCluster(h.Cluster):
    """cluster.Cluster's waits, calls and shutdown checks, over NsNodes."""

    def __init__(self, topo, directory, flags, binary=None):  # pylint: disable=super-init-not-called
        self.binary = binary or h.raftnode_path()
        self.flags = dict(h.Cluster.DEFAULT_FLAGS)
        self.flags.update(flags or {})
        self.env = {}
        self.label = "lin"
        self._chans = {}
        self.gateways = []
        self.dir = directory
        self.nodes = [NsNode(self, "n%d" % (i + 1), ns, ip)
                      for i, (ns, ip) in enumerate(zip(topo.node_ns, topo.node_ips))]
        h._install_cleanup()  # pylint: disable=protected-access


# ------------------------------------------------------------------------- checking
def run_lincheck(lincheck, history, html, timeout_s, out_path):
    """(exit status, summary line); the full output goes to out_path."""
    cmd = [lincheck, "-history", history, "-timeout", "%ds" % timeout_s, "-html", html, "-json"]
    # It dies with the thread that started it (SIGKILL of the driver included).
    pre = [h._SETPRIV, "--pdeathsig", "KILL", "--"] if h._SETPRIV else []  # pylint: disable=protected-access
    t0 = time.monotonic()
    try:
        r = subprocess.run(pre + cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout_s + 120)
        rc, out = r.returncode, r.stdout.decode(errors="replace")
    except subprocess.TimeoutExpired as e:
        rc, out = 2, "lincheck did not finish within %ds: %s" % (timeout_s + 120, e)
    with open(out_path, "w") as f:
        f.write("$ %s\n%s" % (" ".join(cmd), out))
    lines = [l for l in out.splitlines() if l.strip()]
    summary = lines[-1] if lines else "(no output)"
    h.log("lincheck %s: exit %d in %.1fs: %s" % (os.path.basename(history), rc,
                                                 time.monotonic() - t0, summary))
    return rc, summary


VERDICT = {0: "linearizable", 1: "NOT linearizable", 2: "check timed out", 3: "bad input"}


class SegmentChecker(threading.Thread):
    """Soak mode: checks closed epoch files one after the other while the run goes on."""

    def __init__(self, lincheck, directory, timeout_s):
        super().__init__(name="segment-checker", daemon=True)
        self.lincheck = lincheck
        self.dir = directory
        self.timeout_s = timeout_s
        self.q = queue.Queue()
        self.results = []  # (epoch, rc, summary)

    def run(self):
        while True:
            item = self.q.get()
            if item is None:
                return
            epoch, path = item
            base = os.path.join(self.dir, "lincheck-e%02d" % epoch)
            rc, summary = run_lincheck(self.lincheck, path, base + ".html", self.timeout_s, base + ".out")
            self.results.append((epoch, rc, summary))


# ------------------------------------------------------------------------- the run
class Run:
    def __init__(self, mode, cfg, seed, topo, directory, lincheck, check_timeout_s):
        self.mode = mode
        self.cfg = cfg
        self.seed = seed
        self.topo = topo
        self.dir = directory
        self.lincheck = lincheck
        self.check_timeout_s = check_timeout_s
        self.problems = []
        self.cl = None
        self.gw = None
        self.verdicts = []

    def go(self):
        import grpc  # noqa: F401 - after setns: gRPC's threads start in the gateway namespace
        import nemesis as nm
        import workload as wl
        cfg = self.cfg
        t_start = time.monotonic()
        self.cl = NsCluster(self.topo, self.dir, cfg["flags"])
        cl = self.cl
        h.log("topology %s.0/24: %s; gateway %s:%d in %s" % (
            self.topo.net, " ".join("%s=%s(%s)" % (n.name, n.ip, n.netns) for n in cl.nodes),
            self.topo.gw_ip, GW_PORT, self.topo.gw_ns))
        cl.start()
        cl.wait_leader(timeout=30)
        self.gw = h.Gateway(cl, name="gw", port=GW_PORT, flags={"probe-interval-ms": 100})
        self.gw.addr = "%s:%d" % (self.topo.gw_ip, GW_PORT)
        self.gw.start(serving=True, timeout=30)

        split = self.mode == "soak"
        rec = wl.Recorder(self.dir, split=split, keep_ops=self.mode == "control")
        shared = wl.Shared(cfg["keys"])
        faults_path = os.path.join(self.dir, "faults.jsonl")
        nem = nm.Nemesis(self.topo, cl, self.gw, rec, faults_path, PEER_PORT, self.seed)
        clients = self.start_clients(wl, rec, shared)
        checker = None
        if split:
            checker = SegmentChecker(self.lincheck, self.dir, self.check_timeout_s)
            checker.start()
        epochs = EpochClock(shared, rec, cfg["epoch_s"], checker)
        epochs.start()

        try:
            nem.wait_recovered(time.monotonic_ns(), "start-up")
            self.fault_phase(nm, nem, shared)
        except nm.RecoveryTimeout as e:
            self.problems.append("the cluster did not recover: %s" % e)
        except Exception as e:  # noqa: BLE001 - report, then heal and check what we have
            import traceback
            traceback.print_exc()
            self.problems.append("nemesis failed: %r" % e)
        epochs.stop()

        # The end: heal, restart, wait for a leader and a serving gateway, read every key.
        h.log("healing everything")
        try:
            nem.heal_all()
            cl.wait_leader(timeout=30)
            self.gw.wait_serving(30)
        except AssertionError as e:
            self.problems.append("no healthy cluster after healing: %s" % e)
        shared.stop.set()
        for c in clients:
            c.join(h.scaled(DEADLINE_S[1] + 10))
            if c.is_alive():
                self.problems.append("%s did not stop" % c.name)
            elif c.error is not None:
                self.problems.append("%s crashed: %r" % (c.name, c.error))
        keys = sorted(rec.keys if not split else [k for k in rec.keys if wl.key_epoch(k) == shared.epoch])
        self.final_reads(wl, rec, keys, len(clients) + 1)
        rec.close_all()
        if rec.late:
            self.problems.append("%d operations ended after their epoch's file was closed" % rec.late)

        h.log("stopping the cluster (SIGTERM)")
        self.problems += cl.stop()
        run_s = time.monotonic() - t_start

        # Checking.
        if split:
            checker.q.put((shared.epoch, rec.path(shared.epoch)))
            checker.q.put(None)
            checker.join()
            self.verdicts = checker.results
        else:
            rc, summary = run_lincheck(self.lincheck, rec.path(), os.path.join(self.dir, "lincheck.html"),
                                       self.check_timeout_s, os.path.join(self.dir, "lincheck.out"))
            self.verdicts = [(0, rc, summary)]
        self.judge(wl, rec, nem, nm, run_s)
        return self.problems

    def start_clients(self, wl, rec, shared):
        cfg = self.cfg
        stubs = h.stubs()
        clients = []
        if self.mode == "control":
            # Half write (append only) through the gateway, half read SERIALIZABLE straight
            # from members: the isolated one while a partition is on.
            import grpc
            for i in range(cfg["clients"]):
                cid = i + 1
                if i % 2 == 0:
                    clients.append(wl.Client(cid, self.seed, shared, rec, stubs, self.gw.new_channel(),
                                             DEADLINE_S, weights=(("append", 1),)))
                else:
                    targets = {n.client_addr: grpc.insecure_channel(n.client_addr, options=h.CHANNEL_OPTIONS)
                               for n in self.cl.nodes}
                    clients.append(wl.Client(cid, self.seed, shared, rec, stubs, self.gw.new_channel(),
                                             DEADLINE_S, weights=(("get", 1),), read_targets=targets))
        else:
            for i in range(cfg["clients"]):
                clients.append(wl.Client(i + 1, self.seed, shared, rec, stubs, self.gw.new_channel(), DEADLINE_S))
        for c in clients:
            c.start()
        h.log("%d clients on %s, %d keys per epoch" % (len(clients), self.gw.addr, cfg["keys"]))
        return clients

    def fault_phase(self, nm, nem, shared):
        seconds = self.cfg["seconds"]
        end = time.monotonic() + seconds
        if self.mode == "control":
            def isolated(node):
                shared.isolated = node.client_addr if node is not None else None
            nem.on_partition = isolated
            rng = random.Random(self.seed)
            specs = iter(lambda: {"kind": "isolate_follower", "hold": round(rng.uniform(3, 4), 2),
                                  "gap": round(rng.uniform(1, 2), 2)}, None)
            need = {"isolate_follower"}
        else:
            specs = nm.schedule(self.seed, len(self.cl.nodes))
            need = set(nm.KINDS)
        time.sleep(1.0)  # a quiet start (the nemesis holds and gaps are sleeps by design)
        for spec in specs:
            if time.monotonic() >= end and need <= set(nem.counts):
                break
            nem.run(spec)
            time.sleep(spec["gap"])

    def final_reads(self, wl, rec, keys, cid):
        """One ok linearizable Get of every key through the gateway (bounded retries; every
        attempt is recorded)."""
        stubs = h.stubs()
        stub = stubs.kv_grpc.KVStub(self.gw.new_channel())
        for key in keys:
            def attempt():
                r = wl.call(stubs, stub, {"id": rec.next_id(), "client": cid, "op": "get", "key": key}, 2.0)
                rec.add(r)
                return r["status"] == "ok" or AssertionError(r.get("error"))
            try:
                h.until(attempt, 30, "an ok final read of %s" % key, interval=0.1)
            except h.Timeout as e:
                self.problems.append(str(e))
        h.log("final reads: %d keys" % len(keys))

    def judge(self, wl, rec, nem, nm, run_s):
        summary = rec.summary()
        ok = rec.ok_total()
        print("==== summary (%s, seed %d, %.0fs)" % (self.mode, self.seed, run_s), flush=True)
        for op in ("append", "get", "put", "delete"):
            if op in summary:
                print("  %-7s %s" % (op, " ".join("%s=%d" % kv for kv in sorted(summary[op].items()))))
        print("  faults  %s" % " ".join("%s=%d" % kv for kv in sorted(nem.counts.items())))
        rs = sorted(f["recovery_s"] for f in nem.faults if f.get("recovery_s") is not None)
        if rs:
            print("  recovery after heal: median %.2fs, max %.2fs" % (rs[len(rs) // 2], rs[-1]))
        for epoch, rc, s in self.verdicts:
            try:
                j = json.loads(s)
                s = "%s ops, %d keys, checked in %.1fs" % (j.get("ops"), j.get("keys", 0),
                                                           j.get("elapsed_ms", 0) / 1000.0)
                if j.get("failed_keys"):
                    s += ", failing keys %s, see %s" % (j["failed_keys"][:5], j.get("html"))
            except (ValueError, AttributeError):
                pass
            print("  lincheck%s: %s (exit %d): %s" % ("" if self.mode != "soak" else " segment e%02d" % epoch,
                                                    VERDICT.get(rc, "?"), rc, s))
        if self.mode == "soak":
            bad = [e for e, rc, _ in self.verdicts if rc != 0]
            print("  segments: %d checked, %d linearizable, %d not (%s)" % (
                len(self.verdicts), len(self.verdicts) - len(bad), len(bad), bad))
        sys.stdout.flush()

        if ok < self.cfg["min_ok"]:
            self.problems.append("only %d ok operations (at least %d needed)" % (ok, self.cfg["min_ok"]))
        if self.mode == "control":
            evidence = wl.stale_evidence(rec.ops)
            isolated = [e for e in evidence if e[0].get("isolated")]
            h.log("control: %d stale reads seen by the driver itself, %d of them from the "
                  "isolated member during a partition" % (len(evidence), len(isolated)))
            for r, suffix in (isolated[:2] + evidence[:1]):
                print("  e.g. get %s from %s%s read %r, missing %r acknowledged before it started" % (
                    r["key"], r.get("member"), " (isolated)" if r.get("isolated") else "",
                    r["read"][-48:], suffix))
            if not isolated:
                self.problems.append("control inconclusive: no read of the isolated member missed "
                                     "an append acknowledged before it")
            rc = self.verdicts[0][1]
            if rc == 0:
                self.problems.append("control not caught: lincheck says linearizable")
            elif rc != 1:
                self.problems.append("control: lincheck %s (exit %d)" % (VERDICT.get(rc, "?"), rc))
        else:
            missing = set(nm.KINDS) - set(nem.counts)
            if missing and not any("recover" in p or "nemesis" in p for p in self.problems):
                self.problems.append("fault kinds never injected: %s" % sorted(missing))
            for epoch, rc, s in self.verdicts:
                if rc != 0:
                    self.problems.append("lincheck%s: %s (exit %d): %s" % (
                        "" if self.mode != "soak" else " e%02d" % epoch, VERDICT.get(rc, "?"), rc, s))


class EpochClock(threading.Thread):
    """Moves the clients to fresh keys every epoch_s seconds; in soak mode closes the previous
    epoch's file once every call on its keys has ended, and queues it for checking. Starts no
    process (see nemesis.py on pdeathsig and threads)."""

    def __init__(self, shared, rec, epoch_s, checker):
        super().__init__(name="epochs", daemon=True)
        self.shared = shared
        self.rec = rec
        self.epoch_s = epoch_s
        self.checker = checker
        self.done = threading.Event()

    def run(self):
        if not self.epoch_s:
            return
        while not self.done.wait(self.epoch_s):
            old = self.shared.epoch
            self.shared.epoch = old + 1
            h.log("epoch %d: fresh keys" % self.shared.epoch)
            if self.checker is not None:
                # Calls on the old keys end within their deadline (plus slack).
                time.sleep(h.scaled(DEADLINE_S[1] + 3))
                self.checker.q.put((old, self.rec.close_epoch(old)))

    def stop(self):
        self.done.set()
        self.join(h.scaled(DEADLINE_S[1] + 10))


# ------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", choices=sorted(MODES))
    ap.add_argument("--seconds", type=float, help="length of the fault phase")
    ap.add_argument("--minutes", type=float, help="same, in minutes")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--nodes", type=int)
    ap.add_argument("--clients", type=int)
    ap.add_argument("--keys", type=int)
    ap.add_argument("--epoch-seconds", type=float)
    ap.add_argument("--min-ok", type=int)
    ap.add_argument("--check-timeout", type=int, default=120, help="lincheck -timeout (seconds)")
    ap.add_argument("--flag", action="append", default=[], metavar="NAME=VALUE",
                    help="an extra raftnode flag, e.g. --flag election-ms=150 (repeatable)")
    args = ap.parse_args()

    cfg = dict(MODES[args.mode])
    env_s = os.environ.get("RAFTKV_LIN_SECONDS", "")
    if env_s:
        cfg["seconds"] = float(env_s)
    if args.minutes is not None:
        cfg["seconds"] = args.minutes * 60
    if args.seconds is not None:
        cfg["seconds"] = args.seconds
    for k in ("nodes", "clients", "keys", "min_ok"):
        if getattr(args, k) is not None:
            cfg[k] = getattr(args, k)
    if args.epoch_seconds is not None:
        cfg["epoch_s"] = args.epoch_seconds
    cfg["flags"] = dict(cfg["flags"])
    for f in args.flag:
        name, _, value = f.partition("=")
        cfg["flags"][name.lstrip("-")] = value

    seed = args.seed
    if seed is None:
        env = os.environ.get("RAFTKV_LIN_SEED", "")
        seed = int(env) if env else random.SystemRandom().randrange(1, 2**31)
    print("seed %d (rerun with RAFTKV_LIN_SEED=%d)" % (seed, seed), flush=True)
    h.rng.seed(seed)

    try:
        netns.precheck()
    except netns.Unsupported as e:
        skip(e)
    lincheck = find_lincheck()
    print("raftnode: %s\nkvgateway: %s\nlincheck: %s" % (h.raftnode_path(), h.kvgateway_path(), lincheck),
          flush=True)

    # Cleanup on every exit: cluster.py kills the processes (atexit, SIGTERM/SIGINT/SIGHUP
    # handlers raising SystemExit); the namespaces go here. Processes also carry pdeathsig.
    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    netns.clean_stale(h.log)
    topo = netns.Topology(cfg["nodes"])
    atexit.register(topo.destroy)
    try:
        topo.create()
        topo.enter_gateway_ns()
    except netns.Unsupported as e:
        topo.destroy()
        skip(e)

    directory = tempfile.mkdtemp(prefix="raftkv-lin-%s-" % args.mode, dir=os.environ.get("RAFTKV_IT_TMPDIR") or None)
    h.stubs()
    run = Run(args.mode, cfg, seed, topo, directory, lincheck, args.check_timeout)
    problems = []
    try:
        problems = run.go()
    except BaseException as e:  # noqa: BLE001 - SystemExit from a signal too
        import traceback
        traceback.print_exc()
        problems = run.problems + ["%s: %r" % (type(e).__name__, e)]
        h._kill_everything()  # pylint: disable=protected-access
    finally:
        for d in h._tmp_dirs:  # pylint: disable=protected-access - the generated stubs
            shutil.rmtree(d, ignore_errors=True)

    if problems:
        print("FAILED (%s, seed %d):\n  %s" % (args.mode, seed, "\n  ".join(problems)), file=sys.stderr)
        if run.cl is not None:
            run.cl.dump_logs()
        print("run directory kept: %s (history, faults.jsonl, lincheck output, logs)" % directory,
              file=sys.stderr)
        print("rerun with RAFTKV_LIN_SEED=%d" % seed, file=sys.stderr, flush=True)
        sys.exit(1)
    if h.KEEP:
        print("run directory kept: %s" % directory)
    else:
        shutil.rmtree(directory, ignore_errors=True)
    print("PASSED (%s, seed %d)" % (args.mode, seed), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
