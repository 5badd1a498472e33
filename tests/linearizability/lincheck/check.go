package main

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// Outcome is the verdict on a whole history.
type Outcome int

const (
	Linearizable Outcome = iota
	NotLinearizable
	TimedOut
)

func (o Outcome) String() string {
	switch o {
	case Linearizable:
		return "linearizable"
	case NotLinearizable:
		return "NOT linearizable"
	default:
		return "unknown (timed out)"
	}
}

// ExitCode is the process exit status for an outcome.
func (o Outcome) ExitCode() int {
	switch o {
	case Linearizable:
		return 0
	case NotLinearizable:
		return 1
	default:
		return 2
	}
}

// KeyStatus is the verdict on one key (partition).
type KeyStatus string

const (
	KeyOK         KeyStatus = "linearizable"
	KeyIllegal    KeyStatus = "NOT linearizable"
	KeyUnfinished KeyStatus = "unfinished (timed out)"
	// KeyIllegalOrUnfinished: porcupine found some key not linearizable but
	// the timeout also expired, and its API does not say which of the keys
	// without a full linearization failed and which were cut short.
	KeyIllegalOrUnfinished KeyStatus = "NOT linearizable or unfinished (timed out)"
)

// KeyResult is the check result of one key.
type KeyResult struct {
	Key     string
	Status  KeyStatus
	ops     []porcupine.Operation // the partition, in porcupine's id order
	longest []int                 // longest (partial) linearization found, ids into ops
}

// Result is the outcome of checking a history.
type Result struct {
	Outcome Outcome
	Checked int // operations given to porcupine (after dropping fail/unknown reads and failed writes)
	Pruned  int // unknown writes dropped because no get can have observed them
	Keys    []KeyResult
	Elapsed time.Duration
	t0      int64 // earliest timestamp of the history; times are printed relative to it
	info    porcupine.LinearizationInfo
}

// unobservable marks the unknown writes that no ok get can have observed;
// they can be dropped without changing the verdict (they never return, so they
// may always be linearized after everything else, which is the same as never).
//
// This matters for speed. A pending unknown write can be linearized anywhere
// after its start; before a later put or delete it leaves no visible trace,
// so porcupine explores every such placement again and again. Real histories
// with a burst of timeouts made the check time out without this pruning.
//
// With get R "observing" write W when R returned no earlier than W started:
//   - an unknown put of v is unobservable if no get observing it read a value
//     starting with v;
//   - an unknown append of s is unobservable if no get observing it read a
//     value containing s;
//   - an unknown delete is unobservable if every get observing it found the
//     key, with a value that does not start with the suffix of any
//     (non-failed) append of the key.
//
// Why dropping all of them at once is sound: take a linearization of the
// whole history and a get R in it. Let X be the last put or delete before R.
// R reads X's value (X a put; "" or absent if X is a delete or there is none)
// followed by the suffixes of the appends between X and R; as R comes after
// them, R observes them all. If X were a dropped put, R's value would start
// with X's value; if a dropped delete, R would not find the key or its value
// would start with the first of those appends' suffixes; if one of the
// appends were dropped, R's value would contain its suffix. So nothing that
// determines R's result is dropped, and removing the dropped writes from the
// linearization leaves every get's result, and the real-time order, valid.
func unobservable(ops []Op) []bool {
	type read struct {
		end   int64
		found bool
		value string
	}
	reads := make(map[string][]read)             // key -> its ok gets
	suffixes := make(map[string]map[string]bool) // key -> suffixes of its non-failed appends
	suffixLens := make(map[string]map[int]bool)  // key -> the lengths of those suffixes
	for i := range ops {
		op := &ops[i]
		switch {
		case op.Kind == KindGet && op.Status == StatusOK:
			reads[op.Key] = append(reads[op.Key], read{op.End, op.Found, op.Read})
		case op.Kind == KindAppend && op.Status != StatusFail:
			if suffixes[op.Key] == nil {
				suffixes[op.Key], suffixLens[op.Key] = make(map[string]bool), make(map[int]bool)
			}
			suffixes[op.Key][op.Value] = true
			suffixLens[op.Key][len(op.Value)] = true
		}
	}
	// mayFollowDelete: whether a get's result is possible right after a
	// delete and appends only.
	mayFollowDelete := func(key string, r read) bool {
		if !r.found {
			return true
		}
		for n := range suffixLens[key] {
			if n <= len(r.value) && suffixes[key][r.value[:n]] {
				return true
			}
		}
		return false
	}

	drop := make([]bool, len(ops))
	for i := range ops {
		op := &ops[i]
		if op.Status != StatusUnknown || !op.Kind.IsWrite() {
			continue
		}
		seen := false
		for _, r := range reads[op.Key] {
			if r.end < op.Start {
				continue // returned before the write started
			}
			switch op.Kind {
			case KindPut:
				seen = r.found && strings.HasPrefix(r.value, op.Value)
			case KindAppend:
				seen = r.found && strings.Contains(r.value, op.Value)
			case KindDelete:
				seen = mayFollowDelete(op.Key, r)
			}
			if seen {
				break
			}
		}
		drop[i] = !seen
	}
	return drop
}

// pruneUnobservable enables unobservable; tests turn it off to cross-check.
var pruneUnobservable = true

// toOperations turns a history into porcupine operations:
//   - a get with status fail or unknown is dropped (reads have no effect);
//   - a write with status fail is dropped (it is known not to have applied);
//   - a write with status unknown gets a return time later than every
//     timestamp in the history ("infinity", as porcupine's author recommends
//     for timed-out calls): it may then be linearized anywhere after its
//     start, or after everything else, which is equivalent to never applying.
//     It never constrains the real-time order of other operations.
//     If no get can have observed it, it is dropped (see unobservable).
//
// ClientId (used only by the visualization) is a dense index of the client;
// each unknown write of a key gets a row of its own after the clients' rows,
// as it overlaps everything its client did afterwards.
func toOperations(ops []Op) (pops []porcupine.Operation, t0 int64, pruned int) {
	if len(ops) == 0 {
		return nil, 0, 0
	}
	drop := make([]bool, len(ops))
	if pruneUnobservable {
		drop = unobservable(ops)
	}
	t0, tmax := int64(math.MaxInt64), int64(math.MinInt64)
	clientSet := make(map[int64]struct{})
	for i := range ops {
		t0 = min(t0, ops[i].Start, ops[i].End)
		tmax = max(tmax, ops[i].Start, ops[i].End)
		clientSet[ops[i].Client] = struct{}{}
	}
	infinity := tmax
	if infinity < math.MaxInt64 {
		infinity++
	}
	clients := make([]int64, 0, len(clientSet))
	for c := range clientSet {
		clients = append(clients, c)
	}
	sort.Slice(clients, func(i, j int) bool { return clients[i] < clients[j] })
	row := make(map[int64]int, len(clients))
	for i, c := range clients {
		row[c] = i
	}
	unknownRows := make(map[string]int) // key -> unknown writes seen so far

	for i := range ops {
		op := &ops[i]
		if op.Status == StatusFail || (op.Kind == KindGet && op.Status != StatusOK) {
			continue
		}
		if drop[i] {
			pruned++
			continue
		}
		p := porcupine.Operation{
			ClientId: row[op.Client],
			Input:    kvInput{Kind: op.Kind, Key: op.Key, Value: op.Value},
			Call:     op.Start,
			Output:   kvOutput{Found: op.Found, Read: op.Read},
			Return:   op.End,
			Metadata: op,
		}
		if op.Status == StatusUnknown {
			p.Return = infinity
			p.Output = kvOutput{Unknown: true}
			p.ClientId = len(clients) + unknownRows[op.Key]
			unknownRows[op.Key]++
		}
		pops = append(pops, p)
	}
	return pops, t0, pruned
}

// Check checks a history for linearizability. A timeout of 0 means no limit.
func Check(ops []Op, timeout time.Duration) *Result {
	pops, t0, pruned := toOperations(ops)
	start := time.Now()
	// The verbose variant also records partial linearizations, which the
	// per-key verdicts, the explanation and the visualization need. It checks
	// partitions in parallel and, unlike the plain variant, does not stop at
	// the first illegal one, so every key gets a verdict.
	res, info := porcupine.CheckOperationsVerbose(kvModel, pops, timeout)
	r := &Result{Checked: len(pops), Pruned: pruned, Elapsed: time.Since(start), t0: t0, info: info}
	switch res {
	case porcupine.Ok:
		r.Outcome = Linearizable
	case porcupine.Illegal:
		r.Outcome = NotLinearizable
	default:
		r.Outcome = TimedOut
	}
	// porcupine only reports an overall verdict. Per key: a partition is
	// linearizable iff its longest linearization covers all its operations.
	// Otherwise it is illegal if no timeout happened (porcupine ran every
	// partition to completion); after a timeout it may just be unfinished.
	// Our elapsed time bounds porcupine's own timer from above, so
	// elapsed < timeout proves the timer never fired.
	mayHaveTimedOut := timeout > 0 && r.Elapsed >= timeout
	parts, keys := partitionByKey(pops) // the same partitions porcupine used
	partials := info.PartialLinearizations()
	for i, part := range parts {
		kr := KeyResult{Key: keys[i], ops: part}
		if i < len(partials) {
			for _, lin := range partials[i] {
				if len(lin) > len(kr.longest) {
					kr.longest = lin
				}
			}
		}
		switch {
		case len(kr.longest) == len(part):
			kr.Status = KeyOK
		case r.Outcome == NotLinearizable && !mayHaveTimedOut:
			kr.Status = KeyIllegal
		case r.Outcome == TimedOut:
			kr.Status = KeyUnfinished
		default:
			kr.Status = KeyIllegalOrUnfinished
		}
		r.Keys = append(r.Keys, kr)
	}
	return r
}

// KeysWith returns the keys with the given status.
func (r *Result) KeysWith(status KeyStatus) []string {
	var keys []string
	for _, kr := range r.Keys {
		if kr.Status == status {
			keys = append(keys, kr.Key)
		}
	}
	return keys
}

// WriteHTML writes porcupine's interactive visualization of the check.
func (r *Result) WriteHTML(w io.Writer) error {
	return porcupine.Visualize(kvModel, r.info, w)
}

// maxPrefixShown bounds how much of the linearizable prefix Explain prints.
const maxPrefixShown = 12

// Explain writes a human-readable account of why a key failed (or did not
// finish): the end of the longest linearizable prefix porcupine found, the
// state it leads to, and the operations that could come next and why each of
// them cannot.
func (r *Result) Explain(w io.Writer, kr *KeyResult) {
	fmt.Fprintf(w, "key %q: %s (%d operations checked)\n", kr.Key, kr.Status, len(kr.ops))
	if kr.Status == KeyOK {
		return
	}
	n := len(kr.longest)
	shown := kr.longest[max(0, n-maxPrefixShown):]
	fmt.Fprintf(w, "  longest linearizable prefix found: %d of %d operations", n, len(kr.ops))
	if n == 0 && kr.Status == KeyIllegal {
		fmt.Fprintf(w, " (none: no operation can come first)\n")
	} else if n == 0 {
		fmt.Fprintf(w, "\n")
	} else if len(shown) < n {
		fmt.Fprintf(w, "; the last %d, with the state after each:\n", len(shown))
	} else {
		fmt.Fprintf(w, ", with the state after each:\n")
	}
	// Replay the prefix to know the state after each operation.
	state := kvState{}
	states := make([]kvState, n) // states[i]: after the i-th operation of the prefix
	inPrefix := make([]bool, len(kr.ops))
	for i, id := range kr.longest {
		inPrefix[id] = true
		p := kr.ops[id]
		_, state = step(state, p.Input.(kvInput), p.Output.(kvOutput))
		states[i] = state
		if i >= n-len(shown) {
			fmt.Fprintf(w, "    %4d. %s  => %s\n", i+1, r.describe(p), describeState(state))
		}
	}
	if kr.Status != KeyIllegal {
		// After a timeout the search was cut short: the prefix is only
		// the best found so far, and "stuck" would be misleading.
		fmt.Fprintf(w, "  (the search was cut short by the timeout; rerun with a larger -timeout)\n")
		return
	}
	// The operations that could be linearized next are those invoked no
	// later than the earliest return among the remaining ones (porcupine
	// treats intervals as closed).
	deadline, deadlineOp := int64(math.MaxInt64), -1
	for id, p := range kr.ops {
		if !inPrefix[id] && p.Return < deadline {
			deadline, deadlineOp = p.Return, id
		}
	}
	if deadlineOp < 0 {
		return // cannot happen for an illegal key
	}
	fmt.Fprintf(w, "  in state %s no remaining operation can be linearized next; the candidates\n", describeState(state))
	fmt.Fprintf(w, "  (invoked by %s, when %s returned) are:\n", r.at(deadline), opRef(kr.ops[deadlineOp]))
	for id, p := range kr.ops {
		if inPrefix[id] || p.Call > deadline {
			continue
		}
		in, out := p.Input.(kvInput), p.Output.(kvOutput)
		reason := "fits here, but then the remaining operations cannot all be linearized"
		if ok, _ := step(state, in, out); !ok {
			reason = mismatch(state, out) + r.lastHeld(kr, states, out)
		}
		fmt.Fprintf(w, "      %s: %s\n", r.describe(p), reason)
	}
}

// lastHeld tells which operation of the prefix last replaced what a get
// returned (for a stale read: the write it missed), or that the key never
// held it.
func (r *Result) lastHeld(kr *KeyResult, states []kvState, out kvOutput) string {
	read := kvState{Present: out.Found, Value: out.Read}
	for i := len(states) - 1; i >= 0; i-- {
		if states[i] == read {
			if i == len(states)-1 {
				return "" // cannot happen: the get would fit
			}
			return fmt.Sprintf(" (the value read was overwritten at step %d by %s)", i+2, r.describe(kr.ops[kr.longest[i+1]]))
		}
	}
	if !read.Present {
		return " (the key was never absent in the prefix)"
	}
	return " (the key never held the value read in the prefix)"
}

// mismatch explains why a get cannot observe the given state.
func mismatch(s kvState, out kvOutput) string {
	switch {
	case out.Found && !s.Present:
		return "it read a value but the key is absent"
	case !out.Found && s.Present:
		return fmt.Sprintf("it found nothing but the value is %s", quote(s.Value))
	}
	msg := fmt.Sprintf("the value is %s", quote(s.Value))
	if len(s.Value) > maxShown || len(out.Read) > maxShown {
		i := 0
		for i < len(s.Value) && i < len(out.Read) && s.Value[i] == out.Read[i] {
			i++
		}
		msg += fmt.Sprintf("; they differ from byte %d: read %s vs value %s",
			i, quote(out.Read[i:min(len(out.Read), i+maxShown)]), quote(s.Value[i:min(len(s.Value), i+maxShown)]))
	}
	return msg
}

// opRef names an operation briefly.
func opRef(p porcupine.Operation) string {
	op := p.Metadata.(*Op)
	return fmt.Sprintf("#%d (line %d)", op.ID, op.Line)
}

// describe renders an operation on one line: id, client, interval, action.
func (r *Result) describe(p porcupine.Operation) string {
	op := p.Metadata.(*Op)
	end := r.at(op.End)
	if op.Status == StatusUnknown {
		end = "inf; gave up " + end
	}
	return fmt.Sprintf("#%d (line %d) client %d [%s, %s] %s",
		op.ID, op.Line, op.Client, r.at(op.Start), end, describeOp(p.Input.(kvInput), p.Output.(kvOutput)))
}

// at renders a timestamp relative to the start of the history.
func (r *Result) at(t int64) string {
	return "+" + time.Duration(t-r.t0).String()
}
