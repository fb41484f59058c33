package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/slurmtest"
)

var shBlockRE = regexp.MustCompile("(?s)```sh\n(.*?)```")

// TestAPIDocExamples runs every ```sh block of docs/api.md, in order, in one
// bash, so the documented grpcurl calls are known to work as written.
func TestAPIDocExamples(t *testing.T) {
	slurmtest.Require(t)
	if _, err := exec.LookPath("jq"); err != nil {
		t.Fatal("docs/api.md uses jq: apt-get install jq (make test installs it)")
	}
	if l, err := net.Listen("tcp", "127.0.0.1:50051"); err != nil {
		slurmtest.Unavailable(t, "port 50051, which docs/api.md uses, is taken (a controller already running?): %v", err)
	} else {
		l.Close()
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs", "api.md"))
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	for _, m := range shBlockRE.FindAllStringSubmatch(string(doc), -1) {
		blocks = append(blocks, m[1])
	}
	if len(blocks) < 8 {
		t.Fatalf("found %d sh blocks in docs/api.md; the test's pattern is out of date", len(blocks))
	}
	os.Remove("/tmp/sopilot-api-doc.db")
	script := "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + strings.Join(blocks, "\n")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = root
	// On the timeout, kill the whole process group: bash's EXIT trap does
	// not run under SIGKILL, and a controller the examples started in the
	// background would hold the output pipe open, so that the test hung
	// until the package's own timeout instead of failing with the output.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile("/tmp/sopilot-api-doc.log")
		t.Fatalf("docs/api.md examples failed: %v\n%s\ncontroller log tail:\n%s", err, out, tail(string(log), 3000))
	}
	for _, want := range []string{`"status": "SERVING"`, "RUN_STATE_COMPLETED", "RUN_STATE_CANCELLED", "spec.nodes", "worker-[0-1]", "VERDICT_IMPROVED", `"improvement_percent": 50`, "rank 0 on worker-0", `"verdict":"HEALTH_VERDICT_HEALTHY","simulated":true,"gpus":8`, `"passed": true`, "dry-run: would drain", "reason: required"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("examples' output lacks %q:\n%s", want, out)
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
