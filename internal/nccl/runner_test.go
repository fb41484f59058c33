package nccl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// standIn writes a shell script that plays all_reduce_perf.
func standIn(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "all_reduce_perf")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func testdata(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRunSuccess(t *testing.T) {
	dir := t.TempDir()
	argsFile, envFile := filepath.Join(dir, "args"), filepath.Join(dir, "env")
	exe := standIn(t, fmt.Sprintf(`echo "$@" > %s; echo "$NCCL_DEBUG" > %s; cat %s`, argsFile, envFile, testdata(t, "h100_8gpu.txt")))
	res, raw, err := Runner{Path: exe, Env: []string{"NCCL_DEBUG=WARN"}}.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(testdata(t, "h100_8gpu.txt"))
	if !bytes.Equal(raw, want) {
		t.Errorf("raw output differs from what the executable printed (%d vs %d bytes)", len(raw), len(want))
	}
	if len(res.Rows) != 32 || len(res.Devices) != 8 {
		t.Errorf("%d rows %d devices", len(res.Rows), len(res.Devices))
	}
	if v := Judge(Measure(res, 16<<30), 460); !v.Passed {
		t.Errorf("verdict %+v", v)
	}
	args, _ := os.ReadFile(argsFile)
	if got := strings.TrimSpace(string(args)); got != "-b 8 -e 16G -f 2 -g 8" {
		t.Errorf("args %q", got)
	}
	env, _ := os.ReadFile(envFile)
	if got := strings.TrimSpace(string(env)); got != "WARN" {
		t.Errorf("NCCL_DEBUG %q", got)
	}
}

func TestRunArgsNotThroughShell(t *testing.T) {
	dir := t.TempDir()
	argsFile := filepath.Join(dir, "args")
	exe := standIn(t, fmt.Sprintf(`for a in "$@"; do echo "[$a]"; done > %s`, argsFile))
	_, _, err := Runner{Path: exe, Args: []string{"-b", "1G", "$(touch x); *"}}.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(argsFile)
	if string(got) != "[-b]\n[1G]\n[$(touch x); *]\n" {
		t.Errorf("args arrived as %q", got)
	}
}

func TestRunNonZeroExit(t *testing.T) {
	exe := standIn(t, fmt.Sprintf("cat %s; echo 'extra stderr line' >&2; exit 1", testdata(t, "h100_wrong_values.txt")))
	res, raw, err := Runner{Path: exe}.Run(context.Background())
	if err == nil {
		t.Fatal("no error for exit status 1")
	}
	for _, want := range []string{"exited with status 1", "Out of bounds values : 6 FAILED", "extra stderr line"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if len(res.Rows) != 32 || res.OutOfBounds == nil || *res.OutOfBounds != 6 {
		t.Errorf("parsed result not returned: %d rows", len(res.Rows))
	}
	if !bytes.Contains(raw, []byte("extra stderr line")) {
		t.Error("stderr not captured")
	}
	if v := Judge(Measure(res, 16<<30), 460); v.Passed {
		t.Errorf("verdict %+v", v)
	}
}

func TestRunFailureOutput(t *testing.T) {
	exe := standIn(t, fmt.Sprintf("cat %s; exit 3", testdata(t, "h100_nccl_failure.txt")))
	res, _, err := Runner{Path: exe}.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "status 3") || !strings.Contains(err.Error(), "Test failure common.cu:1100") {
		t.Errorf("error %v", err)
	}
	if v := Judge(Measure(res, 16<<30), 460); v.Passed || !strings.HasPrefix(v.Summary, "nccl error: unhandled cuda error") {
		t.Errorf("verdict %+v", v)
	}
}

func TestRunTimeoutKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	// The grandchild keeps stdout open: only a group kill ends it quickly.
	exe := standIn(t, fmt.Sprintf("echo '# nThread 1 nGpus 8 minBytes 8 maxBytes 17179869184'; sleep 30 & echo $! > %s; wait", pidFile))
	start := time.Now()
	res, raw, err := Runner{Path: exe, Timeout: 300 * time.Millisecond}.Run(context.Background())
	elapsed := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "timed out after 300ms") || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v", err)
	}
	if elapsed > 3*time.Second {
		t.Errorf("Run took %s: the group was not killed", elapsed)
	}
	if res.Config == nil || res.Config.GPUs != 8 || !bytes.HasPrefix(raw, []byte("# nThread")) {
		t.Errorf("partial output lost: %q", raw)
	}
	b, _ := os.ReadFile(pidFile)
	pid, perr := strconv.Atoi(strings.TrimSpace(string(b)))
	if perr != nil {
		t.Fatalf("pid file %q", b)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		if !alive(pid) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("grandchild %d still running", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func TestRunCancel(t *testing.T) {
	exe := standIn(t, "sleep 30")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, _, err := Runner{Path: exe}.Run(ctx)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "stopped") {
		t.Errorf("error %v", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("cancel took %s", time.Since(start))
	}
}

func TestRunGarbage(t *testing.T) {
	exe := standIn(t, `printf '#       size         count      type   redop    root     time   algbw   busbw  #wrong     time   algbw   busbw  #wrong\n8 2 float sum -1 x y z 0 1 2 3 0\n'`)
	_, raw, err := Runner{Path: exe}.Run(context.Background())
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Line != 2 || pe.Field != "out-of-place time" {
		t.Errorf("error %v", err)
	}
	if len(raw) == 0 {
		t.Error("raw output lost")
	}
}

func TestRunMissingExecutable(t *testing.T) {
	_, _, err := Runner{Path: filepath.Join(t.TempDir(), "nope")}.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("error %v", err)
	}
}

func TestRunCapsOutput(t *testing.T) {
	exe := standIn(t, fmt.Sprintf("i=0; while [ $i -lt 40000 ]; do echo '# filler line of nccl debug output..'; i=$((i+1)); done; cat %s", testdata(t, "h100_8gpu.txt")))
	res, raw, err := Runner{Path: exe}.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) > MaxOutputBytes+100 || !bytes.Contains(raw, []byte("bytes of output omitted")) {
		t.Errorf("raw %d bytes, marker %v", len(raw), bytes.Contains(raw, []byte("omitted")))
	}
	if len(res.Rows) != 32 || res.AvgBusBandwidthGBps == nil {
		t.Errorf("tail of the output lost: %d rows", len(res.Rows))
	}
}

func TestCappedBuffer(t *testing.T) {
	b := &cappedBuffer{limit: 20}
	for _, s := range []string{"line1\nline2\n", "line3\nline4\nline5\n", "line6\n"} {
		if n, err := b.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatal(n, err)
		}
	}
	want := "line1\n# ... 24 bytes of output omitted ...\nline6\n"
	if got := string(b.Bytes()); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	small := &cappedBuffer{limit: 100}
	small.Write([]byte("abc"))
	small.Write([]byte("def\n"))
	if got := string(small.Bytes()); got != "abcdef\n" {
		t.Errorf("got %q", got)
	}
}

func TestTail(t *testing.T) {
	if got := tail([]byte("a\n b \n\n")); got != "a | b" {
		t.Errorf("tail = %q", got)
	}
	if got := tail(nil); got != "(no output)" {
		t.Errorf("tail = %q", got)
	}
	long := strings.Repeat("0123456789\n", 1000)
	if got := tail([]byte(long)); len(got) > tailBytes+len(" | ")*200+3 || !strings.HasPrefix(got, "...0123456789") {
		t.Errorf("long tail %d bytes %q...", len(got), got[:20])
	}
}
