#!/usr/bin/python3
"""KV API round trips against the leader of a real 3-node cluster, and bad input.

One cluster for the module, started with small limits so the limit errors are cheap to hit:
--max-key-bytes 64 --max-value-bytes 1024 --max-request-bytes 16384 --max-txn-ops 8.
Every test uses its own key prefix.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster as h  # noqa: E402
import grpc  # noqa: E402

MAX_KEY, MAX_VALUE, MAX_REQ, MAX_TXN = 64, 1024, 16384, 8
_c = None


def C():
    global _c
    if _c is None:
        _c = h.Cluster(3, label="kvapi", flags={
            "max-key-bytes": MAX_KEY, "max-value-bytes": MAX_VALUE,
            "max-request-bytes": MAX_REQ, "max-txn-ops": MAX_TXN}).start()
    return _c.revive()


def leader():
    return C().wait_leader()


def pb():
    return h.stubs().kv


def kv():
    return leader().kv()


def get(key, **kw):
    return kv().Get(pb().GetRequest(key=key, **kw), timeout=h.scaled(5))


def put(key, value, **kw):
    return kv().Put(pb().PutRequest(key=key, value=value, **kw), timeout=h.scaled(5))


def rng_(key, **kw):
    return kv().Range(pb().RangeRequest(key=key, **kw), timeout=h.scaled(5))


def revision():
    """Current store revision, by a linearizable read on the leader (cross-checked with Status)."""
    r = get(b"\x01rev-probe")
    st = leader().status()
    assert st.revision == r.header.revision, (st.revision, r.header.revision)
    return r.header.revision


# ----------------------------------------------------------------------------------- tests
def test_put_get_versions():
    L = leader()
    st = L.status()
    k = b"pg/key"
    r1 = put(k, b"v1")
    R1 = r1.header.revision
    assert R1 > 0
    assert r1.header.member_id == st.id, (r1.header.member_id, st.id)
    assert r1.header.raft_term == st.term
    assert not r1.HasField("prev_kv"), "prev_kv returned without asking"
    g = get(k)
    assert g.HasField("kv")
    assert (g.kv.key, g.kv.value, g.kv.create_revision, g.kv.mod_revision, g.kv.version) == \
        (k, b"v1", R1, R1, 1), g
    assert g.header.revision == R1
    r2 = put(k, b"v2", prev_kv=True)
    assert r2.header.revision == R1 + 1, (r2.header.revision, R1)
    assert r2.prev_kv.value == b"v1" and r2.prev_kv.version == 1, r2.prev_kv
    g = get(k)
    assert (g.kv.value, g.kv.create_revision, g.kv.mod_revision, g.kv.version) == \
        (b"v2", R1, R1 + 1, 2), g
    # serializable read on the leader sees its own writes too
    gs = get(k, consistency=pb().SERIALIZABLE)
    assert gs.kv.value == b"v2"
    # a missing key: OK status, no kv
    m = get(b"pg/missing")
    assert not m.HasField("kv"), m
    # binary keys and values, empty value
    bk = bytes(range(1, 40))
    put(bk, bytes(range(256)))
    assert get(bk).kv.value == bytes(range(256))
    put(b"pg/empty", b"")
    e = get(b"pg/empty")
    assert e.HasField("kv") and e.kv.value == b"" and e.kv.version == 1, e
    # limits are inclusive: a key of exactly max-key-bytes and a value of max-value-bytes work
    kmax = b"pg/" + b"k" * (MAX_KEY - 3)
    put(kmax, b"v" * MAX_VALUE)
    assert get(kmax).kv.value == b"v" * MAX_VALUE


def test_delete_single_and_range():
    k = b"del/one"
    put(k, b"x")
    r = put(k, b"y")
    d = kv().Delete(pb().DeleteRequest(key=k, prev_kv=True), timeout=h.scaled(5))
    assert d.deleted == 1, d
    assert d.header.revision == r.header.revision + 1
    assert len(d.prev_kvs) == 1 and d.prev_kvs[0].key == k and d.prev_kvs[0].value == b"y", d
    assert not get(k).HasField("kv")
    # deleting a missing key: deleted 0, revision unchanged
    rev = d.header.revision
    d0 = kv().Delete(pb().DeleteRequest(key=k), timeout=h.scaled(5))
    assert d0.deleted == 0 and d0.header.revision == rev, d0
    # re-created: version and create_revision start over
    r = put(k, b"z")
    g = get(k)
    assert g.kv.version == 1 and g.kv.create_revision == r.header.revision, g
    # range delete of [del/r/b, del/r/d): b, c
    for s in (b"a", b"b", b"c", b"d"):
        last = put(b"del/r/" + s, s * 3)
    d = kv().Delete(pb().DeleteRequest(key=b"del/r/b", range_end=b"del/r/d", prev_kv=True),
                    timeout=h.scaled(5))
    assert d.deleted == 2, d
    assert [(p.key, p.value) for p in d.prev_kvs] == [(b"del/r/b", b"bbb"), (b"del/r/c", b"ccc")], d
    assert d.header.revision == last.header.revision + 1, "a range delete is one revision"
    left = rng_(b"del/r/", prefix=True)
    assert [x.key for x in left.kvs] == [b"del/r/a", b"del/r/d"], left
    # without prev_kv: no prev_kvs
    d = kv().Delete(pb().DeleteRequest(key=b"del/r/", range_end=b"del/r0"), timeout=h.scaled(5))
    assert d.deleted == 2 and len(d.prev_kvs) == 0, d
    assert rng_(b"del/r/", prefix=True, count_only=True).count == 0


def test_range():
    keys = [b"rg/%02d" % i for i in range(20)]
    for i, k in enumerate(keys):
        put(k, b"val%d" % i)
    put(b"rg.", b"outside-before")  # '.' < '/'
    put(b"rg0", b"outside-after")   # the prefix end of "rg/"
    r = rng_(b"rg/", prefix=True)
    assert [x.key for x in r.kvs] == keys, [x.key for x in r.kvs]
    assert [x.value for x in r.kvs] == [b"val%d" % i for i in range(20)]
    assert r.count == 20 and not r.more, (r.count, r.more)
    # explicit prefix end equals prefix=True
    r2 = rng_(b"rg/", range_end=b"rg0")
    assert [x.key for x in r2.kvs] == keys
    # [start, end)
    r = rng_(b"rg/05", range_end=b"rg/10")
    assert [x.key for x in r.kvs] == keys[5:10], r.kvs
    assert r.count == 5
    # range_end "\0": every key >= key
    r = rng_(b"rg/18", range_end=b"\0")
    got = [x.key for x in r.kvs]
    assert got[:3] == [b"rg/18", b"rg/19", b"rg0"], got[:5]
    assert got == sorted(got) and all(k >= b"rg/18" for k in got)
    # empty range_end: just that key
    r = rng_(b"rg/07")
    assert [x.key for x in r.kvs] == [b"rg/07"] and r.count == 1
    # end <= start: empty
    r = rng_(b"rg/10", range_end=b"rg/05")
    assert len(r.kvs) == 0 and r.count == 0
    # limit + paging
    pages, seen, req_key = 0, [], b"rg/"
    first = None
    while True:
        r = rng_(req_key, range_end=b"rg0", limit=7)
        pages += 1
        assert len(r.kvs) <= 7, len(r.kvs)
        if first is None:
            first = r
        seen += [x.key for x in r.kvs]
        if not r.more:
            break
        assert r.next_key > r.kvs[-1].key, (r.next_key, r.kvs[-1].key)
        req_key = r.next_key
        assert pages < 10, "paging does not terminate"
    assert first.count == 20 and first.more and len(first.kvs) == 7, (first.count, first.more)
    assert seen == keys and pages == 3, (pages, seen)
    # keys_only: keys and metadata, no values
    r = rng_(b"rg/", prefix=True, keys_only=True)
    assert [x.key for x in r.kvs] == keys and all(x.value == b"" for x in r.kvs), r.kvs[:2]
    assert all(x.version == 1 and x.mod_revision > 0 for x in r.kvs)
    # count_only: no kvs, the count
    r = rng_(b"rg/", prefix=True, count_only=True)
    assert len(r.kvs) == 0 and r.count == 20, r
    # serializable range on the leader
    r = rng_(b"rg/", prefix=True, consistency=pb().SERIALIZABLE, limit=3)
    assert [x.key for x in r.kvs] == keys[:3] and r.more and r.count == 20


def _txn(compare, success=(), failure=(), **kw):
    return kv().Txn(pb().TxnRequest(compare=compare, success=list(success), failure=list(failure), **kw),
                    timeout=h.scaled(5))


def test_txn():
    P = pb()
    Cmp = P.Compare
    k = b"tx/x"
    r0 = put(k, b"1")
    C0 = r0.header.revision
    op_put = lambda key, v: P.RequestOp(put=P.PutRequest(key=key, value=v))  # noqa: E731
    op_get = lambda key: P.RequestOp(range=P.RangeRequest(key=key))  # noqa: E731
    op_del = lambda key: P.RequestOp(delete=P.DeleteRequest(key=key, prev_kv=True))  # noqa: E731

    # value EQUAL holds -> success branch; a GET after a PUT in the same txn sees it
    t = _txn([Cmp(key=k, result=Cmp.EQUAL, value=b"1")], [op_put(k, b"2"), op_get(k)], [op_put(b"tx/f", b"no")])
    assert t.succeeded, t
    assert len(t.responses) == 2 and t.responses[0].HasField("put") and t.responses[1].HasField("range"), t
    assert t.responses[1].range.kvs[0].value == b"2", t.responses[1]
    assert t.header.revision == C0 + 1
    assert not get(b"tx/f").HasField("kv"), "failure branch ran too"
    # value compare fails -> failure branch, succeeded=false (not an error)
    t = _txn([Cmp(key=k, result=Cmp.EQUAL, value=b"nope")], [op_put(k, b"bad")], [op_put(b"tx/f", b"ran")])
    assert not t.succeeded and len(t.responses) == 1 and t.responses[0].HasField("put"), t
    assert get(b"tx/f").kv.value == b"ran" and get(k).kv.value == b"2"
    rev = t.header.revision
    # version / create / mod revision compares, all must hold
    g = get(k).kv
    assert g.version == 2 and g.create_revision == C0
    t = _txn([Cmp(key=k, result=Cmp.EQUAL, version=2),
              Cmp(key=k, result=Cmp.EQUAL, create_revision=C0),
              Cmp(key=k, result=Cmp.EQUAL, mod_revision=g.mod_revision),
              Cmp(key=k, result=Cmp.GREATER, mod_revision=C0),
              Cmp(key=k, result=Cmp.LESS, version=3),
              Cmp(key=k, result=Cmp.NOT_EQUAL, value=b"1"),
              Cmp(key=k, result=Cmp.GREATER, value=b"1"),
              Cmp(key=k, result=Cmp.EQUAL, exists=True),
              ], [op_get(k)])
    assert t.succeeded, t
    assert t.header.revision == rev, "a read-only branch changes no revision"
    # one failing compare among holding ones -> failure; empty failure branch: nothing changes
    for bad in (Cmp(key=k, result=Cmp.EQUAL, version=1),
                Cmp(key=k, result=Cmp.LESS, create_revision=C0),
                Cmp(key=k, result=Cmp.NOT_EQUAL, mod_revision=g.mod_revision),
                Cmp(key=k, result=Cmp.NOT_EQUAL, exists=True),
                Cmp(key=b"tx/missing", result=Cmp.EQUAL, exists=True),
                Cmp(key=b"tx/missing", result=Cmp.EQUAL, value=b"")):  # value compare on a missing key is false
        t = _txn([Cmp(key=k, result=Cmp.EQUAL, version=2), bad], [op_put(k, b"changed")])
        assert not t.succeeded, ("compare should fail", bad, t)
        assert len(t.responses) == 0 and t.header.revision == rev, t
    assert get(k).kv.value == b"2"
    # a missing key has version/create/mod 0 and does not exist
    t = _txn([Cmp(key=b"tx/missing", result=Cmp.NOT_EQUAL, exists=True),
              Cmp(key=b"tx/missing", result=Cmp.EQUAL, version=0),
              Cmp(key=b"tx/missing", result=Cmp.EQUAL, create_revision=0),
              Cmp(key=b"tx/missing", result=Cmp.EQUAL, mod_revision=0)],
             [op_put(b"tx/missing", b"now")])
    assert t.succeeded and t.header.revision == rev + 1, t
    # several writes in one txn: one revision; delete inside a txn
    t = _txn([], [op_put(b"tx/a", b"A"), op_put(b"tx/b", b"B"), op_del(b"tx/missing")])
    assert t.succeeded and t.header.revision == rev + 2, t
    assert t.responses[2].delete.deleted == 1 and t.responses[2].delete.prev_kvs[0].value == b"now"
    ga, gb = get(b"tx/a").kv, get(b"tx/b").kv
    assert ga.mod_revision == gb.mod_revision == rev + 2, (ga, gb)
    assert not get(b"tx/missing").HasField("kv")


def test_append():
    k = b"ap/k"
    a = kv().Append(pb().AppendRequest(key=k, suffix=b"x"), timeout=h.scaled(5))
    assert a.kv.key == k and a.kv.value == b"x" and a.kv.version == 1, a
    assert a.kv.create_revision == a.kv.mod_revision == a.header.revision
    b = kv().Append(pb().AppendRequest(key=k, suffix=b"yz"), timeout=h.scaled(5))
    assert b.kv.value == b"xyz" and b.kv.version == 2, b
    assert b.kv.mod_revision == b.header.revision == a.header.revision + 1
    assert b.kv.create_revision == a.kv.create_revision
    g = get(k).kv
    assert (g.value, g.version, g.mod_revision) == (b"xyz", 2, b.header.revision)
    # WriteId: a repeat returns the first result without appending again
    w = h.wid(h.rng.randrange(1, 2**63), 1)
    c1 = kv().Append(pb().AppendRequest(key=k, suffix=b"!", write_id=w), timeout=h.scaled(5))
    c2 = kv().Append(pb().AppendRequest(key=k, suffix=b"!", write_id=w), timeout=h.scaled(5))
    assert c1.kv.value == c2.kv.value == b"xyz!", (c1, c2)
    assert c2.header.revision == c1.header.revision
    assert get(k).kv.value == b"xyz!"


def test_bad_input():
    P = pb()
    L = leader()
    INV, RES = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED
    put(b"bad/existing", b"orig")
    rev0 = revision()
    T = h.scaled(5)
    stub = L.kv()
    big_key = b"bad/" + b"k" * (MAX_KEY - 3)  # MAX_KEY + 1 bytes
    assert len(big_key) == MAX_KEY + 1
    cases = [
        ("Put empty key", lambda: stub.Put(P.PutRequest(key=b"", value=b"v"), timeout=T), INV),
        ("Get empty key", lambda: stub.Get(P.GetRequest(key=b""), timeout=T), INV),
        ("Delete empty key", lambda: stub.Delete(P.DeleteRequest(key=b""), timeout=T), INV),
        ("Append empty key", lambda: stub.Append(P.AppendRequest(key=b"", suffix=b"s"), timeout=T), INV),
        ("Put key > max", lambda: stub.Put(P.PutRequest(key=big_key, value=b"v"), timeout=T), INV),
        # reads accept max + 1 bytes (a paging next_key is the last key + "\0"), not more
        ("Get key > max + 1", lambda: stub.Get(P.GetRequest(key=big_key + b"k"), timeout=T), INV),
        ("Range key > max + 1", lambda: stub.Range(P.RangeRequest(key=big_key + b"k"), timeout=T), INV),
        ("Append key > max", lambda: stub.Append(P.AppendRequest(key=big_key, suffix=b"s"), timeout=T), INV),
        ("Put value > max", lambda: stub.Put(P.PutRequest(key=b"bad/v", value=b"v" * (MAX_VALUE + 1)),
                                             timeout=T), RES),
        ("Put over-size value on an existing key",
         lambda: stub.Put(P.PutRequest(key=b"bad/existing", value=b"v" * (MAX_VALUE + 1)), timeout=T), RES),
        ("Append growing value > max",
         lambda: stub.Append(P.AppendRequest(key=b"bad/existing", suffix=b"s" * (MAX_VALUE - 3)), timeout=T),
         RES),
        ("Put request > max-request-bytes",
         lambda: stub.Put(P.PutRequest(key=b"bad/huge", value=b"h" * (MAX_REQ + 100)), timeout=T), RES),
        ("Txn with an empty-key put", lambda: stub.Txn(P.TxnRequest(success=[
            P.RequestOp(put=P.PutRequest(key=b"bad/txn-ok", value=b"1")),
            P.RequestOp(put=P.PutRequest(key=b"", value=b"2"))]), timeout=T), INV),
        ("Txn with too many ops", lambda: stub.Txn(P.TxnRequest(success=[
            P.RequestOp(put=P.PutRequest(key=b"bad/ops%d" % i, value=b"1"))
            for i in range(MAX_TXN + 1)]), timeout=T), INV),
    ]
    failed = []
    for what, fn, code in cases:
        try:
            h.expect_error(fn, code, what)
        except AssertionError as e:
            failed.append(str(e))
    # raw bytes that do not decode as the request message
    raw_cases = [
        ("Put", b"\x0a\x10abc"),          # field 1, length 16, 3 bytes follow: truncated
        ("Put", b"\x0f\x01"),             # field 1 with wire type 7: invalid
        ("Put", b"\x12\xff\xff\xff\xff\x7f"),  # a 4 GiB length
        ("Get", b"\x0a\x05ab"),
        ("Txn", b"\x12\x03\x12\x05x"),    # nested truncated message
        ("Append", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"),  # varint overflow
    ]
    from google.protobuf.message import DecodeError
    for method, raw in raw_cases:
        msg = {"Put": P.PutRequest, "Get": P.GetRequest, "Txn": P.TxnRequest, "Append": P.AppendRequest}[method]()
        try:
            msg.ParseFromString(raw)
            raise AssertionError("test bug: %r decodes as %s" % (raw, method))
        except DecodeError:
            pass
        call = L.channel().unary_unary("/raftkv.v1.KV/" + method)  # identity (de)serializers: bytes
        try:
            h.expect_error(lambda: call(raw, timeout=T), INV, "garbage %r to KV/%s" % (raw, method))
        except AssertionError as e:
            failed.append(str(e))
    # an empty body decodes to an empty PutRequest: empty key
    try:
        h.expect_error(lambda: L.channel().unary_unary("/raftkv.v1.KV/Put")(b"", timeout=T), INV, "empty Put body")
    except AssertionError as e:
        failed.append(str(e))
    # unknown methods, known and unknown services
    for path in ("/raftkv.v1.KV/Nope", "/raftkv.v1.Cluster/Nope", "/no.such.Service/Call", "/raftkv.v1.KV"):
        try:
            h.expect_error(lambda: L.channel().unary_unary(path)(b"", timeout=T),
                           grpc.StatusCode.UNIMPLEMENTED, "unknown method %s" % path)
        except AssertionError as e:
            failed.append(str(e))
    # nothing changed
    rev1 = revision()
    if rev1 != rev0:
        failed.append("revision changed by bad requests: %d -> %d" % (rev0, rev1))
    g = get(b"bad/existing").kv
    if g.value != b"orig" or g.version != 1:
        failed.append("bad/existing changed: %r" % g)
    r = rng_(b"bad/", prefix=True, keys_only=True)
    if [x.key for x in r.kvs] != [b"bad/existing"]:
        failed.append("keys written by bad requests: %r" % [x.key for x in r.kvs])
    # and the node still serves good requests
    put(b"bad/after", b"fine")
    assert not failed, "bad-input failures:\n  " + "\n  ".join(failed)


def test_writes_visible_on_followers():
    """After a write, every follower's serializable read returns it (poll, bounded)."""
    L = leader()
    r = put(b"fol/k", b"replicated")
    for f in C().followers(L):
        h.until(lambda: f.kv().Get(pb().GetRequest(key=b"fol/k", consistency=pb().SERIALIZABLE),
                                   timeout=h.scaled(2)).kv.value == b"replicated",
                10, "%s to apply fol/k" % f.name)
        st = f.status()
        assert st.revision >= r.header.revision and st.applied_index >= 1, st


if __name__ == "__main__":
    h.run([test_put_get_versions, test_delete_single_and_range, test_range, test_txn, test_append,
           test_bad_input, test_writes_visible_on_followers])
