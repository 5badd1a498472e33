package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"os"
	"reflect"
	"sort"
	"strconv"
	"testing"
	"time"
)

// The seed of the randomized tests: -seed N (go test -run Random -seed N)
// or LINCHECK_SEED=N; by default a new one every run, printed on failure.
var seedFlag = flag.Int64("seed", 0, "seed for the randomized tests (0: from LINCHECK_SEED or the clock)")

func testSeed(t *testing.T) int64 {
	seed := *seedFlag
	if seed == 0 {
		if s := os.Getenv("LINCHECK_SEED"); s != "" {
			var err error
			if seed, err = strconv.ParseInt(s, 10, 64); err != nil {
				t.Fatalf("bad LINCHECK_SEED %q: %v", s, err)
			}
		}
	}
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("seed %d: reproduce with go test -run '^%s$' -seed %d (or LINCHECK_SEED=%d)", seed, t.Name(), seed, seed)
		}
	})
	return seed
}

// genConfig shapes a simulated history.
type genConfig struct {
	Clients, Keys, Ops int
	// Relative weights of the operation kinds.
	Get, Put, Append, Delete int
	// Probabilities that an operation fails or has an unknown outcome.
	PFail, PUnknown float64
}

// genOp is a generated operation with its simulated linearization point.
type genOp struct {
	Op
	lp      int64 // when it took effect
	applied bool  // whether it took effect at all
}

// generate simulates clients running against a linearizable store. Each
// client issues operations one after the other with random gaps and
// durations, so operations of different clients overlap at random; each
// takes effect at a random instant inside its interval. Failed writes never
// take effect; writes with an unknown outcome take effect at a random instant
// after their start (possibly after the client gave up) or never. Applying
// the effects in order of those instants to a map gives the reads' results,
// so the history is linearizable by construction.
//
// Every put value and append suffix is a unique piece ending in ';' (and ';'
// appears nowhere else), so a value can be split back into the operations
// that built it; injectStaleRead relies on that.
func generate(rng *rand.Rand, cfg genConfig) []genOp {
	ops := make([]genOp, 0, cfg.Ops)
	clock := make([]int64, cfg.Clients) // when each client is free again
	for c := range clock {
		clock[c] = int64(rng.Intn(1000))
	}
	total := cfg.Get + cfg.Put + cfg.Append + cfg.Delete
	for i := 0; i < cfg.Ops; i++ {
		c := rng.Intn(cfg.Clients)
		op := Op{
			ID:     int64(i + 1),
			Line:   i + 1,
			Client: int64(c),
			Key:    fmt.Sprintf("k%02d", rng.Intn(cfg.Keys)),
			Start:  clock[c] + int64(rng.Intn(200)),
		}
		op.End = op.Start + 1 + int64(rng.Intn(1000))
		clock[c] = op.End
		switch w := rng.Intn(total); {
		case w < cfg.Get:
			op.Kind = KindGet
		case w < cfg.Get+cfg.Put:
			op.Kind, op.Value = KindPut, fmt.Sprintf("p%d.%d;", c, i)
		case w < cfg.Get+cfg.Put+cfg.Append:
			op.Kind, op.Value = KindAppend, fmt.Sprintf("a%d.%d;", c, i)
		default:
			op.Kind = KindDelete
		}
		g := genOp{Op: op, applied: true}
		g.lp = op.Start + rng.Int63n(op.End-op.Start+1)
		switch p := rng.Float64(); {
		case p < cfg.PFail:
			g.Status, g.applied = StatusFail, false
		case p < cfg.PFail+cfg.PUnknown:
			g.Status = StatusUnknown
			if rng.Intn(2) == 0 {
				g.applied = false
			} else {
				g.lp = op.Start + rng.Int63n(3*(op.End-op.Start)+1)
			}
		}
		if g.Kind == KindGet && g.Status != StatusOK {
			// Whatever a failed or unknown get claims must be ignored.
			g.Found, g.Read, g.applied = rng.Intn(2) == 0, "garbage", false
		}
		ops = append(ops, g)
	}

	order := make([]int, len(ops))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return ops[order[a]].lp < ops[order[b]].lp })
	state := make(map[string]kvState)
	for _, i := range order {
		g := &ops[i]
		if !g.applied {
			continue
		}
		if g.Kind == KindGet {
			s := state[g.Key]
			g.Found, g.Read = s.Present, s.Value
			continue
		}
		_, state[g.Key] = step(state[g.Key], kvInput{Kind: g.Kind, Value: g.Value}, kvOutput{})
	}
	return ops
}

// injectStaleRead makes one ok get return a value that its key held before an
// ok write W that completed before the get started: a stale read. To be sure
// no linearization explains it, the stale value must be non-empty and made of
// pieces written only by ok operations that completed before W started: they
// precede W, which precedes the get, in every linearization, and the unique
// pieces cannot be rebuilt by other operations. It returns the index of the
// get, or -1 if the history offers no such pair.
func injectStaleRead(rng *rand.Rand, ops []genOp) int {
	// Replay in linearization order, remembering for each applied write the
	// state just before it and the operations whose pieces make it up.
	type before struct {
		value  string
		pieces []int // ops that wrote the pieces of value
		ok     bool  // value is present, non-empty and all its pieces qualify
	}
	order := make([]int, 0, len(ops))
	for i := range ops {
		if ops[i].applied && ops[i].Kind.IsWrite() {
			order = append(order, i)
		}
	}
	sort.SliceStable(order, func(a, b int) bool { return ops[order[a]].lp < ops[order[b]].lp })
	pieces := make(map[string][]int)
	values := make(map[string]string)
	prior := make(map[int]before) // write index -> state before it
	for _, w := range order {
		g := &ops[w]
		b := before{value: values[g.Key], pieces: pieces[g.Key], ok: values[g.Key] != ""}
		for _, p := range b.pieces {
			if ops[p].Status != StatusOK || ops[p].End >= g.Start {
				b.ok = false
			}
		}
		prior[w] = b
		switch g.Kind {
		case KindPut:
			values[g.Key], pieces[g.Key] = g.Value, []int{w}
		case KindAppend:
			values[g.Key] += g.Value
			pieces[g.Key] = append(append([]int(nil), pieces[g.Key]...), w)
		case KindDelete:
			values[g.Key], pieces[g.Key] = "", nil
		}
	}
	for _, gi := range rng.Perm(len(ops)) {
		g := &ops[gi]
		if g.Kind != KindGet || g.Status != StatusOK {
			continue
		}
		var candidates []string
		for _, w := range order {
			if b := prior[w]; ops[w].Key == g.Key && ops[w].Status == StatusOK && ops[w].End < g.Start && b.ok {
				candidates = append(candidates, b.value)
			}
		}
		if len(candidates) > 0 {
			g.Found, g.Read = true, candidates[rng.Intn(len(candidates))]
			return gi
		}
	}
	return -1
}

func plainOps(gops []genOp) []Op {
	ops := make([]Op, len(gops))
	for i := range gops {
		ops[i] = gops[i].Op
	}
	return ops
}

// writeHistory writes ops in the JSON-lines format lincheck reads.
func writeHistory(w io.Writer, ops []Op) error {
	for i := range ops {
		op := &ops[i]
		line := map[string]any{
			"id": op.ID, "client": op.Client, "op": op.Kind.String(), "key": op.Key,
			"start": op.Start, "end": op.End, "status": op.Status.String(),
		}
		if op.Kind == KindPut || op.Kind == KindAppend {
			line["value"] = op.Value
		}
		if op.Kind == KindGet && op.Status == StatusOK {
			line["found"], line["read"] = op.Found, op.Read
		}
		if op.Error != "" {
			line["error"] = op.Error
		}
		b, err := json.Marshal(line)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "%s\n", b); err != nil {
			return err
		}
	}
	return nil
}

func TestRandomHistories(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewSource(seed))
	rounds, injected := 40, 0
	if testing.Short() {
		rounds = 10
	}
	for round := 0; round < rounds; round++ {
		cfg := genConfig{
			Clients: 2 + rng.Intn(6), Keys: 1 + rng.Intn(4), Ops: 50 + rng.Intn(300),
			Get: 4, Put: 2, Append: 3, Delete: 1,
			PFail: 0.05, PUnknown: 0.05,
		}
		gops := generate(rng, cfg)
		ops := plainOps(gops)
		if res := Check(ops, 30*time.Second); res.Outcome != Linearizable {
			t.Fatalf("round %d (%+v): generated history is %s, want linearizable", round, cfg, res.Outcome)
		}
		// The history must also survive the trip through the file format.
		var buf bytes.Buffer
		if err := writeHistory(&buf, ops); err != nil {
			t.Fatal(err)
		}
		parsed, err := ReadHistory(&buf, "generated")
		if err != nil {
			t.Fatalf("round %d: reading back: %v", round, err)
		}
		if !reflect.DeepEqual(parsed, normalized(ops)) {
			t.Fatalf("round %d: history changed through the JSON format", round)
		}

		gi := injectStaleRead(rng, gops)
		if gi < 0 {
			continue
		}
		injected++
		res := Check(plainOps(gops), 30*time.Second)
		if res.Outcome != NotLinearizable {
			t.Fatalf("round %d: after making get #%d read stale %q, history is %s, want NOT linearizable",
				round, gops[gi].ID, gops[gi].Read, res.Outcome)
		}
		if got, want := res.KeysWith(KeyIllegal), []string{gops[gi].Key}; !reflect.DeepEqual(got, want) {
			t.Fatalf("round %d: failed keys %v, want %v", round, got, want)
		}
	}
	if injected < rounds/2 {
		t.Fatalf("only %d of %d rounds had room for a stale read", injected, rounds)
	}
	t.Logf("seed %d: %d rounds, %d with an injected stale read", seed, rounds, injected)
}

// normalized drops what the file format does not carry: the result of gets
// that are not ok.
func normalized(ops []Op) []Op {
	out := append([]Op(nil), ops...)
	for i := range out {
		if out[i].Kind == KindGet && out[i].Status != StatusOK {
			out[i].Found, out[i].Read = false, ""
		}
	}
	return out
}

// perfConfig is the performance sanity check's workload: ~20k operations over
// 20 keys, mostly appends and reads, some unknown and failed writes.
var perfConfig = genConfig{
	Clients: 16, Keys: 20, Ops: 20000,
	Get: 45, Put: 4, Append: 48, Delete: 3,
	PFail: 0.01, PUnknown: 0.02,
}

// TestPerformance checks perfConfig's workload, linearizable and then with a
// stale read. LINCHECK_PERF_HISTORY=FILE keeps the generated history.
func TestPerformance(t *testing.T) {
	if testing.Short() {
		t.Skip("slow in -short mode")
	}
	seed := testSeed(t)
	rng := rand.New(rand.NewSource(seed))
	gops := generate(rng, perfConfig)
	ops := plainOps(gops)
	stats := ComputeStats(ops)
	if path := os.Getenv("LINCHECK_PERF_HISTORY"); path != "" {
		// Keep the history, e.g. to time the command on it.
		var b bytes.Buffer
		if err := writeHistory(&b, ops); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	start := time.Now()
	res := Check(ops, 60*time.Second)
	elapsed := time.Since(start)
	t.Logf("linearizable history: %d ops, %d keys, reads %+v, writes %+v: %s in %s",
		stats.Ops, stats.Keys, stats.Reads, stats.Writes, res.Outcome, elapsed)
	if res.Outcome != Linearizable {
		t.Fatalf("outcome %s, want linearizable", res.Outcome)
	}

	if injectStaleRead(rng, gops) < 0 {
		t.Fatal("no room for a stale read")
	}
	start = time.Now()
	res = Check(plainOps(gops), 60*time.Second)
	t.Logf("with a stale read: %s in %s", res.Outcome, time.Since(start))
	if res.Outcome != NotLinearizable {
		t.Fatalf("outcome %s, want NOT linearizable", res.Outcome)
	}
	// "A few seconds" on a 2-core machine; fail only well beyond that so a
	// loaded CI machine does not flake.
	if elapsed > 30*time.Second {
		t.Fatalf("checking took %s", elapsed)
	}
}

// TestPruningPreservesVerdict cross-checks the pruning of unobservable
// unknown writes: on small random histories, rich in unknown writes and
// randomly corrupted reads, the verdict must not depend on it.
func TestPruningPreservesVerdict(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewSource(seed))
	defer func() { pruneUnobservable = true }()
	rounds := 300
	if testing.Short() {
		rounds = 60
	}
	var pruned, illegal, legal, compared int
	for round := 0; round < rounds; round++ {
		cfg := genConfig{
			Clients: 2 + rng.Intn(3), Keys: 1 + rng.Intn(2), Ops: 10 + rng.Intn(40),
			Get: 4, Put: 2, Append: 3, Delete: 1,
			PFail: 0.05, PUnknown: 0.25,
		}
		gops := generate(rng, cfg)
		switch rng.Intn(3) {
		case 0:
			injectStaleRead(rng, gops)
		case 1: // make a random ok get read a random written value
			var values []string
			for _, g := range gops {
				if g.Kind == KindPut || g.Kind == KindAppend {
					values = append(values, g.Value)
				}
			}
			for _, gi := range rng.Perm(len(gops)) {
				if g := &gops[gi]; g.Kind == KindGet && g.Status == StatusOK && len(values) > 0 {
					g.Found, g.Read = true, values[rng.Intn(len(values))]
					break
				}
			}
		}
		ops := plainOps(gops)
		pruneUnobservable = true
		with := Check(ops, 2*time.Second)
		pruneUnobservable = false
		without := Check(ops, 2*time.Second)
		if with.Outcome == TimedOut || without.Outcome == TimedOut {
			continue
		}
		compared++
		if with.Outcome != without.Outcome {
			var b bytes.Buffer
			writeHistory(&b, ops)
			t.Fatalf("round %d: %s with pruning (%d pruned), %s without; history:\n%s",
				round, with.Outcome, with.Pruned, without.Outcome, b.String())
		}
		if with.Pruned > 0 {
			pruned++
			if with.Outcome == NotLinearizable {
				illegal++
			} else {
				legal++
			}
		}
	}
	t.Logf("%d rounds compared; %d pruned something (%d NOT linearizable, %d linearizable)", compared, pruned, illegal, legal)
	if compared < rounds*9/10 || illegal < rounds/20 || legal < rounds/20 {
		t.Fatalf("too few meaningful rounds: %d compared, %d/%d pruned and NOT/linearizable", compared, illegal, legal)
	}
}
