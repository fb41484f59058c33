package slurmcli

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/scheduler"
)

// nodeMoments are the node captures (testdata/slurm-22.05/README-nodes.md):
// at each moment sinfo --json and scontrol -o show nodes were run back to
// back.
var nodeMoments = []string{
	"idle", "mixed", "mixed-drain", "idle-drain", "resumed", "resumed-later", "allocated",
	"allocated-drain", "drain-weird", "drain-again", "down", "down-resumed", "completing-drain",
}

// byTool answers each tool with its own fixture result.
func byTool(t testing.TB, replies map[string]result) *fakeRunner {
	return &fakeRunner{reply: func(_ context.Context, c command) (result, error) {
		res, ok := replies[filepath.Base(c.path)]
		if !ok {
			t.Errorf("unexpected command %s", c)
		}
		return res, nil
	}}
}

// TestNodesCommand: on 22.05 the first listing finds scontrol without
// --json and falls back to sinfo --json, and every later listing runs sinfo
// alone.
func TestNodesCommand(t *testing.T) {
	r := byTool(t, map[string]result{
		"scontrol": fixture(t, "nodes-scontrol-json-unsupported"),
		"sinfo":    fixture(t, "nodes-sinfo-json-mixed-drain"),
	})
	logs := &strings.Builder{}
	b := newBackend(Config{Sinfo: "/opt/slurm/bin/sinfo", Scontrol: "/opt/slurm/bin/scontrol", SlurmConf: "/etc/sopilot/slurm.conf"},
		slog.New(slog.NewTextHandler(logs, nil)), r, fakeEnv)
	want := []scheduler.NodeStatus{
		{Name: "worker-0", State: "IDLE", GPUs: 8},
		{Name: "worker-1", State: "MIXED", Flags: []string{"DRAIN"}, Reason: "[sopilot] gpu 3: xid 79",
			ReasonUser: "root", ReasonTime: time.Date(2026, 11, 29, 11, 23, 59, 0, time.UTC), GPUs: 8},
	}
	for range 2 {
		nodes, err := b.Nodes(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !slices.EqualFunc(nodes, want, nodeEqual) {
			t.Fatalf("Nodes:\n got %+v\nwant %+v", nodes, want)
		}
	}
	if len(r.calls) != 3 {
		t.Fatalf("%d commands, want scontrol, sinfo, sinfo", len(r.calls))
	}
	wantEnv := []string{"PATH=/opt/slurm/bin:/usr/bin", "HOME=/var/lib/sopilot", "LANG=C.UTF-8", "SLURM_CONF=/etc/sopilot/slurm.conf"}
	for i, c := range r.calls {
		wantPath, wantArgs := "/opt/slurm/bin/sinfo", []string{"--all", "--json"}
		if i == 0 {
			wantPath, wantArgs = "/opt/slurm/bin/scontrol", []string{"--all", "--json", "show", "nodes"}
		}
		if c.path != wantPath || !slices.Equal(c.args, wantArgs) || !slices.Equal(c.env, wantEnv) || c.stdin != "" {
			t.Fatalf("command %d: %q args %q env %q", i, c.path, c.args, c.env)
		}
	}
	if n := strings.Count(logs.String(), "scontrol cannot print JSON"); n != 1 {
		t.Fatalf("%d fallback warnings:\n%s", n, logs)
	}
}

func nodeEqual(a, b scheduler.NodeStatus) bool {
	return a.Name == b.Name && a.State == b.State && slices.Equal(a.Flags, b.Flags) && a.Reason == b.Reason &&
		a.ReasonUser == b.ReasonUser && a.ReasonTime.Equal(b.ReasonTime) && a.GPUs == b.GPUs
}

// scontrolNode reads what the cross-check needs from one line of
// scontrol -o show nodes: State, and Reason with its " [user@time]"
// suffix, which scontrol always prints last.
var scontrolNode = regexp.MustCompile(`^NodeName=(\S+) .* State=(\S+) .*?(?: Reason=(.*) \[([^@\]]+)@([0-9T:-]+)\])?$`)

// TestNodesMatchScontrol reads every sinfo --json capture and checks each
// node against what scontrol printed at the same moment: the state string,
// the reason byte for byte, who set it and when (the capture machine's
// zone is UTC).
func TestNodesMatchScontrol(t *testing.T) {
	seen := map[string]bool{}
	for _, m := range nodeMoments {
		t.Run(m, func(t *testing.T) {
			b := newTestBackend(Config{}, replay(t, "nodes-sinfo-json-"+m))
			nodes, err := b.Nodes(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(fixtureString(t, "nodes-scontrol-show-"+m)), "\n")
			if len(nodes) != len(lines) || len(nodes) != 2 {
				t.Fatalf("%d nodes from sinfo, %d lines from scontrol", len(nodes), len(lines))
			}
			for i, n := range nodes {
				f := scontrolNode.FindStringSubmatch(lines[i])
				if f == nil {
					t.Fatalf("scontrol line %q does not match", lines[i])
				}
				if n.Name != f[1] || n.StateString() != f[2] || n.Reason != f[3] || n.ReasonUser != f[4] || n.GPUs != 8 {
					t.Errorf("sinfo %+v (state %s)\nscontrol name %q state %q reason %q user %q", n, n.StateString(), f[1], f[2], f[3], f[4])
				}
				if got := n.ReasonTime; (f[5] == "") != got.IsZero() || (f[5] != "" && got.Format("2006-01-02T15:04:05") != f[5]) {
					t.Errorf("%s: reason time %v, scontrol %q", n.Name, got, f[5])
				}
				seen[n.StateString()] = true
			}
		})
	}
	for _, s := range []string{"IDLE", "MIXED", "MIXED+DRAIN", "IDLE+DRAIN", "IDLE+NOT_RESPONDING", "ALLOCATED", "ALLOCATED+DRAIN", "DOWN", "IDLE+COMPLETING+DRAIN"} {
		if !seen[s] {
			t.Errorf("no capture shows %s", s)
		}
	}
}

// TestNodesCompletingDrain: a drained node whose last job is still being
// cleaned up is IDLE with the COMPLETING flag, not yet just IDLE+DRAIN.
func TestNodesCompletingDrain(t *testing.T) {
	b := newTestBackend(Config{}, replay(t, "nodes-sinfo-json-completing-drain"))
	nodes, err := b.Nodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := nodes[1]
	if n.State != "IDLE" || !slices.Equal(n.Flags, []string{"COMPLETING", "DRAIN"}) || !n.HasFlag("COMPLETING") || !n.Drained() ||
		n.Reason != "[sopilot] completing test" {
		t.Fatalf("worker-1 %+v", n)
	}
}

func TestNodesWeirdReason(t *testing.T) {
	b := newTestBackend(Config{}, replay(t, "nodes-sinfo-json-drain-weird"))
	nodes, err := b.Nodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	const want = `[sopilot] a=b c]d [x@y] "q" 'single'  two  spaces Reason=z [root@2020-01-01T00:00:00]`
	if len(nodes) != 2 || nodes[1].Reason != want || !nodes[1].Drained() || nodes[1].Allocated() {
		t.Fatalf("worker-1 %+v", nodes)
	}
}

func TestNodesFailures(t *testing.T) {
	tests := []struct {
		name string
		res  result
		want error // nil: neither sentinel
		text string
	}{
		{"controller down", result{exitCode: 1, stderr: []byte("sinfo: error: Unable to contact slurm controller (connect failure)\nslurm_load_partitions: Unable to contact slurm controller (connect failure)\n")},
			scheduler.ErrUnavailable, "connect failure"},
		{"no openapi plugin", result{exitCode: 1, stderr: []byte("sinfo: fatal: Unable to find plugin: openapi/v0.0.38\n")}, nil, "Unable to find plugin: openapi/v0.0.38"},
		{"not JSON", result{stdout: []byte("PARTITION AVAIL\n")}, nil, "not a JSON object"},
		{"a job listing", fixture(t, "squeue-json"), nil, `neither a "nodes" nor a "sinfo" array`},
		{"22.05 controller down: rc 0, errors, no nodes", fixture(t, "nodes-sinfo-json-controller-down"), scheduler.ErrUnavailable, "Unspecified error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &fakeRunner{reply: func(context.Context, command) (result, error) { return tt.res, nil }}
			nodes, err := newTestBackend(Config{}, r).Nodes(context.Background())
			if err == nil || nodes != nil {
				t.Fatalf("Nodes = %+v, %v", nodes, err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) || tt.want == nil && (errors.Is(err, scheduler.ErrUnavailable) || errors.Is(err, scheduler.ErrRejected)) {
				t.Errorf("error %v, want sentinel %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.text) || !strings.HasPrefix(err.Error(), "scontrol") && !strings.HasPrefix(err.Error(), "sinfo") {
				t.Errorf("error %q lacks %q", err, tt.text)
			}
		})
	}
}

func TestDrainResumeCommands(t *testing.T) {
	const reason = `[sopilot] a=b c]d [x@y] "q" 'single'  two  spaces Reason=z`
	r := &fakeRunner{}
	b := newTestBackend(Config{Scontrol: "/opt/slurm/bin/scontrol"}, r)
	if err := b.Drain(context.Background(), "worker-1", reason); err != nil {
		t.Fatal(err)
	}
	if err := b.Resume(context.Background(), "worker-1"); err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"update", "NodeName=worker-1", "State=DRAIN", "Reason=" + reason},
		{"update", "NodeName=worker-1", "State=RESUME"},
	}
	if len(r.calls) != 2 {
		t.Fatalf("%d commands", len(r.calls))
	}
	for i, c := range r.calls {
		if c.path != "/opt/slurm/bin/scontrol" || !slices.Equal(c.args, want[i]) || slices.Contains(c.env, "SECRET=do-not-leak") ||
			!slices.Contains(c.env, "SLURM_CONF=/from/controller/env/slurm.conf") {
			t.Errorf("command %d: %q %q env %q", i, c.path, c.args, c.env)
		}
	}
}

func TestDrainResumeAnswers(t *testing.T) {
	tests := []struct {
		fixture string
		resume  bool
		want    string // "nil", "rejected", "unavailable"
		text    string
	}{
		{"nodes-scontrol-update-drain", false, "nil", ""},
		{"nodes-scontrol-update-resume", true, "nil", ""},
		{"nodes-scontrol-update-drain-unknown", false, "rejected", "Invalid node name specified"},
		{"nodes-scontrol-update-resume-unknown", true, "rejected", "Invalid node name specified"},
		{"nodes-scontrol-update-resume-idle", true, "nil", ""},
		{"nodes-scontrol-update-resume-idle", false, "rejected", "Invalid node state specified"},
		{"nodes-scontrol-update-drain-no-reason", false, "rejected", "You must specify a reason"},
		{"scontrol-show-job-controller-down", false, "unavailable", "Unable to contact slurm controller"},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			b := newTestBackend(Config{}, replay(t, tt.fixture))
			var err error
			if tt.resume {
				err = b.Resume(context.Background(), "worker-1")
			} else {
				err = b.Drain(context.Background(), "worker-1", "[sopilot] x")
			}
			got := "nil"
			switch {
			case errors.Is(err, scheduler.ErrRejected) && errors.Is(err, scheduler.ErrUnavailable):
				got = "both"
			case errors.Is(err, scheduler.ErrRejected):
				got = "rejected"
			case errors.Is(err, scheduler.ErrUnavailable):
				got = "unavailable"
			case err != nil:
				got = "other"
			}
			if got != tt.want || (err != nil && !strings.Contains(err.Error(), tt.text)) {
				t.Fatalf("error %v: %s, want %s with %q", err, got, tt.want, tt.text)
			}
		})
	}
}

func TestDrainResumeValidation(t *testing.T) {
	r := &fakeRunner{}
	b := newTestBackend(Config{}, r)
	tests := []struct{ node, reason, field string }{
		{"", "[sopilot] x", "node name"},
		{"worker-[0-1]", "[sopilot] x", "node name"},
		{"worker-0,worker-1", "[sopilot] x", "node name"},
		{"worker-1 State=DOWN", "[sopilot] x", "node name"},
		{"-worker", "[sopilot] x", "node name"},
		{"worker-1", "", "node reason"},
		{"worker-1", "a\nb", "node reason"},
		{"worker-1", "a\tb", "node reason"},
		{"worker-1", "trailing ", "node reason"},
		{"worker-1", "\xff", "node reason"},
		{"worker-1", strings.Repeat("r", scheduler.MaxNodeReasonLen+1), "node reason"},
	}
	for _, tt := range tests {
		err := b.Drain(context.Background(), tt.node, tt.reason)
		if !errors.Is(err, scheduler.ErrRejected) || !strings.Contains(err.Error(), tt.field) {
			t.Errorf("Drain(%q, %q) = %v, want ErrRejected naming %q", tt.node, tt.reason, err, tt.field)
		}
	}
	if err := b.Resume(context.Background(), "a b"); !errors.Is(err, scheduler.ErrRejected) || !strings.Contains(err.Error(), "node name") {
		t.Errorf("Resume = %v", err)
	}
	if err := b.Drain(context.Background(), "worker-1", strings.Repeat("r", scheduler.MaxNodeReasonLen)); err != nil {
		t.Errorf("Drain with a reason of the maximum length: %v", err)
	}
	if len(r.calls) != 1 {
		t.Fatalf("%d commands run, want 1 (the valid drain)", len(r.calls))
	}
}
