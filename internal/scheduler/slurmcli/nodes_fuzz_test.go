package slurmcli

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/internal/scheduler/slurmjson"
)

// FuzzNodesJSON runs any scontrol or sinfo output through Nodes and checks every node
// reported could be named in a Drain.
func FuzzNodesJSON(f *testing.F) {
	addFixtureSeeds(f, "nodes-sinfo-json-*.stdout")
	addFixtureSeeds(f, "../slurm-*/nodes-*-json-*.stdout")
	f.Add([]byte(`{"sinfo":[{"node":{"state":["IDLE","DRAIN"]},"nodes":{"nodes":["w-[1-3]","x"]},"reason":{"description":"r","time":{"set":true,"number":5},"user":"root"},"gres":{"total":"gpu:8"}}]}`))
	f.Add([]byte(`{"nodes":[{"name":"n1","state":["MIXED","DRAIN"],"gres":"gpu:h100:8(S:0-1)","reason_changed_at":{"set":true,"number":1}}]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := &fakeRunner{reply: func(context.Context, command) (result, error) { return result{stdout: in}, nil }}
		nodes, err := newTestBackend(Config{}, r).Nodes(context.Background())
		if err != nil {
			// Output that carries Slurm errors is slurmctld failing to
			// answer; anything else unreadable is neither sentinel.
			errs, _ := slurmjson.ParseErrors(in)
			if errors.Is(err, scheduler.ErrRejected) || errors.Is(err, scheduler.ErrUnavailable) != (len(errs) > 0) {
				t.Fatalf("output classified wrong: %v", err)
			}
			return
		}
		for _, n := range nodes {
			if _, err := resumeArgs(n.Name); err != nil {
				t.Fatalf("node %q reported: %v", n.Name, err)
			}
			if n.State == "" || strings.ContainsAny(n.StateString(), " \n") {
				t.Fatalf("state %q", n.StateString())
			}
		}
	})
}

// FuzzDrainArgs checks that whatever drainArgs accepts reaches scontrol as
// exactly one node and one whole reason.
func FuzzDrainArgs(f *testing.F) {
	f.Add("worker-1", `[sopilot] a=b c]d [x@y] "q"`)
	f.Add("worker-[0-1]", "x")
	f.Add("w State=DOWN", "x\nState=RESUME")
	f.Fuzz(func(t *testing.T, node, reason string) {
		args, err := drainArgs(node, reason)
		if err != nil {
			if !errors.Is(err, scheduler.ErrRejected) || args != nil {
				t.Fatalf("drainArgs = %q, %v", args, err)
			}
			return
		}
		if len(args) != 4 || args[0] != "update" || args[1] != "NodeName="+node || args[2] != "State=DRAIN" || args[3] != "Reason="+reason {
			t.Fatalf("args %q", args)
		}
		if strings.ContainsAny(node, ",[]= \t\n") || strings.HasPrefix(node, "-") {
			t.Fatalf("node %q accepted", node)
		}
		if reason == "" || strings.ContainsAny(reason, "\x00\n\r") || len(reason) > scheduler.MaxNodeReasonLen {
			t.Fatalf("reason %q accepted", reason)
		}
	})
}
