package cli

// run.go: the `run` group, runs on the controller's RunService (submit,
// list, get, cancel, watch) in place of the grpcurl calls of docs/api.md.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sopilot/sopilot/pkg/apipb"
)

// ErrRunNotCompleted: a watched run ended in a state other than COMPLETED.
var ErrRunNotCompleted = errors.New("run did not complete")

const runLong = `Submit runs (Slurm batch jobs) to the sopilot controller and follow them.

  sopilot run submit --job-name train --nodes 2 --ntasks-per-node 8 --gpus-per-node 8 \
      --time 06:00:00 --label experiment=lr-sweep -- python3 train.py --lr 3e-4
  sopilot run list --state running --label experiment=lr-sweep
  sopilot run get r-01m8kc4a4s0xq0n7w6zv5c2k9e
  sopilot run watch r-01m8kc4a4s0xq0n7w6zv5c2k9e
  sopilot run cancel r-01m8kc4a4s0xq0n7w6zv5c2k9e

The controller is at --controller (SOPILOT_CONTROLLER, default ` + DefaultController + `).
'run watch' and 'run submit --watch' exit 0 when the run COMPLETED, 1 when
it ended otherwise (naming the state), 69 when the controller could not be
reached, and 130 on Ctrl-C (the run goes on).`

func newRunCommand(a *app) *cobra.Command {
	o := &clientOptions{}
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Submit, list, watch and cancel runs (Slurm jobs) through the controller",
		Long:  runLong,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	addClientFlags(cmd, o)
	cmd.AddCommand(
		newRunSubmitCommand(a, o),
		newRunListCommand(a, o),
		newRunGetCommand(a, o),
		newRunCancelCommand(a, o),
		newRunWatchCommand(a, o),
		newRunLogsCommand(a, o),
		newRunPipelineCommand(a, o),
	)
	return cmd
}

// submitOptions are run submit's flags, named like sbatch's.
type submitOptions struct {
	jobName      string
	nodes        int32
	tasksPerNode int32
	gpusPerNode  int32
	gres         string
	cpusPerTask  int32
	timeLimit    string
	partition    string
	chdir        string
	outputDir    string
	env          []string
	labels       []string
	dependsOn    []string
	resultsPath  string
	requestID    string
	script       string
	file         string
	watch        bool
}

func (s *submitOptions) register(fs *pflag.FlagSet) {
	fs.StringVarP(&s.jobName, "job-name", "J", "", "Slurm job name: 1-64 characters of A-Z a-z 0-9 . _ -")
	fs.Int32VarP(&s.nodes, "nodes", "N", 1, "number of nodes")
	fs.Int32Var(&s.tasksPerNode, "ntasks-per-node", 1, "tasks per node (argv runs once per task)")
	fs.Int32Var(&s.gpusPerNode, "gpus-per-node", 0, "GPUs per node")
	fs.StringVar(&s.gres, "gres", "", "generic resources, sbatch style; only gpu:N is accepted (same as --gpus-per-node N)")
	fs.Int32VarP(&s.cpusPerTask, "cpus-per-task", "c", 0, "CPUs per task (0: Slurm's default)")
	fs.StringVarP(&s.timeLimit, "time", "t", "", "wall-clock limit, required: Slurm forms (MINUTES, HH:MM:SS, D-HH[:MM[:SS]]) or a Go duration (90m, 6h)")
	fs.StringVarP(&s.partition, "partition", "p", "", "Slurm partition (default: the cluster's default partition)")
	fs.StringVarP(&s.chdir, "chdir", "D", "", "absolute working directory of the job (default: the controller's)")
	fs.StringVar(&s.outputDir, "output-dir", "", "absolute directory for the job's output file <job-name>-<job-id>.out (default: the controller's)")
	fs.StringArrayVar(&s.env, "env", nil, "environment variable KEY=VALUE of the job (repeatable); the job gets only these plus PATH, HOME, LANG, SOPILOT_RUN_ID")
	fs.StringArrayVar(&s.labels, "label", nil, "label key=value for filtering (repeatable)")
	fs.StringArrayVar(&s.dependsOn, "depends-on", nil, "id of a run that must complete successfully first (repeatable)")
	fs.StringVar(&s.resultsPath, "results-path", "", "absolute path of the per-sample results file the run writes")
	fs.StringVar(&s.requestID, "request-id", "", "idempotency key; give the same one to retry without a second job (default: a fresh random id)")
	fs.StringVar(&s.script, "script", "", "bash script file to run once on the first node (- reads stdin), instead of a command after --")
	fs.StringVarP(&s.file, "file", "f", "", "run file: a RunSpec as YAML or JSON (snake_case or camelCase fields, time_limit as --time takes it: 10m, 06:00:00, 1-00:00:00; - reads stdin); flags given too override its fields")
	fs.BoolVarP(&s.watch, "watch", "w", false, "after submitting, watch the run until it ends (exit 0 only if it COMPLETED)")
}

// spec builds the RunSpec from the run file (if any), then the flags: every
// flag without a run file, only the flags that were set with one. args is
// the command after --.
func (s *submitOptions) spec(fs *pflag.FlagSet, args []string, stdin io.Reader) (*apipb.RunSpec, error) {
	spec := &apipb.RunSpec{}
	if s.file != "" {
		b, err := readFileOrStdin(s.file, stdin)
		if err != nil {
			return nil, fmt.Errorf("%w: --file: %w", ErrUsage, err)
		}
		doc, err := parseYAMLDoc(b)
		if err != nil {
			return nil, fmt.Errorf("%w: --file %s: %w", ErrUsage, s.file, err)
		}
		var probs []string
		if spec, probs = specFromNode(doc); len(probs) > 0 {
			return nil, fmt.Errorf("%w: --file %s: %d problem(s), nothing submitted:\n  %s", ErrUsage, s.file, len(probs), strings.Join(probs, "\n  "))
		}
	}
	set := func(name string) bool { return s.file == "" || fs.Changed(name) }
	if set("job-name") {
		spec.JobName = s.jobName
	}
	if set("nodes") {
		spec.Nodes = s.nodes
	}
	if set("ntasks-per-node") {
		spec.TasksPerNode = s.tasksPerNode
	}
	if set("gpus-per-node") {
		spec.GpusPerNode = s.gpusPerNode
	}
	if fs.Changed("gres") {
		n, err := parseGRES(s.gres)
		if err != nil {
			return nil, err
		}
		if fs.Changed("gpus-per-node") && n != s.gpusPerNode {
			return nil, fmt.Errorf("%w: --gres %s and --gpus-per-node %d disagree; give one", ErrUsage, s.gres, s.gpusPerNode)
		}
		spec.GpusPerNode = n
	}
	if set("cpus-per-task") {
		spec.CpusPerTask = s.cpusPerTask
	}
	if set("time") {
		if s.timeLimit == "" {
			return nil, fmt.Errorf("%w: --time is required, e.g. --time 06:00:00", ErrUsage)
		}
		d, err := parseTimeLimit(s.timeLimit)
		if err != nil {
			return nil, fmt.Errorf("%w: --time %q: %w", ErrUsage, s.timeLimit, err)
		}
		spec.TimeLimit = durationpb.New(d)
	}
	if set("partition") {
		spec.Partition = s.partition
	}
	if set("chdir") {
		spec.WorkingDirectory = s.chdir
	}
	if set("output-dir") {
		spec.OutputDirectory = s.outputDir
	}
	if set("env") && len(s.env) > 0 {
		m, err := parseKeyValues("env", "KEY=VALUE", s.env)
		if err != nil {
			return nil, err
		}
		spec.Environment = m
	}
	if set("label") && len(s.labels) > 0 {
		m, err := parseKeyValues("label", "key=value", s.labels)
		if err != nil {
			return nil, err
		}
		spec.Labels = m
	}
	if set("depends-on") && len(s.dependsOn) > 0 {
		spec.DependsOn = s.dependsOn
	}
	if set("results-path") {
		spec.ResultsPath = s.resultsPath
	}
	switch {
	case len(args) > 0 && s.script != "":
		return nil, fmt.Errorf("%w: give the command after -- or --script, not both", ErrUsage)
	case len(args) > 0:
		spec.Argv, spec.Script = args, ""
	case s.script != "":
		if s.script == "-" && s.file == "-" {
			return nil, fmt.Errorf("%w: --script - and --file - cannot both read stdin", ErrUsage)
		}
		b, err := readFileOrStdin(s.script, stdin)
		if err != nil {
			return nil, fmt.Errorf("%w: --script: %w", ErrUsage, err)
		}
		spec.Argv, spec.Script = nil, string(b)
	case len(spec.GetArgv()) == 0 && spec.GetScript() == "":
		return nil, fmt.Errorf("%w: no command: give it after -- (sopilot run submit ... -- python3 train.py) or as --script FILE", ErrUsage)
	}
	return spec, nil
}

func readFileOrStdin(path string, stdin io.Reader) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(stdin)
	}
	return os.ReadFile(path)
}

// parseTimeLimit reads a wall-clock limit in sbatch's --time forms
// (MINUTES, MINUTES:SECONDS, HOURS:MINUTES:SECONDS, DAYS-HOURS,
// DAYS-HOURS:MINUTES, DAYS-HOURS:MINUTES:SECONDS) or as a Go duration.
func parseTimeLimit(s string) (time.Duration, error) {
	d, err := parseSlurmTime(s)
	if err != nil {
		gd, gerr := time.ParseDuration(s)
		if gerr != nil {
			return 0, errors.New("want MINUTES, HH:MM:SS, D-HH:MM:SS or a Go duration such as 90m")
		}
		d = gd
	}
	if d <= 0 {
		return 0, errors.New("must be positive")
	}
	if d%time.Second != 0 {
		return 0, errors.New("must be whole seconds")
	}
	return d, nil
}

func parseSlurmTime(s string) (time.Duration, error) {
	num := func(p string) (time.Duration, error) {
		if p == "" || strings.TrimLeft(p, "0123456789") != "" {
			return 0, errors.New("not a number")
		}
		n, err := strconv.ParseInt(p, 10, 32)
		return time.Duration(n), err
	}
	var days time.Duration
	rest := s
	hasDays := false
	if i := strings.IndexByte(s, '-'); i >= 0 {
		d, err := num(s[:i])
		if err != nil {
			return 0, err
		}
		days, rest, hasDays = d, s[i+1:], true
	}
	parts := strings.Split(rest, ":")
	if len(parts) > 3 {
		return 0, errors.New("too many fields")
	}
	vals := make([]time.Duration, len(parts))
	for i, p := range parts {
		v, err := num(p)
		if err != nil {
			return 0, err
		}
		vals[i] = v
	}
	var d time.Duration
	switch {
	case hasDays: // D-H, D-H:M, D-H:M:S
		units := []time.Duration{time.Hour, time.Minute, time.Second}
		for i, v := range vals {
			d += v * units[i]
		}
	case len(vals) == 1: // M
		d = vals[0] * time.Minute
	case len(vals) == 2: // M:S
		d = vals[0]*time.Minute + vals[1]*time.Second
	default: // H:M:S
		d = vals[0]*time.Hour + vals[1]*time.Minute + vals[2]*time.Second
	}
	return days*24*time.Hour + d, nil
}

// parseGRES accepts gpu:N (and gpu:TYPE:N, whose type the spec cannot carry,
// so it is refused).
func parseGRES(s string) (int32, error) {
	parts := strings.Split(s, ":")
	if len(parts) == 2 && parts[0] == "gpu" {
		n, err := strconv.ParseInt(parts[1], 10, 32)
		if err == nil && n >= 0 {
			return int32(n), nil
		}
	}
	return 0, fmt.Errorf("%w: --gres %q: only gpu:N is supported, e.g. --gres gpu:8", ErrUsage, s)
}

// parseKeyValues reads repeated K=V flag values; a key given twice is an
// error rather than a silent override.
func parseKeyValues(flag, form string, kvs []string) (map[string]string, error) {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%w: --%s %q: want %s", ErrUsage, flag, kv, form)
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("%w: --%s: %q given twice", ErrUsage, flag, k)
		}
		m[k] = v
	}
	return m, nil
}

// newRequestID is a random UUID (version 4) for CreateRun's request_id.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func newRunSubmitCommand(a *app, o *clientOptions) *cobra.Command {
	s := &submitOptions{}
	cmd := &cobra.Command{
		Use:   "submit [flags] [-- COMMAND [ARG...]]",
		Short: "Submit a run: the command after -- (once per task, under srun) or a --script",
		Long: `Submit a run to Slurm through the controller and print it (id, state, Slurm job id).

The flags are sbatch's: the seed tutorial's job is

  sopilot run submit --job-name training-with-original --nodes 2 --ntasks-per-node 8 \
      --gpus-per-node 8 --time 06:00:00 -- python3 train.py

The command after -- runs once per task under srun; --script FILE is a bash
body that runs once on the first node and calls srun itself. -f FILE reads a
RunSpec as YAML or JSON (the API's fields, snake_case or camelCase; time_limit
as --time takes it, e.g. 10m or 06:00:00); flags given as well override it.

--request-id makes retries safe: the same id with the same spec returns the
run created first instead of submitting a second job.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, err := s.spec(cmd.Flags(), args, a.env.Stdin)
			if err != nil {
				return err
			}
			if s.requestID == "" {
				s.requestID = newRequestID()
			}
			conn, err := o.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			runs := apipb.NewRunServiceClient(conn)
			ctx, cancel := o.call(cmd.Context())
			resp, err := runs.CreateRun(ctx, &apipb.CreateRunRequest{Spec: spec, RequestId: s.requestID})
			cancel()
			if err != nil {
				return o.clientError(fmt.Sprintf("submit run %q", spec.GetJobName()), err)
			}
			run := resp.GetRun()
			if !s.watch {
				if a.json() {
					return writeProto(a.env.Stdout, a.root.output, run)
				}
				printRun(a.env.Stdout, run, time.Now())
				return nil
			}
			if !a.json() {
				fmt.Fprintf(a.env.Stdout, "submitted %s (slurm job %s)\n", run.GetId(), orDash(run.GetSlurmJobId()))
			}
			return watchRun(cmd.Context(), a, o, runs, apipb.NewNodeServiceClient(conn), run.GetId())
		},
	}
	s.register(cmd.Flags())
	return cmd
}

func newRunGetCommand(a *app, o *clientOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "get RUN_ID",
		Short: "Show one run: state, Slurm job, nodes, times, progress, usage",
		Args:  exactArgs(1, "RUN_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return oneRun(cmd.Context(), a, o, "get run "+args[0], func(ctx context.Context, c apipb.RunServiceClient) (*apipb.Run, error) {
				resp, err := c.GetRun(ctx, &apipb.GetRunRequest{RunId: args[0]})
				return resp.GetRun(), err
			})
		},
	}
}

func newRunCancelCommand(a *app, o *clientOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "cancel RUN_ID...",
		Short: "Cancel runs' Slurm jobs (a run that already ended is shown unchanged)",
		Long: `Cancel one or more runs (scancel of their Slurm jobs). Each run is reported on
its own line; the exit status is non-zero if any could not be cancelled
(the others are cancelled all the same).

  sopilot run cancel r-01jdx2k7a8m3q0c4n5p6r7s8t9 r-01jdx2k7b0000000000000000`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return fmt.Errorf("%w: %s wants one or more RUN_IDs", ErrUsage, cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			conn, err := o.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			return cancelRuns(cmd.Context(), a, o, apipb.NewRunServiceClient(conn), args)
		},
	}
}

// cancelFailedError: some of the runs given to run cancel were not
// cancelled. It wraps each failure, so that ExitCode sees their kind.
type cancelFailedError struct {
	failed, total int
	errs          []error
}

func (e *cancelFailedError) Error() string {
	if e.total == 1 {
		return e.errs[0].Error()
	}
	return fmt.Sprintf("%d of %d runs not cancelled (see above)", e.failed, e.total)
}
func (e *cancelFailedError) Unwrap() []error { return e.errs }

// cancelRuns cancels each run, reporting each as it goes: the run (or, with
// several, one line per run) on stdout, a failure on stderr.
func cancelRuns(ctx context.Context, a *app, o *clientOptions, c apipb.RunServiceClient, ids []string) error {
	var (
		done []*apipb.Run
		errs []error
	)
	start := time.Now().Add(-time.Second) // the controller's clock may lag ours a little
	for _, id := range ids {
		cctx, cancel := o.call(ctx)
		resp, err := c.CancelRun(cctx, &apipb.CancelRunRequest{RunId: id})
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			err = o.clientError("cancel run "+id, err)
			errs = append(errs, err)
			if len(ids) > 1 {
				fmt.Fprintln(a.env.Stderr, "sopilot: "+err.Error())
			}
			continue
		}
		r := resp.GetRun()
		done = append(done, r)
		switch {
		case a.json():
		case len(ids) == 1:
			printRun(a.env.Stdout, r, time.Now())
		case r.GetState() == apipb.RunState_RUN_STATE_CANCELLED && r.GetEndTime() != nil && !r.GetEndTime().AsTime().Before(start):
			fmt.Fprintf(a.env.Stdout, "%s cancelled (slurm job %s)\n", r.GetId(), orDash(r.GetSlurmJobId()))
		case terminal(r.GetState()):
			fmt.Fprintf(a.env.Stdout, "%s had already ended %s\n", r.GetId(), stateName(r.GetState()))
		default:
			fmt.Fprintf(a.env.Stdout, "%s cancel requested (slurm job %s, now %s)\n", r.GetId(), orDash(r.GetSlurmJobId()), stateName(r.GetState()))
		}
	}
	if a.json() {
		var err error
		if len(ids) == 1 && len(done) == 1 {
			err = writeProto(a.env.Stdout, a.root.output, done[0])
		} else if len(ids) > 1 {
			err = writeProto(a.env.Stdout, a.root.output, &apipb.ListRunsResponse{Runs: done})
		}
		if err != nil {
			return err
		}
	}
	if len(errs) > 0 {
		return &cancelFailedError{failed: len(errs), total: len(ids), errs: errs}
	}
	return nil
}

// exactArgs is cobra.ExactArgs with a message that names the arguments.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return fmt.Errorf("%w: %s wants %s, got %d argument(s)", ErrUsage, cmd.CommandPath(), names, len(args))
		}
		return nil
	}
}

func oneRun(ctx context.Context, a *app, o *clientOptions, what string, call func(context.Context, apipb.RunServiceClient) (*apipb.Run, error)) error {
	conn, err := o.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	cctx, cancel := o.call(ctx)
	defer cancel()
	run, err := call(cctx, apipb.NewRunServiceClient(conn))
	if err != nil {
		return o.clientError(what, err)
	}
	if a.json() {
		return writeProto(a.env.Stdout, a.root.output, run)
	}
	printRun(a.env.Stdout, run, time.Now())
	return nil
}

// parseRunState accepts running, RUNNING and RUN_STATE_RUNNING.
func parseRunState(s string) (apipb.RunState, error) {
	name := strings.ToUpper(strings.ReplaceAll(s, "-", "_"))
	if !strings.HasPrefix(name, "RUN_STATE_") {
		name = "RUN_STATE_" + name
	}
	v, ok := apipb.RunState_value[name]
	if !ok || v == 0 {
		return 0, fmt.Errorf("%w: --state %q: want one of pending, running, completing, completed, failed, cancelled, timeout, node_fail, preempted, out_of_memory, lost", ErrUsage, s)
	}
	return apipb.RunState(v), nil
}

func newRunWatchCommand(a *app, o *clientOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "watch RUN_ID",
		Short: "Follow a run until it ends; exit 0 only if it COMPLETED",
		Long: `Follow a run until it ends. On a terminal: one live status line (state, Slurm
state, nodes, elapsed time, and training progress when the run reports it);
otherwise one line per change (-o json: one JSON run per line).

If the controller restarts, the watch reconnects (for up to 5 minutes) and
goes on where it was. Ctrl-C stops watching, not the run.

Exits 0 when the run COMPLETED, 1 (naming the state) when it ended
otherwise, 69 when the controller could not be reached, 130 on Ctrl-C.`,
		Args: exactArgs(1, "RUN_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			conn, err := o.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			return watchRun(cmd.Context(), a, o, apipb.NewRunServiceClient(conn), apipb.NewNodeServiceClient(conn), args[0])
		},
	}
}
