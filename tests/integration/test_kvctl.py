#!/usr/bin/python3
"""kvctl against a real 3-node cluster: every command in human and --json form, every exit
code, leader-hint following, --help.

kvctl is pointed at every raftnode's client address (followers first, so most writes and
linearizable reads start at a follower and must follow the `raftkv-leader` hint).
KVCTL=<path> names the binary (ctest sets it; default: the newest <repo>/build*/client/kvctl).
Every test uses its own key prefix.
"""
import base64
import glob
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster as h  # noqa: E402

# Exit codes (client/kvctl.h, docs/kvctl.md).
OK, ERROR, USAGE, NOT_FOUND, COMPARE_FAILED, UNAVAILABLE = 0, 1, 2, 3, 4, 5
COMMANDS = ["put", "get", "del", "range", "append", "txn", "status", "members"]

_c = None


def kvctl_path():
    p = os.environ.get("KVCTL", "")
    if p:
        if not os.access(p, os.X_OK):
            raise SystemExit("KVCTL=%s is not an executable file" % p)
        return p
    found = [c for c in glob.glob(os.path.join(h.REPO, "build*", "client", "kvctl"))
             if os.access(c, os.X_OK)]
    if not found:
        raise SystemExit("kvctl not found: build it (cmake --build <build> --target kvctl) "
                         "and/or set KVCTL=<path>")
    return max(found, key=os.path.getmtime)


def C():
    global _c
    if _c is None:
        _c = h.Cluster(3, label="kvctl").start()
    return _c.revive()


def endpoints(leader_last=True):
    """Every client address, followers first."""
    c = C()
    ln = c.wait_leader()
    nodes = c.followers(ln) + [ln] if leader_last else [ln] + c.followers(ln)
    return ",".join(n.client_addr for n in nodes)


def run(*args, ep=None, timeout="5s", json_out=False, env=None, limit=30):
    """Run kvctl; returns (exit status, stdout bytes, stderr text)."""
    cmd = [kvctl_path()]
    if ep is not False:
        cmd += ["--endpoints", ep if ep is not None else endpoints()]
    if timeout:
        cmd += ["--timeout", timeout]
    if json_out:
        cmd.append("--json")
    cmd += list(args)
    e = dict(os.environ)
    e.pop("RAFTKV_ENDPOINTS", None)
    e.update(env or {})
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e,
                       timeout=h.scaled(limit))
    err = r.stderr.decode(errors="replace")
    if "Sanitizer" in err or "runtime error" in err:
        raise AssertionError("sanitizer report from %s:\n%s" % (cmd, err))
    return r.returncode, r.stdout, err


def ok(*args, **kw):
    rc, out, err = run(*args, **kw)
    assert rc == OK, "kvctl %s: exit %d, stderr %s, stdout %r" % (args, rc, err, out)
    return out


def js(*args, expect=OK, **kw):
    rc, out, err = run(*args, json_out=True, **kw)
    assert rc == expect, "kvctl --json %s: exit %d (expected %d), stderr %s, stdout %r" % (
        args, rc, expect, err, out)
    lines = out.decode().splitlines()
    assert len(lines) == 1, "one JSON object per command, got %r" % out
    return json.loads(lines[0])


def lines(out):
    return out.decode().split("\n")[:-1]


# ----------------------------------------------------------------------------------- tests
def test_help():
    rc, out, _ = run("--help", ep=False)
    assert rc == OK
    text = out.decode()
    for cmd in COMMANDS:
        assert "\n  %s " % cmd in text, "--help does not list %s:\n%s" % (cmd, text)
    for flag in ("--endpoints", "--timeout", "--json", "--help", "RAFTKV_ENDPOINTS"):
        assert flag in text, flag
    for code in range(6):
        assert "\n  %d  " % code in text, "exit code %d not documented" % code
    for cmd in COMMANDS:
        for form in ((cmd, "--help"), ("help", cmd), ("-h", cmd)):
            rc, out, err = run(*form, ep=False)
            assert rc == OK and out.decode().startswith("Usage: kvctl [global options] %s" % cmd), \
                (form, rc, out, err)
    t = ok("txn", "--help", ep=False).decode()
    for word in ("value(", "version(", "create(", "mod(", "exists(", "!=", "--if", "--then",
                 "--else", "put KEY VALUE", "del KEY", "range KEY", "get KEY"):
        assert word in t, word


def test_usage_errors():
    bad = [
        [], ["bogus"], ["--bogus", "get", "k"], ["get"], ["get", "a", "b"], ["put", "k"],
        ["get", "k", "--prefix"], ["range", "a", "b", "--prefix"], ["range", "a", "--limit", "x"],
        ["--timeout", "soon", "get", "k"], ["--timeout", "0", "get", "k"],
        ["--endpoints", "nohostport", "get", "k"], ["put", "k", "v", "--prev-kv=1"],
        ["txn", "--if", "value(k) ~ 1"], ["txn", "--if", "version(k) > x"],
        ["txn", "--if", "bogus(k) = 1"], ["txn", "--then", "frob k"], ["txn", "--then", "put k"],
        ["txn", "--if", "exists(k) > true"], ["txn", "--if", 'value(k) = "unterminated'],
        ["status", "extra"], ["-x"], ["put", "--", "k"], ["range", ""],
        ["range", "a", "--after", "--prefix"], ["get", "--json=1", "k"], ["help", "bogus"],
    ]
    t0 = time.monotonic()
    for args in bad:
        # An unreachable endpoint: a usage error must be found before any connection.
        rc, out, err = run(*args, ep="127.0.0.1:1")
        assert rc == USAGE, "kvctl %s: exit %d (expected %d), stderr %s" % (args, rc, USAGE, err)
        assert out == b"", (args, out)
        assert err.startswith("kvctl: "), (args, err)
    log_ok = time.monotonic() - t0
    h.log("%d usage errors in %.1fs" % (len(bad), log_ok))


def test_put_get():
    ep = endpoints()
    assert ok("put", "pg/k", "v1", ep=ep) == b"OK\n"
    assert lines(ok("get", "pg/k", ep=ep)) == ["pg/k", "v1"]
    assert lines(ok("put", "pg/k", "v2", "--prev-kv", ep=ep)) == ["OK", "pg/k", "v1"]
    assert lines(ok("get", "pg/k", "--serializable", ep=ep)) in (["pg/k", "v2"], ["pg/k", "v1"])
    # global options after the command, --flag=value form, env fallback for endpoints
    assert lines(ok("get", "pg/k", "--timeout=3s", ep=False, env={"RAFTKV_ENDPOINTS": ep})) == \
        ["pg/k", "v2"]
    # a value that looks like a flag, after --
    assert ok("put", "--", "pg/dash", "--v", ep=ep) == b"OK\n"
    assert lines(ok("get", "pg/dash", ep=ep)) == ["pg/dash", "--v"]

    p = js("put", "pg/j", "x", ep=ep)
    assert p["header"]["revision"] > 0 and p["prev_kv"] is None, p
    p2 = js("put", "pg/j", "y", "--prev-kv", ep=ep)
    assert p2["header"]["revision"] == p["header"]["revision"] + 1 or \
        p2["header"]["revision"] > p["header"]["revision"], (p, p2)
    assert p2["prev_kv"]["value"] == "x" and p2["prev_kv"]["version"] == 1, p2
    g = js("get", "pg/j", ep=ep)
    kv = g["kv"]
    assert (kv["key"], kv["value"], kv["version"], kv["create_revision"], kv["mod_revision"]) == \
        ("pg/j", "y", 2, p["header"]["revision"], p2["header"]["revision"]), g
    for f in ("revision", "member_id", "raft_term", "raft_index"):
        assert isinstance(g["header"][f], int), g
    # missing key: exit 3, nothing on stdout (human), kv null (json)
    rc, out, err = run("get", "pg/missing", ep=ep)
    assert (rc, out) == (NOT_FOUND, b""), (rc, out, err)
    assert "not found" in err, err
    g = js("get", "pg/missing", expect=NOT_FOUND, ep=ep)
    assert g["kv"] is None and g["header"]["revision"] > 0, g
    # UTF-8 stays a string (escaped control bytes); other bytes become {"base64": ...}
    ok("put", "pg/utf8", "h\u00e9llo\n\"q\"", ep=ep)
    assert js("get", "pg/utf8", ep=ep)["kv"]["value"] == "h\u00e9llo\n\"q\""
    rc, _, err = run(b"put", b"pg/bin", b"\xff\xfe\x00\x01"[:2] + b"ab", ep=ep)
    assert rc == OK, err
    v = js("get", "pg/bin", ep=ep)["kv"]["value"]
    assert v == {"base64": base64.b64encode(b"\xff\xfeab").decode()}, v
    rc, out, _ = run("get", "pg/bin", ep=ep)
    assert out == b"pg/bin\n\xff\xfeab\n", out


def test_range_and_del():
    ep = endpoints()
    keys = ["rd/%02d" % i for i in range(7)]
    for i, k in enumerate(keys):
        ok("put", k, "v%d" % i, ep=ep)
    ok("put", "rd0", "outside", ep=ep)
    out = lines(ok("range", "rd/", "--prefix", ep=ep))
    assert out == sum([[k, "v%d" % i] for i, k in enumerate(keys)], []), out
    assert lines(ok("range", "rd/", "--prefix", "--keys-only", ep=ep)) == keys
    assert lines(ok("range", "rd/", "--prefix", "--count-only", ep=ep)) == ["7"]
    assert lines(ok("range", "rd/02", "rd/05", "--keys-only", ep=ep)) == keys[2:5]
    assert lines(ok("range", "rd/03", ep=ep)) == ["rd/03", "v3"]
    assert lines(ok("range", "rd/", "--prefix", "--serializable", "--keys-only", ep=ep)) == keys
    # paging: human prints more/next_key on stderr; next_key = last key + a 0 byte
    rc, out, err = run("range", "rd/", "--prefix", "--limit", "3", "--keys-only", ep=ep)
    assert rc == OK and lines(out) == keys[:3], (rc, out, err)
    assert "more: true\nnext_key: rd/02\\x00\n" in err, err
    assert "continue with: kvctl range --after rd/02 RANGE_END" in err, err
    r = js("range", "rd/", "--prefix", "--limit", "3", ep=ep)
    assert [x["key"] for x in r["kvs"]] == keys[:3] and r["more"] is True, r
    assert r["next_key"] == "rd/02\u0000" and r["count"] == 7, r
    assert r["kvs"][1]["value"] == "v1" and r["kvs"][1]["version"] == 1, r
    # follow the pages to the end with --after and the prefix end
    page = ["rd/", "rd0", "--limit", "3"]
    seen = []
    for _ in range(10):
        r = js("range", *page, ep=ep)
        seen += [x["key"] for x in r["kvs"]]
        if not r["more"]:
            break
        assert r["next_key"] == seen[-1] + "\u0000", r
        page = ["--after", seen[-1], "rd0", "--limit", "3"]
    assert seen == keys, seen
    rc, out, err = run("range", "--after", "rd/04", "rd0", "--keys-only", ep=ep)
    assert lines(out) == keys[5:] and "more" not in err, (out, err)
    r = js("range", "rd/", "--prefix", "--count-only", ep=ep)
    assert r["count"] == 7 and r["kvs"] == [] and r["more"] is False, r

    # del: one key, a range, a prefix, with and without prev-kv
    assert lines(ok("del", "rd/00", ep=ep)) == ["1"]
    assert lines(ok("del", "rd/00", ep=ep)) == ["0"]
    assert lines(ok("del", "rd/01", "--prev-kv", ep=ep)) == ["1", "rd/01", "v1"]
    d = js("del", "rd/02", "rd/04", "--prev-kv", ep=ep)
    assert d["deleted"] == 2 and [x["key"] for x in d["prev_kvs"]] == ["rd/02", "rd/03"], d
    assert d["prev_kvs"][0]["value"] == "v2", d
    d = js("del", "rd/", "--prefix", ep=ep)
    assert d["deleted"] == 3 and d["prev_kvs"] == [], d
    assert lines(ok("range", "rd/", "--prefix", "--count-only", ep=ep)) == ["0"]
    assert lines(ok("get", "rd0", ep=ep)) == ["rd0", "outside"], "prefix delete went too far"


def test_append():
    ep = endpoints()
    assert lines(ok("append", "ap/k", "abc", ep=ep)) == ["ap/k", "abc"]
    a = js("append", "ap/k", "def", ep=ep)
    assert a["kv"]["value"] == "abcdef" and a["kv"]["version"] == 2, a
    assert a["header"]["revision"] == a["kv"]["mod_revision"], a


def test_txn():
    ep = endpoints()
    r0 = js("put", "tx/k", "v1", ep=ep)["header"]["revision"]
    ok("put", "tx/other", "o", ep=ep)
    # success: every target and operator
    args = ["txn", "--if", 'value(tx/k) = "v1"', "--if", "version(tx/k) = 1",
            "--if", "create(tx/k) = %d" % r0, "--if", "mod(tx/k) < %d" % (r0 + 1000),
            "--if", "mod_revision(tx/k) > 0", "--if", "value(tx/k) != v2",
            "--if", "exists(tx/k)", "--if", "!exists(tx/none)", "--if", "exists(tx/none) = false",
            "--if", "value(tx/k) > v0", "--if", "version('tx/k') < 2",
            "--then", "put tx/k v2 --prev-kv", "--then", "get tx/k",
            "--then", "range tx/ --prefix --keys-only", "--then", "del tx/other --prev-kv",
            "--else", "get tx/k"]
    out = lines(ok(*args, ep=ep))
    assert out == ["SUCCESS", "", "OK", "tx/k", "v1", "", "tx/k", "v2", "", "tx/k", "tx/other",
                   "", "1", "tx/other", "o"], out
    # failure: the else branch runs, exit 4
    rc, out, err = run("txn", "--if", 'value(tx/k) = "v1"', "--then", "put tx/k v3",
                       "--else", "get tx/k", ep=ep)
    assert rc == COMPARE_FAILED, (rc, out, err)
    assert lines(out) == ["FAILURE", "", "tx/k", "v2"], out
    # JSON, both outcomes
    t = js("txn", "--if", "version(tx/k) = 2", "--then", 'put tx/k "v 3"', "--then",
           "range tx/ --prefix --count-only", "--else", "get tx/k", ep=ep)
    assert t["succeeded"] is True and len(t["responses"]) == 2, t
    assert "put" in t["responses"][0] and t["responses"][1]["range"]["count"] == 1, t
    t = js("txn", "--if", "version(tx/k) > 100", "--then", "put tx/k no", "--else", "get tx/k",
           "--else", "del tx/zz", expect=COMPARE_FAILED, ep=ep)
    assert t["succeeded"] is False, t
    assert t["responses"][0]["range"]["kvs"][0]["value"] == "v 3", t
    assert t["responses"][1]["delete"]["deleted"] == 0, t
    # a put-if-absent: create only when missing
    rc, _, _ = run("txn", "--if", "!exists(tx/new)", "--then", "put tx/new first", ep=ep)
    assert rc == OK
    rc, out, _ = run("txn", "--if", "create(tx/new) = 0", "--then", "put tx/new second", ep=ep)
    assert rc == COMPARE_FAILED and lines(out) == ["FAILURE"], (rc, out)
    assert lines(ok("get", "tx/new", ep=ep)) == ["tx/new", "first"]
    # escapes in quoted words
    ok("txn", "--then", r'put tx/esc "a\tb\x41"', ep=ep)
    assert js("get", "tx/esc", ep=ep)["kv"]["value"] == "a\tbA"


def test_status_members():
    c = C()
    ln = c.wait_leader()
    ep = endpoints()
    out = lines(ok("status", ep=ep))
    assert out[0].split()[:4] == ["ENDPOINT", "ID", "NAME", "ROLE"], out
    rows = [r.split() for r in out[1:]]
    assert len(rows) == 3, out
    assert sorted(r[2] for r in rows) == ["n1", "n2", "n3"], rows
    assert [r[3] for r in rows].count("LEADER") == 1, rows
    s = js("status", ep=ep)
    assert len(s["endpoints"]) == 3, s
    lead = [e for e in s["endpoints"] if e["role"] == "LEADER"]
    assert len(lead) == 1 and lead[0]["endpoint"] == ln.client_addr, s
    assert all(e["leader_id"] == lead[0]["id"] for e in s["endpoints"]), s
    assert lead[0]["id"] == ln.status().id and lead[0]["members"] == 3, s
    out = lines(ok("members", ep=ep))
    assert out[0].split()[:2] == ["ID", "NAME"] and len(out) == 4, out
    m = js("members", ep=ep)
    by_name = {x["name"]: x for x in m["members"]}
    assert sorted(by_name) == ["n1", "n2", "n3"], m
    for n in c.nodes:
        assert by_name[n.name]["client_address"] == n.client_addr, m
        assert by_name[n.name]["peer_address"] == n.peer_addr, m
        assert by_name[n.name]["is_learner"] is False, m
    # one unreachable endpoint: the others are still listed, exit 5
    dead = "127.0.0.1:%d" % h.free_ports(1)[0]
    rc, out, err = run("status", ep=ep + "," + dead, timeout="1s")
    assert rc == UNAVAILABLE and len(lines(out)) == 4 and dead in err, (rc, out, err)
    s = js("status", ep=dead + "," + ep, timeout="1s", expect=UNAVAILABLE)
    assert s["endpoints"][0]["error"]["status"] == "UNAVAILABLE", s
    assert s["endpoints"][1]["role"] in ("LEADER", "FOLLOWER"), s


def test_follows_leader_hint():
    c = C()
    ln = c.wait_leader()
    lid = ln.status().id
    for f in c.followers(ln):
        # only a follower listed: a write and a linearizable read can only succeed through
        # the follower's raftkv-leader hint
        p = js("put", "hint/" + f.name, f.name, ep=f.client_addr)
        assert p["header"]["member_id"] == lid, (p, lid)
        g = js("get", "hint/" + f.name, ep=f.client_addr)
        assert g["header"]["member_id"] == lid and g["kv"]["value"] == f.name, g
        # a serializable read is answered by the follower itself
        g = js("get", "hint/" + f.name, "--serializable", ep=f.client_addr)
        assert g["header"]["member_id"] == f.status().id, g
    # a dead endpoint first, then a follower: rotation, then the hint
    dead = "127.0.0.1:%d" % h.free_ports(1)[0]
    f = c.followers(ln)[0]
    t = js("txn", "--then", "put hint/rot x", ep=dead + "," + f.client_addr)
    assert t["header"]["member_id"] == lid, t


def test_unavailable():
    ports = h.free_ports(2)
    ep = ",".join("127.0.0.1:%d" % p for p in ports)
    for args in (["get", "k"], ["put", "k", "v"], ["members"], ["status"]):
        t0 = time.monotonic()
        rc, out, err = run(*args, ep=ep, timeout="700ms")
        dt = time.monotonic() - t0
        assert rc == UNAVAILABLE, (args, rc, out, err)
        assert dt < h.scaled(5), "kvctl %s took %.1fs with --timeout 700ms" % (args, dt)
        assert "UNAVAILABLE" in err, err
    e = js("put", "k", "v", ep=ep, timeout="300ms", expect=UNAVAILABLE)
    assert e["error"]["code"] == 14 and e["error"]["status"] == "UNAVAILABLE", e
    # a server error that is not about reachability: exit 1 (an empty key is refused)
    rc, out, err = run("put", "", "v", ep=endpoints())
    assert rc == ERROR and "INVALID_ARGUMENT" in err, (rc, out, err)


def test_leader_killed():
    """Writes keep working through kvctl while the leader dies: the retry goes elsewhere."""
    c = C()
    ln = c.wait_leader()
    old_id = ln.status().id
    ep = ",".join(n.client_addr for n in [ln] + c.followers(ln))  # the dead one first
    ln.kill()
    t0 = time.monotonic()
    p = js("put", "kill/k", "v", ep=ep, timeout="15s")
    h.log("put after leader kill took %.2fs" % (time.monotonic() - t0))
    assert p["header"]["member_id"] != old_id, p
    assert lines(ok("get", "kill/k", ep=ep, timeout="15s")) == ["kill/k", "v"]
    ln.start()
    ln.wait_ready()
    c.wait_leader()


if __name__ == "__main__":
    print("kvctl: %s" % kvctl_path(), flush=True)
    h.run([test_help, test_usage_errors, test_put_get, test_range_and_del, test_append, test_txn,
           test_status_members, test_follows_leader_hint, test_unavailable, test_leader_killed])
