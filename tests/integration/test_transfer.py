#!/usr/bin/python3
"""SIGTERM of the leader hands leadership over before the process exits.

--election-ms 3000: an ordinary election after the leader vanished would take at least 3 s,
so a new leader seen well before that proves the hand-over.
"""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster as h  # noqa: E402
import grpc  # noqa: E402

ELECTION_MS = 3000
_c = None


def C():
    global _c
    if _c is None:
        _c = h.Cluster(3, label="transfer", flags={"election-ms": ELECTION_MS}).start()
    return _c.revive()


def watch_health(node, out, stop):
    """Record the health answers of `node` (until it stops answering)."""
    H = h.stubs().health
    ch = grpc.insecure_channel(node.client_addr, options=h.CHANNEL_OPTIONS)
    stub = h.stubs().health_grpc.HealthStub(ch)
    try:
        _watch(H, stub, out, stop)
    finally:
        ch.close()


def _watch(H, stub, out, stop):
    while not stop.is_set():
        try:
            r = stub.Check(H.HealthCheckRequest(service=""), timeout=0.5)
            out.append(H.HealthCheckResponse.ServingStatus.Name(r.status))
        except grpc.RpcError as e:
            out.append(str(e.code()))
            if e.code() == grpc.StatusCode.UNAVAILABLE:
                return
        time.sleep(0.005)


def test_sigterm_leader_transfers_leadership():
    c = C()
    P = h.stubs().kv
    Role = h.stubs().cl.StatusResponse
    L = c.wait_leader(timeout=30)  # the first election itself takes >= 3 s here
    old = L.status()
    put = L.kv().Put(P.PutRequest(key=b"tr/k", value=b"before"), timeout=h.scaled(5))
    c.wait_caught_up()
    others = c.followers(L)
    seen, stop = [], threading.Event()
    th = threading.Thread(target=watch_health, args=(L, seen, stop), daemon=True)
    th.start()
    time.sleep(0.05)
    t0 = time.monotonic()
    L.expected_exit = True
    L.proc.send_signal(15)
    new = [None]

    def new_leader():
        for n in others:
            s = n.try_status(timeout=0.5)
            if s is not None and s.role == Role.LEADER and s.term > old.term:
                new[0] = n
                return n
        return None
    h.until(new_leader, 10, "a new leader after SIGTERM of %s" % L.name, interval=0.01)
    dt = time.monotonic() - t0
    rc = L.wait_exit(15)
    stop.set()
    th.join(5)
    h.log("new leader %s seen %.0f ms after SIGTERM (election timeout %d ms); %s exited %s; "
          "health answers of the old leader: %s" % (new[0].name, 1000 * dt, ELECTION_MS, L.name, rc,
                                                     _squeeze(seen)))
    assert dt < ELECTION_MS / 1000.0, "new leader only after %.0f ms: no hand-over (election timeout %d ms)" % (
        1000 * dt, ELECTION_MS)
    assert rc == 0, "%s exit status %s after SIGTERM" % (L.name, rc)
    if "SERVING" in seen and "NOT_SERVING" in seen:
        assert seen.index("NOT_SERVING") > seen.index("SERVING") and \
            "SERVING" not in seen[seen.index("NOT_SERVING"):], "health went back to SERVING: %s" % _squeeze(seen)
    # the survivors agree, keep the data and take writes
    L2 = c.wait_leader(timeout=5)
    assert L2 is new[0]
    g = L2.kv().Get(P.GetRequest(key=b"tr/k"), timeout=h.scaled(5))
    assert g.kv.value == b"before" and g.kv.mod_revision == put.header.revision
    L2.kv().Put(P.PutRequest(key=b"tr/k", value=b"after"), timeout=h.scaled(5))
    # the old leader rejoins as a follower
    L.start()
    L.wait_ready()
    h.until(lambda: L.kv().Get(P.GetRequest(key=b"tr/k", consistency=P.SERIALIZABLE),
                               timeout=h.scaled(2)).kv.value == b"after", 15, "%s to rejoin" % L.name)


def test_sigterm_follower_keeps_leader():
    c = C()
    L = c.wait_leader(timeout=30)
    term = L.status().term
    f = c.followers(L)[0]
    rc = f.terminate()
    assert rc == 0, "follower exit status %s after SIGTERM" % rc
    st = L.status()
    assert st.role == h.stubs().cl.StatusResponse.LEADER and st.term == term, st
    P = h.stubs().kv
    L.kv().Put(P.PutRequest(key=b"tr/f", value=b"2 of 3"), timeout=h.scaled(5))
    f.start()
    f.wait_ready()


def _squeeze(seq):
    out = []
    for s in seq:
        if out and out[-1][0] == s:
            out[-1][1] += 1
        else:
            out.append([s, 1])
    return " ".join("%sx%d" % (s, n) for s, n in out)


if __name__ == "__main__":
    h.run([test_sigterm_leader_transfers_leadership, test_sigterm_follower_keeps_leader])
