#!/usr/bin/python3
"""The quota (--quota-bytes, etcd's quota-backend-bytes): past it, writes that could add data
get RESOURCE_EXHAUSTED through the gateway (not retried, not applied), the QUOTA alarm shows in
Cluster.Status and `kvctl status`, reads and deletes go on, and once deletes bring the store
under the quota writes are taken again and the alarm is gone.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster as h  # noqa: E402
import grpc  # noqa: E402

QUOTA = 64 * 1024
VALUE = b"q" * 1000


def quota_alarms(gw):
    st = gw.cl().Status(h.stubs().cl.StatusRequest(), timeout=h.scaled(2))
    return [a for a in st.alarms if h.stubs().cl.AlarmType.Name(a.type) == "ALARM_TYPE_QUOTA"]


def test_quota():
    c = h.Cluster(3, label="quota", flags={"quota-bytes": QUOTA}).start()
    gw = c.gateway()
    P = h.stubs().kv
    assert not quota_alarms(gw)
    # Fill: every put is acknowledged until one is refused for the quota.
    written, refused = 0, None
    for i in range(200):
        try:
            gw.kv().Put(P.PutRequest(key=b"q/%03d" % i, value=VALUE), timeout=h.scaled(5))
            written += 1
        except grpc.RpcError as e:
            refused = e
            break
    assert refused is not None, "200 KB of puts and no refusal under a 64 KiB quota"
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, refused
    assert "quota" in refused.details(), refused.details()
    h.log("%d puts of 1 KB taken, then: %s" % (written, refused.details()))
    assert written * len(VALUE) >= QUOTA * 0.9, written
    # The refused put changed nothing; reads still work.
    assert gw.kv().Get(P.GetRequest(key=b"q/%03d" % written), timeout=h.scaled(5)).kv.key == b""
    assert gw.kv().Get(P.GetRequest(key=b"q/000"), timeout=h.scaled(5)).kv.value == VALUE
    # A Txn with a put is refused too; a delete-only Txn is not.
    h.expect_error(lambda: gw.kv().Txn(P.TxnRequest(success=[P.RequestOp(
        put=P.PutRequest(key=b"q/txn", value=b"x"))]), timeout=h.scaled(5)),
        grpc.StatusCode.RESOURCE_EXHAUSTED, "a Txn that puts")
    al = quota_alarms(gw)
    assert al and "quota-bytes" in al[0].message, al
    h.log("Cluster.Status: %s" % al[0].message)
    kvctl = os.environ.get("KVCTL", "")
    if kvctl:
        out = subprocess.run([kvctl, "--endpoints", gw.addr, "status"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, timeout=h.scaled(20)).stdout.decode()
        assert "QUOTA" in out, "kvctl status does not show the alarm:\n" + out
    # Deletes make room: a delete-only Txn, then a range delete.
    gw.kv().Txn(P.TxnRequest(success=[P.RequestOp(delete=P.DeleteRequest(key=b"q/000"))]),
                timeout=h.scaled(5))
    d = gw.kv().Delete(P.DeleteRequest(key=b"q/", range_end=b"q0"), timeout=h.scaled(5))
    assert d.deleted == written - 1, (d.deleted, written)
    assert not quota_alarms(gw)
    gw.kv().Put(P.PutRequest(key=b"q/after", value=VALUE), timeout=h.scaled(5))
    assert gw.kv().Get(P.GetRequest(key=b"q/after"), timeout=h.scaled(5)).kv.value == VALUE


if __name__ == "__main__":
    h.run([test_quota])
