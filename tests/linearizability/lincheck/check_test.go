package main

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Helpers to write histories compactly. Times are in arbitrary units (ns).

func put(client int64, key, value string, start, end int64) Op {
	return Op{Client: client, Kind: KindPut, Key: key, Value: value, Start: start, End: end}
}

func appendOp(client int64, key, suffix string, start, end int64) Op {
	return Op{Client: client, Kind: KindAppend, Key: key, Value: suffix, Start: start, End: end}
}

func del(client int64, key string, start, end int64) Op {
	return Op{Client: client, Kind: KindDelete, Key: key, Start: start, End: end}
}

// get is a get that found the key and read value.
func get(client int64, key, value string, start, end int64) Op {
	return Op{Client: client, Kind: KindGet, Key: key, Start: start, End: end, Found: true, Read: value}
}

// getAbsent is a get that did not find the key.
func getAbsent(client int64, key string, start, end int64) Op {
	return Op{Client: client, Kind: KindGet, Key: key, Start: start, End: end}
}

func (o Op) unknown() Op { o.Status = StatusUnknown; return o }
func (o Op) failed() Op  { o.Status = StatusFail; return o }

// history numbers the operations (id and line = position).
func history(ops ...Op) []Op {
	for i := range ops {
		ops[i].ID = int64(i + 1)
		ops[i].Line = i + 1
	}
	return ops
}

func expectOutcome(t *testing.T, want Outcome, ops ...Op) *Result {
	t.Helper()
	res := Check(history(ops...), 10*time.Second)
	if res.Outcome != want {
		var b bytes.Buffer
		for i := range res.Keys {
			res.Explain(&b, &res.Keys[i])
		}
		t.Fatalf("outcome %s, want %s\n%s", res.Outcome, want, b.String())
	}
	return res
}

func TestSimpleLinearizable(t *testing.T) {
	expectOutcome(t, Linearizable,
		getAbsent(0, "a", 0, 10),
		put(0, "a", "x", 20, 30),
		get(1, "a", "x", 40, 50),
		appendOp(1, "a", "y", 60, 70),
		get(0, "a", "xy", 80, 90),
		put(0, "b", "other key", 80, 90),
		get(1, "b", "other key", 100, 110),
	)
}

func TestEmptyHistoryIsLinearizable(t *testing.T) {
	res := expectOutcome(t, Linearizable)
	if res.Checked != 0 || len(res.Keys) != 0 {
		t.Fatalf("checked %d ops on %d keys, want none", res.Checked, len(res.Keys))
	}
}

func TestStaleRead(t *testing.T) {
	// put(new) completes before the get starts: the get must not see "old".
	res := expectOutcome(t, NotLinearizable,
		put(0, "k", "old", 0, 10),
		put(0, "k", "new", 20, 30),
		get(1, "k", "old", 40, 50),
	)
	if got := res.KeysWith(KeyIllegal); !reflect.DeepEqual(got, []string{"k"}) {
		t.Fatalf("failed keys %v, want [k]", got)
	}
	// The same read overlapping the second put is fine.
	expectOutcome(t, Linearizable,
		put(0, "k", "old", 0, 10),
		put(0, "k", "new", 20, 30),
		get(1, "k", "old", 25, 50),
	)
}

func TestTouchingIntervalsAreConcurrent(t *testing.T) {
	// porcupine treats [start, end] as closed: ops sharing an instant overlap.
	expectOutcome(t, Linearizable,
		put(0, "k", "old", 0, 10),
		put(0, "k", "new", 20, 30),
		get(1, "k", "old", 30, 50),
	)
}

func TestConcurrentOpsAllowEitherOrder(t *testing.T) {
	for _, read := range []string{"x", "y"} {
		expectOutcome(t, Linearizable,
			put(0, "k", "x", 0, 100),
			put(1, "k", "y", 50, 150),
			get(2, "k", read, 200, 300),
		)
	}
	// Two reads overlapping a put may see old then new...
	expectOutcome(t, Linearizable,
		put(0, "k", "old", 0, 10),
		put(0, "k", "new", 20, 100),
		get(1, "k", "old", 30, 40),
		get(2, "k", "new", 50, 60),
	)
	// ...but once a read returned the new value, a later read cannot see
	// the old one, even though both overlap the put.
	expectOutcome(t, NotLinearizable,
		put(0, "k", "old", 0, 10),
		put(0, "k", "new", 20, 100),
		get(1, "k", "new", 30, 40),
		get(2, "k", "old", 50, 60),
	)
	// Reads on both sides of a pair of concurrent puts pin one order.
	expectOutcome(t, NotLinearizable,
		put(0, "k", "x", 0, 100),
		put(1, "k", "y", 50, 150),
		get(2, "k", "y", 200, 300),
		get(2, "k", "x", 400, 500),
	)
}

func TestUnknownWrites(t *testing.T) {
	// An unknown write that a later read observes took effect.
	expectOutcome(t, Linearizable,
		put(0, "k", "v1", 0, 10),
		put(0, "k", "v2", 20, 30).unknown(),
		get(1, "k", "v2", 40, 50),
		get(1, "k", "v2", 60, 70),
	)
	// One that is never observed did not (or did, after everything).
	expectOutcome(t, Linearizable,
		put(0, "k", "v1", 0, 10),
		put(0, "k", "v2", 20, 30).unknown(),
		get(1, "k", "v1", 40, 50),
		get(1, "k", "v1", 60, 70),
	)
	// It may take effect long after the client gave up (its end is no bound),
	// and unknown appends and deletes count the same way.
	expectOutcome(t, Linearizable,
		put(0, "k", "v1", 0, 10),
		appendOp(0, "k", "+", 20, 30).unknown(),
		get(1, "k", "v1", 40, 50),
		get(1, "k", "v1+", 1000, 1010),
		del(2, "k", 1020, 1030).unknown(),
		get(1, "k", "v1+", 1040, 1050),
		getAbsent(1, "k", 1060, 1070),
	)
	// But not before it started...
	expectOutcome(t, NotLinearizable,
		put(0, "k", "v1", 0, 10),
		get(1, "k", "v2", 20, 30),
		put(0, "k", "v2", 40, 50).unknown(),
	)
	// ...and at most once, at one instant: after a read saw it, a later read
	// cannot see the state from before it.
	expectOutcome(t, NotLinearizable,
		put(0, "k", "v1", 0, 10),
		put(0, "k", "v2", 20, 30).unknown(),
		get(1, "k", "v2", 40, 50),
		get(1, "k", "v1", 60, 70),
	)
	// An unknown get is dropped whatever it claims to have read.
	g := get(1, "k", "never written", 40, 50).unknown()
	expectOutcome(t, Linearizable, put(0, "k", "v1", 0, 10), g)
}

func TestFailedOps(t *testing.T) {
	// A failed write must not have applied: reading its value is a violation.
	expectOutcome(t, NotLinearizable,
		put(0, "k", "v1", 0, 10),
		put(0, "k", "v2", 20, 30).failed(),
		get(1, "k", "v2", 40, 50),
	)
	expectOutcome(t, Linearizable,
		put(0, "k", "v1", 0, 10),
		put(0, "k", "v2", 20, 30).failed(),
		appendOp(0, "k", "x", 20, 30).failed(),
		del(0, "k", 20, 30).failed(),
		get(1, "k", "v1", 40, 50),
	)
	// A failed get is dropped.
	expectOutcome(t, Linearizable,
		put(0, "k", "v1", 0, 10),
		get(1, "k", "garbage", 40, 50).failed(),
	)
}

func TestAppendOrder(t *testing.T) {
	// Sequential appends: only their real-time order is allowed.
	expectOutcome(t, Linearizable,
		appendOp(0, "k", "a", 0, 10),
		appendOp(1, "k", "b", 20, 30),
		get(2, "k", "ab", 40, 50),
	)
	expectOutcome(t, NotLinearizable,
		appendOp(0, "k", "a", 0, 10),
		appendOp(1, "k", "b", 20, 30),
		get(2, "k", "ba", 40, 50),
	)
	// Concurrent appends: either order, but one order for everybody.
	for _, read := range []string{"ab", "ba"} {
		expectOutcome(t, Linearizable,
			appendOp(0, "k", "a", 0, 100),
			appendOp(1, "k", "b", 0, 100),
			get(2, "k", read, 200, 300),
		)
	}
	expectOutcome(t, NotLinearizable,
		appendOp(0, "k", "a", 0, 100),
		appendOp(1, "k", "b", 0, 100),
		get(2, "k", "ab", 200, 300),
		get(3, "k", "ba", 200, 300),
	)
	// An append is applied once: a duplicate is a violation.
	expectOutcome(t, NotLinearizable,
		appendOp(0, "k", "a", 0, 10),
		get(2, "k", "aa", 40, 50),
	)
}

func TestDelete(t *testing.T) {
	expectOutcome(t, Linearizable,
		put(0, "k", "x", 0, 10),
		del(0, "k", 20, 30),
		getAbsent(1, "k", 40, 50),
		del(0, "k", 60, 70), // deleting an absent key is fine
		appendOp(0, "k", "y", 80, 90),
		get(1, "k", "y", 100, 110), // append after delete starts from ""
	)
	expectOutcome(t, NotLinearizable,
		put(0, "k", "x", 0, 10),
		del(0, "k", 20, 30),
		get(1, "k", "x", 40, 50),
	)
	expectOutcome(t, NotLinearizable,
		put(0, "k", "x", 0, 10),
		del(0, "k", 20, 30),
		appendOp(0, "k", "y", 40, 50),
		get(1, "k", "xy", 60, 70),
	)
	// A present empty value is not the same as absent.
	expectOutcome(t, NotLinearizable,
		put(0, "k", "", 0, 10),
		getAbsent(1, "k", 20, 30),
	)
	expectOutcome(t, NotLinearizable,
		getAbsent(1, "k", 0, 10),
		get(1, "k", "", 20, 30),
	)
}

func TestPerKeyVerdicts(t *testing.T) {
	res := expectOutcome(t, NotLinearizable,
		put(0, "good", "x", 0, 10),
		get(1, "good", "x", 20, 30),
		put(0, "bad", "x", 0, 10),
		get(1, "bad", "y", 20, 30),
		put(0, "fine", "z", 0, 10),
	)
	want := map[string]KeyStatus{"bad": KeyIllegal, "fine": KeyOK, "good": KeyOK}
	got := make(map[string]KeyStatus)
	for _, kr := range res.Keys {
		got[kr.Key] = kr.Status
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("per-key verdicts %v, want %v", got, want)
	}
}

func TestExplanation(t *testing.T) {
	res := expectOutcome(t, NotLinearizable,
		put(0, "k", "old", 0, 10),
		put(0, "k", "new", 20, 30),
		appendOp(2, "k", "!", 35, 60),
		get(1, "k", "old", 40, 50),
	)
	var b bytes.Buffer
	res.Explain(&b, &res.Keys[0])
	out := b.String()
	t.Logf("explanation:\n%s", out)
	for _, want := range []string{
		`key "k": NOT linearizable (4 operations checked)`,
		"longest linearizable prefix found: 3 of 4",
		`put(k, "new")  => "new"`,
		`#3 (line 3) client 2 [+35ns, +60ns] append(k, "!")  => "new!"`,
		`in state "new!" no remaining operation can be linearized next`,
		`(invoked by +50ns, when #4 (line 4) returned)`,
		`#4 (line 4) client 1 [+40ns, +50ns] get(k) -> "old": the value is "new!" ` +
			`(the value read was overwritten at step 2 by #2 (line 2) client 0 [+20ns, +30ns] put(k, "new"))`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("explanation lacks %q", want)
		}
	}
}

func TestLongValuesExplained(t *testing.T) {
	long := strings.Repeat("0123456789", 20)
	res := expectOutcome(t, NotLinearizable,
		put(0, "k", long, 0, 10),
		appendOp(0, "k", "A", 20, 30),
		appendOp(0, "k", "B", 40, 50),
		get(1, "k", long+"BA", 60, 70),
	)
	var b bytes.Buffer
	res.Explain(&b, &res.Keys[0])
	if !strings.Contains(b.String(), `they differ from byte 200: read "BA" vs value "AB" (the key never held the value read in the prefix)`) {
		t.Fatalf("explanation does not locate the difference:\n%s", b.String())
	}
}

func TestTimeout(t *testing.T) {
	// n concurrent appends followed by an impossible read: porcupine has to
	// try all n! orders before it can say no, far longer than the timeout.
	var ops []Op
	for i := 0; i < 14; i++ {
		ops = append(ops, appendOp(int64(i), "slow", string(rune('a'+i)), 0, 100))
	}
	ops = append(ops, get(99, "slow", "impossible", 200, 300), put(0, "quick", "x", 0, 10))
	start := time.Now()
	res := Check(history(ops...), 200*time.Millisecond)
	if res.Outcome != TimedOut {
		t.Fatalf("outcome %s, want %s", res.Outcome, TimedOut)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Fatalf("the check took %s despite a 200ms timeout", elapsed)
	}
	if got := res.KeysWith(KeyUnfinished); !reflect.DeepEqual(got, []string{"slow"}) {
		t.Fatalf("unfinished keys %v, want [slow]", got)
	}
	if got := res.KeysWith(KeyOK); !reflect.DeepEqual(got, []string{"quick"}) {
		t.Fatalf("linearizable keys %v, want [quick]", got)
	}
}

func TestUnobservable(t *testing.T) {
	cases := []struct {
		ops  []Op
		drop []bool
	}{
		{ // puts: observed when a get's value starts with the put's value
			[]Op{
				put(0, "k", "p1", 0, 10).unknown(),    // read below: kept
				put(0, "k", "p2", 20, 30).unknown(),   // only read by a failed get: dropped
				put(0, "k", "p3", 100, 110).unknown(), // only read by a get that returned before it started: dropped
				put(0, "k", "+a", 0, 10).unknown(),    // only contained in a value: dropped
				put(0, "k", "p2", 0, 10).failed(),     // not unknown: not this function's business
				put(0, "k", "p1", 0, 10),              // ok: idem
				get(1, "k", "p1+a", 40, 50),
				get(1, "k", "p3", 40, 50),
				get(1, "k", "p2", 40, 50).failed(),
			},
			[]bool{false, true, true, true, false, false, false, false, false},
		},
		{ // appends: observed when a get's value contains the suffix
			[]Op{
				appendOp(0, "k", "+a", 20, 30).unknown(), // read below: kept
				appendOp(0, "k", "+b", 20, 30).unknown(), // never read: dropped
				appendOp(0, "k", "", 20, 30).unknown(),   // empty: observable by any read: kept
				get(1, "k", "p1+a", 40, 50),
				get(1, "other", "+b", 40, 50), // another key
			},
			[]bool{false, true, false, false, false},
		},
		{ // deletes: observed by a get that may have followed it and appends only
			[]Op{
				put(0, "d1", "x", 0, 10),
				del(0, "d1", 20, 30).unknown(), // the key is read, never absent: dropped
				get(1, "d1", "x", 40, 50),

				del(0, "d2", 0, 10).unknown(), // the key was found absent: kept
				getAbsent(1, "d2", 20, 30),

				del(0, "d3", 0, 10).unknown(), // a value made of appends only: kept
				appendOp(1, "d3", "s", 20, 30),
				get(1, "d3", "s", 40, 50),

				put(0, "d4", "v", 0, 10),
				del(0, "d4", 20, 30).unknown(), // the appends went after the put: dropped
				appendOp(1, "d4", "s", 40, 50),
				get(1, "d4", "vs", 60, 70),

				del(0, "d5", 100, 110).unknown(), // only a get that returned before: dropped
				getAbsent(1, "d5", 0, 10),

				del(0, "d6", 0, 10).unknown(), // an unknown (even dropped) append counts: kept
				appendOp(1, "d6", "u", 20, 30).unknown(),
				appendOp(1, "d6", "s", 20, 30),
				get(1, "d6", "sx", 40, 50),
			},
			[]bool{
				false, true, false,
				false, false,
				false, false, false,
				false, true, false, false,
				true, false,
				false, true, false, false,
			},
		},
	}
	for i, c := range cases {
		if got := unobservable(history(c.ops...)); !reflect.DeepEqual(got, c.drop) {
			t.Errorf("case %d: unobservable = %v\n                want %v", i, got, c.drop)
		}
	}
}
