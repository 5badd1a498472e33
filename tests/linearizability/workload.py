"""The workload of the linearizability test: concurrent clients and the history they record.

Clients are threads of one process, so one clock (time.monotonic_ns()) orders everything. Each
client loops until stopped: pick a key of the current key set, an operation (weighted to
Append and Get), call it through the gateway with a deadline, one attempt, and record it:

  {"id", "client", "op": put|append|delete|get, "key", "value" (put: the value, append: the
   suffix), "start", "end" (ns), "status": ok|fail|unknown, "found"/"read" (ok gets),
   "error" (grpc status name and details)}

ok: took effect once between start and end. fail: proven not applied (INVALID_ARGUMENT,
RESOURCE_EXHAUSTED, FAILED_PRECONDITION, or UNAVAILABLE whose details are a raftnode's "it was
not applied" -- but not a gateway's give-up message that merely quotes it as the last error of
several tries, one of which may have been applied). Everything else is unknown. Append suffixes
("c3.n57;") and put values ("c3.p58;") are unique, so a read shows which writes it includes and
in which order.

Key sets rotate ("epochs"): every `epoch_s` seconds the clients move to fresh keys (e03.k05),
which keeps each key's history short for the checker (disjoint keys are independent). A
Recorder writes every operation as a JSON line, to one file or to one file per epoch.

The control mode's readers bypass the gateway: SERIALIZABLE Gets straight to a member (the
isolated one while a partition is on), which may be stale -- the checker must catch it.
"""
import bisect
import collections
import itertools
import json
import os
import random
import threading
import time

import grpc

WRITE_OPS = ("put", "append", "delete")
# The fields of a history line (anything else a client notes stays in memory).
FIELDS = ("id", "client", "op", "key", "value", "start", "end", "status", "found", "read", "error")
FAIL_CODES = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED,
              grpc.StatusCode.FAILED_PRECONDITION}


def classify(code, details):
    """'fail' when the status proves the write was not applied, else 'unknown'."""
    if code in FAIL_CODES:
        return "fail"
    if code == grpc.StatusCode.UNAVAILABLE and "not applied" in details and "last error" not in details:
        return "fail"
    return "unknown"


def epoch_key(epoch, k):
    return "e%02d.k%02d" % (epoch, k)


def key_epoch(key):
    return int(key[1:key.index(".")])


class Recorder:
    """Thread-safe history writer and counters.

    split=False: every op goes to <dir>/history.jsonl; split=True: to history-eNN.jsonl by the
    key's epoch (close_epoch() closes one so it can be checked while the run goes on)."""

    def __init__(self, directory, split=False, keep_ops=False):
        self.dir = directory
        self.split = split
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        self.files = {}
        self.closed = set()
        self.counts = collections.Counter()  # (op, status) -> n
        self.last_ok = {"write": 0, "read": 0}  # largest start (ns) of an ok write / read
        self.keys = set()
        self.keep_ops = keep_ops
        self.ops = []  # kept when keep_ops (the control's own stale-read evidence)
        self.late = 0  # ops for an epoch already closed (must stay 0)

    def path(self, epoch=None):
        if not self.split:
            return os.path.join(self.dir, "history.jsonl")
        return os.path.join(self.dir, "history-e%02d.jsonl" % epoch)

    def _file(self, epoch):
        k = epoch if self.split else None
        f = self.files.get(k)
        if f is None:
            f = open(self.path(epoch), "a")
            self.files[k] = f
        return f

    def next_id(self):
        with self.lock:
            return next(self.ids)

    def add(self, rec):
        line = json.dumps({k: rec[k] for k in FIELDS if k in rec}, separators=(",", ":"))
        epoch = key_epoch(rec["key"])
        with self.lock:
            if self.split and epoch in self.closed:
                self.late += 1
                return
            self._file(epoch).write(line + "\n")
            self.counts[(rec["op"], rec["status"])] += 1
            self.keys.add(rec["key"])
            if rec["status"] == "ok":
                kind = "read" if rec["op"] == "get" else "write"
                if rec["start"] > self.last_ok[kind]:
                    self.last_ok[kind] = rec["start"]
            if self.keep_ops:
                self.ops.append(rec)

    def close_epoch(self, epoch):
        with self.lock:
            self.closed.add(epoch)
            f = self.files.pop(epoch if self.split else None, None)
        if f is not None:
            f.close()
        return self.path(epoch)

    def close_all(self):
        with self.lock:
            files = list(self.files.values())
            self.files = {}
        for f in files:
            f.close()

    def ok_total(self):
        with self.lock:
            return sum(n for (op, st), n in self.counts.items() if st == "ok")

    def summary(self):
        """{op: {status: n}}"""
        with self.lock:
            out = {}
            for (op, st), n in sorted(self.counts.items()):
                out.setdefault(op, {})[st] = n
            return out


class Shared:
    """What the driver and the nemesis tell the clients."""

    def __init__(self, n_keys):
        self.n_keys = n_keys
        self.epoch = 0
        self.stop = threading.Event()
        self.isolated = None  # control mode: the member reads should hit now (address)


def call(stubs, stub, rec, deadline, consistency=None):
    """Run one operation; fill in start/end/status (and found/read for ok gets)."""
    kv = stubs.kv
    key = rec["key"].encode()
    op = rec["op"]
    rec["start"] = time.monotonic_ns()
    try:
        if op == "put":
            stub.Put(kv.PutRequest(key=key, value=rec["value"].encode()), timeout=deadline)
        elif op == "append":
            stub.Append(kv.AppendRequest(key=key, suffix=rec["value"].encode()), timeout=deadline)
        elif op == "delete":
            stub.Delete(kv.DeleteRequest(key=key), timeout=deadline)
        else:
            req = kv.GetRequest(key=key)
            if consistency is not None:
                req.consistency = consistency
            r = stub.Get(req, timeout=deadline)
            rec["found"] = r.HasField("kv")
            rec["read"] = r.kv.value.decode() if rec["found"] else ""
        rec["end"] = time.monotonic_ns()
        rec["status"] = "ok"
    except grpc.RpcError as e:
        rec["end"] = time.monotonic_ns()
        code, details = e.code(), e.details() or ""
        rec["status"] = classify(code, details)
        rec["error"] = "%s: %s" % (code.name if code else "UNKNOWN", details)
    except Exception as e:  # noqa: BLE001 - a client-side failure: the outcome is unknown
        rec["end"] = time.monotonic_ns()
        rec["status"] = "unknown"
        rec["error"] = "client: %r" % e
    return rec


class Client(threading.Thread):
    """One workload client: its own channel to the gateway, its own seeded rng."""

    WEIGHTS = (("append", 45), ("get", 40), ("put", 10), ("delete", 5))

    def __init__(self, cid, seed, shared, recorder, stubs, channel, deadline=(1.0, 2.0),
                 weights=None, read_targets=None):
        super().__init__(name="client-%d" % cid, daemon=True)
        self.cid = cid
        self.rng = random.Random(seed * 1000003 + cid)
        self.shared = shared
        self.rec = recorder
        self.stubs = stubs
        self.channel = channel
        self.deadline = deadline
        ops, w = zip(*(weights or self.WEIGHTS))
        self.ops, self.weights = ops, w
        # Control mode: {address: channel} of members for SERIALIZABLE reads, bypassing the
        # gateway.
        self.read_targets = read_targets
        self.n = 0
        self.error = None

    def run(self):
        try:
            self._loop()
        except BaseException as e:  # noqa: BLE001 - reported by the driver
            self.error = e

    def _loop(self):
        stub = self.stubs.kv_grpc.KVStub(self.channel)
        direct = {a: self.stubs.kv_grpc.KVStub(ch) for a, ch in (self.read_targets or {}).items()}
        while not self.shared.stop.is_set():
            self.n += 1
            op = self.rng.choices(self.ops, self.weights)[0]
            key = epoch_key(self.shared.epoch, self.rng.randrange(self.shared.n_keys))
            rec = {"id": self.rec.next_id(), "client": self.cid, "op": op, "key": key}
            if op == "put":
                rec["value"] = "c%d.p%d;" % (self.cid, self.n)
            elif op == "append":
                rec["value"] = "c%d.n%d;" % (self.cid, self.n)
            deadline = self.rng.uniform(*self.deadline)
            if op == "get" and direct:
                target = self.shared.isolated
                if target is None or self.rng.random() < 0.3:
                    target = self.rng.choice(sorted(direct))
                rec["member"] = target
                rec["isolated"] = target == self.shared.isolated
                call(self.stubs, direct[target], rec, deadline,
                     consistency=self.stubs.kv.SERIALIZABLE)
            else:
                call(self.stubs, stub, rec, deadline)
            self.rec.add(rec)
            if rec["status"] != "ok":
                self.shared.stop.wait(self.rng.uniform(0.05, 0.2))


def stale_evidence(ops):
    """Control mode (appends and gets only, so values only grow): ok gets that miss an append
    acknowledged before the get started -- each one alone makes the history not linearizable.
    Sufficient, not complete: a get is stale when it holds fewer suffixes than appends were
    acknowledged before it, or lacks the latest of them. Returns [(get, missing suffix)]."""
    acked = collections.defaultdict(list)  # key -> sorted [(end, suffix)]
    for r in ops:
        if r["op"] == "append" and r["status"] == "ok":
            acked[r["key"]].append((r["end"], r["value"]))
    ends = {}
    for k, v in acked.items():
        v.sort()
        ends[k] = [e for e, _ in v]
    out = []
    for r in ops:
        if r["op"] != "get" or r["status"] != "ok" or r["key"] not in ends:
            continue
        n = bisect.bisect_left(ends[r["key"]], r["start"])  # acknowledged before the get
        if n == 0:
            continue
        have = r["read"].split(";")[:-1] if r["read"] else []
        latest = acked[r["key"]][n - 1][1]
        if latest not in r["read"]:
            out.append((r, latest))
        elif len(have) < n:
            missing = "?"
            if len(out) < 10:  # name the missing suffix for the first few only (linear scan)
                missing = next((s for _, s in acked[r["key"]][:n] if s not in r["read"]), "?")
            out.append((r, missing))
    return out
