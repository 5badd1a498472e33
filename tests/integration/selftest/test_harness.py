#!/usr/bin/python3
"""Self-test of the integration harness (cluster.py) against fake_raftnode.py.

    /usr/bin/python3 tests/integration/selftest/test_harness.py

Not registered with ctest (it tests the test tooling, not raftkv).
"""
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
os.environ["RAFTNODE"] = os.path.join(HERE, "fake_raftnode.py")
import cluster as h  # noqa: E402


def test_ports():
    ps = h.free_ports(50)
    assert len(set(ps)) == 50 and all(20000 <= p < 32768 for p in ps)
    assert not set(ps) & set(h.free_ports(50)), "ports handed out twice"


def test_until_is_bounded():
    t0 = time.monotonic()
    try:
        h.until(lambda: 1 / 0, 0.3, "the impossible")
        raise AssertionError("no timeout")
    except h.Timeout as e:
        assert "the impossible" in str(e) and "ZeroDivisionError" in str(e), e
    assert time.monotonic() - t0 < 2
    assert h.until(lambda: 42, 1, "x") == 42


def test_leader_hint_parse():
    class E:
        def __init__(self, md):
            self.md = md

        def trailing_metadata(self):
            return self.md
    assert h.leader_hint(E((("raftkv-leader", "1234@127.0.0.1:7102"),))) == (1234, "127.0.0.1:7102")
    assert h.leader_hint(E((("raftkv-leader", b"5@h:1"),))) == (5, "h:1")
    assert h.leader_hint(E(())) is None and h.leader_hint(E(None)) is None
    assert h.leader_hint(E((("raftkv-leader", "garbage"),))) is None


def test_cluster_lifecycle():
    c = h.Cluster(3, label="self").start()
    L = c.wait_leader(timeout=10)
    assert L.name == "n1"
    f = c.followers(L)[0]
    f.kill()
    assert not f.alive()
    f.restart()
    assert f.alive()
    assert f.terminate() == 0
    f.start().wait_ready()
    # a node dying behind the harness's back and a sanitizer report are both reported
    os.kill(c.nodes[2].proc.pid, signal.SIGKILL)
    c.nodes[2].proc.wait(5)
    with open(c.nodes[1].log_path, "a") as fh:
        fh.write("==1==ERROR: AddressSanitizer: heap-use-after-free (planted by the self-test)\n")
    problems = c.stop()
    assert any("n3 died unexpectedly" in p for p in problems), problems
    assert any("n2 log has sanitizer" in p for p in problems), problems
    assert not any("n1" in p for p in problems), problems
    h._clusters.remove(c)  # its planted problems are expected


def test_nodes_die_with_the_test_process():
    """A test process killed with SIGKILL (ctest timeout) takes its raftnodes along."""
    code = ("import sys,os,time; sys.path.insert(0, %r); import cluster as h; "
            "c = h.Cluster(3, label='orphan').start(); "
            "print('PIDS', ' '.join(str(n.proc.pid) for n in c.nodes), flush=True); time.sleep(60)"
            % os.path.dirname(HERE))
    tmp = h._mkdtemp("raftkv-it-orphans-")  # the child cannot clean up after SIGKILL: we do
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                         env=dict(os.environ, RAFTKV_IT_TMPDIR=tmp))
    try:
        line = ""
        while not line.startswith("PIDS"):
            line = p.stdout.readline().decode()
            assert line, "the child exited early"
        pids = [int(x) for x in line.split()[1:]]
        assert len(pids) == 3, line
    finally:
        p.kill()
        p.wait(5)

    def gone():
        for pid in pids:
            try:
                os.kill(pid, 0)
                return False
            except ProcessLookupError:
                pass
        return True
    h.until(gone, 5, "the orphaned nodes %s to die" % pids)


if __name__ == "__main__":
    h.run([test_ports, test_until_is_bounded, test_leader_hint_parse, test_cluster_lifecycle,
           test_nodes_die_with_the_test_process])
