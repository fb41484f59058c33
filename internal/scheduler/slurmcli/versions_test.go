package slurmcli

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/sopilot/sopilot/internal/scheduler"
)

// newerVersions are the Slurm releases whose output was captured in
// testdata/slurm-VERSION with the same script (see each README): job ids
// are the same on both.
var newerVersions = []string{"24.11", "26.05"}

// vfix reads the capture NAME of Slurm version v.
func vfix(t testing.TB, v, name string) result {
	t.Helper()
	return fixture(t, filepath.Join("..", "slurm-"+v, name))
}

// jobsBy runs one Jobs call for ids in the query mode, answering squeue
// with res.
func jobsBy(t *testing.T, query string, res result, ids ...string) map[string]scheduler.JobStatus {
	t.Helper()
	r := &fakeRunner{reply: func(context.Context, command) (result, error) { return res, nil }}
	jobs, err := newTestBackend(Config{Query: query}, r).Jobs(context.Background(), ids)
	if err != nil {
		t.Fatalf("Jobs (%s): %v", query, err)
	}
	out := map[string]scheduler.JobStatus{}
	for _, j := range jobs {
		out[j.JobID] = j
	}
	return out
}

// TestVersionsJobStates reads the listings of 24.11 and 26.05 in both
// query modes: the same state, exit code and signal as 22.05 reports for
// the same kind of job, and the same in both modes (the format query's
// exit_code is "exit:signal" there, a raw wait status on 22.05).
func TestVersionsJobStates(t *testing.T) {
	type want struct {
		state          string
		reason         string
		exit, signal   int
		nodes, started bool
	}
	// jobs 2-8 of the capture script (README.md)
	wants := map[string]want{
		"2": {"COMPLETED", "None", 0, 0, true, true},
		"3": {"RUNNING", "None", -1, 0, true, true},
		"4": {"PENDING", "Dependency", -1, 0, false, false},
		"5": {"FAILED", "NonZeroExitCode", 3, 0, true, true},
		"6": {"CANCELLED", "None", 0, 15, true, true},
		"7": {"PENDING", "JobHeldUser", -1, 0, false, false},
		"8": {"CANCELLED", "JobHeldUser", 0, 0, false, false},
	}
	ids := slices.Sorted(func(yield func(string) bool) {
		for id := range wants {
			if !yield(id) {
				return
			}
		}
	})
	for _, v := range newerVersions {
		for _, mode := range []struct{ query, fixture string }{{QueryJSON, "squeue-json-states"}, {QueryFormat, "squeue-states"}} {
			t.Run(v+"/"+mode.query, func(t *testing.T) {
				got := jobsBy(t, mode.query, vfix(t, v, mode.fixture), ids...)
				for id, w := range wants {
					j, ok := got[id]
					if !ok {
						t.Errorf("job %s missing", id)
						continue
					}
					if j.State != w.state || j.Reason != w.reason || j.ExitCode != w.exit || j.Signal != w.signal ||
						(j.Nodes != "") != w.nodes || j.StartTime.IsZero() == w.started {
						t.Errorf("job %s = %+v, want %+v", id, j, w)
					}
				}
			})
		}
		t.Run(v+"/modes agree", func(t *testing.T) {
			asJSON := jobsBy(t, QueryJSON, vfix(t, v, "squeue-json-states"), ids...)
			asFormat := jobsBy(t, QueryFormat, vfix(t, v, "squeue-states"), ids...)
			for _, id := range ids {
				if !sameStatus(asJSON[id], asFormat[id]) {
					t.Errorf("job %s:\n  json %+v\nformat %+v", id, asJSON[id], asFormat[id])
				}
			}
		})
	}
}

// TestVersionsCancelSettles follows jobs through scancel on 24.11 and
// 26.05: while Slurm still reports the COMPLETING flag (JSON
// ["CANCELLED","COMPLETING"] with exit status SUCCESS, format
// "COMPLETING"), the job reads COMPLETING with no exit code; once settled,
// CANCELLED with the signal (job 10: SIGTERM; job 9 traps SIGTERM and is
// killed after KillWait: SIGKILL), the same in both modes.
func TestVersionsCancelSettles(t *testing.T) {
	steps := []struct {
		json, format string // fixtures; "" when not captured in that mode
		id           string
		state        string
		exit, signal int
	}{
		{"squeue-json-cancel-settling", "", "10", "COMPLETING", -1, 0},
		{"squeue-json-completing", "squeue-completing", "9", "COMPLETING", -1, 0},
		{"squeue-json-completing", "squeue-completing", "10", "CANCELLED", 0, 15},
		{"squeue-json-cancel-settled", "squeue-cancel-settled", "9", "CANCELLED", 0, 9},
		{"squeue-json-cancel-settled", "squeue-cancel-settled", "10", "CANCELLED", 0, 15},
	}
	for _, v := range newerVersions {
		for _, s := range steps {
			for _, m := range []struct{ query, fixture string }{{QueryJSON, s.json}, {QueryFormat, s.format}} {
				if m.fixture == "" {
					continue
				}
				t.Run(fmt.Sprintf("%s/%s/%s", v, m.fixture, s.id), func(t *testing.T) {
					j, ok := jobsBy(t, m.query, vfix(t, v, m.fixture), s.id)[s.id]
					if !ok || j.State != s.state || j.ExitCode != s.exit || j.Signal != s.signal || j.EndTime.IsZero() {
						t.Fatalf("job %s = %+v, want %s exit %d signal %d with an end time", s.id, j, s.state, s.exit, s.signal)
					}
				})
			}
		}
	}
}

// TestVersionsToolAnswers: what sbatch, scancel, scontrol update and the
// listings with slurmctld unreachable answer on 24.11 and 26.05, through
// the Backend.
func TestVersionsToolAnswers(t *testing.T) {
	for _, v := range newerVersions {
		t.Run(v, func(t *testing.T) {
			ctx := context.Background()
			b := newTestBackend(Config{}, replay(t, filepath.Join("..", "slurm-"+v, "sbatch-success")))
			if id, err := b.Submit(ctx, seedJob()); err != nil || id != "2" {
				t.Errorf("sbatch-success: %q, %v", id, err)
			}
			b = newTestBackend(Config{}, replay(t, filepath.Join("..", "slurm-"+v, "sbatch-invalid-partition")))
			if _, err := b.Submit(ctx, seedJob()); !errors.Is(err, scheduler.ErrRejected) || !strings.Contains(err.Error(), "Invalid partition name specified") {
				t.Errorf("sbatch-invalid-partition: %v", err)
			}
			b = newTestBackend(Config{}, replay(t, filepath.Join("..", "slurm-"+v, "scancel-unknown")))
			if err := b.Cancel(ctx, "999999"); err != nil {
				t.Errorf("scancel-unknown: %v", err)
			}
			b = newTestBackend(Config{}, replay(t, filepath.Join("..", "slurm-"+v, "nodes-scontrol-update-resume-idle")))
			if err := b.Resume(ctx, "worker-0"); err != nil {
				t.Errorf("resume of an idle node: %v", err)
			}
			b = newTestBackend(Config{}, replay(t, filepath.Join("..", "slurm-"+v, "nodes-scontrol-update-drain-unknown")))
			if err := b.Drain(ctx, "nosuch-node", "[sopilot] x"); !errors.Is(err, scheduler.ErrRejected) {
				t.Errorf("drain of an unknown node: %v", err)
			}
			for _, q := range []struct{ query, fixture string }{{QueryJSON, "squeue-json-controller-down"}, {QueryFormat, "squeue-controller-down"}} {
				b = newTestBackend(Config{Query: q.query}, replay(t, filepath.Join("..", "slurm-"+v, q.fixture)))
				if jobs, err := b.Jobs(ctx, []string{"1"}); !errors.Is(err, scheduler.ErrUnavailable) || jobs != nil {
					t.Errorf("%s: %v, %v", q.fixture, jobs, err)
				}
			}
			b = newTestBackend(Config{}, byTool(t, map[string]result{"scontrol": vfix(t, v, "nodes-scontrol-json-controller-down")}))
			if nodes, err := b.Nodes(ctx); !errors.Is(err, scheduler.ErrUnavailable) || nodes != nil {
				t.Errorf("nodes, slurmctld down: %v, %v", nodes, err)
			}
			b = newTestBackend(Config{}, byTool(t, map[string]result{
				"scontrol": {exitCode: 1, stderr: []byte("scontrol: unrecognized option '--json'\n")},
				"sinfo":    vfix(t, v, "nodes-sinfo-json-controller-down"),
			}))
			if nodes, err := b.Nodes(ctx); !errors.Is(err, scheduler.ErrUnavailable) || nodes != nil {
				t.Errorf("sinfo, slurmctld down: %v, %v", nodes, err)
			}
		})
	}
}

// TestVersionsNodes: scontrol --json (used on 23.02+), sinfo --json (the
// 22.05 path, grouped on newer Slurm) and scontrol's text, captured back to
// back, describe the nodes alike on 24.11 and 26.05: worker-1 IDLE without
// a drain reason, worker-0 MIXED, 8 GPUs each.
func TestVersionsNodes(t *testing.T) {
	for _, v := range newerVersions {
		t.Run(v, func(t *testing.T) {
			scontrol := nodesFromTool(t, "scontrol", vfix(t, v, "nodes-scontrol-json-idle-reason"))
			sinfo := nodesFromTool(t, "sinfo", vfix(t, v, "nodes-sinfo-json-idle-reason"))
			if len(scontrol) != 2 || scontrol[0].Name != "worker-0" || scontrol[1].Name != "worker-1" {
				t.Fatalf("scontrol nodes %+v", scontrol)
			}
			// 24.11 stores a reason given to an idle node (scontrol's text
			// shows it), 26.05 drops it; neither is a drain reason, so
			// both read as no reason.
			if w1 := scontrol[1]; w1.State != "IDLE" || len(w1.Flags) != 0 || w1.Reason != "" || w1.ReasonUser != "" ||
				!w1.ReasonTime.IsZero() || w1.GPUs != 8 {
				t.Errorf("worker-1 from scontrol: %+v", w1)
			}
			// worker-0 runs the capture's jobs.
			if w0 := scontrol[0]; w0.State != "MIXED" || w0.Reason != "" || !w0.ReasonTime.IsZero() || w0.GPUs != 8 {
				t.Errorf("worker-0 from scontrol: %+v", w0)
			}
			byName := map[string]scheduler.NodeStatus{}
			for _, n := range sinfo {
				byName[n.Name] = n
			}
			for _, want := range scontrol {
				got := byName[want.Name]
				if v == "26.05" {
					want.ReasonUser = "" // 26.05's sinfo --json has no reason.user
				}
				if !nodeEqual(got, want) {
					t.Errorf("sinfo %+v\nscontrol %+v", got, want)
				}
			}
			// scontrol -o show nodes at the same moment: the state, and on
			// 24.11 the stored (stale) reason the parser leaves out.
			lines := strings.Split(strings.TrimSpace(string(vfix(t, v, "nodes-scontrol-show-idle-reason").stdout)), "\n")
			for i, n := range scontrol {
				f := scontrolNode.FindStringSubmatch(lines[i])
				if f == nil {
					t.Fatalf("scontrol line %q does not match", lines[i])
				}
				if n.Name != f[1] || n.StateString() != f[2] {
					t.Errorf("%+v\nscontrol text: %q", n, f[1:])
				}
				if wantText := v == "24.11" && n.Name == "worker-1"; (f[3] == `[sopilot] a=b c]d [x@y] "q" two  spaces` && f[4] == "root") != wantText {
					t.Errorf("scontrol text reason %q by %q", f[3], f[4])
				}
			}
			// The idle capture, before the reason was set, reads the same
			// way from both tools.
			idleS, idleI := nodesFromTool(t, "scontrol", vfix(t, v, "nodes-scontrol-json-idle")), nodesFromTool(t, "sinfo", vfix(t, v, "nodes-sinfo-json-idle"))
			if len(idleS) != 2 || !slices.EqualFunc(idleS, idleI, func(a, b scheduler.NodeStatus) bool {
				if v == "26.05" {
					a.ReasonUser = ""
				}
				return nodeEqual(a, b)
			}) {
				t.Fatalf("idle: scontrol %+v\nsinfo %+v", idleS, idleI)
			}
		})
	}
}

// nodesFromTool runs Nodes with the tool answering res (sinfo: after
// scontrol said it cannot print JSON, as on 22.05).
func nodesFromTool(t *testing.T, tool string, res result) []scheduler.NodeStatus {
	t.Helper()
	replies := map[string]result{"scontrol": res}
	if tool == "sinfo" {
		replies = map[string]result{"scontrol": fixture(t, "nodes-scontrol-json-unsupported"), "sinfo": res}
	}
	nodes, err := newTestBackend(Config{}, byTool(t, replies)).Nodes(context.Background())
	if err != nil {
		t.Fatalf("Nodes from %s: %v", tool, err)
	}
	return nodes
}

// TestVersionsInstanceIDs: scontrol --json carries each node's slurmd
// --instance-id (how Soperator records a Slurm node's Kubernetes node), the
// same as scontrol's text InstanceId= at that moment, before and after
// worker-1 moved to another machine; sinfo --json carries none.
func TestVersionsInstanceIDs(t *testing.T) {
	instanceText := regexp.MustCompile(`^NodeName=(\S+) .* InstanceId=(\S*) *$`)
	for _, v := range newerVersions {
		for capture, want1 := range map[string]string{"instance": "gpu-node-1", "replaced": "gpu-node-9"} {
			t.Run(v+"/"+capture, func(t *testing.T) {
				nodes := nodesFromTool(t, "scontrol", vfix(t, v, "nodes-scontrol-json-"+capture))
				want := map[string]string{"worker-0": "gpu-node-0", "worker-1": want1}
				if len(nodes) != 2 {
					t.Fatalf("nodes %+v", nodes)
				}
				for _, n := range nodes {
					if n.InstanceID != want[n.Name] {
						t.Errorf("%s: instance %q, want %q", n.Name, n.InstanceID, want[n.Name])
					}
				}
				lines := strings.Split(strings.TrimSpace(string(vfix(t, v, "nodes-scontrol-show-"+capture).stdout)), "\n")
				for i, line := range lines {
					m := instanceText.FindStringSubmatch(line)
					if m == nil || i >= len(nodes) || m[1] != nodes[i].Name || m[2] != nodes[i].InstanceID {
						t.Errorf("scontrol text %q does not match %+v", line, nodes)
					}
				}
			})
		}
		t.Run(v+"/sinfo", func(t *testing.T) {
			for _, n := range nodesFromTool(t, "sinfo", vfix(t, v, "nodes-sinfo-json-instance")) {
				if n.InstanceID != "" {
					t.Errorf("sinfo node %+v carries an instance id", n)
				}
			}
		})
	}
}
