#!/usr/bin/python3
"""A member whose disk fills up raises an alarm and stops taking writes instead of crashing;
the cluster keeps serving; the member recovers once space is back.

One follower's data directory is a 48 MiB tmpfs (mounted by the test: needs root, else the
module prints SKIPPED). 1 KiB puts through a gateway fill it.
- With the free-space watch (--min-free-bytes), the member logs the NOSPACE alarm, the
  leader's Cluster.Status (through the gateway) and `kvctl status` show it, the member stays
  up, writes keep succeeding; after the tmpfs grows the alarm clears and the member catches up.
- The same on the leader: it refuses writes (UNAVAILABLE: the gateway retries) and hands
  leadership over; writes go on with the next leader.
- With the watch off (--min-free-bytes 0) a write eventually fails for lack of space: the
  member exits with a message naming the cause (before: SIGBUS, silently, from Berkeley DB's
  memory-mapped files); after space is back and a restart it catches up.
"""
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster as h  # noqa: E402
import grpc  # noqa: E402

MIB = 1 << 20
TMPFS_MB = 48  # room for the empty member and its alarm threshold (min-free + cache)
VALUE = b"v" * 1024
_mounts = []


def skip_reason():
    if os.geteuid() != 0:
        return "needs root to mount a tmpfs"
    return None


def mount_tmpfs(path, size_mb):
    os.makedirs(path, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm,mode=0700" % size_mb, "tmpfs", path], check=True)
    _mounts.append(path)


def resize_tmpfs(path, size_mb):
    subprocess.run(["mount", "-o", "remount,size=%dm" % size_mb, path], check=True)


def unmount_all():
    for p in reversed(_mounts):
        subprocess.run(["umount", "-l", p], check=False)
    del _mounts[:]


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def full_cluster(label, min_free, extra_flags=None):
    """3 raftnodes, n3's data dir on a small tmpfs, n3 not the leader; and a gateway."""
    flags = {"snapshot-entries": 4000}
    flags.update(extra_flags or {})
    if min_free is not None:
        flags["min-free-bytes"] = min_free
    c = h.Cluster(3, label=label, flags=flags)
    small = c.nodes[2]
    mount_tmpfs(os.path.dirname(small.data_dir), TMPFS_MB)
    c.start()
    L = c.wait_leader()
    if L is small:  # hand leadership over: SIGTERM transfers it
        small.terminate()
        small.start()
        small.wait_ready()
        L = c.wait_leader(exclude=small)
    # The alarm must come from filling the disk, not be there from the start (which would
    # let it be raised before the member became leader and test nothing about filling).
    assert "NOSPACE" not in small.log_text(), "alarm before any write:\n" + small.log_tail()
    gw = c.gateway()
    return c, small, gw


def fill(gw, until, what, limit=200000, threads=8):
    """1 KiB puts through the gateway from several threads until until() is true (bounded)."""
    P = h.stubs().kv
    stop = threading.Event()
    counts = {"ok": 0, "err": 0}
    lock = threading.Lock()

    def writer(t):
        ch = gw.new_channel()
        kv = h.stubs().kv_grpc.KVStub(ch)
        i = 0
        while not stop.is_set():
            try:
                kv.Put(P.PutRequest(key=b"full/%d/%d" % (t, i % 5000), value=VALUE), timeout=h.scaled(5))
                with lock:
                    counts["ok"] += 1
            except grpc.RpcError:
                with lock:
                    counts["err"] += 1
            i += 1
            if counts["ok"] + counts["err"] > limit:
                break
        ch.close()

    ths = [threading.Thread(target=writer, args=(t,), daemon=True) for t in range(threads)]
    for th in ths:
        th.start()
    try:
        h.until(until, 300, what, interval=0.2)
    finally:
        stop.set()
        for th in ths:
            th.join()
    h.log("%s after %d puts (%d errors)" % (what, counts["ok"], counts["err"]))
    return counts


def alarms_of(status):
    return [(a.member_id, h.stubs().cl.AlarmType.Name(a.type), a.message) for a in status.alarms]


def test_alarm_instead_of_crash():
    c, small, gw = full_cluster("diskfull", 4 * MIB)
    P = h.stubs().kv
    logline = "NOSPACE"
    def alarmed():
        if not small.alive():
            raise h.Fatal("%s died: exit %s\n%s" % (small.name, small.proc.returncode, small.log_tail()))
        return logline in small.log_text()
    fill(gw, alarmed, "the NOSPACE alarm on %s" % small.name)
    assert small.alive(), "%s died" % small.name
    line = [l for l in small.log_text().splitlines() if logline in l][0]
    h.log("alarm log line: %s" % line)
    assert "free" in line and small.data_dir in line, line
    # The leader's status, as the gateway gives it, names the member and the alarm.
    def alarm_seen():
        st = gw.cl().Status(h.stubs().cl.StatusRequest(), timeout=h.scaled(2))
        return [a for a in alarms_of(st) if a[0] == small.id and a[1] == "ALARM_TYPE_NOSPACE"]
    got = h.until(alarm_seen, 10, "the alarm in Cluster.Status through the gateway")
    h.log("Cluster.Status alarms: %s" % got)
    kvctl = os.environ.get("KVCTL", "")
    if kvctl:
        out = subprocess.run([kvctl, "--endpoints", gw.addr, "status"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, timeout=h.scaled(20)).stdout.decode()
        assert "NOSPACE" in out, "kvctl status does not show the alarm:\n" + out
    # The cluster keeps serving writes and reads.
    for i in range(50):
        gw.kv().Put(P.PutRequest(key=b"after/%d" % i, value=b"x"), timeout=h.scaled(5))
    assert gw.kv().Get(P.GetRequest(key=b"after/49"), timeout=h.scaled(5)).kv.value == b"x"
    assert small.alive()
    # Space comes back: the alarm clears and the member catches up.
    resize_tmpfs(os.path.dirname(small.data_dir), 512)
    h.until(lambda: "NOSPACE alarm cleared" in small.log_text(), 20, "the alarm to clear")
    h.until(lambda: not alarm_seen(), 10, "the alarm to leave Cluster.Status")
    gw.kv().Put(P.PutRequest(key=b"after/last", value=b"y"), timeout=h.scaled(5))
    h.until(lambda: small.kv().Get(P.GetRequest(key=b"after/last", consistency=P.SERIALIZABLE),
                                   timeout=h.scaled(2)).kv.value == b"y",
            60, "%s to catch up" % small.name)


def make_leader(c, node, election_s):
    """Make `node` the leader deterministically: a leader's SIGTERM hands leadership to a voter
    it heard from in its last check-quorum round, so with the third member down for one round
    that is `node`. The third member is back before `node`'s own check-quorum round ends."""
    L = c.wait_leader()
    if L is node:
        return
    other = [n for n in c.nodes if n is not L and n is not node][0]
    other.kill()
    # One check-quorum round (an election timeout) without `other`: nothing to poll for.
    time.sleep(h.scaled(election_s * 1.2))
    L.terminate()
    other.start()
    L.start()
    h.until(lambda: c.wait_leader(timeout=2) is node, 30, "%s to lead" % node.name)


def test_leader_hands_over_when_its_disk_fills():
    """The member whose disk fills is the leader: it refuses writes (UNAVAILABLE, so the
    gateway retries) and hands leadership to another member; writes go on there."""
    c, small, gw = full_cluster("diskfullL", 4 * MIB, {"election-ms": 1500})
    make_leader(c, small, 1.5)
    assert small.status().role == h.stubs().cl.StatusResponse.LEADER
    P = h.stubs().kv

    def alarmed():
        if not small.alive():
            raise h.Fatal("%s died: exit %s\n%s" % (small.name, small.proc.returncode, small.log_tail()))
        return "NOSPACE alarm" in small.log_text()
    counts = fill(gw, alarmed, "the NOSPACE alarm on the leader %s" % small.name)
    h.until(lambda: "hands leadership over" in small.log_text(), 10,
            "%s to say it hands leadership over" % small.name)
    L = h.until(lambda: c.wait_leader() is not small and c.wait_leader(), 20, "a new leader")
    h.log("%s handed over to %s (%d puts, %d errors while filling)" % (small.name, L.name, counts["ok"], counts["err"]))
    for i in range(20):
        gw.kv().Put(P.PutRequest(key=b"afterL/%d" % i, value=b"x"), timeout=h.scaled(5))
    assert small.alive()
    resize_tmpfs(os.path.dirname(small.data_dir), 512)
    h.until(lambda: "NOSPACE alarm cleared" in small.log_text(), 20, "the alarm to clear")
    h.until(lambda: small.kv().Get(P.GetRequest(key=b"afterL/19", consistency=P.SERIALIZABLE),
                                   timeout=h.scaled(2)).kv.value == b"x",
            60, "%s to catch up" % small.name)


def test_failed_write_exits_naming_the_cause():
    c, small, gw = full_cluster("diskfull0", 0)
    P = h.stubs().kv
    fill(gw, lambda: not small.alive(), "%s to stop" % small.name)
    rc = small.proc.returncode
    text = small.log_text()
    h.log("%s exit status %s; last lines:\n%s" % (small.name, rc, small.log_tail(5)))
    assert rc != -7, "%s died of SIGBUS" % small.name
    assert "no space left" in text.lower(), "the log does not name the cause:\n" + small.log_tail()
    small.expected_exit = True
    # Space back, restart: it rejoins and catches up, nothing acknowledged lost.
    resize_tmpfs(os.path.dirname(small.data_dir), 512)
    gw.kv().Put(P.PutRequest(key=b"after0/last", value=b"z"), timeout=h.scaled(5))
    small.start()
    small.wait_ready(timeout=60)
    h.until(lambda: small.kv().Get(P.GetRequest(key=b"after0/last", consistency=P.SERIALIZABLE),
                                   timeout=h.scaled(2)).kv.value == b"z",
            60, "%s to catch up" % small.name)


if __name__ == "__main__":
    why = skip_reason()
    if why:
        print("SKIPPED: %s" % why)
        sys.exit(0)
    import atexit
    atexit.register(unmount_all)
    try:
        h.run([test_alarm_instead_of_crash, test_leader_hands_over_when_its_disk_fills,
               test_failed_write_exits_naming_the_cause])
    finally:
        unmount_all()
