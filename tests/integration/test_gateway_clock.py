#!/usr/bin/python3
"""A gateway whose wall clock disagrees with the kernel's keeps retrying, probing and
reporting health on time: its timed waits run on the monotonic clock.

The gateway runs with tests/integration/clockshift.c preloaded (RAFTKV_CLOCKSHIFT_LIB, built
by ctest's CMake): CLOCK_REALTIME reads an hour ahead of the kernel's clock. A wait computed
from the wall clock and handed to the kernel (a default pthread condition variable) would
then last an hour, exactly as after a backward step of the system clock mid-wait: retries
after a leader change, probes and health updates would stall.
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster as h  # noqa: E402

SHIFT_S = 3600
_c = None
_gw = None


def setup():
    global _c, _gw
    lib = os.environ.get("RAFTKV_CLOCKSHIFT_LIB", "")
    if not lib or not os.path.exists(lib):
        raise SystemExit("RAFTKV_CLOCKSHIFT_LIB (the clockshift shim) is not set or missing: "
                         "run through ctest, or build the raftkv_clockshift target and set it")
    if _c is None:
        _c = h.Cluster(3, label="clock").start()
        _c.wait_leader()
        asan = os.environ.get("ASAN_OPTIONS", "")
        env = {"LD_PRELOAD": lib, "RAFTKV_CLOCKSHIFT_S": str(SHIFT_S),
               # the shim is preloaded ahead of the sanitizer runtime on purpose
               "ASAN_OPTIONS": (asan + ":" if asan else "") + "verify_asan_link_order=0"}
        _gw = h.Gateway(_c, env=env, flags={"default-timeout-ms": 8000}).start(serving=True)
    return _c.revive(), _gw


def log_clock_offset(gw):
    """Seconds between the gateway's log timestamps (its wall clock) and ours."""
    for line in gw.log_text().splitlines():
        m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.\d+Z ", line)
        if m:
            t = time.mktime(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")) - time.timezone
            return t - time.time()
    return None


def test_the_shim_moves_the_gateways_wall_clock():
    """Without this the test below would pass vacuously."""
    _, gw = setup()
    off = log_clock_offset(gw)
    assert off is not None, "no timestamped line in the gateway log:\n%s" % gw.log_tail()
    assert SHIFT_S - 120 < off < SHIFT_S + 120, "gateway clock offset %.0f s, wanted ~%d" % (off, SHIFT_S)


def test_retry_after_leader_kill():
    """A write right after the leader's SIGKILL fails on the dead leader, waits for a backoff
    retry on the timer thread, and must succeed well within its deadline."""
    c, gw = setup()
    P = h.stubs().kv
    gw.kv().Put(P.PutRequest(key=b"clk/a", value=b"1"), timeout=h.scaled(5))
    L = c.wait_leader()
    L.kill()
    t0 = time.monotonic()
    r = gw.kv().Put(P.PutRequest(key=b"clk/b", value=b"2"), timeout=h.scaled(8))
    took = time.monotonic() - t0
    h.log("put after the leader kill answered in %.2f s (revision %d)" % (took, r.header.revision))
    got = gw.kv().Get(P.GetRequest(key=b"clk/b"), timeout=h.scaled(5))
    assert got.HasField("kv") and got.kv.value == b"2"
    L.start()
    c.wait_leader()


def test_health_follows_the_cluster():
    """Probes run every --probe-interval-ms: health goes NOT_SERVING when a majority is down
    and SERVING again when it is back."""
    c, gw = setup()
    gw.wait_serving()
    L = c.wait_leader()
    down = c.followers(L)[:1] + [L]
    for n in down:
        n.kill()
    gw.wait_health("NOT_SERVING", timeout=10)
    for n in down:
        n.start()
    c.wait_leader(timeout=30)
    gw.wait_serving(timeout=20)


if __name__ == "__main__":
    h.run([test_the_shim_moves_the_gateways_wall_clock, test_retry_after_leader_kill,
           test_health_follows_the_cluster])
