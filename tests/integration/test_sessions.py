#!/usr/bin/python3
"""Exactly-once write ids across session expiry, on real processes.

The raftnodes run with --session-ttl-ms 2000 so that expiry happens within the test (the
default is 10 minutes). A session expires after that much *leader time* without use, however
many entries pass; its later writes are refused (FAILED_PRECONDITION, "write id session
unknown or expired") instead of being applied twice. The gateway's own write id lanes start a
new session when theirs expired, invisibly to clients.
"""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster as h  # noqa: E402
import grpc  # noqa: E402

TTL_MS = 2000
_c = None
_gw = None


def setup():
    global _c, _gw
    if _c is None:
        _c = h.Cluster(3, label="sessions", flags={"session-ttl-ms": TTL_MS}).start()
        _c.wait_leader()
        _gw = h.Gateway(_c).start(serving=True)
    return _c.revive(), _gw


def keep_writing(stub, stop, prefix):
    """Writes without write ids: they move the log clock (leaders stamp every command)."""
    P = h.stubs().kv
    i = 0
    while not stop.is_set():
        try:
            stub.Put(P.PutRequest(key=b"%s/%d" % (prefix, i % 10), value=b"x"), timeout=h.scaled(2))
        except grpc.RpcError:
            pass
        i += 1
        time.sleep(0.01)


def test_retry_within_ttl_is_deduplicated_and_after_it_refused():
    c, gw = setup()
    P = h.stubs().kv
    kv = gw.kv()
    client = h.rng.randrange(1, 2**63)
    h.log("client id %d" % client)
    k = b"sess/own"
    a1 = kv.Append(P.AppendRequest(key=k, suffix=b"a", write_id=h.wid(client, 1)), timeout=h.scaled(5))
    # Many other writes, then the retry well within the TTL: the first result, nothing applied.
    for i in range(300):
        kv.Put(P.PutRequest(key=b"sess/filler", value=b"%d" % i), timeout=h.scaled(5))
    a1r = kv.Append(P.AppendRequest(key=k, suffix=b"a", write_id=h.wid(client, 1)), timeout=h.scaled(5))
    assert a1r.header.revision == a1.header.revision and a1r.kv.value == b"a", (a1, a1r)
    # Unused for longer than the TTL while the log clock moves on: the session is gone, and
    # the client's next write (sequence 2) is refused rather than taken for a new session.
    stop = threading.Event()
    th = threading.Thread(target=keep_writing, args=(gw.kv(), stop, b"sess/clock"), daemon=True)
    th.start()
    try:
        time.sleep(TTL_MS / 1000.0 * 1.5)
        def refused():
            try:
                kv.Append(P.AppendRequest(key=k, suffix=b"b", write_id=h.wid(client, 2)), timeout=h.scaled(5))
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.FAILED_PRECONDITION:
                    return e
                raise
            raise AssertionError("sequence 2 applied after its session expired")
        e = refused()
    finally:
        stop.set()
        th.join()
    assert "write id session unknown or expired" in e.details(), e.details()
    assert "sequence 1" in e.details(), "the message should say how to start over: %s" % e.details()
    g = kv.Get(P.GetRequest(key=k), timeout=h.scaled(5))
    assert g.kv.value == b"a", ("refused write changed the key", g.kv)


def test_gateway_lanes_survive_expiry():
    """Writes through the gateway (which stamps its own write ids) keep working when its lanes'
    sessions expired on the raftnodes; each acknowledged append is applied exactly once."""
    c, gw = setup()
    P = h.stubs().kv
    kv = gw.kv()
    k = b"sess/lanes"
    kv.Append(P.AppendRequest(key=k, suffix=b"0;"), timeout=h.scaled(5))
    # Let the lane's session expire: the log clock moves through direct writes to the leader
    # (not through the gateway, whose lanes must stay idle).
    L = c.wait_leader()
    deadline = time.monotonic() + TTL_MS / 1000.0 * 1.5
    i = 0
    while time.monotonic() < deadline:
        c.call("Put", P.PutRequest(key=b"sess/direct", value=b"%d" % i))
        i += 1
        time.sleep(0.02)
    h.log("%d direct writes to %s while the gateway's lane idled" % (i, L.name))
    for n in range(1, 6):
        kv.Append(P.AppendRequest(key=k, suffix=b"%d;" % n), timeout=h.scaled(5))
    v = kv.Get(P.GetRequest(key=k), timeout=h.scaled(5)).kv.value
    assert v == b"0;1;2;3;4;5;", v
    assert "its session is gone from the cluster; resending" in gw.log_text(), \
        "the gateway never met an expired lane: the test did not test it\n" + gw.log_tail()


if __name__ == "__main__":
    h.run([test_retry_within_ttl_is_deduplicated_and_after_it_refused, test_gateway_lanes_survive_expiry])
