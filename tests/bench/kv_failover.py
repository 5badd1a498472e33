#!/usr/bin/python3
"""Failover: one client writes every 10 ms to the leader (following raftkv-leader hints),
the leader is killed with SIGKILL, and the longest gap between successful writes is
measured; prints each trial and the median.

    /usr/bin/python3 tests/bench/kv_failover.py [trials]     # RAFTNODE=... to pick the binary
"""
import os, sys, time, signal, statistics
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests/integration"))
os.environ.setdefault("RAFTNODE", os.path.join(ROOT, "build/server/node/raftnode"))
import cluster as h
import grpc
P = h.stubs().kv
gaps = []
for trial in range(int(sys.argv[1]) if len(sys.argv) > 1 else 10):
    c = h.Cluster(3, label="fo%d" % trial).start()
    L = c.wait_leader()
    others = [n for n in c.nodes if n is not L]
    stubs = {n.client_addr: n.kv() for n in c.nodes}
    target = L.client_addr
    last_ok = time.time(); worst = 0; killed = None; i = 0
    while True:
        now = time.time()
        if killed is None and now - last_ok < 0.05 and i > 50:
            L.proc.send_signal(signal.SIGKILL); killed = now
        try:
            stubs[target].Put(P.PutRequest(key=b"k", value=b"%d" % i), timeout=0.2)
            t = time.time()
            if killed: worst = max(worst, t - last_ok)
            last_ok = t
            if killed and t - killed > 2: break
        except grpc.RpcError as e:
            md = dict(e.trailing_metadata() or ())
            hint = md.get("raftkv-leader")
            if hint and hint.split("@")[1] in stubs and hint.split("@")[1] != L.client_addr:
                target = hint.split("@")[1]
            elif target == L.client_addr and killed:
                target = others[i % 2].client_addr
        i += 1
        time.sleep(0.01)
    gaps.append(worst * 1000)
    print("trial %d: longest gap %.0f ms" % (trial, worst * 1000), flush=True)
    c.stop()
print("median %.0f ms, min %.0f, max %.0f" % (statistics.median(gaps), min(gaps), max(gaps)))
