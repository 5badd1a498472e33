#!/usr/bin/python3
"""raftkv under etcd's yardstick: shared/bench/loadgen.py with a raftkv backend.

Starts a 3-node raftnode cluster on loopback (the integration-test harness,
tests/integration/cluster.py), then runs loadgen's closed-loop `put` mode and its
linearizable `range` (get) mode at each concurrency, sending straight to the leader (or, with
--via-gateway, everything through a kvgateway started next to the cluster), and prints
loadgen's own output: one JSON object per run on stdout, its human line on stderr.

loadgen.py is imported, never copied: --loadgen-dir (or RAFTKV_LOADGEN_DIR, default
/work/shared/bench). This file registers loadgen.BACKENDS["raftkv"] (connect / put / get over
raftkv.v1.KV with stubs generated at run time) and then calls loadgen.main() per run.

    /usr/bin/python3 tests/bench/kv_bench.py                      # build*/.../raftnode, newest
    /usr/bin/python3 tests/bench/kv_bench.py --raftnode build/server/node/raftnode \\
        --concurrency 1,16,64,256 --modes put,get --duration-s 10 --key-space 100000
    /usr/bin/python3 tests/bench/kv_bench.py --endpoint 127.0.0.1:7102   # an existing leader
    /usr/bin/python3 tests/bench/kv_bench.py --via-gateway                # 3 raftnodes + kvgateway

Build raftnode without sanitizers for figures (RelWithDebInfo, the default build type).
"""
import argparse
import asyncio
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))


def _early_arg(flag, env, default):
    """Read one flag before argparse runs (module level: loadgen's spawned workers import this
    file as __mp_main__ and need the same paths)."""
    for i, a in enumerate(sys.argv):
        if a == flag and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return os.environ.get(env) or default


LOADGEN_DIR = os.path.abspath(_early_arg("--loadgen-dir", "RAFTKV_LOADGEN_DIR", "/work/shared/bench"))
os.environ["RAFTKV_LOADGEN_DIR"] = LOADGEN_DIR
for p in (os.path.join(REPO, "tests", "integration"), LOADGEN_DIR):
    if p not in sys.path:
        sys.path.insert(0, p)

try:
    import loadgen  # noqa: E402  (shared/bench/loadgen.py)
except ImportError as e:
    raise SystemExit("cannot import loadgen from %s (--loadgen-dir / RAFTKV_LOADGEN_DIR): %s" % (LOADGEN_DIR, e))
import cluster as h  # noqa: E402  (tests/integration/cluster.py)


class RaftkvBackend:
    """raftkv.v1.KV: Put, and Get (linearizable unless serializable)."""

    def __init__(self, endpoints, conns, timeout_s):
        S = h.stubs()  # generated once; workers reuse them through RAFTKV_STUBS_DIR
        self.pb = S.kv
        self.pbg = S.kv_grpc
        self.endpoints = endpoints
        self.conns = conns
        self.timeout_s = timeout_s
        self.channels = []
        self.kv = []

    async def connect(self):
        import grpc.aio
        for i in range(self.conns):
            ep = self.endpoints[i % len(self.endpoints)]
            # distinct channel args => distinct TCP connections (as loadgen's etcd backend)
            ch = grpc.aio.insecure_channel(ep, options=[("grpc.channel_id", i), ("grpc.enable_retries", 0)] +
                                           h.CHANNEL_OPTIONS)
            self.channels.append(ch)
            self.kv.append(self.pbg.KVStub(ch))
        for ch in self.channels:
            await asyncio.wait_for(ch.channel_ready(), 10)

    async def put(self, ci, key, value):
        await self.kv[ci].Put(self.pb.PutRequest(key=key, value=value), timeout=self.timeout_s)

    async def get(self, ci, key, serializable=False):
        c = self.pb.SERIALIZABLE if serializable else self.pb.LINEARIZABLE
        r = await self.kv[ci].Get(self.pb.GetRequest(key=key, consistency=c), timeout=self.timeout_s)
        return 1 if r.HasField("kv") else 0

    async def close(self):
        for ch in self.channels:
            await ch.close()


loadgen.BACKENDS["raftkv"] = RaftkvBackend


async def populate(endpoint, n, key_size, val_size, concurrency=64):
    """Write keys 0..n-1 (loadgen's key names) so the get runs find them."""
    be = RaftkvBackend([endpoint], min(8, concurrency), 10)
    await be.connect()
    value = os.urandom(val_size)
    nxt, errors = [0], [0]

    async def w(wi):
        while nxt[0] < n:
            i = nxt[0]
            nxt[0] += 1
            for _ in range(5):
                try:
                    await be.put(wi % len(be.channels), loadgen.keyname(i, key_size), value)
                    break
                except Exception:  # noqa: BLE001
                    errors[0] += 1
                    await asyncio.sleep(0.05)
    t0 = time.monotonic()
    await asyncio.gather(*(w(i) for i in range(concurrency)))
    await be.close()
    return time.monotonic() - t0, errors[0]


def run_loadgen(argv):
    saved = sys.argv
    sys.argv = ["loadgen.py"] + argv
    try:
        sys.stdout.flush()
        loadgen.main()
    finally:
        sys.argv = saved
        sys.stdout.flush()
        sys.stderr.flush()


def is_sanitized(binary):
    try:
        out = subprocess.run(["ldd", binary], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout
        return b"libasan" in out or b"libubsan" in out
    except OSError:
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--raftnode", default=None, help="binary (default: $RAFTNODE, else the newest build*/server/node/raftnode)")
    ap.add_argument("--loadgen-dir", default=LOADGEN_DIR, help="directory holding loadgen.py (env RAFTKV_LOADGEN_DIR)")
    ap.add_argument("--endpoint", default="", help="use this running leader (or gateway) instead of starting a cluster")
    ap.add_argument("--via-gateway", action="store_true",
                    help="start a kvgateway next to the cluster and send everything (populate too) through it")
    ap.add_argument("--kvgateway", default=None, help="gateway binary (default: $KVGATEWAY, else the newest "
                    "build*/server/gateway/kvgateway)")
    ap.add_argument("--gw-flag", action="append", default=[], metavar="NAME=VALUE",
                    help="extra kvgateway flag, e.g. --gw-flag probe-interval-ms=200 (repeatable; "
                    "default: the gateway's own defaults)")
    ap.add_argument("--concurrency", default="1,16,64,256")
    ap.add_argument("--modes", default="put,get", help="put and/or get (loadgen's linearizable range mode)")
    ap.add_argument("--duration-s", type=float, default=10)
    ap.add_argument("--warmup-s", type=float, default=2)
    ap.add_argument("--key-size", type=int, default=16)
    ap.add_argument("--val-size", type=int, default=128)
    ap.add_argument("--key-space", type=int, default=100000)
    ap.add_argument("--populate", type=int, default=-1, help="get: keys written first (-1: the key space)")
    ap.add_argument("--procs", type=int, default=1)
    ap.add_argument("--quiet-pct", type=float, default=0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--flag", action="append", default=[], metavar="NAME=VALUE",
                    help="extra raftnode flag, e.g. --flag snapshot-entries=100000 (repeatable)")
    a = ap.parse_args()
    if a.raftnode:
        os.environ["RAFTNODE"] = os.path.abspath(a.raftnode)
    if a.kvgateway:
        os.environ["KVGATEWAY"] = os.path.abspath(a.kvgateway)
    if a.via_gateway and a.endpoint:
        raise SystemExit("--via-gateway starts its own cluster and gateway: not with --endpoint")
    concs = [int(x) for x in a.concurrency.split(",") if x]
    modes = [m for m in a.modes.split(",") if m]
    for m in modes:
        if m not in ("put", "get"):
            raise SystemExit("unknown mode %r (put, get)" % m)
    # stdout is loadgen's JSON lines only: the harness's progress lines go to stderr
    h.log = lambda msg: print("[%8.3f] %s" % (time.monotonic() - h._T0, msg), file=sys.stderr, flush=True)
    h.stubs()  # generate now, in the parent: workers inherit RAFTKV_STUBS_DIR
    c = None
    pidfiles = []
    try:
        if a.endpoint:
            endpoint_fn = lambda: a.endpoint  # noqa: E731
        else:
            binary = h.raftnode_path()
            print("raftnode: %s%s" % (binary, "  (WARNING: sanitizer build, figures are not representative)"
                                      if is_sanitized(binary) else ""), file=sys.stderr)
            flags = dict(kv.split("=", 1) for kv in a.flag)
            c = h.Cluster(3, label="bench", flags=flags).start()
            os.makedirs(os.path.join(c.dir, "pids"))
            for n in c.nodes:
                pf = os.path.join(c.dir, "pids", "%s.pid" % n.name)
                with open(pf, "w") as f:
                    f.write("%d\n" % n.proc.pid)  # setpriv execs raftnode: same pid
                pidfiles.append(pf)
            if a.via_gateway:
                gbin = h.kvgateway_path()
                print("kvgateway: %s%s" % (gbin, "  (WARNING: sanitizer build, figures are not representative)"
                                           if is_sanitized(gbin) else ""), file=sys.stderr)
                g = h.Gateway(c, flags=dict(kv.split("=", 1) for kv in a.gw_flag), harness_defaults=False)
                g.start(serving=True, timeout=30)
                pf = os.path.join(c.dir, "pids", "gateway.pid")
                with open(pf, "w") as f:
                    f.write("%d\n" % g.proc.pid)
                pidfiles.append(pf)

                def endpoint_fn():
                    c.wait_leader(timeout=15)
                    g.wait_serving(timeout=15)
                    return g.addr
            else:
                def endpoint_fn():
                    L = c.wait_leader(timeout=15)
                    return L.client_addr
        common = ["--backend", "raftkv", "--duration-s", str(a.duration_s), "--warmup-s", str(a.warmup_s),
                  "--key-size", str(a.key_size), "--val-size", str(a.val_size), "--key-space", str(a.key_space),
                  "--procs", str(a.procs), "--quiet-pct", str(a.quiet_pct), "--seed", str(a.seed),
                  "--server-pidfiles", ",".join(pidfiles)]
        for mode in modes:
            if mode == "get":
                npop = a.key_space if a.populate < 0 else a.populate
                if npop > 0:
                    dt, errs = asyncio.run(populate(endpoint_fn(), npop, a.key_size, a.val_size))
                    print(json.dumps({"mode": "populate", "backend": "raftkv", "total": npop, "seconds": dt,
                                      "ops_per_s": npop / dt, "errors": errs}))
            for conc in concs:
                ep = endpoint_fn()
                argv = common + ["--mode", "put" if mode == "put" else "range", "--endpoints", ep,
                                 "--concurrency", str(conc)]
                if mode == "get":
                    argv += ["--populate", "0"]  # loadgen's own populate speaks etcd only; done above
                run_loadgen(argv)
    finally:
        problems = []
        if c is not None:
            problems = c.stop()
            if problems:
                print("cluster shutdown problems: %s" % problems, file=sys.stderr)
                c.dump_logs()
            else:
                import shutil
                shutil.rmtree(c.dir, ignore_errors=True)
        h._kill_everything()
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
