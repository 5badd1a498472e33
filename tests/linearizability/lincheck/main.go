// Command lincheck checks a raftkv client history for linearizability with
// porcupine (https://github.com/anishathalye/porcupine).
//
// Usage:
//
//	lincheck -history FILE [-timeout 60s] [-html OUT.html] [-json] [-prune=false]
//
// The history is a JSON-lines file, one operation per line (see history.go
// and the README next to this file for the format). Every key is checked as an
// independent register (put/append/delete/get, initially absent).
//
// Standard output gets exactly one line: a summary, or with -json one JSON
// object. Explanations of failures and errors go to standard error.
//
// Exit status: 0 linearizable, 1 NOT linearizable, 2 unknown (the check timed
// out), 3 bad input or usage (the message names the line of the history).
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Exit statuses besides Outcome.ExitCode.
const exitBadInput = 3

// maxKeysExplained bounds how many failed keys get a detailed explanation.
const maxKeysExplained = 5

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// summary is the -json output.
type summary struct {
	History string `json:"history"`
	Stats
	Checked int `json:"checked"` // ops given to the checker
	// Unknown writes left out because no get can have observed them.
	PrunedUnknownWrites int    `json:"pruned_unknown_writes"`
	Result              string `json:"result"` // "linearizable", "NOT linearizable", "unknown (timed out)", "bad input"
	// Per key verdicts (keys are only listed when not linearizable).
	FailedKeys     []string `json:"failed_keys"`
	UnfinishedKeys []string `json:"unfinished_keys"`
	// Keys that failed or were cut short by the timeout; porcupine cannot
	// tell which. Only when a failure and the timeout coincide (then at
	// least one of them failed).
	FailedOrUnfinishedKeys []string `json:"failed_or_unfinished_keys,omitempty"`
	ElapsedMs              int64    `json:"elapsed_ms"`
	HTML                   string   `json:"html,omitempty"`
	Error                  string   `json:"error,omitempty"`

	elapsed time.Duration // for the text line, more precise than ElapsedMs
}

// run is the whole command; it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("lincheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	historyPath := fs.String("history", "", "JSON-lines history `file` to check (required)")
	timeout := fs.Duration("timeout", 60*time.Second, "give up after this long (exit 2); 0 means no limit")
	htmlPath := fs.String("html", "", "write porcupine's visualization to this HTML `file`")
	jsonOut := fs.Bool("json", false, "print the summary as one JSON object")
	fs.BoolVar(&pruneUnobservable, "prune", true, "skip unknown writes that no get can have observed (same verdict, much faster; -prune=false to cross-check)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: lincheck -history FILE [-timeout 60s] [-html OUT.html] [-json] [-prune=false]\n")
		fs.PrintDefaults()
		fmt.Fprintf(stderr, "exit status: 0 linearizable, 1 NOT linearizable, 2 timed out, 3 bad input or usage\n")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return exitBadInput
	}
	if *historyPath == "" || fs.NArg() > 0 {
		fs.Usage()
		return exitBadInput
	}

	sum := summary{History: *historyPath, FailedKeys: []string{}, UnfinishedKeys: []string{}}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "lincheck: %v\n", err)
		if *jsonOut {
			sum.Result, sum.Error = "bad input", err.Error()
			writeJSON(stdout, &sum)
		}
		return exitBadInput
	}

	ops, err := ReadHistoryFile(*historyPath)
	if err != nil {
		return fail(err)
	}
	sum.Stats = ComputeStats(ops)
	// Create the visualization file before the check, which may be long, so
	// that a bad path fails fast.
	var html *os.File
	if *htmlPath != "" {
		if html, err = os.Create(*htmlPath); err != nil {
			return fail(err)
		}
		defer html.Close()
	}
	res := Check(ops, *timeout)
	sum.Checked = res.Checked
	sum.PrunedUnknownWrites = res.Pruned
	sum.Result = res.Outcome.String()
	sum.FailedKeys = nonNil(res.KeysWith(KeyIllegal))
	sum.UnfinishedKeys = nonNil(res.KeysWith(KeyUnfinished))
	sum.FailedOrUnfinishedKeys = res.KeysWith(KeyIllegalOrUnfinished)
	sum.ElapsedMs = res.Elapsed.Milliseconds()
	sum.elapsed = res.Elapsed

	explained := 0
	for i := range res.Keys {
		kr := &res.Keys[i]
		if kr.Status == KeyOK {
			continue
		}
		if explained == maxKeysExplained {
			fmt.Fprintf(stderr, "(more keys failed; only the first %d are explained)\n", maxKeysExplained)
			break
		}
		res.Explain(stderr, kr)
		explained++
	}
	if html != nil {
		err := res.WriteHTML(html)
		if cerr := html.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fail(fmt.Errorf("writing %s: %w", *htmlPath, err))
		}
		sum.HTML = *htmlPath
		fmt.Fprintf(stderr, "visualization written to %s\n", *htmlPath)
	} else if res.Outcome != Linearizable {
		fmt.Fprintf(stderr, "(rerun with -html OUT.html for an interactive visualization)\n")
	}

	if *jsonOut {
		writeJSON(stdout, &sum)
	} else {
		fmt.Fprintln(stdout, sum.line())
	}
	return res.Outcome.ExitCode()
}

// line is the one-line text summary.
func (s *summary) line() string {
	pruned := ""
	if s.PrunedUnknownWrites > 0 {
		pruned = fmt.Sprintf(" (%d unobservable unknown writes skipped)", s.PrunedUnknownWrites)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "lincheck: %s: %d ops on %d keys (reads ok/fail/unknown %d/%d/%d, writes ok/fail/unknown %d/%d/%d), %d checked%s in %s: %s",
		s.History, s.Ops, s.Keys, s.Reads.OK, s.Reads.Fail, s.Reads.Unknown,
		s.Writes.OK, s.Writes.Fail, s.Writes.Unknown, s.Checked, pruned,
		s.elapsed.Round(time.Microsecond), s.Result)
	if len(s.FailedKeys) > 0 {
		fmt.Fprintf(&b, "; failed keys: %s", strings.Join(s.FailedKeys, ", "))
	}
	if len(s.UnfinishedKeys) > 0 {
		fmt.Fprintf(&b, "; unfinished keys: %s", strings.Join(s.UnfinishedKeys, ", "))
	}
	if len(s.FailedOrUnfinishedKeys) > 0 {
		fmt.Fprintf(&b, "; failed or unfinished keys: %s", strings.Join(s.FailedOrUnfinishedKeys, ", "))
	}
	return b.String()
}

func writeJSON(w io.Writer, s *summary) {
	b, _ := json.Marshal(s) // cannot fail: plain data
	fmt.Fprintf(w, "%s\n", b)
}

// nonNil makes empty lists encode as [] rather than null.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
