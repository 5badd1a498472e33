#!/usr/bin/python3
"""The README's first command, exactly as README.md's Quick start writes it (parsed from the
README, so the two cannot drift): it builds, starts a cluster and a gateway in the
foreground and prints the endpoints; the cluster is used through the printed gateway
endpoint (Python stubs, and the printed kvctl commands when kvctl was built); `<script> stop`
stops it (exit 0, every process gone); a second start keeps the first run's data; Ctrl-C
(SIGINT to the script's process group) stops it cleanly.

RAFTKV_CLUSTER_DIR points at a temporary directory and RAFTKV_CLUSTER_PORT at a free block
of ports. The first start builds build/ (RelWithDebInfo): slow the first time
(RAFTKV_QUICKSTART_START_S, default 600 s, bounds the wait for the "Ctrl-C" line)."""
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster as h  # noqa: E402
import grpc  # noqa: E402

README = os.path.join(h.REPO, "README.md")
START_S = float(os.environ.get("RAFTKV_QUICKSTART_START_S", "600"))
NPORTS = 4  # gateway at the base, raftnodes at base+1..base+3


def readme_first_command():
    """The first command line of the first code block under '## Quick start'."""
    with open(README) as f:
        text = f.read()
    m = re.search(r"^## Quick start\s*$(.*?)(?=^## )", text, re.M | re.S)
    assert m, "README.md has no '## Quick start' section"
    block = re.search(r"^```[\w-]*\n(.*?)^```", m.group(1), re.M | re.S)
    assert block, "the Quick start section has no code block"
    lines = [l.split("#", 1)[0].strip() for l in block.group(1).splitlines()]
    lines = [l for l in lines if l]
    assert lines, "the Quick start code block is empty"
    return shlex.split(lines[0])


class Script:
    """One run of the quick-start command: its output lines, process group, pid files."""

    def __init__(self, argv, env, label):
        self.argv = argv
        self.env = env
        self.label = label
        self.lines = []
        self.lock = threading.Lock()
        h.log("%s: running %s (cwd %s)" % (label, " ".join(argv), h.REPO))
        self.proc = subprocess.Popen(argv, cwd=h.REPO, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            with self.lock:
                self.lines.append(line)
            print("  [%s] %s" % (self.label, line), flush=True)

    def output(self):
        with self.lock:
            return list(self.lines)

    def wait_line(self, pattern, timeout):
        rx = re.compile(pattern)

        def found():
            for l in self.output():
                if rx.search(l):
                    return l
            if self.proc.poll() is not None:
                self.reader.join(5)
                for l in self.output():
                    if rx.search(l):
                        return l
                raise h.Fatal("%s exited with status %s before printing /%s/" % (
                    self.label, self.proc.returncode, pattern))
            return None
        return h.until(found, timeout, "%s to print /%s/" % (self.label, pattern), interval=0.2)

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(h.scaled(timeout))
        except subprocess.TimeoutExpired:
            raise AssertionError("%s still running %.0fs later" % (self.label, h.scaled(timeout))) from None


def pids_in(d):
    out = {}
    for f in sorted(os.listdir(d)) if os.path.isdir(d) else ():
        if f.endswith(".pid"):
            try:
                with open(os.path.join(d, f)) as fh:
                    out[f[:-4]] = int(fh.read().strip())
            except (OSError, ValueError):
                pass
    return out


def running(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class Quickstart:
    def __init__(self):
        self.argv = readme_first_command()
        h.log("README's first command: %s" % " ".join(self.argv))
        self.dir = os.path.join(h._mkdtemp("raftkv-quickstart-"), "cluster")
        self.base = h.free_port_block(NPORTS)
        self.env = dict(os.environ, RAFTKV_CLUSTER_DIR=self.dir, RAFTKV_CLUSTER_PORT=str(self.base))
        self.scripts = []
        self.all_pids = set()

    def start(self, label, timeout):
        s = Script(self.argv, self.env, label)
        self.scripts.append(s)
        s.wait_line(r"Ctrl-C", timeout)
        pids = pids_in(self.dir)
        h.log("%s: pid files %s" % (label, pids))
        assert len(pids) >= 4, "expected pid files of 3 raftnodes and the gateway in %s: %s" % (self.dir, pids)
        self.all_pids.update(pids.values())
        s.pids = pids
        return s

    def gateway_addr(self, s):
        for l in s.output():
            if "gateway" in l.lower():
                m = re.search(r"\b(\d{1,3}(?:\.\d{1,3}){3}:\d+)\b", l)
                if m:
                    return m.group(1)
        raise AssertionError("%s printed no gateway endpoint:\n%s" % (s.label, "\n".join(s.output())))

    def stop_command(self):
        r = subprocess.run(self.argv + ["stop"], cwd=h.REPO, env=self.env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=h.scaled(60))
        h.log("%s stop: exit %d: %s" % (self.argv[0], r.returncode, r.stdout.decode(errors="replace").strip()))
        return r.returncode

    def check_all_exited(self, s):
        h.until(lambda: not [p for p in s.pids.values() if running(p)], 20,
                "every process of %s to exit (%s)" % (s.label, s.pids))

    def cleanup(self):
        """Whatever happened: stop the cluster, then SIGKILL anything left."""
        live = [s for s in self.scripts if s.proc.poll() is None]
        if live or any(running(p) for p in self.all_pids | set(pids_in(self.dir).values())):
            try:
                self.stop_command()
            except Exception as e:  # noqa: BLE001
                h.log("cleanup: stop failed: %r" % e)
        for s in self.scripts:
            if s.proc.poll() is None:
                try:
                    os.killpg(s.proc.pid, signal.SIGKILL)
                except OSError:
                    pass
                s.proc.wait(10)
        for p in self.all_pids | set(pids_in(self.dir).values()):
            if running(p):
                h.log("cleanup: SIGKILL %d" % p)
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass


_q = None


def _cleanup_on_signal(signum, _frame):
    if _q is not None:
        _q.cleanup()
    raise SystemExit(128 + signum)


def channel_ready(addr):
    return grpc.insecure_channel(addr, options=h.CHANNEL_OPTIONS)


def wait_gateway_serving(addr, timeout=60):
    S = h.stubs()
    ch = channel_ready(addr)
    try:
        def serving():
            r = S.health_grpc.HealthStub(ch).Check(S.health.HealthCheckRequest(service="raftkv.v1.KV"),
                                                   timeout=h.scaled(1))
            return r.status == S.health.HealthCheckResponse.SERVING
        h.until(serving, timeout, "the gateway at %s to be SERVING" % addr, interval=0.1)
    finally:
        ch.close()


def kv_call(addr, method, req, timeout=10):
    ch = channel_ready(addr)
    try:
        return getattr(h.stubs().kv_grpc.KVStub(ch), method)(req, timeout=h.scaled(timeout))
    finally:
        ch.close()


def printed_kvctl_commands(s):
    """The kvctl commands the script printed (indented lines naming a kvctl binary)."""
    out = []
    for l in s.output():
        if l.startswith(" ") and "kvctl" in l:
            argv = shlex.split(l.split("#", 1)[0])
            if argv and os.path.basename(argv[0]) == "kvctl":
                out.append(argv)
    return out


def run_kvctl(argv):
    r = subprocess.run(argv, cwd=h.REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=h.scaled(30))
    out = r.stdout.decode(errors="replace")
    h.log("$ %s -> exit %d: %s%s" % (" ".join(argv), r.returncode, out.strip()[:300],
                                     r.stderr.decode(errors="replace").strip()[:300]))
    assert r.returncode == 0, "%s: exit %d: %s" % (" ".join(argv), r.returncode, r.stderr.decode(errors="replace"))
    return out


def test_quickstart():
    global _q
    q = _q = Quickstart()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _cleanup_on_signal)
    p = h.stubs().kv
    key, value = b"quickstart/%d" % h.rng.randrange(1 << 30), b"v-%d" % h.rng.randrange(1 << 30)
    try:
        # --- first run: build, start, use through the gateway, `stop`
        t0 = time.monotonic()
        s1 = q.start("run1", START_S)
        h.log("run1: up after %.1fs" % (time.monotonic() - t0))
        gw = q.gateway_addr(s1)
        assert gw == "127.0.0.1:%d" % q.base, "gateway %s does not honour RAFTKV_CLUSTER_PORT=%d" % (gw, q.base)
        wait_gateway_serving(gw)
        r = kv_call(gw, "Put", p.PutRequest(key=key, value=value))
        assert r.header.revision > 0, r
        assert kv_call(gw, "Get", p.GetRequest(key=key)).kv.value == value
        cmds = printed_kvctl_commands(s1)
        if cmds and os.access(cmds[0][0], os.X_OK):
            for argv in cmds:
                out = run_kvctl(argv)
                if "get" in argv[1:]:
                    assert "world" in out, "printed `%s` answered %r" % (" ".join(argv), out)
            out = run_kvctl([cmds[0][0], "--endpoints", gw, "get", key.decode()])
            assert value.decode() in out, out
        else:
            h.log("no kvctl binary among the printed commands (%s): kvctl part skipped" % cmds)
        rc = q.stop_command()
        assert rc == 0, "`%s stop` exited %d" % (q.argv[0], rc)
        rc = s1.wait_exit(30)
        assert rc == 0, "run1: the script exited %s after `stop` (expected 0)" % rc
        q.check_all_exited(s1)

        # --- second run: the data is still there; Ctrl-C
        s2 = q.start("run2", 300)
        gw2 = q.gateway_addr(s2)
        assert gw2 == gw, (gw2, gw)
        wait_gateway_serving(gw2)
        got = h.until(lambda: kv_call(gw2, "Get", p.GetRequest(key=key), timeout=5), 30,
                      "a linearizable Get through the gateway after the restart")
        assert got.kv.value == value, "after restart %r = %r, expected %r" % (key, got.kv, value)
        h.log("run2: Ctrl-C (SIGINT to process group %d)" % s2.proc.pid)
        os.killpg(s2.proc.pid, signal.SIGINT)
        rc = s2.wait_exit(30)
        assert rc == 0, "run2: exit status %s after Ctrl-C (expected 0)" % rc
        q.check_all_exited(s2)
        for name in sorted(os.listdir(q.dir)):
            if name.endswith(".log"):
                with open(os.path.join(q.dir, name), "rb") as f:
                    bad = [l for l in f.read().decode(errors="replace").splitlines()
                           if any(m in l for m in h.BAD_LOG_MARKERS)]
                assert not bad, "%s: %s" % (name, bad[:3])
    except BaseException:
        for name in sorted(os.listdir(q.dir)) if os.path.isdir(q.dir) else ():
            if name.endswith(".log"):
                with open(os.path.join(q.dir, name), "rb") as f:
                    tail = f.read().decode(errors="replace").splitlines()[-h.LOG_LINES:]
                print("----- %s:\n%s" % (name, "\n".join(tail)), file=sys.stderr)
        raise
    finally:
        q.cleanup()


if __name__ == "__main__":
    h.run([test_quickstart])
