package slurmcli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/internal/scheduler/slurmrest"
)

var _ scheduler.NodeBackend = (*Backend)(nil)

// Nodes implements scheduler.NodeBackend with one `scontrol --all --json
// show nodes` (Slurm 23.02 and later) or, where scontrol cannot print JSON
// (22.05: "unrecognized option '--json'"), one `sinfo --all --json`, chosen
// once per Backend as the squeue query is: the first listing tries
// scontrol, and the first "cannot print JSON" answer switches every later
// listing to sinfo, with one warning logged.
//
// scontrol --json prints slurmrestd's node document on every version that
// has it, with the reason's user, time and the node's GRES per node; sinfo
// --json prints the same document on 22.05 but, from 23.11, one entry per
// group of nodes, and from 26.05 without the reason's user. Both are read
// by slurmrest.ParseNodes, so a NodeStatus is the same from either tool,
// except for InstanceID: scontrol --json has it ("instance_id", 23.11 and
// later), sinfo --json never does, and 22.05 (the only version listed
// with sinfo) has no instance ids at all. scontrol's text output is not used because its Reason cannot always be
// told apart from the " [user@time]" after it. See the package comment for
// what each costs slurmctld.
//
// A document that carries Slurm errors (sinfo and scontrol exit 0 with an
// empty node list and an "errors" entry when slurmctld cannot be reached)
// is scheduler.ErrUnavailable, never an empty listing.
func (b *Backend) Nodes(ctx context.Context) ([]scheduler.NodeStatus, error) {
	if !b.noScontrolJSON.Load() {
		nodes, err := b.nodesFrom(ctx, "scontrol", command{path: b.cfg.Scontrol, args: scontrolNodesArgs(), env: toolEnv(b.base)})
		if !errors.Is(err, errNoJSON) {
			return nodes, err
		}
		if b.noScontrolJSON.CompareAndSwap(false, true) {
			b.log.Warn("scontrol cannot print JSON; listing nodes with sinfo --json from now on",
				"scontrol", b.cfg.Scontrol, "error", err)
		}
	}
	return b.nodesFrom(ctx, "sinfo", command{path: b.cfg.Sinfo, args: sinfoNodesArgs(), env: toolEnv(b.base)})
}

// nodesFrom runs one node listing and reads it. An error wrapping
// errNoJSON means the tool cannot print JSON at all.
func (b *Backend) nodesFrom(ctx context.Context, tool string, c command) ([]scheduler.NodeStatus, error) {
	res, err := b.run(ctx, tool, c)
	if err != nil {
		return nil, err
	}
	if res.exitCode != 0 {
		stderr := string(res.stderr)
		if !isUnavailable(stderr) && isNoJSON(stderr) {
			return nil, fmt.Errorf("%s: %w: %s", tool, errNoJSON, toolMessage(tool, res.stderr))
		}
		if err := documentErrors(tool, res.stdout); err != nil {
			return nil, err
		}
		return nil, toolError(tool, res, nil)
	}
	if err := documentErrors(tool, res.stdout); err != nil {
		return nil, err
	}
	nodes, err := slurmrest.ParseNodes(res.stdout)
	if err != nil {
		return nil, fmt.Errorf("%s --json: %w (output starts %q)", tool, err, truncate(string(res.stdout), 120))
	}
	return nodes, nil
}

// Drain implements scheduler.NodeBackend with `scontrol update
// NodeName=<node> State=DRAIN Reason=<reason>`, each its own argument:
// Slurm stores the reason byte for byte, spaces, quotes, '=' and brackets
// included. Draining a drained node replaces its reason. An unknown node is
// scheduler.ErrRejected with Slurm's message ("Invalid node name
// specified").
func (b *Backend) Drain(ctx context.Context, node, reason string) error {
	args, err := drainArgs(node, reason)
	if err != nil {
		return fmt.Errorf("scontrol update: %w", err)
	}
	return b.updateNode(ctx, args, false)
}

// Resume implements scheduler.NodeBackend with `scontrol update
// NodeName=<node> State=RESUME`. A node with nothing to resume (neither
// drained nor down: Slurm says "Invalid node state specified") is not an
// error. Slurm 22.05 marks a resumed node NOT_RESPONDING until its next
// ping, so for a few seconds it reads IDLE+NOT_RESPONDING.
func (b *Backend) Resume(ctx context.Context, node string) error {
	args, err := resumeArgs(node)
	if err != nil {
		return fmt.Errorf("scontrol update: %w", err)
	}
	return b.updateNode(ctx, args, true)
}

// updateNode runs scontrol update; a refusal is scheduler.ErrRejected.
func (b *Backend) updateNode(ctx context.Context, args []string, resume bool) error {
	res, err := b.run(ctx, "scontrol", command{path: b.cfg.Scontrol, args: args, env: toolEnv(b.base)})
	if err != nil {
		return err
	}
	if res.exitCode == 0 {
		b.log.Info("node updated", "args", args)
		return nil
	}
	if resume && isNothingToResume(string(res.stderr)) {
		b.log.Debug("resume of a node that is neither drained nor down", "args", args)
		return nil
	}
	return toolError("scontrol update", res, scheduler.ErrRejected)
}

// isNothingToResume reports whether scontrol's stderr is Slurm's answer to
// RESUME of a node that is neither drained nor down.
func isNothingToResume(stderr string) bool {
	s := strings.ToLower(stderr)
	return strings.Contains(s, "invalid node state specified") || strings.Contains(s, "invalid node state transition")
}

// sinfoNodesArgs lists every node, hidden partitions included, as JSON.
func sinfoNodesArgs() []string { return []string{"--all", "--json"} }

// scontrolNodesArgs lists every node, hidden partitions included, as JSON.
func scontrolNodesArgs() []string { return []string{"--all", "--json", "show", "nodes"} }

// drainArgs builds scontrol's argv for draining one node.
func drainArgs(node, reason string) ([]string, error) {
	if err := scheduler.CheckNodeName(node); err != nil {
		return nil, err
	}
	if err := scheduler.CheckNodeReason(reason); err != nil {
		return nil, err
	}
	return []string{"update", "NodeName=" + node, "State=DRAIN", "Reason=" + reason}, nil
}

// resumeArgs builds scontrol's argv for resuming one node.
func resumeArgs(node string) ([]string, error) {
	if err := scheduler.CheckNodeName(node); err != nil {
		return nil, err
	}
	return []string{"update", "NodeName=" + node, "State=RESUME"}, nil
}
