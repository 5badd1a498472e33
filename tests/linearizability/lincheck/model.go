package main

import (
	"fmt"
	"hash/maphash"
	"sort"
	"strconv"

	"github.com/anishathalye/porcupine"
)

// The sequential specification: every key is an independent register that is
// either absent or holds a string. The porcupine model is per key (the
// history is partitioned by key), so its state is one register.

// kvState is the state of one key. It is comparable, so porcupine's default
// == equality is exact.
type kvState struct {
	Present bool
	Value   string
}

// kvInput is the porcupine Operation.Input of every operation.
type kvInput struct {
	Kind  Kind
	Key   string // used by the partition function and descriptions only
	Value string // put: new value; append: suffix
}

// kvOutput is the porcupine Operation.Output.
type kvOutput struct {
	Found   bool   // get: whether the key was present
	Read    string // get: the value read
	Unknown bool   // write with an unknown outcome (for descriptions only)
}

// step applies one operation to a key's state. Writes always succeed (the
// model accepts any write; their outputs carry no information); a get succeeds
// only if what it returned matches the state.
func step(s kvState, in kvInput, out kvOutput) (bool, kvState) {
	switch in.Kind {
	case KindPut:
		return true, kvState{Present: true, Value: in.Value}
	case KindAppend:
		return true, kvState{Present: true, Value: s.Value + in.Value}
	case KindDelete:
		return true, kvState{}
	default: // KindGet
		if out.Found != s.Present || (out.Found && out.Read != s.Value) {
			return false, s
		}
		return true, s
	}
}

var hashSeed = maphash.MakeSeed()

// kvModel is the porcupine model for the key-value store, partitioned by key.
var kvModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		parts, _ := partitionByKey(history)
		return parts
	},
	Init: func() interface{} { return kvState{} },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		return step(state.(kvState), input.(kvInput), output.(kvOutput))
	},
	// Equal is left nil: kvState is comparable, == is exact.
	Hash: func(state interface{}) uint64 {
		s := state.(kvState)
		if !s.Present {
			return 0
		}
		return maphash.String(hashSeed, s.Value) | 1
	},
	DescribeOperation: func(input, output interface{}) string {
		return describeOp(input.(kvInput), output.(kvOutput))
	},
	DescribeState: func(state interface{}) string {
		return describeState(state.(kvState))
	},
	DescribeOperationMetadata: func(info interface{}) string {
		op, ok := info.(*Op)
		if !ok || op == nil {
			return ""
		}
		s := fmt.Sprintf("id %d, client %d, line %d, status %s", op.ID, op.Client, op.Line, op.Status)
		if op.Status == StatusUnknown {
			s += fmt.Sprintf(" (client gave up at %d)", op.End)
		}
		if op.Error != "" {
			s += ": " + op.Error
		}
		return s
	},
}

// partitionByKey splits a history into one partition per key, in key order
// (deterministic, so callers can map partition indexes back to keys).
func partitionByKey(history []porcupine.Operation) ([][]porcupine.Operation, []string) {
	byKey := make(map[string][]porcupine.Operation)
	for _, op := range history {
		k := op.Input.(kvInput).Key
		byKey[k] = append(byKey[k], op)
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([][]porcupine.Operation, len(keys))
	for i, k := range keys {
		parts[i] = byKey[k]
	}
	return parts, keys
}

// maxShown bounds how much of a value descriptions show: appended values grow
// long, and the visualization stores a state description per step.
const maxShown = 64

// quote renders a value for humans, eliding the middle of long values (the
// end of an appended value is usually the interesting part).
func quote(v string) string {
	if len(v) <= maxShown {
		return strconv.Quote(v)
	}
	return fmt.Sprintf("%s...%s (%d bytes)", strconv.Quote(v[:16]), strconv.Quote(v[len(v)-40:]), len(v))
}

func describeState(s kvState) string {
	if !s.Present {
		return "absent"
	}
	return quote(s.Value)
}

func describeOp(in kvInput, out kvOutput) string {
	var s string
	switch in.Kind {
	case KindPut, KindAppend:
		s = fmt.Sprintf("%s(%s, %s)", in.Kind, in.Key, quote(in.Value))
	case KindDelete:
		s = fmt.Sprintf("delete(%s)", in.Key)
	case KindGet:
		if out.Found {
			s = fmt.Sprintf("get(%s) -> %s", in.Key, quote(out.Read))
		} else {
			s = fmt.Sprintf("get(%s) -> absent", in.Key)
		}
	}
	if out.Unknown {
		s += " ?unknown"
	}
	return s
}
