// Package cli is the human command line, `sopilot`: a small root command
// that command groups hang off. The root owns what every group shares:
// flags mirrored by SOPILOT_* environment variables (flag > variable >
// default), the output format (-o table|json|yaml), colour only on a terminal,
// the logger, and the exit codes. Each group lives in its own file(s):
// cluster*.go is the `cluster` group (provisioning through Terraform).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sopilot/sopilot/internal/config"
	"github.com/sopilot/sopilot/internal/provision"
	"github.com/sopilot/sopilot/internal/version"
)

// Exit codes of the sopilot command. They are part of its interface.
const (
	ExitOK = 0
	// ExitError: the operation failed (Terraform failed, a file could not
	// be read...).
	ExitError = 1
	// ExitUsage: bad flags or arguments.
	ExitUsage = 2
	// ExitRefused: a preflight or plan check found an error; nothing was
	// changed.
	ExitRefused = 3
	// ExitNotConfirmed: apply/destroy was not confirmed (no "yes", no
	// --yes); nothing was changed.
	ExitNotConfirmed = 4
	// ExitInterrupted: interrupted (Ctrl-C, SIGTERM); Terraform was asked
	// to stop and saved its state.
	ExitInterrupted = 130
	// ExitUnreachable: the controller could not be reached (or did not
	// answer in time); nothing is known about the outcome. 69 is
	// EX_UNAVAILABLE of sysexits.h.
	ExitUnreachable = 69
)

// Sentinel errors that select an exit code.
var (
	ErrUsage        = errors.New("usage")
	ErrRefused      = errors.New("refused by sopilot's checks (see above); nothing was changed")
	ErrNotConfirmed = errors.New("not confirmed; nothing was changed")
)

// ExitCode maps an error returned by Execute to the process exit status.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, ErrUsage):
		return ExitUsage
	case errors.Is(err, ErrRefused):
		return ExitRefused
	case errors.Is(err, ErrNotConfirmed):
		return ExitNotConfirmed
	case errors.Is(err, provision.ErrCancelled), errors.Is(err, context.Canceled):
		return ExitInterrupted
	case errors.Is(err, ErrUnreachable):
		return ExitUnreachable
	}
	return ExitError
}

// Env is what a command may touch of the outside world.
type Env struct {
	Getenv func(string) string
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// LookPath finds tools; nil means exec.LookPath.
	LookPath func(string) (string, error)
	// IsTerminal reports whether w is a terminal (for colour); nil checks
	// for a character device.
	IsTerminal func(w io.Writer) bool
	// TerraformEnv is added to Terraform's environment. Empty in
	// production, so that Terraform inherits ours (TF_VAR_* included);
	// tests use it to keep Terraform offline.
	TerraformEnv map[string]string
}

func (e *Env) defaults() {
	if e.Getenv == nil {
		e.Getenv = func(string) string { return "" }
	}
	if e.Stdin == nil {
		e.Stdin = strings.NewReader("")
	}
	if e.Stdout == nil {
		e.Stdout = io.Discard
	}
	if e.Stderr == nil {
		e.Stderr = io.Discard
	}
	if e.LookPath == nil {
		e.LookPath = exec.LookPath
	}
	if e.IsTerminal == nil {
		e.IsTerminal = func(w io.Writer) bool { return isCharDevice(w) }
	}
	// Progress lines and the interrupt notice are written from different
	// goroutines.
	e.Stderr = &syncWriter{w: e.Stderr}
}

func isCharDevice(v any) bool {
	f, ok := v.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

// rootOptions are the flags every group sees.
type rootOptions struct {
	output   string
	color    string
	logLevel string
}

// app is one invocation: the environment and the root options.
type app struct {
	env  Env
	root rootOptions
	log  *slog.Logger
}

// json reports whether the output is for programs (-o json or -o yaml)
// rather than people.
func (a *app) json() bool { return a.root.output == formatJSON || a.root.output == formatYAML }

// colorFor says whether to colour what goes to w: --color always/never, or
// auto: a terminal and NO_COLOR unset.
func (a *app) colorFor(w io.Writer) bool {
	switch a.root.color {
	case "always":
		return true
	case "never":
		return false
	}
	if a.env.Getenv("NO_COLOR") != "" {
		return false
	}
	if sw, ok := w.(*syncWriter); ok {
		w = sw.w
	}
	return a.env.IsTerminal(w)
}

// Execute runs the sopilot command line with args (without the program
// name). It prints errors to env.Stderr; ExitCode(err) is the exit status.
func Execute(ctx context.Context, args []string, env Env) error {
	env.defaults()
	cmd := newRoot(&env)
	cmd.SetArgs(args)
	reached := false
	cmd.PersistentPreRunE = chainPreRun(cmd.PersistentPreRunE, func(*cobra.Command, []string) error {
		reached = true
		return nil
	})
	failed, err := cmd.ExecuteContextC(ctx)
	if err == nil {
		return nil
	}
	if failed == nil {
		failed = cmd
	}
	if !reached && !errors.Is(err, ErrUsage) {
		// cobra rejected the command line (unknown command, bad args)
		// before any command ran.
		err = fmt.Errorf("%w: %w", ErrUsage, err)
	}
	msg := err.Error()
	if errors.Is(err, ErrUsage) {
		// The help of the command that failed, as kubectl and gh do: it
		// lists the flags and arguments that command takes.
		msg = strings.TrimPrefix(msg, ErrUsage.Error()+": ") + "\nRun '" + failed.CommandPath() + " --help' for usage."
	}
	fmt.Fprintln(env.Stderr, "sopilot: "+msg)
	return err
}

func chainPreRun(first, then func(*cobra.Command, []string) error) func(*cobra.Command, []string) error {
	return func(c *cobra.Command, args []string) error {
		if first != nil {
			if err := first(c, args); err != nil {
				return err
			}
		}
		return then(c, args)
	}
}

const rootLong = `sopilot is the control plane for Slurm-on-Kubernetes GPU clusters (Nebius
Soperator). Its command groups:

  run       submit, list, watch and cancel runs (Slurm jobs) through the
            controller: sopilot run submit -N 2 --ntasks-per-node 8 \
              --gpus-per-node 8 -t 06:00:00 -- python3 train.py
  nodes     the cluster's nodes: Slurm state, health, GPUs, InfiniBand:
            sopilot nodes --watch
  node      one node in detail, drain/undrain, checks, incidents:
            sopilot node get worker-0
  results   upload a run's per-sample results (a JSON-lines file):
            sopilot results upload RUN_ID results.jsonl
  compare   compare two runs' results with paired statistics:
            sopilot compare BASELINE CANDIDATE --metric correct:higher
  cluster   provision the cluster with Terraform, with preflight checks that
            stop the known failures before they happen

Every flag can also be set by the environment variable shown in its help
([SOPILOT_...]); a flag on the command line wins over the variable.

Exit codes:
  0    success
  1    the operation failed
  2    bad flags or arguments
  3    refused by a preflight or plan check; nothing was changed
  4    apply/destroy not confirmed; nothing was changed
  69   the controller could not be reached (run watch/logs -f: not even by
       reconnecting); the run itself may still be fine
  130  interrupted; Terraform was stopped gracefully and saved its state`

// newRoot builds the command tree. Groups register here; a group must not
// set PersistentPreRunE (the root's applies the environment variables).
func newRoot(env *Env) *cobra.Command {
	a := &app{env: *env}
	root := &cobra.Command{
		Use:           "sopilot",
		Short:         "Control plane for Slurm-on-Kubernetes GPU clusters",
		Long:          rootLong,
		SilenceUsage:  true,
		SilenceErrors: true,
		// --version: cobra's flag, our build (internal/version).
		Version: version.Get().String(),
	}
	root.SetVersionTemplate("sopilot {{.Version}}\n")
	root.SetIn(env.Stdin)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return fmt.Errorf("%w: %w", ErrUsage, err) })
	// `sopilot completion bash|zsh|fish|powershell` prints a completion
	// script (cobra's); completion.go completes run ids and node names from
	// the controller and enum flags from their values.
	root.CompletionOptions.HiddenDefaultCmd = false

	pf := root.PersistentFlags()
	pf.StringVarP(&a.root.output, "output", "o", "table", "output format: table (for people), json or yaml (for scripts; see docs/cli.md and docs/provisioning.md)")
	pf.StringVar(&a.root.color, "color", "auto", "colour: auto (only on a terminal, and not when NO_COLOR is set), always, never")
	pf.StringVar(&a.root.logLevel, "log-level", "warn", "log level of sopilot's own log on stderr: debug, info, warn, error")

	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if err := applyEnv(cmd.Flags(), env.Getenv); err != nil {
			return fmt.Errorf("%w: %w", ErrUsage, err)
		}
		switch a.root.output {
		case formatTable, formatJSON, formatYAML:
		default:
			if !extraOutput(cmd, a.root.output) {
				return fmt.Errorf("%w: --output %q: want table, json or yaml", ErrUsage, a.root.output)
			}
		}
		switch a.root.color {
		case "auto", "always", "never":
		default:
			return fmt.Errorf("%w: --color %q: want auto, always or never", ErrUsage, a.root.color)
		}
		var level slog.Level
		if err := level.UnmarshalText([]byte(a.root.logLevel)); err != nil {
			return fmt.Errorf("%w: --log-level: %w", ErrUsage, err)
		}
		a.log = slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: level}))
		return nil
	}

	root.AddCommand(newClusterCommand(a))
	root.AddCommand(newRunCommand(a))
	root.AddCommand(newResultsCommand(a))
	root.AddCommand(newCompareCommand(a))
	root.AddCommand(newNodesCommand(a))
	root.AddCommand(newNodeCommand(a))

	annotateEnv(root)
	for _, c := range root.Commands() {
		suggestSubcommands(c) // the root's own check already suggests
	}
	addCompletions(root, env)
	return root
}

// suggestSubcommands makes every command group (a command with
// subcommands) refuse an unknown subcommand the way cobra's root does,
// with "Did you mean this?" suggestions, instead of cobra's plain
// "unknown command" for groups below the root.
func suggestSubcommands(cmd *cobra.Command) {
	for _, c := range cmd.Commands() {
		suggestSubcommands(c)
	}
	if !cmd.HasSubCommands() || !cmd.Runnable() {
		return
	}
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2 // cobra's default, which only its root applies
	}
	cmd.Args = func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return nil
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
		if s := c.SuggestionsFor(args[0]); len(s) > 0 {
			msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t") + "\n"
		}
		return fmt.Errorf("%w: %s", ErrUsage, msg)
	}
}

// applyEnv sets every flag not given on the command line from its
// SOPILOT_* variable: flag > variable > default.
func applyEnv(fs *pflag.FlagSet, getenv func(string) string) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed || f.Name == "help" || f.Name == "version" || envIgnored(f) {
			return
		}
		name := config.EnvName(f.Name)
		if v := getenv(name); v != "" {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("environment variable %s=%q: %w", name, v, serr)
			}
		}
	})
	return err
}

// annotateEnv appends each flag's environment variable to its help text,
// once per flag (children share their parents' persistent flags).
func annotateEnv(root *cobra.Command) {
	seen := map[*pflag.Flag]bool{}
	add := func(f *pflag.Flag) {
		if seen[f] || f.Name == "help" || f.Name == "version" || envIgnored(f) {
			return
		}
		seen[f] = true
		f.Usage += " [" + config.EnvName(f.Name) + "]"
	}
	var walk func(*cobra.Command)
	walk = func(cmd *cobra.Command) {
		cmd.PersistentFlags().VisitAll(add)
		cmd.Flags().VisitAll(add)
		for _, c := range cmd.Commands() {
			walk(c)
		}
	}
	walk(root)
}
