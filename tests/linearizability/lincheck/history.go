package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// Kind is the operation an entry of the history performed.
type Kind uint8

const (
	KindPut Kind = iota
	KindAppend
	KindDelete
	KindGet
)

var kindNames = map[string]Kind{"put": KindPut, "append": KindAppend, "delete": KindDelete, "get": KindGet}

func (k Kind) String() string {
	switch k {
	case KindPut:
		return "put"
	case KindAppend:
		return "append"
	case KindDelete:
		return "delete"
	case KindGet:
		return "get"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// IsWrite reports whether the operation changes the state of its key.
func (k Kind) IsWrite() bool { return k != KindGet }

// Status is what the client learned about the outcome of an operation.
type Status uint8

const (
	// StatusOK: the operation took effect exactly once, between Start and End.
	StatusOK Status = iota
	// StatusFail: the operation is known not to have taken effect.
	StatusFail
	// StatusUnknown: the operation may or may not have taken effect, at any
	// instant after Start (End is only when the client gave up waiting).
	StatusUnknown
)

var statusNames = map[string]Status{"ok": StatusOK, "fail": StatusFail, "unknown": StatusUnknown}

func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusFail:
		return "fail"
	case StatusUnknown:
		return "unknown"
	}
	return fmt.Sprintf("Status(%d)", uint8(s))
}

// Op is one validated line of a history file.
type Op struct {
	Line   int // 1-based line number in the file (0 when built in code)
	ID     int64
	Client int64
	Kind   Kind
	Key    string
	Value  string // put: the new value; append: the suffix
	Start  int64  // ns
	End    int64  // ns; for unknown ops the time the client gave up
	Status Status
	Found  bool   // get with StatusOK only
	Read   string // get with StatusOK only; "" when not found
	Error  string // optional text for fail/unknown
}

// rawOp mirrors the JSON format. Pointers tell a missing field from a zero
// value; unknown fields are ignored so the producer may add more.
type rawOp struct {
	ID     *int64  `json:"id"`
	Client *int64  `json:"client"`
	Op     *string `json:"op"`
	Key    *string `json:"key"`
	Value  *string `json:"value"`
	Start  *int64  `json:"start"`
	End    *int64  `json:"end"`
	Status *string `json:"status"`
	Found  *bool   `json:"found"`
	Read   *string `json:"read"`
	Error  string  `json:"error"`
}

// InputError reports a malformed history; it names the offending line.
type InputError struct {
	File string
	Line int // 0 when the error is not about one line
	Msg  string
}

func (e *InputError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// ReadHistoryFile reads and validates a JSON-lines history file.
func ReadHistoryFile(path string) ([]Op, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &InputError{File: path, Msg: err.Error()}
	}
	defer f.Close()
	return ReadHistory(f, path)
}

// ReadHistory parses and validates a JSON-lines history; name is used in
// error messages. Blank lines are skipped.
func ReadHistory(r io.Reader, name string) ([]Op, error) {
	// bufio.Reader rather than bufio.Scanner: a get of a long appended value
	// can make a line longer than any fixed limit.
	br := bufio.NewReader(r)
	var ops []Op
	firstLine := make(map[int64]int) // op id -> line where it first appeared
	for lineNo := 1; ; lineNo++ {
		line, err := br.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, &InputError{File: name, Line: lineNo, Msg: err.Error()}
		}
		if trimmed := bytes.TrimSpace(line); len(trimmed) > 0 {
			op, msg := parseLine(trimmed)
			if msg != "" {
				return nil, &InputError{File: name, Line: lineNo, Msg: msg}
			}
			if prev, dup := firstLine[op.ID]; dup {
				return nil, &InputError{File: name, Line: lineNo,
					Msg: fmt.Sprintf("duplicate id %d (already used on line %d)", op.ID, prev)}
			}
			firstLine[op.ID] = lineNo
			op.Line = lineNo
			ops = append(ops, op)
		}
		if err != nil { // io.EOF, after handling a last line without '\n'
			return ops, nil
		}
	}
}

// parseLine decodes one non-blank line; it returns a non-empty message when
// the line is invalid.
func parseLine(line []byte) (Op, string) {
	var raw rawOp
	if err := json.Unmarshal(line, &raw); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return Op{}, fmt.Sprintf("field %q: expected %s, got JSON %s", typeErr.Field, typeErr.Type, typeErr.Value)
		}
		return Op{}, "invalid JSON: " + err.Error()
	}
	var missing []string
	need := func(name string, present bool) {
		if !present {
			missing = append(missing, name)
		}
	}
	need("id", raw.ID != nil)
	need("client", raw.Client != nil)
	need("op", raw.Op != nil)
	need("key", raw.Key != nil)
	need("start", raw.Start != nil)
	need("end", raw.End != nil)
	need("status", raw.Status != nil)
	if len(missing) > 0 {
		return Op{}, fmt.Sprintf("missing field(s) %q", missing)
	}
	kind, ok := kindNames[*raw.Op]
	if !ok {
		return Op{}, fmt.Sprintf("unknown op %q (want put, append, delete or get)", *raw.Op)
	}
	status, ok := statusNames[*raw.Status]
	if !ok {
		return Op{}, fmt.Sprintf("unknown status %q (want ok, fail or unknown)", *raw.Status)
	}
	op := Op{
		ID: *raw.ID, Client: *raw.Client, Kind: kind, Key: *raw.Key,
		Start: *raw.Start, End: *raw.End, Status: status, Error: raw.Error,
	}
	if status == StatusOK && op.End < op.Start {
		return Op{}, fmt.Sprintf("end %d is before start %d", op.End, op.Start)
	}
	switch kind {
	case KindPut, KindAppend:
		if raw.Value == nil {
			return Op{}, fmt.Sprintf("missing field \"value\" (required for %s)", kind)
		}
		op.Value = *raw.Value
	case KindGet:
		// The result of a get is only meaningful when it succeeded; for
		// fail/unknown gets found/read are ignored (the get is dropped).
		if status != StatusOK {
			break
		}
		if raw.Found == nil {
			return Op{}, "missing field \"found\" (required for a get with status ok)"
		}
		op.Found = *raw.Found
		switch {
		case op.Found && raw.Read == nil:
			return Op{}, "missing field \"read\" (required for a get that found the key)"
		case !op.Found && raw.Read != nil && *raw.Read != "":
			return Op{}, fmt.Sprintf("found is false but read is %q (must be empty or absent)", *raw.Read)
		case op.Found:
			op.Read = *raw.Read
		}
	}
	return op, ""
}

// Counts are the ok/fail/unknown tallies of one class of operations.
type Counts struct {
	OK      int `json:"ok"`
	Fail    int `json:"fail"`
	Unknown int `json:"unknown"`
}

func (c *Counts) add(s Status) {
	switch s {
	case StatusOK:
		c.OK++
	case StatusFail:
		c.Fail++
	case StatusUnknown:
		c.Unknown++
	}
}

// Stats summarizes a history.
type Stats struct {
	Ops    int    `json:"ops"`  // lines in the history
	Keys   int    `json:"keys"` // distinct keys
	Reads  Counts `json:"reads"`
	Writes Counts `json:"writes"`
}

// ComputeStats tallies a history.
func ComputeStats(ops []Op) Stats {
	s := Stats{Ops: len(ops)}
	keys := make(map[string]struct{})
	for i := range ops {
		keys[ops[i].Key] = struct{}{}
		if ops[i].Kind.IsWrite() {
			s.Writes.add(ops[i].Status)
		} else {
			s.Reads.add(ops[i].Status)
		}
	}
	s.Keys = len(keys)
	return s
}
