#!/usr/bin/python3
"""Python (grpcio) interop: health checking, server reflection, and a KV call built from
reflected descriptors only, on every node and on both listen addresses (peer and client)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster as h  # noqa: E402
import grpc  # noqa: E402

_c = None


def C():
    global _c
    if _c is None:
        _c = h.Cluster(3, label="interop").start()
    return _c.revive()


def addresses():
    """(node, address) for both listen addresses of every node."""
    c = C()
    return [(n, a) for n in c.nodes for a in (n.client_addr, n.peer_addr)]


def test_health_check():
    c = C()
    c.wait_leader()
    H = h.stubs().health
    S = H.HealthCheckResponse
    for n, addr in addresses():
        stub = h.stubs().health_grpc.HealthStub(c.channel(addr))
        for svc in ("", "raftkv.v1.KV"):
            r = stub.Check(H.HealthCheckRequest(service=svc), timeout=h.scaled(2))
            assert r.status == S.SERVING, (n.name, addr, svc, S.ServingStatus.Name(r.status))
        h.expect_error(lambda: stub.Check(H.HealthCheckRequest(service="nope"), timeout=h.scaled(2)),
                       grpc.StatusCode.NOT_FOUND, "Check(nope) on %s %s" % (n.name, addr))


def test_health_watch():
    c = C()
    H = h.stubs().health
    S = H.HealthCheckResponse
    for n in c.nodes:
        stub = n.health()
        call = stub.Watch(H.HealthCheckRequest(service=""), timeout=h.scaled(5))
        try:
            first = next(call)
            assert first.status == S.SERVING, (n.name, S.ServingStatus.Name(first.status))
        finally:
            call.cancel()
        # An unknown service: grpc's own servers stream SERVICE_UNKNOWN; the spec is silent,
        # so only report what happens.
        call = stub.Watch(H.HealthCheckRequest(service="nope"), timeout=h.scaled(2))
        try:
            h.log("note: Watch(nope) on %s -> %s" % (n.name, S.ServingStatus.Name(next(call).status)))
        except grpc.RpcError as e:
            h.log("note: Watch(nope) on %s -> %s" % (n.name, e.code()))
        finally:
            call.cancel()


def reflect(addr, requests, alpha=False):
    """One ServerReflectionInfo stream: send `requests`, return the responses."""
    S = h.stubs()
    mod, grpc_mod = (S.refla, S.refla_grpc) if alpha else (S.refl, S.refl_grpc)
    stub = grpc_mod.ServerReflectionStub(C().channel(addr))
    reqs = [mod.ServerReflectionRequest(**r) for r in requests]
    out = list(stub.ServerReflectionInfo(iter(reqs), timeout=h.scaled(5)))
    assert len(out) == len(reqs), (len(out), len(reqs))
    return out


def test_reflection_list_services():
    want = {"raftkv.v1.KV", "raftkv.v1.Cluster", "grpc.health.v1.Health"}
    for n, addr in addresses():
        for alpha in (False, True):
            (r,) = reflect(addr, [{"list_services": ""}], alpha)
            assert r.HasField("list_services_response"), r
            names = {s.name for s in r.list_services_response.service}
            assert want <= names, ("v1alpha" if alpha else "v1", n.name, addr, sorted(names))
            assert ("grpc.reflection.v1alpha.ServerReflection" if alpha else
                    "grpc.reflection.v1.ServerReflection") in names, sorted(names)


def dynamic_pool(files):
    from google.protobuf import descriptor_pb2, descriptor_pool
    pool = descriptor_pool.DescriptorPool()
    protos = [descriptor_pb2.FileDescriptorProto.FromString(b) for b in files]
    added, pending = set(), protos
    while pending:  # dependencies first, whatever order the server sent
        rest = [p for p in pending if not set(p.dependency) <= added]
        for p in pending:
            if set(p.dependency) <= added:
                pool.Add(p)
                added.add(p.name)
        assert len(rest) < len(pending), "unresolvable dependencies: %s" % [p.name for p in rest]
        pending = rest
    return pool, {p.name: p for p in protos}


def message_class(pool, name):
    from google.protobuf import message_factory
    desc = pool.FindMessageTypeByName(name)
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(desc)
    return message_factory.MessageFactory(pool).GetPrototype(desc)


def test_reflection_dynamic_put():
    c = C()
    L = c.wait_leader()
    for alpha in (False, True):
        (r,) = reflect(L.client_addr, [{"file_containing_symbol": "raftkv.v1.KV"}], alpha)
        assert r.HasField("file_descriptor_response"), r
        pool, protos = dynamic_pool(r.file_descriptor_response.file_descriptor_proto)
        assert "raftkv/v1/kv.proto" in protos, sorted(protos)
        svc = pool.FindServiceByName("raftkv.v1.KV")
        assert {m.name for m in svc.methods} >= {"Put", "Get", "Delete", "Range", "Append", "Txn"}
        put_m = svc.methods_by_name["Put"]
        Req = message_class(pool, put_m.input_type.full_name)
        Resp = message_class(pool, put_m.output_type.full_name)
        Get = message_class(pool, "raftkv.v1.GetRequest")
        GetResp = message_class(pool, "raftkv.v1.GetResponse")
        key = b"refl/dynamic-%d" % alpha
        req = Req(key=key, value=b"dynamic!")
        raw = L.channel().unary_unary("/raftkv.v1.KV/%s" % put_m.name)(req.SerializeToString(),
                                                                         timeout=h.scaled(5))
        resp = Resp.FromString(raw)
        assert resp.header.revision > 0, resp
        raw = L.channel().unary_unary("/raftkv.v1.KV/Get")(Get(key=key).SerializeToString(), timeout=h.scaled(5))
        g = GetResp.FromString(raw)
        assert g.kv.value == b"dynamic!" and g.kv.mod_revision == resp.header.revision, g
        # and the generated stubs agree
        g2 = L.kv().Get(h.stubs().kv.GetRequest(key=key), timeout=h.scaled(5))
        assert g2.kv.value == b"dynamic!"


def test_reflection_other_requests():
    c = C()
    n = c.nodes[h.rng.randrange(len(c.nodes))]
    rs = reflect(n.peer_addr, [{"file_containing_symbol": "raftkv.v1.Cluster"},
                               {"file_by_filename": "raftkv/v1/kv.proto"},
                               {"file_containing_symbol": "raftkv.v1.PutRequest"},
                               {"file_containing_symbol": "grpc.health.v1.Health"},
                               {"file_containing_symbol": "no.such.Symbol"},
                               {"file_by_filename": "no/such.proto"}])
    names = []
    for r in rs[:4]:
        assert r.HasField("file_descriptor_response"), r
        _, protos = dynamic_pool(r.file_descriptor_response.file_descriptor_proto)
        names.append(sorted(protos))
    assert "raftkv/v1/cluster.proto" in names[0], names
    assert "raftkv/v1/kv.proto" in names[1] and "raftkv/v1/kv.proto" in names[2], names
    assert any(p.endswith("health.proto") for p in names[3]), names
    for r in rs[4:]:
        assert r.HasField("error_response"), r
        assert r.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0], r.error_response


def test_cluster_status_everywhere():
    """Cluster.Status answers on both addresses of every node with the same identity."""
    c = C()
    for n, addr in addresses():
        st = h.stubs().cl_grpc.ClusterStub(c.channel(addr)).Status(h.stubs().cl.StatusRequest(),
                                                                   timeout=h.scaled(2))
        assert st.name == n.name and st.id == n.status().id, (addr, st.name, n.name)


if __name__ == "__main__":
    h.run([test_health_check, test_health_watch, test_reflection_list_services,
           test_reflection_dynamic_put, test_reflection_other_requests, test_cluster_status_everywhere])
