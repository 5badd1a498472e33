#!/usr/bin/python3
"""Failover: one client writes every 10 ms to the leader (following raftkv-leader hints),
the leader is killed with SIGKILL, and the longest gap between successful writes is
measured; prints each trial and the median.

With --via-gateway a kvgateway (its own default flags) runs in front of the cluster and the
client writes through it only, with a per-request deadline of --timeout-s (default 2 s): it
never follows hints itself, so the gap measures the gateway's failover.

    /usr/bin/python3 tests/bench/kv_failover.py [trials]     # RAFTNODE=... to pick the binary
    /usr/bin/python3 tests/bench/kv_failover.py 10 --via-gateway   # KVGATEWAY=... likewise
"""
import argparse
import os
import shutil
import signal
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests/integration"))
os.environ.setdefault("RAFTNODE", os.path.join(ROOT, "build/server/node/raftnode"))
import cluster as h  # noqa: E402
import grpc  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("trials", nargs="?", type=int, default=10)
ap.add_argument("--via-gateway", action="store_true", help="write through a kvgateway, never following hints")
ap.add_argument("--timeout-s", type=float, default=None,
                help="per-request deadline (default 0.2 s direct, 2 s via the gateway)")
ap.add_argument("--gw-flag", action="append", default=[], metavar="NAME=VALUE", help="extra kvgateway flag")
a = ap.parse_args()
timeout = a.timeout_s if a.timeout_s is not None else (2.0 if a.via_gateway else 0.2)
if a.via_gateway:
    os.environ.setdefault("KVGATEWAY", os.path.join(ROOT, "build/server/gateway/kvgateway"))
    print("kvgateway: %s, request deadline %.1fs" % (h.kvgateway_path(), timeout), flush=True)
P = h.stubs().kv
gaps = []
errors = {}
for trial in range(a.trials):
    c = h.Cluster(3, label="fo%d" % trial).start()
    L = c.wait_leader()
    others = [n for n in c.nodes if n is not L]
    g = None
    if a.via_gateway:
        g = h.Gateway(c, flags=dict(kv.split("=", 1) for kv in a.gw_flag), harness_defaults=False)
        g.start(serving=True, timeout=30)
        gw_stub = g.kv()
    stubs = {n.client_addr: n.kv() for n in c.nodes}
    target = L.client_addr
    last_ok = time.time(); worst = 0; killed = None; i = 0
    while True:
        now = time.time()
        if killed is None and now - last_ok < 0.05 and i > 50:
            L.expected_exit = True; L.proc.send_signal(signal.SIGKILL); killed = now
        try:
            stub = gw_stub if g is not None else stubs[target]
            stub.Put(P.PutRequest(key=b"k", value=b"%d" % i), timeout=timeout)
            t = time.time()
            if killed: worst = max(worst, t - last_ok)
            last_ok = t
            if killed and t - killed > 2: break
        except grpc.RpcError as e:
            errors[str(e.code())] = errors.get(str(e.code()), 0) + 1
            if g is None:
                md = dict(e.trailing_metadata() or ())
                hint = md.get("raftkv-leader")
                if hint and hint.split("@")[1] in stubs and hint.split("@")[1] != L.client_addr:
                    target = hint.split("@")[1]
                elif target == L.client_addr and killed:
                    target = others[i % 2].client_addr
            elif killed and time.time() - killed > 30:
                raise SystemExit("trial %d: no successful write through the gateway 30 s after the kill" % trial)
        i += 1
        time.sleep(0.01)
    gaps.append(worst * 1000)
    print("trial %d: longest gap %.0f ms" % (trial, worst * 1000), flush=True)
    problems = c.stop()
    if problems:
        print("trial %d: shutdown problems: %s (kept %s)" % (trial, problems, c.dir), flush=True)
    else:
        shutil.rmtree(c.dir, ignore_errors=True)
print("median %.0f ms, min %.0f, max %.0f%s" % (statistics.median(gaps), min(gaps), max(gaps),
                                               ("; client errors %s" % errors) if errors else ""))
