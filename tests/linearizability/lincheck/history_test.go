package main

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

const goodLine = `{"id": 1, "client": 0, "op": "put", "key": "a", "value": "x", "start": 100, "end": 200, "status": "ok"}`

func TestReadHistory(t *testing.T) {
	in := goodLine + "\n\n   \r\n" +
		`{"id": 2, "client": 7, "op": "get", "key": "a", "start": 150, "end": 250, "status": "ok", "found": true, "read": "x", "extra": 1}` + "\n" +
		`{"id": 3, "client": 7, "op": "get", "key": "a", "start": 300, "end": 400, "status": "ok", "found": false}` + "\n" +
		`{"id": 4, "client": 7, "op": "delete", "key": "a", "start": 500, "end": 400, "status": "unknown", "error": "timeout"}` + "\n" +
		`{"id": 5, "client": 7, "op": "get", "key": "a", "start": 500, "end": 600, "status": "fail"}` // no final newline
	ops, err := ReadHistory(strings.NewReader(in), "h")
	if err != nil {
		t.Fatal(err)
	}
	want := []Op{
		{Line: 1, ID: 1, Client: 0, Kind: KindPut, Key: "a", Value: "x", Start: 100, End: 200, Status: StatusOK},
		{Line: 4, ID: 2, Client: 7, Kind: KindGet, Key: "a", Start: 150, End: 250, Status: StatusOK, Found: true, Read: "x"},
		{Line: 5, ID: 3, Client: 7, Kind: KindGet, Key: "a", Start: 300, End: 400, Status: StatusOK},
		{Line: 6, ID: 4, Client: 7, Kind: KindDelete, Key: "a", Start: 500, End: 400, Status: StatusUnknown, Error: "timeout"},
		{Line: 7, ID: 5, Client: 7, Kind: KindGet, Key: "a", Start: 500, End: 600, Status: StatusFail},
	}
	if !reflect.DeepEqual(ops, want) {
		t.Fatalf("got  %+v\nwant %+v", ops, want)
	}
	stats := ComputeStats(ops)
	wantStats := Stats{Ops: 5, Keys: 1, Reads: Counts{OK: 2, Fail: 1}, Writes: Counts{OK: 1, Unknown: 1}}
	if stats != wantStats {
		t.Fatalf("stats %+v, want %+v", stats, wantStats)
	}
}

func TestReadHistoryLongLine(t *testing.T) {
	long := strings.Repeat("x", 1<<20) // longer than bufio.Scanner's default limit
	line := `{"id": 1, "client": 0, "op": "put", "key": "a", "value": "` + long + `", "start": 1, "end": 2, "status": "ok"}`
	ops, err := ReadHistory(strings.NewReader(line+"\n"), "h")
	if err != nil || len(ops) != 1 || ops[0].Value != long {
		t.Fatalf("long line: err %v, %d ops", err, len(ops))
	}
}

func TestReadHistoryErrors(t *testing.T) {
	cases := []struct {
		name, line, msg string
	}{
		{"not json", `{"id": 2,`, "invalid JSON"},
		{"not an object", `[1, 2]`, "invalid JSON"},
		{"trailing garbage", goodLine[:len(goodLine)-1] + `, "id": 2} x`, "invalid JSON"},
		{"wrong type", `{"id": "two", "client": 0, "op": "put", "key": "a", "value": "x", "start": 1, "end": 2, "status": "ok"}`, `field "id"`},
		{"float time", `{"id": 2, "client": 0, "op": "put", "key": "a", "value": "x", "start": 1.5, "end": 2, "status": "ok"}`, `field "start"`},
		{"missing fields", `{"id": 2, "op": "put", "value": "x", "end": 2, "status": "ok"}`, `missing field(s) ["client" "key" "start"]`},
		{"null field", `{"id": 2, "client": 0, "op": "put", "key": null, "value": "x", "start": 1, "end": 2, "status": "ok"}`, `missing field(s) ["key"]`},
		{"unknown op", `{"id": 2, "client": 0, "op": "cas", "key": "a", "start": 1, "end": 2, "status": "ok"}`, `unknown op "cas"`},
		{"unknown status", `{"id": 2, "client": 0, "op": "get", "key": "a", "start": 1, "end": 2, "status": "timeout"}`, `unknown status "timeout"`},
		{"end before start", `{"id": 2, "client": 0, "op": "delete", "key": "a", "start": 5, "end": 2, "status": "ok"}`, "end 2 is before start 5"},
		{"put without value", `{"id": 2, "client": 0, "op": "put", "key": "a", "start": 1, "end": 2, "status": "unknown"}`, `missing field "value"`},
		{"append without value", `{"id": 2, "client": 0, "op": "append", "key": "a", "start": 1, "end": 2, "status": "fail"}`, `missing field "value"`},
		{"get without found", `{"id": 2, "client": 0, "op": "get", "key": "a", "start": 1, "end": 2, "status": "ok", "read": "x"}`, `missing field "found"`},
		{"get without read", `{"id": 2, "client": 0, "op": "get", "key": "a", "start": 1, "end": 2, "status": "ok", "found": true}`, `missing field "read"`},
		{"not found but read", `{"id": 2, "client": 0, "op": "get", "key": "a", "start": 1, "end": 2, "status": "ok", "found": false, "read": "x"}`, "found is false"},
		{"duplicate id", `{"id": 1, "client": 0, "op": "delete", "key": "a", "start": 1, "end": 2, "status": "ok"}`, "duplicate id 1 (already used on line 1)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// The bad line comes third, after a blank line: line numbers
			// count every line of the file.
			in := goodLine + "\n\n" + c.line + "\n" + goodLine + "\n"
			_, err := ReadHistory(strings.NewReader(in), "h.jsonl")
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("got %v, want an InputError", err)
			}
			if ie.Line != 3 || !strings.HasPrefix(err.Error(), "h.jsonl:3: ") {
				t.Errorf("error %q does not name line 3", err)
			}
			if !strings.Contains(err.Error(), c.msg) {
				t.Errorf("error %q does not contain %q", err, c.msg)
			}
		})
	}
}

func TestModelStep(t *testing.T) {
	absent, x := kvState{}, kvState{Present: true, Value: "x"}
	cases := []struct {
		state kvState
		in    kvInput
		out   kvOutput
		ok    bool
		next  kvState
	}{
		{absent, kvInput{Kind: KindPut, Value: "x"}, kvOutput{}, true, x},
		{x, kvInput{Kind: KindAppend, Value: "y"}, kvOutput{}, true, kvState{true, "xy"}},
		{absent, kvInput{Kind: KindAppend, Value: "y"}, kvOutput{}, true, kvState{true, "y"}},
		{x, kvInput{Kind: KindDelete}, kvOutput{}, true, absent},
		{absent, kvInput{Kind: KindDelete}, kvOutput{}, true, absent},
		{x, kvInput{Kind: KindGet}, kvOutput{Found: true, Read: "x"}, true, x},
		{x, kvInput{Kind: KindGet}, kvOutput{Found: true, Read: "y"}, false, x},
		{x, kvInput{Kind: KindGet}, kvOutput{Found: false}, false, x},
		{absent, kvInput{Kind: KindGet}, kvOutput{Found: false}, true, absent},
		{absent, kvInput{Kind: KindGet}, kvOutput{Found: true, Read: ""}, false, absent},
		{kvState{true, ""}, kvInput{Kind: KindGet}, kvOutput{Found: true, Read: ""}, true, kvState{true, ""}},
	}
	for i, c := range cases {
		ok, next := step(c.state, c.in, c.out)
		if ok != c.ok || (ok && next != c.next) {
			t.Errorf("case %d: step(%+v, %+v, %+v) = %v, %+v; want %v, %+v", i, c.state, c.in, c.out, ok, next, c.ok, c.next)
		}
	}
}
