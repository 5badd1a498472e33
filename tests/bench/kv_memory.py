#!/usr/bin/python3
"""RSS and idle CPU of a 3-node raftnode cluster, idle and after 100k keys (16-byte keys,
128-byte values), to compare with etcd's figures in ../shared/bench/README.md.

    /usr/bin/python3 tests/bench/kv_memory.py        # RAFTNODE=... to pick the binary
"""
import os, sys, time
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests/integration"))
os.environ.setdefault("RAFTNODE", os.path.join(ROOT, "build/server/node/raftnode"))
import cluster as h
c = h.Cluster(3, label="rss").start()
P = h.stubs().kv
L = c.wait_leader()
def rss(n):
    for l in open("/proc/%d/status" % n.proc.pid):
        if l.startswith("VmRSS"): return int(l.split()[1]) // 1024
def cpu(n):
    f = open("/proc/%d/stat" % n.proc.pid).read().split(")")[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
time.sleep(1)
c0 = {n.name: cpu(n) for n in c.nodes}; time.sleep(5); c1 = {n.name: cpu(n) for n in c.nodes}
print("idle CPU % per node over 5 s:", {k: round((c1[k]-c0[k])/5*100, 1) for k in c0})
print("idle RSS MiB:", {n.name: rss(n) for n in c.nodes})
s = L.kv()
t = time.time()
for i in range(0, 100000, 256):
    fs = [s.Put.future(P.PutRequest(key=b"%016d" % j, value=b"v" * 128), timeout=30) for j in range(i, min(i + 256, 100000))]
    [f.result() for f in fs]
print("populated 100k in %.1fs" % (time.time() - t))
time.sleep(2)
print("RSS MiB after 100k keys:", {n.name + ("(L)" if n is L else ""): rss(n) for n in c.nodes})
print(c.stop())
