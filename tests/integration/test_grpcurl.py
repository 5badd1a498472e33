#!/usr/bin/python3
"""grpcurl against a raftnode and the kvgateway, with server reflection alone (no proto
files): list, describe, Put/Get/Status as JSON, health checks, an error's code.

grpcurl comes from scripts/install-grpcurl.sh (go install into <repo>/.tools, reused when
present; GRPCURL=<path> to use another binary). Without `go` the module prints SKIPPED and
passes."""
import base64
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster as h  # noqa: E402

_c = None
_g = None
_grpcurl = None
SERVICES = {"raftkv.v1.KV", "raftkv.v1.Cluster", "grpc.health.v1.Health"}
REFLECTION = {"grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"}
KV_METHODS = ("Put", "Get", "Delete", "Range", "Append", "Txn")


def have_go():
    return shutil.which("go") or os.access("/usr/local/go/bin/go", os.X_OK)


def grpcurl_path():
    global _grpcurl
    if _grpcurl:
        return _grpcurl
    p = os.environ.get("GRPCURL", "")
    if not p:
        script = os.path.join(h.REPO, "scripts", "install-grpcurl.sh")
        r = subprocess.run([script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
        if r.returncode != 0:
            raise AssertionError("scripts/install-grpcurl.sh failed (exit %d):\n%s" % (
                r.returncode, r.stderr.decode(errors="replace")[-3000:]))
        p = r.stdout.decode().strip().splitlines()[-1]
    assert os.access(p, os.X_OK), "grpcurl %s is not executable" % p
    _grpcurl = p
    h.log("grpcurl: %s" % p)
    return p


def C():
    global _c, _g
    if _c is None:
        _c = h.Cluster(3, label="grpcurl").start()
        _g = _c.gateway()
    _c.revive()
    if not _g.alive():
        _g.start(serving=True)
    return _c


def grpcurl(*args, data=None, ok=True):
    """Run grpcurl -plaintext [ -d data ] args...; (exit status, stdout, stderr)."""
    cmd = [grpcurl_path(), "-plaintext", "-max-time", "%d" % h.scaled(10)]
    if data is not None:
        cmd += ["-d", data if isinstance(data, str) else json.dumps(data)]
    cmd += list(args)
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=h.scaled(30))
    out, err = r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
    if ok and r.returncode != 0:
        raise AssertionError("%s: exit %d\n%s%s" % (" ".join(cmd), r.returncode, out, err))
    return r.returncode, out, err


def b64(b):
    return base64.b64encode(b).decode()


def targets():
    """(label, address) of the leader, a follower and the gateway."""
    c = C()
    L = c.wait_leader()
    F = c.followers(L)[0]
    return [("leader " + L.name, L.client_addr), ("follower " + F.name, F.client_addr), ("gateway", _g.addr)]


def write_targets():
    c = C()
    return [("leader " + c.wait_leader().name, c.wait_leader().client_addr), ("gateway", _g.addr)]


# ---------------------------------------------------------------------------------- tests
def test_list_services():
    for label, addr in targets():
        _, out, _ = grpcurl(addr, "list")
        got = set(out.split())
        assert SERVICES <= got, "%s: grpcurl list shows %s" % (label, sorted(got))
        assert got & REFLECTION, "%s: no reflection service in %s" % (label, sorted(got))
        _, out, _ = grpcurl(addr, "list", "raftkv.v1.KV")
        assert set(out.split()) == {"raftkv.v1.KV." + m for m in KV_METHODS}, (label, out)


def test_describe():
    for label, addr in targets():
        _, out, _ = grpcurl(addr, "describe", "raftkv.v1.KV")
        assert "raftkv.v1.KV is a service" in out, (label, out)
        for m in KV_METHODS:
            want = "rpc %s ( .raftkv.v1.%sRequest ) returns ( .raftkv.v1.%sResponse );" % (m, m, m)
            assert want in out, "%s: %r not in:\n%s" % (label, want, out)
        _, out, _ = grpcurl(addr, "describe", "raftkv.v1.PutRequest")
        for field in ("bytes key = 1;", "bytes value = 2;", ".raftkv.v1.WriteId write_id = 3;", "bool prev_kv = 4;"):
            assert field in out, "%s: %r not in:\n%s" % (label, field, out)


def test_put_get_json():
    for label, addr in write_targets():
        key = b"grpcurl/%s/%d" % (label.split()[0].encode(), h.rng.randrange(1 << 30))
        _, out, _ = grpcurl(addr, "raftkv.v1.KV/Put", data={"key": b64(key), "value": b64(b"world")})
        put = json.loads(out)
        assert int(put["header"]["revision"]) > 0, (label, put)
        _, out, _ = grpcurl(addr, "raftkv.v1.KV/Get", data={"key": b64(key)})
        got = json.loads(out)
        kv = got["kv"]
        assert base64.b64decode(kv["key"]) == key and base64.b64decode(kv["value"]) == b"world", (label, got)
        assert kv["version"] == "1" and kv["modRevision"] == put["header"]["revision"], (label, got)
        _, out, _ = grpcurl(addr, "raftkv.v1.KV/Get", data={"key": b64(key), "consistency": "SERIALIZABLE"})
        # serializable: the value may lag on a follower the gateway picked; the key exists already
        # on the leader, and the gateway checks below use a linearizable read first
        assert json.loads(out).get("kv", {}).get("key") in (None, b64(key)), (label, out)
        # a client error and its code
        rc, out, err = grpcurl(addr, "raftkv.v1.KV/Put", data={"key": "", "value": b64(b"x")}, ok=False)
        assert rc != 0 and "InvalidArgument" in err, (label, rc, out, err)


def test_cluster_status():
    c = C()
    L = c.wait_leader()
    for label, addr in targets():
        _, out, _ = grpcurl(addr, "raftkv.v1.Cluster/Status")
        st = json.loads(out)
        assert st["leaderClientAddress"] == L.client_addr and len(st["members"]) == 3, (label, st)
        if label == "gateway" or label.startswith("leader"):
            assert st["role"] == "LEADER" and st["name"] == L.name, (label, st)
        _, out, _ = grpcurl(addr, "raftkv.v1.Cluster/MemberList")
        assert sorted(m["name"] for m in json.loads(out)["members"]) == ["n1", "n2", "n3"], (label, out)


def test_health():
    for label, addr in targets():
        for data in (None, {"service": ""}, {"service": "raftkv.v1.KV"}):
            _, out, _ = grpcurl(addr, "grpc.health.v1.Health/Check", data=data)
            assert json.loads(out) == {"status": "SERVING"}, (label, data, out)
        rc, out, err = grpcurl(addr, "grpc.health.v1.Health/Check", data={"service": "nope"}, ok=False)
        assert rc != 0 and "NotFound" in err, (label, rc, out, err)


if __name__ == "__main__":
    if not os.environ.get("GRPCURL") and not have_go():
        print("SKIPPED: go is not installed (PATH or /usr/local/go/bin): cannot install grpcurl", flush=True)
        sys.exit(0)
    print("kvgateway: %s" % h.kvgateway_path(), flush=True)
    grpcurl_path()
    h.run([test_list_services, test_describe, test_put_get_json, test_cluster_status, test_health])
