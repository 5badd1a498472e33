#!/usr/bin/python3
"""A fake raftnode for testing the integration harness itself (not raftkv).

Same command line as raftnode; serves KV, Cluster and Health from one in-memory store per
process. No replication, no persistence: n1 is always the leader (term 1), the others are
followers that redirect writes to it and answer serializable reads from their own empty store.
Enough to check the harness (ports, start/kill/restart, cleanup, log dumps, leader discovery,
hints) and the single-node parts of the KV tests. Run: tests/integration/selftest/run.sh
"""
import argparse
import hashlib
import os
import signal
import sys
import threading
from concurrent import futures

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cluster as h  # noqa: E402
import grpc  # noqa: E402

S = h.stubs()
P = S.kv


def node_id(name):
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") >> 1


class Store:
    def __init__(self, o):
        self.o = o
        self.rev = 0
        self.kv = {}  # key -> [value, create, mod, version]
        self.sessions = {}
        self.lock = threading.Lock()

    def kvmsg(self, k, keys_only=False):
        v, c, m, ver = self.kv[k]
        return P.KeyValue(key=k, value=b"" if keys_only else v, create_revision=c, mod_revision=m, version=ver)

    def keys(self, key, end, prefix=False):
        if prefix:
            end = key[:-1] + bytes([key[-1] + 1]) if key else b"\0"
        if not end:
            return [key] if key in self.kv else []
        return sorted(k for k in self.kv if k >= key and (end == b"\0" or k < end))


class Node:
    def __init__(self, a):
        self.a = a
        self.id = node_id(a.name)
        members = [m.split("=", 1) for m in a.initial_cluster.split(",")]
        self.members = [(node_id(n), n, addr) for n, addr in members]
        self.leader_name = members[0][0]
        self.is_leader = a.name == self.leader_name
        self.store = Store(a)

    def leader(self):
        for i, n, addr in self.members:
            if n == self.leader_name:
                return i, addr  # the peer port doubles as client port in the fake's hint
        return 0, ""

    def check_key(self, ctx, key):
        if not key:
            ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "empty key")
        if len(key) > self.a.max_key_bytes:
            ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "key too large")

    def need_leader(self, ctx):
        if not self.is_leader:
            i, addr = self.leader()
            ctx.set_trailing_metadata((("raftkv-leader", "%d@%s" % (i, self.client_of(addr))),))
            ctx.abort(grpc.StatusCode.UNAVAILABLE, "not the leader")

    def client_of(self, peer):
        return self.a.leader_client or peer

    def header(self):
        return P.ResponseHeader(revision=self.store.rev, member_id=self.id, raft_term=1, raft_index=self.store.rev)


def make_kv(nd):
    st = nd.store

    def dedup(req, ctx, fn):
        w = req.write_id
        if w.client_id:
            last = st.sessions.get(w.client_id)
            if last and last[0] == w.sequence:
                return last[1]
        r = fn()
        if w.client_id:
            st.sessions[w.client_id] = (w.sequence, r)
        return r

    def do_put(req, ctx):
        nd.check_key(ctx, req.key)
        if len(req.value) > nd.a.max_value_bytes:
            ctx.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "value too large")
        prev = st.kvmsg(req.key) if req.key in st.kv else None
        st.rev += 1
        old = st.kv.get(req.key)
        st.kv[req.key] = [req.value, old[1] if old else st.rev, st.rev, old[3] + 1 if old else 1]
        r = P.PutResponse(header=nd.header())
        if req.prev_kv and prev:
            r.prev_kv.CopyFrom(prev)
        return r

    def do_delete(req, ctx, bump=True):
        nd.check_key(ctx, req.key)
        ks = st.keys(req.key, req.range_end)
        prev = [st.kvmsg(k) for k in ks]
        if ks and bump:
            st.rev += 1
        for k in ks:
            del st.kv[k]
        return P.DeleteResponse(header=nd.header(), deleted=len(ks), prev_kvs=prev if req.prev_kv else [])

    def do_range(req, ctx):
        nd.check_key(ctx, req.key)
        ks = st.keys(req.key, req.range_end, req.prefix)
        lim = req.limit or 10000
        r = P.RangeResponse(header=nd.header(), count=len(ks))
        if not req.count_only:
            r.kvs.extend(st.kvmsg(k, req.keys_only) for k in ks[:lim])
        if len(ks) > lim:
            r.more = True
            r.next_key = ks[lim - 1] + b"\0"
        return r

    class KV(S.kv_grpc.KVServicer):
        def Put(self, req, ctx):
            nd.need_leader(ctx)
            with st.lock:
                return dedup(req, ctx, lambda: do_put(req, ctx))

        def Get(self, req, ctx):
            if req.consistency != P.SERIALIZABLE:
                nd.need_leader(ctx)
            nd.check_key(ctx, req.key)
            with st.lock:
                r = P.GetResponse(header=nd.header())
                if req.key in st.kv:
                    r.kv.CopyFrom(st.kvmsg(req.key))
                return r

        def Delete(self, req, ctx):
            nd.need_leader(ctx)
            with st.lock:
                return dedup(req, ctx, lambda: do_delete(req, ctx))

        def Range(self, req, ctx):
            if req.consistency != P.SERIALIZABLE:
                nd.need_leader(ctx)
            with st.lock:
                return do_range(req, ctx)

        def Append(self, req, ctx):
            nd.need_leader(ctx)
            nd.check_key(ctx, req.key)
            with st.lock:
                def f():
                    old = st.kv.get(req.key)
                    v = (old[0] if old else b"") + req.suffix
                    if len(v) > nd.a.max_value_bytes:
                        ctx.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "value too large")
                    do_put(P.PutRequest(key=req.key, value=v), ctx)
                    return P.AppendResponse(header=nd.header(), kv=st.kvmsg(req.key))
                return dedup(req, ctx, f)

        def Txn(self, req, ctx):
            nd.need_leader(ctx)
            for lst in (req.compare, req.success, req.failure):
                if len(lst) > nd.a.max_txn_ops:
                    ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "too many ops")
            for lst in (req.success, req.failure):
                for op in lst:
                    w = getattr(op, op.WhichOneof("request"))
                    nd.check_key(ctx, w.key)
            with st.lock:
                return dedup(req, ctx, lambda: txn(req, ctx))

    def cmp_ok(c):
        e = st.kv.get(c.key)
        t = c.WhichOneof("target")
        if t == "exists":
            have, want = (e is not None), c.exists
            return have == want if c.result == P.Compare.EQUAL else have != want
        if t == "value":
            if e is None:
                return False
            a, b = e[0], c.value
        else:
            a = {"version": e[3], "create_revision": e[1], "mod_revision": e[2]}[t] if e else 0
            b = getattr(c, t)
        return {P.Compare.EQUAL: a == b, P.Compare.NOT_EQUAL: a != b,
                P.Compare.GREATER: a > b, P.Compare.LESS: a < b}[c.result]

    def txn(req, ctx):
        ok = all(cmp_ok(c) for c in req.compare)
        rev0 = st.rev
        wrote = False
        out = []
        for op in (req.success if ok else req.failure):
            k = op.WhichOneof("request")
            if k == "put":
                wrote = True
                st.rev = rev0
                out.append(P.ResponseOp(put=do_put(op.put, ctx)))
            elif k == "delete":
                st.rev = rev0
                d = do_delete(op.delete, ctx, bump=True)
                wrote = wrote or d.deleted > 0
                out.append(P.ResponseOp(delete=d))
            else:
                out.append(P.ResponseOp(range=do_range(op.range, ctx)))
        st.rev = rev0 + (1 if wrote else 0)
        for k in st.kv:  # writes of one txn share its revision
            if st.kv[k][2] > rev0:
                st.kv[k][2] = st.rev
                if st.kv[k][1] > rev0:
                    st.kv[k][1] = st.rev
        return P.TxnResponse(header=nd.header(), succeeded=ok, responses=out)

    return KV()


def make_cluster(nd):
    R = S.cl.StatusResponse

    class Cl(S.cl_grpc.ClusterServicer):
        def Status(self, req, ctx):
            i, _ = nd.leader()
            return R(id=nd.id, name=nd.a.name, role=R.LEADER if nd.is_leader else R.FOLLOWER, term=1,
                     leader_id=i, leader_client_address=nd.a.leader_client or "", revision=nd.store.rev,
                     version="fake", members=[S.cl.Member(id=i2, name=n, peer_address=a)
                                              for i2, n, a in nd.members])

        def MemberList(self, req, ctx):
            return S.cl.MemberListResponse(members=self.Status(req, ctx).members)
    return Cl()


def make_health():
    H = S.health

    class He(S.health_grpc.HealthServicer):
        def Check(self, req, ctx):
            if req.service not in ("", "raftkv.v1.KV"):
                ctx.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
            return H.HealthCheckResponse(status=H.HealthCheckResponse.SERVING)
    return He()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--listen-peer", required=True)
    ap.add_argument("--listen-client")
    ap.add_argument("--initial-cluster", required=True)
    ap.add_argument("--max-key-bytes", type=int, default=4096)
    ap.add_argument("--max-value-bytes", type=int, default=1048576)
    ap.add_argument("--max-request-bytes", type=int, default=4194304)
    ap.add_argument("--max-txn-ops", type=int, default=128)
    ap.add_argument("--leader-client", default="")  # fake only: the leader's client address
    a, _ = ap.parse_known_args()
    os.makedirs(a.data_dir, exist_ok=True)
    nd = Node(a)
    srv = grpc.server(futures.ThreadPoolExecutor(8), options=[("grpc.max_receive_message_length", a.max_request_bytes),
                                                              ("grpc.so_reuseport", 0)])
    S.kv_grpc.add_KVServicer_to_server(make_kv(nd), srv)
    S.cl_grpc.add_ClusterServicer_to_server(make_cluster(nd), srv)
    S.health_grpc.add_HealthServicer_to_server(make_health(), srv)
    for addr in filter(None, (a.listen_peer, a.listen_client)):
        srv.add_insecure_port(addr)
    srv.start()
    print("fake raftnode %s id=%d leader=%s" % (a.name, nd.id, nd.is_leader), file=sys.stderr, flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait()
    srv.stop(0.5).wait()
    print("fake raftnode %s: SIGTERM, exiting" % a.name, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
