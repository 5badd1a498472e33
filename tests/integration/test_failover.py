#!/usr/bin/python3
"""Leader crashes (kill -9): acknowledged writes survive, retried writes apply exactly once."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster as h  # noqa: E402
import grpc  # noqa: E402

_c = None


def C():
    global _c
    if _c is None:
        _c = h.Cluster(3, label="failover").start()
    return _c.revive()


class Writers:
    """`n` threads writing distinct keys w<t>/<i> = v<t>.<i> to whoever they believe is leader,
    following `raftkv-leader` hints; every acknowledged write is recorded."""

    def __init__(self, c, n):
        self.c = c
        self.n = n
        self.acked = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.errors = {}
        self.target = c.wait_leader().client_addr
        self.threads = [threading.Thread(target=self.loop, args=(t,), daemon=True) for t in range(n)]
        self.after_kill = 0
        self.killed = False

    def loop(self, t):
        P = h.stubs().kv
        import grpc as g
        chans = {}
        i = 0
        target = self.target
        while not self.stop.is_set():
            key, val = b"w%d/%06d" % (t, i), b"v%d.%d" % (t, i)
            i += 1
            ch = chans.get(target) or chans.setdefault(target, g.insecure_channel(target, options=h.CHANNEL_OPTIONS))
            try:
                h.stubs().kv_grpc.KVStub(ch).Put(P.PutRequest(key=key, value=val), timeout=h.scaled(2))
                with self.lock:
                    self.acked[key] = val
                    if self.killed:
                        self.after_kill += 1
            except g.RpcError as e:
                with self.lock:
                    self.errors[str(e.code())] = self.errors.get(str(e.code()), 0) + 1
                hint = h.leader_hint(e)
                if hint:
                    target = hint[1]
                else:
                    ln, _ = self.c.leader_view()
                    if ln is not None:
                        target = ln.client_addr
                    time.sleep(0.02)
        for ch in chans.values():
            ch.close()

    def start(self):
        for th in self.threads:
            th.start()

    def count(self):
        with self.lock:
            return len(self.acked)

    def finish(self):
        self.stop.set()
        for th in self.threads:
            th.join(h.scaled(10))
        assert not any(th.is_alive() for th in self.threads), "writer threads did not stop"


ROUNDS = 3


def test_leader_kill_keeps_acknowledged_writes():
    """ROUNDS times: kill -9 the leader under write load, wait for a new leader and more acks,
    restart the killed node. Then every acknowledged write must be readable."""
    c = C()
    P = h.stubs().kv
    w = Writers(c, 8)
    w.start()
    try:
        for rnd in range(ROUNDS):
            L = c.wait_leader(timeout=15)
            base = w.count()
            h.until(lambda: w.count() >= base + 100, 30, "100 acknowledged writes before crash %d" % rnd)
            h.log("round %d: killing leader %s with %d writes acknowledged" % (rnd, L.name, w.count()))
            with w.lock:
                w.killed = True
                w.after_kill = 0
            L.kill()
            t_kill = time.monotonic()
            L2 = c.wait_leader(timeout=15)
            assert L2 is not L
            h.log("round %d: new leader %s %.2fs after the kill" % (rnd, L2.name, time.monotonic() - t_kill))
            h.until(lambda: w.after_kill >= 50, 30, "50 acknowledged writes after crash %d" % rnd)
            L.restart()
    finally:
        w.finish()
    h.log("acknowledged %d writes; errors %s" % (len(w.acked), w.errors))
    # every acknowledged write is readable with linearizable reads from the current leader
    L2 = c.wait_leader()
    missing = []
    for t in range(w.n):
        r = L2.kv().Range(P.RangeRequest(key=b"w%d/" % t, prefix=True, limit=0), timeout=h.scaled(10))
        got = {x.key: x.value for x in r.kvs}
        assert not r.more, "range limit too small for the test"
        for k, v in w.acked.items():
            if k.startswith(b"w%d/" % t) and got.get(k) != v:
                missing.append((k, v, got.get(k)))
    assert not missing, "%d acknowledged writes lost, e.g. %r" % (len(missing), missing[:5])
    # every node catches up and serves the same data
    last = max(w.acked)
    for n in c.nodes:
        h.until(lambda: n.kv().Get(P.GetRequest(key=last, consistency=P.SERIALIZABLE),
                                   timeout=h.scaled(2)).kv.value == w.acked[last],
                20, "%s to catch up" % n.name)
    c.wait_caught_up()
    ref = None
    for n in c.nodes:
        r = n.kv().Range(P.RangeRequest(key=b"w", range_end=b"x", count_only=True, consistency=P.SERIALIZABLE),
                         timeout=h.scaled(5))
        st = n.status()
        ref = ref or (r.count, st.revision)
        assert (r.count, st.revision) == ref, "replicas differ: %s has %s, expected %s" % (
            n.name, (r.count, st.revision), ref)


def test_duplicate_write_after_leader_change():
    c = C()
    P = h.stubs().kv
    L = c.wait_leader()
    client = h.rng.randrange(1, 2**63)
    key = b"dup/%d" % client
    h.log("client id %d" % client)
    a1 = L.kv().Append(P.AppendRequest(key=key, suffix=b"a", write_id=h.wid(client, 1)), timeout=h.scaled(5))
    assert a1.kv.value == b"a" and a1.kv.version == 1, a1
    L.kill()
    L2 = c.wait_leader(timeout=15)
    # the retry of (client, 1) on the new leader returns the first result and does not append again
    a1r = c.call("Append", P.AppendRequest(key=key, suffix=b"a", write_id=h.wid(client, 1)))
    assert a1r.kv.value == b"a" and a1r.kv.version == 1, ("retry applied again", a1r)
    g = L2.kv().Get(P.GetRequest(key=key), timeout=h.scaled(5))
    assert g.kv.value == b"a" and g.kv.version == 1, ("retry applied again", g.kv)
    # a new sequence appends again; its retry is deduplicated too
    a2 = c.call("Append", P.AppendRequest(key=key, suffix=b"b", write_id=h.wid(client, 2)))
    assert a2.kv.value == b"ab" and a2.kv.version == 2, a2
    a2r = c.call("Append", P.AppendRequest(key=key, suffix=b"b", write_id=h.wid(client, 2)))
    assert a2r.kv.value == b"ab" and a2r.header.revision == a2.header.revision, a2r
    # deduplicated Put and Txn as well (same pair, different client for isolation)
    c2 = client ^ 1 or 2
    p1 = c.call("Put", P.PutRequest(key=key + b"/p", value=b"1", write_id=h.wid(c2, 1)))
    p1r = c.call("Put", P.PutRequest(key=key + b"/p", value=b"1", write_id=h.wid(c2, 1)))
    assert p1r.header.revision == p1.header.revision, (p1, p1r)
    assert L2.kv().Get(P.GetRequest(key=key + b"/p"), timeout=h.scaled(5)).kv.version == 1
    # the old leader returns and agrees
    L.restart()
    h.until(lambda: L.kv().Get(P.GetRequest(key=key, consistency=P.SERIALIZABLE),
                               timeout=h.scaled(2)).kv.value == b"ab", 20, "%s to catch up" % L.name)
    g = c.wait_leader().kv().Get(P.GetRequest(key=key), timeout=h.scaled(5))
    assert g.kv.value == b"ab" and g.kv.version == 2, g.kv


if __name__ == "__main__":
    h.run([test_leader_kill_keeps_acknowledged_writes, test_duplicate_write_after_leader_change])
