#!/usr/bin/python3
"""Election and follower redirects on a real 3-node cluster.

The cluster runs WITHOUT --listen-client: clients use the peer ports, so this module also
checks that one listen address serves KV, Cluster and Raft alike.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster as h  # noqa: E402
import grpc  # noqa: E402

ELECTION_BOUND_S = 10  # generous for ASan builds on 2 shared cores; election-ms is 250
_c = None


def C():
    global _c
    if _c is None:
        _c = h.Cluster(3, label="election", listen_client=False)
    return _c.revive()


def test_one_leader_elected():
    c = C()
    t0 = time.monotonic()
    c.start()
    L = c.wait_leader(timeout=ELECTION_BOUND_S)
    h.log("leader %s after %.2fs" % (L.name, time.monotonic() - t0))
    sts = {n: n.status() for n in c.nodes}
    Role = h.stubs().cl.StatusResponse
    leaders = [n for n, s in sts.items() if s.role == Role.LEADER]
    assert leaders == [L], leaders
    ls = sts[L]
    assert ls.term >= 1
    ids = set()
    for n, s in sts.items():
        assert s.name == n.name, (s.name, n.name)
        assert s.id != 0
        ids.add(s.id)
        assert s.leader_id == ls.id and s.term == ls.term, (n.name, s)
        assert s.leader_client_address == L.client_addr, (n.name, s.leader_client_address, L.client_addr)
        if n is not L:
            assert s.role == Role.FOLLOWER, (n.name, s.role)
        assert s.version, "Status.version is empty"
        assert len(s.members) == 3, s.members
        by_name = {m.name: m for m in s.members}
        for nd in c.nodes:
            m = by_name.get(nd.name)
            assert m is not None, ("member missing", nd.name, s.members)
            assert m.peer_address == nd.peer_addr, (m, nd.peer_addr)
            # Itself and the leader are right at once; the others' client addresses arrive
            # with their peer streams (checked below, with a bound).
            if nd is n or nd is L:
                assert m.client_address == nd.client_addr, (n.name, m, nd.client_addr)
            else:
                assert m.client_address in ("", nd.client_addr), (n.name, m, nd.client_addr)
            assert not m.is_learner
    assert len(ids) == 3, "node ids are not distinct: %s" % ids

    # Every member learns every other member's client address (each opens its stream to
    # every peer at start, even followers that exchange no Raft messages).
    want = {nd.name: nd.client_addr for nd in c.nodes}

    def all_known():
        return all({m.name: m.client_address for m in n.status().members} == want for n in c.nodes)
    h.until(all_known, 5, "every member knows every client address")
    for n, s in sts.items():
        assert {m.id for m in s.members} == ids, (n.name, s.members)
    # MemberList agrees with Status
    ml = L.cl().MemberList(h.stubs().cl.MemberListRequest(), timeout=h.scaled(2))
    assert sorted((m.id, m.name, m.peer_address) for m in ml.members) == \
        sorted((m.id, m.name, m.peer_address) for m in ls.members), ml
    # Normally the leader stays the leader while nothing fails. Only reported: on a loaded CI
    # machine (ASan, ctest -j2) a 250 ms election timeout can legitimately expire.
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        ln, _ = c.leader_view()
        if ln is not None and ln is not L:
            h.log("note: leadership moved without a failure: %s -> %s" % (L.name, ln.name))
            break
        time.sleep(0.1)


def test_follower_redirect():
    c = C()
    L = c.wait_leader()
    lst = L.status()
    P = h.stubs().kv
    UNAV = grpc.StatusCode.UNAVAILABLE
    for f in c.followers(L):
        stub = f.kv()
        T = h.scaled(5)
        writes = [
            ("Put", lambda: stub.Put(P.PutRequest(key=b"redir/k", value=b"v"), timeout=T)),
            ("Delete", lambda: stub.Delete(P.DeleteRequest(key=b"redir/k"), timeout=T)),
            ("Append", lambda: stub.Append(P.AppendRequest(key=b"redir/a", suffix=b"s"), timeout=T)),
            ("Txn", lambda: stub.Txn(P.TxnRequest(success=[P.RequestOp(put=P.PutRequest(key=b"redir/t", value=b"1"))]),
                                     timeout=T)),
            ("linearizable Get", lambda: stub.Get(P.GetRequest(key=b"redir/k"), timeout=T)),
            ("linearizable Range", lambda: stub.Range(P.RangeRequest(key=b"redir/", prefix=True), timeout=T)),
        ]
        for what, fn in writes:
            e = h.expect_error(fn, UNAV, "%s to follower %s" % (what, f.name))
            hint = h.leader_hint(e)
            assert hint is not None, "%s on %s: no raftkv-leader trailing metadata: %r" % (
                what, f.name, e.trailing_metadata())
            assert hint == (lst.id, L.client_addr), (what, hint, lst.id, L.client_addr)
    # following the hint succeeds
    f = c.followers(L)[0]
    e = h.expect_error(lambda: f.kv().Put(P.PutRequest(key=b"redir/k", value=b"via-hint"), timeout=h.scaled(5)),
                       UNAV, "Put to follower")
    _, addr = h.leader_hint(e)
    r = h.stubs().kv_grpc.KVStub(c.channel(addr)).Put(P.PutRequest(key=b"redir/k", value=b"via-hint"),
                                                         timeout=h.scaled(5))
    assert r.header.member_id == lst.id, r.header
    # nothing was applied by the refused requests
    g = L.kv().Get(P.GetRequest(key=b"redir/a"), timeout=h.scaled(5))
    assert not g.HasField("kv"), "a refused Append on a follower was applied: %r" % g
    # serializable reads are answered by followers once they have applied the write
    for f in c.followers(L):
        def caught_up():
            g = f.kv().Get(P.GetRequest(key=b"redir/k", consistency=P.SERIALIZABLE), timeout=h.scaled(2))
            return g.HasField("kv") and g.kv.value == b"via-hint" and g
        g = h.until(caught_up, 10, "serializable read of redir/k on %s" % f.name)
        assert g.kv.mod_revision == r.header.revision, (g.kv, r.header)
        assert g.header.member_id == f.status().id, "the follower itself should answer"
        rr = f.kv().Range(P.RangeRequest(key=b"redir/", prefix=True, consistency=P.SERIALIZABLE),
                          timeout=h.scaled(2))
        assert [x.key for x in rr.kvs] == [b"redir/k"], rr


def test_no_leader_no_hint():
    """With both followers gone the survivor has no leader to name: a write fails UNAVAILABLE
    (or DEADLINE_EXCEEDED while it waits), never with a stale hint pointing to itself."""
    c = C()
    L = c.wait_leader()
    f1, f2 = c.followers(L)
    f1.kill()
    f2.kill()
    P = h.stubs().kv
    Role = h.stubs().cl.StatusResponse
    try:
        L.kv().Put(P.PutRequest(key=b"noq/k", value=b"v"), timeout=h.scaled(2))
        raise AssertionError("a write committed without a quorum")
    except grpc.RpcError as e:
        assert e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED), e
    # Without a quorum the survivor cannot stay leader for ever (check-quorum) and cannot win an
    # election; once it knows no leader, a write fails UNAVAILABLE without a leader hint.
    try:
        h.until(lambda: (lambda s: s.role != Role.LEADER and s.leader_id == 0)(L.status()), 5,
                "%s to step down and know no leader" % L.name)
    except h.Timeout as e:
        h.log("note (not a failure): %s" % e)
    else:
        e = h.expect_error(lambda: L.kv().Put(P.PutRequest(key=b"noq/k2", value=b"v"), timeout=h.scaled(2)),
                           grpc.StatusCode.UNAVAILABLE, "write with no leader known")
        assert h.leader_hint(e) is None, "stale leader hint: %r" % (e.trailing_metadata(),)
    f1.restart()
    f2.restart()
    L2 = c.wait_leader(timeout=ELECTION_BOUND_S)
    # the uncommitted write may or may not survive; the cluster works again
    L2.kv().Put(P.PutRequest(key=b"noq/after", value=b"ok"), timeout=h.scaled(5))


if __name__ == "__main__":
    h.run([test_one_leader_elected, test_follower_redirect, test_no_leader_no_hint])
