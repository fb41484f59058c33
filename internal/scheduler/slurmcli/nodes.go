package slurmcli

import (
	"context"
	"fmt"
	"strings"

	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/internal/scheduler/slurmrest"
)

var _ scheduler.NodeBackend = (*Backend)(nil)

// Nodes implements scheduler.NodeBackend with one `sinfo --all --json`.
// sinfo prints the document slurmrestd serves for GET
// /slurm/{version}/nodes (openapi/v0.0.38 on 22.05, data_parser shapes on
// newer Slurm), read by slurmrest.ParseNodes. It costs slurmctld two RPCs,
// REQUEST_NODE_INFO and REQUEST_PARTITION_INFO; `scontrol -o show nodes`
// costs the same two (measured with sdiag on 22.05) and prints reasons in a
// form that cannot always be split back apart, so it is not used.
func (b *Backend) Nodes(ctx context.Context) ([]scheduler.NodeStatus, error) {
	res, err := b.run(ctx, "sinfo", command{path: b.cfg.Sinfo, args: sinfoNodesArgs(), env: toolEnv(b.base)})
	if err != nil {
		return nil, err
	}
	if res.exitCode != 0 {
		return nil, toolError("sinfo", res, nil)
	}
	nodes, err := slurmrest.ParseNodes(res.stdout)
	if err != nil {
		return nil, fmt.Errorf("sinfo --json: %w (output starts %q)", err, truncate(string(res.stdout), 120))
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
	return strings.Contains(strings.ToLower(stderr), "invalid node state specified")
}

// sinfoNodesArgs lists every node, hidden partitions included, as JSON.
func sinfoNodesArgs() []string { return []string{"--all", "--json"} }

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
