#!/usr/bin/python3
"""Crash at every named failpoint, restart, and check that the member rejoins and that no
acknowledged write is lost.

The raftnode binary must be a failpoint build (Debug or Sanitize: RAFTKV_FAILPOINTS, see
common/failpoint.h); with another build the module prints SKIPPED. Each scenario arms one
point (RAFTKV_FAILPOINTS=<name>[=crash@N]) on one member, or on every member, drives the
cluster until that member dies there (SIGKILL from inside, exactly at the point), restarts it
without the failpoint and checks:
  - the process died at the point (its log names it, exit by SIGKILL), not elsewhere;
  - it starts again, and catches up with the leader (applied index, the same values);
  - every append acknowledged through the gateway during the scenario is in the final value
    exactly once, unacknowledged ones at most once.

Writes go through a kvgateway as 4 client threads appending unique suffixes to 6 keys.
Small snapshots (--snapshot-entries 300, --snapshot-trailing 20) make snapshots, compaction
and InstallSnapshot happen within seconds; a few 300 KiB values make every snapshot longer
than one 1 MiB chunk. RAFTKV_CRASH_POINTS=substring,... runs only the matching scenarios.
"""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster as h  # noqa: E402
import grpc  # noqa: E402

FLAGS = {"snapshot-entries": 300, "snapshot-trailing": 20, "snapshot-log-percent": 0}
KEYS = [b"cp/%d" % i for i in range(6)]
BIG = 300 * 1024


class Appends:
    """Client threads appending unique suffixes through the gateway; remembers which were
    acknowledged. check() reads the final values and verifies exactly-once."""

    def __init__(self, gw, tag, threads=4):
        self.gw, self.tag = gw, tag
        self.acked, self.failed = [], []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.ths = [threading.Thread(target=self._run, args=(t,), daemon=True) for t in range(threads)]

    def start(self):
        for th in self.ths:
            th.start()
        return self

    def _run(self, t):
        P = h.stubs().kv
        ch = self.gw.new_channel()
        kv = h.stubs().kv_grpc.KVStub(ch)
        i = 0
        while not self.stop.is_set():
            key = KEYS[(t + i) % len(KEYS)]
            suffix = b"%s.%d.%d;" % (self.tag, t, i)
            try:
                kv.Append(P.AppendRequest(key=key, suffix=suffix), timeout=h.scaled(3))
                with self.lock:
                    self.acked.append((key, suffix))
            except grpc.RpcError:
                with self.lock:
                    self.failed.append((key, suffix))
                time.sleep(0.02)
            i += 1
        ch.close()

    def finish(self):
        self.stop.set()
        for th in self.ths:
            th.join()

    def count(self):
        with self.lock:
            return len(self.acked)

    def check(self, values):
        """values: key -> final value. Every acknowledged suffix exactly once, the others at
        most once."""
        for key, suffix in self.acked:
            n = values[key].count(suffix)
            assert n == 1, "acknowledged %r on %r found %d times" % (suffix, key, n)
        for key, suffix in self.failed:
            n = values[key].count(suffix)
            assert n <= 1, "unacknowledged %r on %r applied %d times" % (suffix, key, n)
        h.log("%s: %d acknowledged appends all present once, %d unacknowledged at most once"
              % (self.tag, len(self.acked), len(self.failed)))


def read_all(gw):
    P = h.stubs().kv
    out = {}
    for k in KEYS:
        r = h.until(lambda: gw.kv().Get(P.GetRequest(key=k), timeout=h.scaled(3)), 30,
                    "a linearizable read of %r through the gateway" % k)
        out[k] = r.kv.value if r.HasField("kv") else b""
    return out


def died_at(node, point):
    """The node is dead, by SIGKILL, and its log says it was our failpoint."""
    name = point.split("=")[0]
    if node.alive():
        return False
    text = node.log_text()
    last = text[text.rfind("==== harness: start"):]
    assert "failpoint %s: crash" % name in last, \
        "%s died (exit %s) but not at failpoint %s:\n%s" % (node.name, node.proc.returncode, name, node.log_tail(15))
    assert node.proc.returncode == -9, "%s exit status %s, expected SIGKILL" % (node.name, node.proc.returncode)
    return True


def arm(node, point):
    """Restart node with the failpoint armed (kill -9 first if running). It may reach the
    point while starting (a snapshot due at once): then it is already dead, as wanted."""
    if node.alive():
        node.kill()
    node.env = {"RAFTKV_FAILPOINTS": point}
    node.start()
    node.env = {}
    h.until(lambda: died_at(node, point) or node.try_status(), 20, "%s to start armed" % node.name)


def revive_and_check(c, gw, load, crashed):
    """Restart the crashed members without failpoints; they catch up; nothing acknowledged
    is lost; every member holds the same values."""
    for n in crashed:
        n.expected_exit = True
        n.env = {}
        n.start()
    for n in crashed:
        n.wait_ready(timeout=60)
    load.finish()
    values = read_all(gw)
    load.check(values)
    L = c.wait_leader(timeout=30)
    c.wait_caught_up(timeout=60)
    P = h.stubs().kv
    for n in c.nodes:
        for k in KEYS:
            got = n.kv().Get(P.GetRequest(key=k, consistency=P.SERIALIZABLE), timeout=h.scaled(3))
            v = got.kv.value if got.HasField("kv") else b""
            assert v == values[k], "%s holds a different value of %r than the leader %s" % (n.name, k, L.name)


_c = None
_gw = None


def C():
    global _c, _gw
    if _c is None:
        _c = h.Cluster(3, label="crash", flags=FLAGS).start()
        _c.wait_leader()
        _gw = _c.gateway()
        P = h.stubs().kv
        for i in range(6):
            _gw.kv().Put(P.PutRequest(key=b"cp/big/%d" % i, value=b"b" * BIG), timeout=h.scaled(10))
    return _c.revive(), _gw


def a_follower(c):
    L = c.wait_leader()
    return h.rng.choice(c.followers(L))


def run_until(c, gw, tag, dead, what, timeout=90):
    load = Appends(gw, tag).start()
    try:
        h.until(dead, timeout, what, interval=0.05)
    except BaseException:
        load.finish()
        raise
    return load


def follower_point(point, tag):
    c, gw = C()
    T = a_follower(c)
    h.log("arming %s on follower %s" % (point, T.name))
    arm(T, point)
    load = run_until(c, gw, tag, lambda: died_at(T, point), "%s to crash at %s" % (T.name, point))
    h.log("%s crashed at %s after %d acknowledged appends" % (T.name, point, load.count()))
    revive_and_check(c, gw, load, [T])


def every_member_point(point, tag):
    """Every member armed at once (a whole-cluster crash at the same point)."""
    c, gw = C()
    h.log("arming %s on every member" % point)
    for n in c.nodes:
        n.kill()
    for n in c.nodes:
        n.env = {"RAFTKV_FAILPOINTS": point}
        n.start()
    for n in c.nodes:
        n.env = {}
    crashed = []

    def two_down():
        crashed[:] = [n for n in c.nodes if died_at(n, point)]
        return len(crashed) >= 2
    load = run_until(c, gw, tag, two_down, "two members to crash at %s" % point)
    h.log("%s crashed at %s after %d acknowledged appends" % ([n.name for n in crashed], point, load.count()))
    # A member still running is still armed: kill it too (one more crash, anywhere).
    for n in c.nodes:
        if n.alive():
            n.kill()
    revive_and_check(c, gw, load, list(c.nodes))


def install_point(point, tag):
    """A follower that fell behind the leader's compaction receives InstallSnapshot."""
    c, gw = C()
    T = a_follower(c)
    behind = T.status().applied_index
    T.kill()
    L = c.wait_leader(exclude=T)
    load = Appends(gw, tag).start()
    try:
        h.until(lambda: L.status().snapshot_index > behind + FLAGS["snapshot-trailing"] + 50, 120,
                "the leader to compact past %s's log (index %d)" % (T.name, behind))
    except BaseException:
        load.finish()
        raise
    h.log("arming %s on %s, behind at %d" % (point, T.name, behind))
    T.env = {"RAFTKV_FAILPOINTS": point}
    T.start()
    T.env = {}
    h.until(lambda: died_at(T, point), 90, "%s to crash at %s" % (T.name, point), interval=0.05)
    h.log("%s crashed at %s while installing a snapshot" % (T.name, point))
    revive_and_check(c, gw, load, [T])


def vote_point(point, tag):
    """A follower crashes right after making a vote durable, in the election that follows
    the leader's death."""
    c, gw = C()
    L = c.wait_leader()
    T = h.rng.choice(c.followers(L))
    arm(T, point)
    load = Appends(gw, tag).start()
    try:
        h.until(lambda: load.count() > 20, 30, "some acknowledged appends")
        L.kill()
        h.until(lambda: died_at(T, point), 30, "%s to crash after persisting a vote" % T.name, interval=0.02)
    except BaseException:
        load.finish()
        raise
    L.expected_exit = True
    h.log("%s crashed after persisting its vote; %s was killed" % (T.name, L.name))
    revive_and_check(c, gw, load, [T, L])


def bootstrap_point(point, tag):
    """A new member crashes while storing its identity at bootstrap, then starts again."""
    c = h.Cluster(3, label="crashboot", flags=FLAGS)
    T = c.nodes[2]
    T.env = {"RAFTKV_FAILPOINTS": point}
    for n in c.nodes:
        n.start()
    h.until(lambda: died_at(T, point), 30, "%s to crash at %s" % (T.name, point), interval=0.02)
    T.env = {}
    T.expected_exit = True
    for n in c.nodes[:2]:
        n.wait_ready()
    gw = c.gateway()
    load = Appends(gw, tag).start()
    h.until(lambda: load.count() > 20, 30, "some acknowledged appends")
    revive_and_check(c, gw, load, [T])
    problems = c.stop()
    assert not problems, problems


SCENARIOS = [
    ("follower: before a log sync", follower_point, "storage.log.before-sync=crash@20"),
    ("follower: after a log sync", follower_point, "storage.log.after-sync=crash@20"),
    ("every member: before a log sync", every_member_point, "storage.log.before-sync=crash@40"),
    ("every member: after a log sync", every_member_point, "storage.log.after-sync=crash@40"),
    ("follower: after its vote is durable", vote_point, "node.vote.after-persist"),
    ("follower snapshot: before the begin sync", follower_point, "storage.snapshot-begin.before-sync"),
    ("follower snapshot: after the begin sync", follower_point, "storage.snapshot-begin.after-sync"),
    ("follower snapshot: between chunks", follower_point, "storage.snapshot.after-chunk"),
    ("follower snapshot: before the commit sync", follower_point, "storage.snapshot-commit.before-sync"),
    ("follower snapshot: after the commit sync", follower_point, "storage.snapshot-commit.after-sync"),
    ("follower: during compaction", follower_point, "storage.compact.after-batch"),
    ("install: between received chunks", install_point, "storage.snapshot.after-chunk"),
    ("install: received, durable and restored, not yet offered", install_point, "node.install.received"),
    ("install: log truncated, snapshot not yet committed", install_point, "node.install.mid-write"),
    ("install: before the snapshot's commit sync", install_point, "storage.snapshot-commit.before-sync"),
    ("install: snapshot durable, log not yet cleared", install_point, "node.install.after-snapshot-durable"),
    ("bootstrap: before the identity sync", bootstrap_point, "storage.meta.before-sync"),
    ("bootstrap: after the identity sync", bootstrap_point, "storage.meta.after-sync"),
]


def make_test(i, name, fn, point):
    def t():
        fn(point, b"s%d" % i)
    t.__name__ = "test_%02d_%s" % (i, "".join(ch if ch.isalnum() else "_" for ch in name).strip("_"))
    t.__doc__ = "%s (%s)" % (name, point)
    return t


def failpoints_built():
    """Start a throwaway raftnode with a bogus point armed and look for the startup line."""
    import subprocess
    import tempfile
    d = tempfile.mkdtemp(prefix="raftkv-fpcheck-", dir=os.environ.get("RAFTKV_IT_TMPDIR") or None)
    env = dict(os.environ, RAFTKV_FAILPOINTS="none.such")
    port = h.free_ports(1)[0]
    p = subprocess.Popen([h.raftnode_path(), "--name", "x", "--data-dir", d + "/x",
                          "--listen-peer", "127.0.0.1:%d" % port, "--initial-cluster",
                          "x=127.0.0.1:%d" % port], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    out = b""
    deadline = time.monotonic() + h.scaled(20)
    while time.monotonic() < deadline and b"failpoint" not in out.lower():
        line = p.stdout.readline()
        if not line:
            break
        out += line
    p.kill()
    p.wait()
    import shutil
    shutil.rmtree(d, ignore_errors=True)
    return b"failpoints armed" in out


if __name__ == "__main__":
    if not failpoints_built():
        print("SKIPPED: %s is not a failpoint build (Debug or Sanitize)" % h.raftnode_path())
        sys.exit(0)
    only = [s for s in os.environ.get("RAFTKV_CRASH_POINTS", "").split(",") if s]
    tests = [make_test(i, name, fn, point) for i, (name, fn, point) in enumerate(SCENARIOS)
             if not only or any(o in name or o in point for o in only)]
    h.run(tests)
