package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary act as the lincheck command: the CLI tests
// run os.Args[0] with LINCHECK_BE_MAIN=1, which exercises main itself (flag
// handling, output streams, the real exit status) without building anything.
func TestMain(m *testing.M) {
	if os.Getenv("LINCHECK_BE_MAIN") == "1" {
		os.Args = append([]string{"lincheck"}, os.Args[1:]...)
		main()
		panic("main returned")
	}
	os.Exit(m.Run())
}

// runCLI runs the command with args; it returns its exit status and outputs.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "LINCHECK_BE_MAIN=1")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		code = exitErr.ExitCode()
	default:
		t.Fatalf("running lincheck: %v", err)
	}
	return code, out.String(), errOut.String()
}

func TestCLI(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name     string
		args     []string
		code     int
		stdout   []string // substrings of stdout
		stderr   []string // substrings of stderr
		htmlFile string   // must exist afterwards
	}{
		{
			name: "linearizable",
			args: []string{"-history", "testdata/linearizable.jsonl"},
			code: 0,
			stdout: []string{"lincheck: testdata/linearizable.jsonl: 8 ops on 2 keys " +
				"(reads ok/fail/unknown 3/0/1, writes ok/fail/unknown 2/1/1), 5 checked " +
				"(1 unobservable unknown writes skipped) in ", ": linearizable\n"},
		},
		{
			name:     "linearizable with html",
			args:     []string{"-history", "testdata/linearizable.jsonl", "-html", filepath.Join(dir, "ok.html")},
			code:     0,
			stderr:   []string{"visualization written to"},
			htmlFile: filepath.Join(dir, "ok.html"),
		},
		{
			name:   "stale read",
			args:   []string{"-history", "testdata/stale_read.jsonl"},
			code:   1,
			stdout: []string{": NOT linearizable; failed keys: k1\n"},
			stderr: []string{
				`key "k1": NOT linearizable`,
				`#3 (line 3) client 1 [+4µs, +5µs] get(k1) -> "old": the value is "new"`,
				"rerun with -html",
			},
		},
		{
			name:     "stale read with html",
			args:     []string{"-timeout", "10s", "-html", filepath.Join(dir, "bad.html"), "-history", "testdata/stale_read.jsonl"},
			code:     1,
			htmlFile: filepath.Join(dir, "bad.html"),
		},
		{
			name:   "bad input",
			args:   []string{"-history", "testdata/bad_line3.jsonl"},
			code:   3,
			stderr: []string{`lincheck: testdata/bad_line3.jsonl:3: unknown op "increment"`},
		},
		{
			name:   "missing file",
			args:   []string{"-history", filepath.Join(dir, "nope.jsonl")},
			code:   3,
			stderr: []string{"no such file"},
		},
		{name: "no history flag", args: nil, code: 3, stderr: []string{"usage: lincheck"}},
		{name: "bad flag", args: []string{"-history", "x", "-nope"}, code: 3},
		{name: "stray argument", args: []string{"-history", "testdata/linearizable.jsonl", "extra"}, code: 3},
		{name: "bad html path", args: []string{"-history", "testdata/linearizable.jsonl", "-html", filepath.Join(dir, "no/such/dir.html")}, code: 3, stderr: []string{"no such file"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, c.args...)
			if code != c.code {
				t.Errorf("exit status %d, want %d", code, c.code)
			}
			if c.code != 3 && strings.Count(stdout, "\n") != 1 {
				t.Errorf("stdout is not one line: %q", stdout)
			}
			for _, s := range c.stdout {
				if !strings.Contains(stdout, s) {
					t.Errorf("stdout lacks %q", s)
				}
			}
			for _, s := range c.stderr {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q", s)
				}
			}
			if c.htmlFile != "" {
				b, err := os.ReadFile(c.htmlFile)
				if err != nil || !bytes.Contains(b, []byte("<html")) {
					t.Errorf("visualization %s: err %v, %d bytes", c.htmlFile, err, len(b))
				}
			}
			if t.Failed() {
				t.Logf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
			}
		})
	}
}

func TestCLIJSON(t *testing.T) {
	code, stdout, stderr := runCLI(t, "-json", "-history", "testdata/stale_read.jsonl")
	if code != 1 {
		t.Fatalf("exit status %d, want 1; stderr:\n%s", code, stderr)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, stdout)
	}
	delete(got, "elapsed_ms")
	want := map[string]any{
		"history": "testdata/stale_read.jsonl", "ops": 5.0, "keys": 2.0, "checked": 5.0,
		"pruned_unknown_writes": 0.0,
		"reads":                 map[string]any{"ok": 2.0, "fail": 0.0, "unknown": 0.0},
		"writes":                map[string]any{"ok": 3.0, "fail": 0.0, "unknown": 0.0},
		"result":                "NOT linearizable",
		"failed_keys":           []any{"k1"},
		"unfinished_keys":       []any{},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("JSON summary\n got %v\nwant %v", got, want)
	}

	code, stdout, _ = runCLI(t, "-json", "-history", "testdata/bad_line3.jsonl")
	if code != 3 {
		t.Fatalf("bad input: exit status %d, want 3", code)
	}
	var bad struct{ Result, Error string }
	if err := json.Unmarshal([]byte(stdout), &bad); err != nil || bad.Result != "bad input" ||
		!strings.Contains(bad.Error, "bad_line3.jsonl:3:") {
		t.Fatalf("bad input JSON: %v %+v", err, bad)
	}
}

func TestCLITimeout(t *testing.T) {
	// As in TestTimeout: hopeless to finish within the timeout.
	var ops []Op
	for i := 0; i < 14; i++ {
		ops = append(ops, appendOp(int64(i), "slow", string(rune('a'+i)), 0, 100))
	}
	ops = append(ops, get(99, "slow", "impossible", 200, 300))
	path := filepath.Join(t.TempDir(), "slow.jsonl")
	writeFile(t, path, history(ops...))
	start := time.Now()
	code, stdout, stderr := runCLI(t, "-timeout", "300ms", "-history", path)
	if code != 2 || !strings.Contains(stdout, ": unknown (timed out); unfinished keys: slow") {
		t.Fatalf("exit status %d, want 2; stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Fatalf("took %s with -timeout 300ms", elapsed)
	}
}

// TestCLIRandom runs the command on a generated history: the file format
// written here is the one the test driver produces.
func TestCLIRandom(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewSource(seed))
	gops := generate(rng, genConfig{Clients: 5, Keys: 3, Ops: 500, Get: 4, Put: 2, Append: 3, Delete: 1, PFail: 0.05, PUnknown: 0.05})
	dir := t.TempDir()
	good := filepath.Join(dir, "good.jsonl")
	writeFile(t, good, plainOps(gops))
	if code, stdout, stderr := runCLI(t, "-history", good); code != 0 {
		t.Fatalf("exit status %d, want 0\n%s%s", code, stdout, stderr)
	}
	gi := injectStaleRead(rng, gops)
	if gi < 0 {
		t.Skip("no room for a stale read")
	}
	bad := filepath.Join(dir, "bad.jsonl")
	writeFile(t, bad, plainOps(gops))
	code, stdout, stderr := runCLI(t, "-history", bad, "-html", filepath.Join(dir, "bad.html"))
	if code != 1 || !strings.Contains(stdout, "failed keys: "+gops[gi].Key+"\n") {
		t.Fatalf("exit status %d, want 1 and key %s failed\n%s%s", code, gops[gi].Key, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "bad.html")); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path string, ops []Op) {
	t.Helper()
	var b bytes.Buffer
	if err := writeHistory(&b, ops); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
