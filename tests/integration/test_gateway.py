#!/usr/bin/python3
"""kvgateway in front of a real 3-node cluster: every call round-trips, leader kill -9 under
concurrent Append writers applies every write once and fails none, a gateway started before
its raftnodes becomes useful, serializable reads, deadlines, client errors, health."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster as h  # noqa: E402
import grpc  # noqa: E402

DEFAULT_TIMEOUT_MS = 3000  # the gateway's --default-timeout-ms here
GW_FLAGS = {"probe-interval-ms": 100, "default-timeout-ms": DEFAULT_TIMEOUT_MS}
_c = None
_g = None


def C():
    global _c
    if _c is None:
        _c = h.Cluster(3, label="gateway").start()
    return _c.revive()


def G():
    """The module's gateway (restarted if a failed test left it down), SERVING."""
    global _g
    c = C()
    if _g is None:
        _g = c.gateway(flags=GW_FLAGS)
    elif not _g.alive():
        _g.start(serving=True)
    _g.wait_serving()
    c.wait_leader()
    return _g


def P():
    return h.stubs().kv


def timed(fn):
    t0 = time.monotonic()
    try:
        return fn(), time.monotonic() - t0
    except grpc.RpcError as e:
        return e, time.monotonic() - t0


# ---------------------------------------------------------------------------------- tests
def test_every_call_round_trips():
    g, c = G(), C()
    p, kv = P(), G().kv()
    T = h.scaled(10)
    pre = b"rt/%d/" % h.rng.randrange(1 << 30)
    r1 = kv.Put(p.PutRequest(key=pre + b"a", value=b"1"), timeout=T)
    assert r1.header.revision > 0, r1
    r2 = kv.Put(p.PutRequest(key=pre + b"a", value=b"2", prev_kv=True), timeout=T)
    assert r2.prev_kv.value == b"1" and r2.header.revision > r1.header.revision, r2
    got = kv.Get(p.GetRequest(key=pre + b"a"), timeout=T).kv
    assert (got.value, got.version, got.mod_revision) == (b"2", 2, r2.header.revision), got
    assert not kv.Get(p.GetRequest(key=pre + b"missing"), timeout=T).HasField("kv")
    for k in (b"b", b"c", b"d"):
        kv.Put(p.PutRequest(key=pre + k, value=k * 3), timeout=T)
    r = kv.Range(p.RangeRequest(key=pre, prefix=True), timeout=T)
    assert [x.key for x in r.kvs] == [pre + k for k in (b"a", b"b", b"c", b"d")] and not r.more, r
    r = kv.Range(p.RangeRequest(key=pre + b"b", range_end=pre + b"d", keys_only=True), timeout=T)
    assert [(x.key, x.value) for x in r.kvs] == [(pre + b"b", b""), (pre + b"c", b"")], r
    r = kv.Range(p.RangeRequest(key=pre, prefix=True, count_only=True), timeout=T)
    assert r.count == 4 and not r.kvs, r
    r = kv.Range(p.RangeRequest(key=pre, prefix=True, limit=2), timeout=T)
    assert len(r.kvs) == 2 and r.more and r.next_key, r
    a = kv.Append(p.AppendRequest(key=pre + b"a", suffix=b"xy"), timeout=T)
    assert a.kv.value == b"2xy" and a.kv.version == 3, a
    # Txn: both branches
    cmp_ok = p.Compare(key=pre + b"a", result=p.Compare.EQUAL, value=b"2xy")
    t = kv.Txn(p.TxnRequest(compare=[cmp_ok],
                            success=[p.RequestOp(put=p.PutRequest(key=pre + b"t", value=b"yes")),
                                     p.RequestOp(range=p.RangeRequest(key=pre + b"a"))],
                            failure=[p.RequestOp(put=p.PutRequest(key=pre + b"t", value=b"no"))]), timeout=T)
    assert t.succeeded and len(t.responses) == 2 and t.responses[1].range.kvs[0].value == b"2xy", t
    cmp_bad = p.Compare(key=pre + b"a", result=p.Compare.GREATER, version=100)
    t = kv.Txn(p.TxnRequest(compare=[cmp_bad],
                            success=[p.RequestOp(put=p.PutRequest(key=pre + b"t", value=b"yes2"))],
                            failure=[p.RequestOp(put=p.PutRequest(key=pre + b"t", value=b"no"))]), timeout=T)
    assert not t.succeeded
    assert kv.Get(p.GetRequest(key=pre + b"t"), timeout=T).kv.value == b"no"
    # Delete: one key with prev_kv, then a range
    d = kv.Delete(p.DeleteRequest(key=pre + b"t", prev_kv=True), timeout=T)
    assert d.deleted == 1 and d.prev_kvs[0].value == b"no", d
    d = kv.Delete(p.DeleteRequest(key=pre + b"b", range_end=pre + b"e"), timeout=T)
    assert d.deleted == 3, d
    r = kv.Range(p.RangeRequest(key=pre, prefix=True), timeout=T)
    assert [x.key for x in r.kvs] == [pre + b"a"], r
    # a client-chosen write id passes through: the retry is deduplicated
    client = h.rng.randrange(1, 2**63)
    h.log("client id %d" % client)
    a1 = kv.Append(p.AppendRequest(key=pre + b"w", suffix=b"z", write_id=h.wid(client, 1)), timeout=T)
    a1r = kv.Append(p.AppendRequest(key=pre + b"w", suffix=b"z", write_id=h.wid(client, 1)), timeout=T)
    assert a1r.kv.value == b"z" and a1r.header.revision == a1.header.revision, (a1, a1r)
    # the same data is on the cluster itself
    L = c.wait_leader()
    assert L.kv().Get(p.GetRequest(key=pre + b"a"), timeout=T).kv.value == b"2xy"
    # Cluster service: the leader's status; the member list
    S = h.stubs().cl
    st = g.cl().Status(S.StatusRequest(), timeout=T)
    Ls = L.status()
    assert st.role == S.StatusResponse.LEADER and st.id == Ls.id and st.name == L.name, st
    assert st.leader_client_address == L.client_addr and len(st.members) == 3, st
    ml = g.cl().MemberList(S.MemberListRequest(), timeout=T)
    assert sorted(m.name for m in ml.members) == ["n1", "n2", "n3"], ml
    assert {m.peer_address for m in ml.members} == {n.peer_addr for n in c.nodes}, ml


def test_serializable_reads():
    g = G()
    p = P()
    key = b"ser/%d" % h.rng.randrange(1 << 30)
    g.kv().Put(p.PutRequest(key=key, value=b"v1"), timeout=h.scaled(10))
    # any node may answer, possibly a little stale: bounded poll until the value is there
    h.until(lambda: g.kv().Get(p.GetRequest(key=key, consistency=p.SERIALIZABLE),
                               timeout=h.scaled(2)).kv.value == b"v1", 10, "serializable Get through the gateway")
    h.until(lambda: [x.value for x in g.kv().Range(p.RangeRequest(key=key, consistency=p.SERIALIZABLE),
                                                   timeout=h.scaled(2)).kvs] == [b"v1"],
            10, "serializable Range through the gateway")


def test_client_errors_pass_through():
    """The client's own errors come back at once with their code (no retrying until the
    deadline) and change nothing."""
    g = G()
    p, kv = P(), g.kv()
    T = h.scaled(10)
    rev0 = g.cl().Status(h.stubs().cl.StatusRequest(), timeout=T).revision
    quick = h.scaled(2.0)
    cases = [
        ("Put empty key", lambda: kv.Put(p.PutRequest(key=b"", value=b"x"), timeout=T), grpc.StatusCode.INVALID_ARGUMENT),
        ("Get empty key", lambda: kv.Get(p.GetRequest(key=b""), timeout=T), grpc.StatusCode.INVALID_ARGUMENT),
        ("Append empty key", lambda: kv.Append(p.AppendRequest(key=b"", suffix=b"x"), timeout=T),
         grpc.StatusCode.INVALID_ARGUMENT),
        ("Delete empty key", lambda: kv.Delete(p.DeleteRequest(key=b""), timeout=T), grpc.StatusCode.INVALID_ARGUMENT),
        ("Range limit too large", lambda: kv.Range(p.RangeRequest(key=b"a", limit=10001), timeout=T),
         grpc.StatusCode.INVALID_ARGUMENT),
        ("Put value over 1 MiB", lambda: kv.Put(p.PutRequest(key=b"big", value=b"x" * ((1 << 20) + 1)), timeout=T),
         grpc.StatusCode.RESOURCE_EXHAUSTED),
    ]
    for what, fn, code in cases:
        e, dt = timed(fn)
        assert isinstance(e, grpc.RpcError), "%s: expected %s, got %r" % (what, code, e)
        assert e.code() == code, "%s: expected %s, got %s (%s)" % (what, code, e.code(), e.details())
        assert dt < quick, "%s: %s took %.2fs (retried?)" % (what, code, dt)
    # a session starts at sequence 1: another sequence of an unknown client is refused
    client = h.rng.randrange(1, 2**63)
    h.log("client id %d" % client)
    e, dt = timed(lambda: kv.Put(p.PutRequest(key=b"seq", value=b"0", write_id=h.wid(client, 4)), timeout=T))
    assert isinstance(e, grpc.RpcError) and e.code() == grpc.StatusCode.FAILED_PRECONDITION, e
    assert "session unknown or expired" in e.details(), e.details()
    assert dt < quick, "FAILED_PRECONDITION took %.2fs" % dt
    # an older sequence of the same client: FAILED_PRECONDITION
    kv.Put(p.PutRequest(key=b"seq", value=b"1", write_id=h.wid(client, 1)), timeout=T)
    kv.Put(p.PutRequest(key=b"seq", value=b"5", write_id=h.wid(client, 5)), timeout=T)
    e, dt = timed(lambda: kv.Put(p.PutRequest(key=b"seq", value=b"3", write_id=h.wid(client, 3)), timeout=T))
    assert isinstance(e, grpc.RpcError) and e.code() == grpc.StatusCode.FAILED_PRECONDITION, e
    assert dt < quick, "FAILED_PRECONDITION took %.2fs" % dt
    assert kv.Get(p.GetRequest(key=b"seq"), timeout=T).kv.value == b"5"
    rev1 = g.cl().Status(h.stubs().cl.StatusRequest(), timeout=T).revision
    assert rev1 == rev0 + 2, "revision %d -> %d: a refused request changed something" % (rev0, rev1)


def test_tiny_deadline():
    """Deadlines far too short for a replicated write: DEADLINE_EXCEEDED at once, no hang.
    (A 1 ms Put can succeed on a fast machine, so a 512 KiB value with 1 ms and an already
    negligible 10 µs deadline are used.)"""
    g = G()
    p = P()
    cases = [("10 us", p.PutRequest(key=b"tiny", value=b"x"), 1e-5),
             ("100 us", p.PutRequest(key=b"tiny", value=b"x"), 1e-4),
             ("1 ms, 512 KiB", p.PutRequest(key=b"tiny", value=b"x" * (512 << 10)), 1e-3)]
    # Either side may notice first (the client's own timer, or the gateway answering): try
    # each several times so that the gateway's answer is seen too.
    for what, req, t in [cs for cs in cases for _ in range(10)]:
        e, dt = timed(lambda: g.kv().Put(req, timeout=t))
        assert isinstance(e, grpc.RpcError), "%s: Put succeeded" % what
        assert e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, (what, e.code(), e.details())
        assert dt < h.scaled(1), (what, dt)
    # the gateway is fine afterwards
    g.kv().Put(p.PutRequest(key=b"tiny", value=b"ok"), timeout=h.scaled(10))


def test_health_majority_down_and_back():
    """Two of three raftnodes killed: health NOT_SERVING, writes end with DEADLINE_EXCEEDED at
    the client's deadline (or the gateway's default one) instead of hanging, serializable
    reads still work from the survivor; back up: SERVING and writes work."""
    c, g = C(), G()
    p = P()
    key = b"maj/%d" % h.rng.randrange(1 << 30)
    g.kv().Put(p.PutRequest(key=key, value=b"before"), timeout=h.scaled(10))
    c.wait_caught_up()
    L = c.wait_leader()
    victims = [L, h.rng.choice(c.followers(L))]
    survivor = [n for n in c.nodes if n not in victims][0]
    h.log("killing %s, keeping %s" % ([n.name for n in victims], survivor.name))
    for n in victims:
        n.kill()
    g.wait_health("NOT_SERVING", timeout=15)
    # serializable reads: the survivor answers
    r = h.until(lambda: g.kv().Get(p.GetRequest(key=key, consistency=p.SERIALIZABLE), timeout=h.scaled(3)),
                10, "serializable Get with a majority down")
    assert r.kv.value == b"before", r
    # a client deadline is kept
    e, dt = timed(lambda: g.kv().Put(p.PutRequest(key=key, value=b"x"), timeout=1.0))
    assert isinstance(e, grpc.RpcError) and e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, e
    assert dt < 1.0 + h.scaled(1.0), "Put with a 1 s deadline took %.2fs" % dt
    # no client deadline: the gateway's default one
    e, dt = call_without_deadline(lambda: g.kv().Put.future(p.PutRequest(key=key, value=b"y")),
                                  DEFAULT_TIMEOUT_MS / 1000 + h.scaled(10))
    assert isinstance(e, grpc.RpcError), "Put without deadline succeeded with a majority down: %r" % e
    assert e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, (e.code(), e.details())
    assert DEFAULT_TIMEOUT_MS / 1000 * 0.8 <= dt <= DEFAULT_TIMEOUT_MS / 1000 + h.scaled(1.5), \
        "no-deadline Put failed after %.2fs, --default-timeout-ms is %d" % (dt, DEFAULT_TIMEOUT_MS)
    for n in victims:
        n.start()
    for n in victims:
        n.wait_ready()
    g.wait_serving(timeout=20)
    r = g.kv().Put(p.PutRequest(key=key, value=b"after"), timeout=h.scaled(10))
    assert g.kv().Get(p.GetRequest(key=key), timeout=h.scaled(10)).kv.value == b"after"
    assert r.header.revision > 0


def call_without_deadline(start, bound):
    """Start a future-returning call without a deadline; wait at most `bound` s for its
    outcome (then cancel it and fail: the gateway hangs)."""
    t0 = time.monotonic()
    fut = start()
    try:
        r = fut.result(timeout=bound)
    except grpc.FutureTimeoutError:
        fut.cancel()
        raise AssertionError("a call without deadline had no answer after %.1fs" % bound)
    except grpc.RpcError as e:
        return e, time.monotonic() - t0
    return r, time.monotonic() - t0


class Appenders:
    """`n` threads, each with its own channel to the gateway, appending unique suffixes
    b"<t>.<i>;" round-robin to KEYS keys (no write_id: the gateway assigns one)."""

    KEYS = 4

    def __init__(self, g, n, prefix, deadline_s):
        self.g = g
        self.n = n
        self.prefix = prefix
        self.deadline = deadline_s
        self.lock = threading.Lock()
        self.acked = {}  # suffix -> key
        self.failed = {}  # suffix -> (key, code, details)
        self.latency_max = 0.0
        self.stop = threading.Event()
        self.crashed = []
        self.threads = [threading.Thread(target=self.loop, args=(t,), daemon=True) for t in range(n)]

    def key(self, i):
        return b"%s%d" % (self.prefix, i)

    def loop(self, t):
        try:
            self._loop(t)
        except BaseException as e:  # noqa: BLE001 - reported by count()
            with self.lock:
                self.crashed.append("thread %d: %r" % (t, e))
            raise

    def _loop(self, t):
        p = P()
        ch = self.g.new_channel()
        stub = h.stubs().kv_grpc.KVStub(ch)
        i = 0
        try:
            while not self.stop.is_set():
                key = self.key((t + i) % self.KEYS)
                suf = b"%d.%d;" % (t, i)
                i += 1
                t0 = time.monotonic()
                try:
                    stub.Append(p.AppendRequest(key=key, suffix=suf), timeout=self.deadline)
                    with self.lock:
                        self.acked[suf] = key
                        self.latency_max = max(self.latency_max, time.monotonic() - t0)
                except grpc.RpcError as e:
                    with self.lock:
                        self.failed[suf] = (key, e.code(), e.details())
        finally:
            ch.close()

    def count(self):
        with self.lock:
            if self.crashed:
                raise h.Fatal("appender threads crashed: %s" % self.crashed)
            return len(self.acked)

    def start(self):
        for th in self.threads:
            th.start()

    def finish(self):
        self.stop.set()
        for th in self.threads:
            th.join(self.deadline + h.scaled(10))
        assert not any(th.is_alive() for th in self.threads), "appender threads did not stop"


def test_leader_kill_under_appends():
    """8 clients append through the gateway; the leader is kill -9'd three times. Every request
    succeeds within its deadline; every acknowledged suffix is in the final values exactly
    once (in each client's order), an unacknowledged one at most once, nothing else."""
    c, g = C(), G()
    deadline = h.scaled(10)
    prefix = b"app/%d/" % h.rng.randrange(1 << 30)
    w = Appenders(g, 8, prefix, deadline)
    w.start()
    try:
        for rnd in range(3):
            L = c.wait_leader(timeout=15)
            base = w.count()
            h.until(lambda: w.count() >= base + 100, 30, "100 acknowledged appends before kill %d" % rnd)
            h.log("round %d: killing leader %s (%d appends acknowledged)" % (rnd, L.name, w.count()))
            L.kill()
            t_kill = time.monotonic()
            after = w.count()
            h.until(lambda: w.count() >= after + 100, 30, "100 acknowledged appends after kill %d" % rnd)
            h.log("round %d: 100 more appends acknowledged %.2fs after the kill" % (rnd, time.monotonic() - t_kill))
            L.start()
            L.wait_ready()
    finally:
        w.finish()
    h.log("acknowledged %d, failed %d, slowest acknowledged %.2fs" % (len(w.acked), len(w.failed), w.latency_max))
    assert not w.failed, "%d appends failed, e.g. %r" % (len(w.failed), sorted(w.failed.items())[:5])
    # final values, read linearizably on the cluster itself
    p = P()
    problems = []
    seen = {}
    for i in range(Appenders.KEYS):
        key = w.key(i)
        r = c.call("Get", p.GetRequest(key=key))
        parts = [x + b";" for x in r.kv.value.split(b";") if x]
        for pos, suf in enumerate(parts):
            if suf in seen:
                problems.append("suffix %r applied twice (%r and %r)" % (suf, seen[suf], key))
            seen[suf] = key
        # each client's acknowledged suffixes in that client's order
        order = {}
        for suf in parts:
            if suf in w.acked:
                t, n = (int(x) for x in suf[:-1].split(b"."))
                if order.get(t, -1) > n:
                    problems.append("client %d's appends out of order in %r" % (t, key))
                order[t] = n
    for suf, key in w.acked.items():
        if suf not in seen:
            problems.append("acknowledged %r missing from %r" % (suf, key))
        elif seen[suf] != key:
            problems.append("acknowledged %r in %r, sent to %r" % (suf, seen[suf], key))
    for suf in seen:
        if suf not in w.acked and suf not in w.failed:
            problems.append("unknown suffix %r" % suf)
    assert not problems, "%d problems: %s" % (len(problems), problems[:10])
    # the gateway reads the same
    for i in range(Appenders.KEYS):
        v = g.kv().Get(p.GetRequest(key=w.key(i)), timeout=h.scaled(10)).kv.value
        assert v == c.call("Get", p.GetRequest(key=w.key(i))).kv.value


def test_gateway_before_raftnodes():
    """A gateway whose raftnodes are not running yet: NOT_SERVING, a call without deadline
    fails UNAVAILABLE at the default deadline; once they start: SERVING, writes succeed."""
    c2 = h.Cluster(3, label="late")
    g2 = h.Gateway(c2, flags={"probe-interval-ms": 100, "default-timeout-ms": 1500}, name="gw-late")
    g2.start(wait=True)
    p = P()
    for svc in ("", "raftkv.v1.KV"):
        st = g2.health_status(svc)
        assert st == "NOT_SERVING", (svc, st)
    e, dt = call_without_deadline(lambda: g2.kv().Put.future(p.PutRequest(key=b"early", value=b"x")),
                                  h.scaled(10))
    assert isinstance(e, grpc.RpcError), e
    assert e.code() == grpc.StatusCode.UNAVAILABLE, (e.code(), e.details())
    assert dt <= 1.5 + h.scaled(1.5), "took %.2fs with --default-timeout-ms 1500" % dt
    e, dt = timed(lambda: g2.kv().Put(p.PutRequest(key=b"early", value=b"x"), timeout=0.5))
    assert isinstance(e, grpc.RpcError) and e.code() in (grpc.StatusCode.UNAVAILABLE,
                                                        grpc.StatusCode.DEADLINE_EXCEEDED), e
    assert dt < 0.5 + h.scaled(1), dt
    t0 = time.monotonic()
    c2.start()
    g2.wait_serving(timeout=30)
    h.log("gateway SERVING %.2fs after the raftnodes started" % (time.monotonic() - t0))
    r = g2.kv().Put(p.PutRequest(key=b"late", value=b"ok"), timeout=h.scaled(10))
    assert r.header.revision > 0
    assert g2.kv().Get(p.GetRequest(key=b"late"), timeout=h.scaled(10)).kv.value == b"ok"
    assert c2.call("Get", p.GetRequest(key=b"late")).kv.value == b"ok"
    problems = c2.stop()
    assert not problems, problems


def test_sigterm_exits_zero():
    g = G()
    rc = g.terminate()
    assert rc == 0, "kvgateway exit status %s after SIGTERM" % rc
    assert not g.bad_log_lines(), g.bad_log_lines()


if __name__ == "__main__":
    print("kvgateway: %s" % h.kvgateway_path(), flush=True)
    h.run([test_every_call_round_trips, test_serializable_reads, test_client_errors_pass_through,
           test_tiny_deadline, test_health_majority_down_and_back, test_leader_kill_under_appends,
           test_gateway_before_raftnodes, test_sigterm_exits_zero])
