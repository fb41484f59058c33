package cli

// completion.go: shell completion of what the controller knows. Run ids
// and node names come from the controller (ListRuns, ListNodes) with the
// connection flags and SOPILOT_* variables of the command line being
// completed; enum flags (--state, -o, --color, --log-level, --check) from
// their values. Nothing here completes file names, except arguments named
// FILE. `sopilot completion bash|zsh|fish|powershell` prints the scripts
// (cobra's); docs/cli.md says how to install them per shell.
//
// The completions are attached by walking the finished command tree, by
// the argument names in each command's Use ("get RUN_ID", "get NAME") and
// by flag name, so that a command group gets them without code of its own.

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"

	"github.com/sopilot/sopilot/pkg/apipb"
)

// completionTimeout bounds the controller calls behind one completion: a
// shell waiting on a TAB must not hang on an unreachable controller.
const completionTimeout = 3 * time.Second

// runStateNames are --state's values (RunState without its prefix, lower
// case), in the enum's order.
func runStateNames() []string {
	var out []string
	for i := int32(1); ; i++ {
		name, ok := apipb.RunState_name[i]
		if !ok {
			return out
		}
		out = append(out, strings.ToLower(strings.TrimPrefix(name, "RUN_STATE_")))
	}
}

// enumCompletions are the fixed values of flags, by flag name.
func enumCompletions() map[string][]string {
	return map[string][]string{
		"output":    {"table\tfor people", "json\tthe API's messages, for scripts", "yaml\tthe same document as YAML"},
		"color":     {"auto\tonly on a terminal, not with NO_COLOR", "always", "never"},
		"log-level": {"debug", "info", "warn", "error"},
		"state":     runStateNames(),
		"check":     {"nccl\tNCCL all_reduce_perf"},
	}
}

// addCompletions attaches the completions to every command of the tree.
func addCompletions(root *cobra.Command, env *Env) {
	enums := enumCompletions()
	var walk func(*cobra.Command)
	walk = func(cmd *cobra.Command) {
		for _, fs := range []*pflag.FlagSet{cmd.LocalNonPersistentFlags(), cmd.PersistentFlags()} {
			fs.VisitAll(func(f *pflag.Flag) {
				if _, done := cmd.GetFlagCompletionFunc(f.Name); done {
					return
				}
				var fn cobra.CompletionFunc
				switch {
				case enums[f.Name] != nil:
					fn = fixedCompletions(enums[f.Name])
				case f.Name == "run":
					fn = func(c *cobra.Command, _ []string, prefix string) ([]string, cobra.ShellCompDirective) {
						return completeRuns(c, env, prefix)
					}
				default:
					return
				}
				_ = cmd.RegisterFlagCompletionFunc(f.Name, fn)
			})
		}
		if cmd.ValidArgsFunction == nil && cmd.Runnable() && !cmd.HasSubCommands() {
			names := argNames(cmd.Use)
			cmd.ValidArgsFunction = func(c *cobra.Command, args []string, prefix string) ([]string, cobra.ShellCompDirective) {
				return completeArg(c, env, names, len(args), prefix)
			}
		}
		for _, c := range cmd.Commands() {
			walk(c)
		}
	}
	walk(root)
}

// fixedCompletions offers the values that start with what was typed.
func fixedCompletions(values []string) cobra.CompletionFunc {
	return func(_ *cobra.Command, _ []string, prefix string) ([]string, cobra.ShellCompDirective) {
		var out []string
		for _, v := range values {
			if strings.HasPrefix(v, prefix) {
				out = append(out, v)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// argNames are the positional argument names in a command's Use: "get
// RUN_ID" gives [RUN_ID]; "compare BASELINE_RUN CANDIDATE_RUN --metric
// ..." gives [BASELINE_RUN CANDIDATE_RUN]; "cancel RUN_ID..." gives
// [RUN_ID...] (repeated).
func argNames(use string) []string {
	var out []string
	for _, w := range strings.Fields(use)[1:] {
		if strings.HasPrefix(w, "-") || strings.HasPrefix(w, "[-") {
			break
		}
		w = strings.Trim(w, "[]")
		if w != "" && w == strings.ToUpper(w) && strings.Trim(w, "._") != "" {
			out = append(out, w)
		}
	}
	return out
}

// completeArg completes positional argument i by its name.
func completeArg(cmd *cobra.Command, env *Env, names []string, i int, prefix string) ([]string, cobra.ShellCompDirective) {
	if len(names) == 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	name := ""
	switch last := names[len(names)-1]; {
	case i < len(names):
		name = names[i]
	case strings.HasSuffix(last, "..."):
		name = last
	default:
		return nil, cobra.ShellCompDirectiveNoFileComp // no more arguments
	}
	name = strings.TrimSuffix(name, "...")
	switch {
	case strings.Contains(name, "FILE"):
		return nil, cobra.ShellCompDirectiveDefault
	case strings.Contains(name, "RUN"):
		return completeRuns(cmd, env, prefix)
	case name == "NAME" && strings.HasPrefix(cmd.CommandPath(), "sopilot node"):
		return completeNodes(cmd, env, prefix)
	}
	return nil, cobra.ShellCompDirectiveNoFileComp
}

// completionClient is the connection of the command line being completed:
// its flags, else its SOPILOT_* variables (the root's pre-run, which
// applies them, does not run for completions).
func completionClient(cmd *cobra.Command, env *Env) (*clientOptions, error) {
	fs := cmd.Flags()
	if err := applyEnv(fs, env.Getenv); err != nil {
		return nil, err
	}
	o := &clientOptions{controller: DefaultController, timeout: completionTimeout}
	str := func(name string, dst *string) {
		if f := fs.Lookup(name); f != nil {
			*dst = f.Value.String()
		}
	}
	str("controller", &o.controller)
	str("tls-ca-file", &o.caFile)
	str("tls-server-name", &o.serverName)
	str("token", &o.token)
	str("token-file", &o.tokenFile)
	if f := fs.Lookup("insecure"); f != nil {
		o.insecure = f.Value.String() == "true"
	}
	if fs.Lookup("controller") == nil {
		return nil, fmt.Errorf("%s does not talk to the controller", cmd.CommandPath())
	}
	return o, nil
}

// completionDial connects as completionClient says, for completionTimeout;
// done closes the connection.
func completionDial(cmd *cobra.Command, env *Env) (conn *grpc.ClientConn, ctx context.Context, done func(), err error) {
	o, err := completionClient(cmd, env)
	if err != nil {
		return nil, nil, nil, err
	}
	if conn, err = o.dial(); err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
	return conn, ctx, func() { cancel(); _ = conn.Close() }, nil
}

// completeRuns offers the newest runs' ids whose id or name starts with
// prefix, each with its name and state.
func completeRuns(cmd *cobra.Command, env *Env, prefix string) ([]string, cobra.ShellCompDirective) {
	conn, ctx, done, err := completionDial(cmd, env)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
	}
	defer done()
	resp, err := apipb.NewRunServiceClient(conn).ListRuns(ctx, &apipb.ListRunsRequest{PageSize: 200})
	if err != nil {
		cobra.CompDebugln("list runs: "+err.Error(), false)
		return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
	}
	var out []string
	for _, r := range resp.GetRuns() {
		if strings.HasPrefix(r.GetId(), prefix) {
			out = append(out, r.GetId()+"\t"+r.GetName()+" "+strings.TrimPrefix(r.GetState().String(), "RUN_STATE_"))
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeNodes offers the nodes whose name starts with prefix, each with
// its Slurm state and health.
func completeNodes(cmd *cobra.Command, env *Env, prefix string) ([]string, cobra.ShellCompDirective) {
	conn, ctx, done, err := completionDial(cmd, env)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
	}
	defer done()
	c := apipb.NewNodeServiceClient(conn)
	req := &apipb.ListNodesRequest{View: apipb.NodeView_NODE_VIEW_BASIC, PageSize: maxNodesPage}
	var nodes []*apipb.Node
	for {
		resp, err := c.ListNodes(ctx, req)
		if err != nil {
			cobra.CompDebugln("list nodes: "+err.Error(), false)
			return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
		}
		nodes = append(nodes, resp.GetNodes()...)
		if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
			break
		}
	}
	var out []string
	for _, n := range nodes {
		if strings.HasPrefix(n.GetName(), prefix) {
			out = append(out, n.GetName()+"\t"+orDash(n.GetSlurmState())+" "+healthName(n.GetVerdict()))
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
