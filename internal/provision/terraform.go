// Package provision drives a Soperator Terraform installation (the seed's
// soperator/installations/<name> directory) through
// github.com/hashicorp/terraform-exec: it finds the terraform binary, and
// runs init (with bounded retries on network failures), plan to a file
// (a destroy plan too), show of that plan as JSON, apply of exactly that
// file, output, import and state rm. Plan and apply run with Terraform's
// machine-readable UI (-json), which Progress turns into counted progress
// lines and diagnostics.
//
// Cancelling the context stops Terraform the way Ctrl-C does in a shell:
// terraform-exec sends it SIGINT, Terraform finishes the operations in
// flight and writes its state, and only if it has not exited after
// Options.GracePeriod is it killed. The checks that decide whether a run
// should happen at all live in provision/preflight.
package provision

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/go-version"
	"github.com/hashicorp/terraform-exec/tfexec"
	tfjson "github.com/hashicorp/terraform-json"
)

// Sentinel errors.
var (
	// ErrTerraformNotFound: no terraform binary at the given path or on PATH.
	ErrTerraformNotFound = errors.New("terraform not found")
	// ErrInit: terraform init failed (after retries, if the failure looked
	// transient).
	ErrInit = errors.New("terraform init failed")
	// ErrCancelled: the context was cancelled; Terraform was interrupted
	// and given time to save its state.
	ErrCancelled = errors.New("cancelled; terraform was interrupted and allowed to save its state")
)

// Locate finds the terraform binary: explicit (a --terraform flag or
// SOPILOT_TERRAFORM) if set, else "terraform" on PATH.
func Locate(explicit string, lookPath func(string) (string, error)) (string, error) {
	if explicit != "" {
		st, err := os.Stat(explicit)
		if err != nil {
			return "", fmt.Errorf("%w at %s: %v", ErrTerraformNotFound, explicit, err)
		}
		if st.IsDir() || st.Mode()&0o111 == 0 {
			return "", fmt.Errorf("%w: %s is not an executable file", ErrTerraformNotFound, explicit)
		}
		return filepath.Abs(explicit)
	}
	p, err := lookPath("terraform")
	if err != nil {
		return "", fmt.Errorf("%w on PATH: %v", ErrTerraformNotFound, err)
	}
	return p, nil
}

// Options configure a Runner.
type Options struct {
	// Dir is the installation directory (the root module).
	Dir string
	// Terraform is the binary's path (see Locate).
	Terraform string
	// Env is added to Environ for every terraform run (TF_CLI_CONFIG_FILE,
	// TF_DATA_DIR, TF_PLUGIN_CACHE_DIR...). When Env and Environ are both
	// empty, Terraform inherits this process's environment as it is, which
	// is the only way TF_VAR_* variables reach it (terraform-exec refuses
	// them in an explicit environment).
	Env map[string]string
	// Environ is the base environment for Env; nil means os.Environ().
	Environ []string
	// Logger gets one line per terraform command; nil discards.
	Logger *slog.Logger
	// InitAttempts bounds terraform init runs when init fails in a way
	// that looks transient (registry or network errors); default 3.
	InitAttempts int
	// InitBackoff is the wait before the second attempt, doubling after;
	// default 2s.
	InitBackoff time.Duration
	// GracePeriod is how long Terraform may take to stop after SIGINT
	// before it is killed; default 5 minutes (cloud calls in flight finish
	// and the state is written).
	GracePeriod time.Duration
	// Sleep waits between init attempts; tests replace it. Default: a
	// timer that returns early with ctx.Err() when ctx is done.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Runner runs terraform commands in one installation directory.
type Runner struct {
	tf   *tfexec.Terraform
	opts Options
	log  *slog.Logger
}

// New returns a Runner. It does not run Terraform.
func New(opts Options) (*Runner, error) {
	if opts.Terraform == "" {
		return nil, fmt.Errorf("%w: no path given", ErrTerraformNotFound)
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	opts.Dir = dir
	if opts.InitAttempts <= 0 {
		opts.InitAttempts = 3
	}
	if opts.InitBackoff <= 0 {
		opts.InitBackoff = 2 * time.Second
	}
	if opts.GracePeriod <= 0 {
		opts.GracePeriod = 5 * time.Minute
	}
	if opts.Sleep == nil {
		opts.Sleep = sleepCtx
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tf, err := tfexec.NewTerraform(dir, opts.Terraform)
	if err != nil {
		return nil, fmt.Errorf("terraform in %s: %w", dir, err)
	}
	if len(opts.Env) > 0 || opts.Environ != nil {
		if err := setEnv(tf, opts, log); err != nil {
			return nil, err
		}
	}
	// Otherwise Terraform inherits this process's environment untouched,
	// TF_VAR_* included (Soperator's .envrc exports TF_VAR_iam_token...):
	// terraform-exec refuses TF_VAR_* in an explicit environment.
	if err := tf.SetWaitDelay(opts.GracePeriod); err != nil {
		return nil, err
	}
	return &Runner{tf: tf, opts: opts, log: log.With("component", "terraform", "dir", dir)}, nil
}

func setEnv(tf *tfexec.Terraform, opts Options, log *slog.Logger) error {
	environ := opts.Environ
	if environ == nil {
		environ = os.Environ()
	}
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	for k, v := range opts.Env {
		env[k] = v
	}
	if _, ok := env["CHECKPOINT_DISABLE"]; !ok {
		env["CHECKPOINT_DISABLE"] = "1" // no version check call-home from automation
	}
	for _, k := range tfexec.ProhibitedEnv(env) {
		if strings.HasPrefix(k, "TF_VAR_") {
			log.Warn("not passed to terraform with an explicit environment; put it in a var file", "var", k)
		}
	}
	// terraform-exec manages TF_LOG, TF_INPUT, TF_IN_AUTOMATION... itself.
	return tf.SetEnv(tfexec.CleanEnv(env))
}

// wrap maps a terraform-exec error: a cancelled context becomes
// ErrCancelled (with the context's error), the rest gets the operation.
func (r *Runner) wrap(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("terraform %s: %w (%w)", op, ErrCancelled, ctx.Err())
	}
	return fmt.Errorf("terraform %s: %w", op, err)
}

// Version runs `terraform version`.
func (r *Runner) Version(ctx context.Context) (*version.Version, error) {
	v, _, err := r.tf.Version(ctx, true)
	if err != nil {
		return nil, r.wrap(ctx, "version", err)
	}
	return v, nil
}

// Init runs `terraform init`, streaming its output to w, and retries up to
// InitAttempts times when the failure looks transient (TransientInitError).
func (r *Runner) Init(ctx context.Context, w io.Writer) error {
	if w == nil {
		w = io.Discard
	}
	r.tf.SetStdout(w)
	defer r.tf.SetStdout(nil)
	backoff := r.opts.InitBackoff
	var err error
	for attempt := 1; attempt <= r.opts.InitAttempts; attempt++ {
		r.log.Info("terraform init", "attempt", attempt)
		err = r.tf.Init(ctx, tfexec.Upgrade(false))
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return r.wrap(ctx, "init", err)
		}
		if !TransientInitError(err.Error()) || attempt == r.opts.InitAttempts {
			break
		}
		r.log.Warn("terraform init failed; retrying", "attempt", attempt, "wait", backoff, "err", err)
		fmt.Fprintf(w, "terraform init failed (attempt %d of %d), retrying in %s: %s\n", attempt, r.opts.InitAttempts, backoff, firstLine(err.Error()))
		if serr := r.opts.Sleep(ctx, backoff); serr != nil {
			return r.wrap(ctx, "init", err)
		}
		backoff *= 2
	}
	return fmt.Errorf("%w in %s: %w", ErrInit, r.opts.Dir, err)
}

// transientInit matches the terraform init failures worth retrying: the
// registry or a download could not be reached. Configuration errors
// ("Unreadable module directory", syntax errors) are not retried.
var transientInit = regexp.MustCompile(`(?i)` + strings.Join([]string{
	`could not connect`, `connection (refused|reset)`, `i/o timeout`, `TLS handshake timeout`,
	`no such host`, `temporary failure in name resolution`, `context deadline exceeded \(Client\.Timeout`,
	`Failed to query available provider packages`, `Failed to install provider`, `Failed to download module`,
	`error downloading`, `(429|500|502|503|504) (Too Many Requests|Internal Server Error|Bad Gateway|Service Unavailable|Gateway Timeout)`,
	`unexpected EOF`,
}, "|"))

// TransientInitError reports whether terraform init's error text looks
// like a network or registry failure rather than a configuration error.
// Terraform reports both only as text, so text is all there is to judge.
func TransientInitError(text string) bool { return transientInit.MatchString(text) }

func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "exit status") {
			return l
		}
	}
	return strings.TrimSpace(s)
}

// PlanRequest says what to plan.
type PlanRequest struct {
	// Out is where the plan file goes; required (apply takes exactly it).
	Out string
	// VarFiles are passed as -var-file, in order.
	VarFiles []string
	// Destroy plans the destruction of everything.
	Destroy bool
}

// PlanResult is a saved plan.
type PlanResult struct {
	Path       string
	HasChanges bool
	// Plan is `terraform show -json` of the plan file.
	Plan *tfjson.Plan
}

// Plan runs `terraform plan -json -out`, streaming the JSON UI to w, then
// reads the plan file back with `terraform show -json`.
func (r *Runner) Plan(ctx context.Context, req PlanRequest, w io.Writer) (*PlanResult, error) {
	if req.Out == "" {
		return nil, errors.New("plan: no output file")
	}
	out, err := filepath.Abs(req.Out)
	if err != nil {
		return nil, err
	}
	opts := []tfexec.PlanOption{tfexec.Out(out)}
	for _, f := range req.VarFiles {
		opts = append(opts, tfexec.VarFile(f))
	}
	if req.Destroy {
		opts = append(opts, tfexec.Destroy(true))
	}
	r.log.Info("terraform plan", "out", out, "destroy", req.Destroy, "var_files", req.VarFiles)
	changes, err := r.tf.PlanJSON(ctx, orDiscard(w), opts...)
	r.tf.SetStdout(nil) // PlanJSON leaves w set for every later command
	if err != nil {
		return nil, r.wrap(ctx, "plan", err)
	}
	plan, err := r.ShowPlan(ctx, out)
	if err != nil {
		return nil, err
	}
	return &PlanResult{Path: out, HasChanges: changes, Plan: plan}, nil
}

// ShowPlan runs `terraform show -json` on a plan file.
func (r *Runner) ShowPlan(ctx context.Context, path string) (*tfjson.Plan, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	plan, err := r.tf.ShowPlanFile(ctx, abs)
	if err != nil {
		return nil, r.wrap(ctx, "show", err)
	}
	return plan, nil
}

// Apply applies exactly the saved plan at planFile (Terraform refuses a
// plan whose state has moved on since), streaming the JSON UI to w.
func (r *Runner) Apply(ctx context.Context, planFile string, w io.Writer) error {
	abs, err := filepath.Abs(planFile)
	if err != nil {
		return err
	}
	r.log.Info("terraform apply", "plan", abs)
	err = r.tf.ApplyJSON(ctx, orDiscard(w), tfexec.DirOrPlan(abs))
	r.tf.SetStdout(nil) // ApplyJSON leaves w set for every later command
	return r.wrap(ctx, "apply", err)
}

// Output is one root module output.
type Output struct {
	Sensitive bool   `json:"sensitive"`
	Type      []byte `json:"-"`
	// Value is the JSON encoding of the value.
	Value []byte `json:"-"`
}

// Outputs runs `terraform output -json`.
func (r *Runner) Outputs(ctx context.Context) (map[string]Output, error) {
	raw, err := r.tf.Output(ctx)
	if err != nil {
		return nil, r.wrap(ctx, "output", err)
	}
	out := make(map[string]Output, len(raw))
	for k, v := range raw {
		out[k] = Output{Sensitive: v.Sensitive, Type: v.Type, Value: v.Value}
	}
	return out, nil
}

// Import runs `terraform import ADDRESS ID`.
func (r *Runner) Import(ctx context.Context, address, id string, varFiles []string) error {
	var opts []tfexec.ImportOption
	for _, f := range varFiles {
		opts = append(opts, tfexec.VarFile(f))
	}
	r.log.Info("terraform import", "address", address, "id", id)
	return r.wrap(ctx, "import "+address, r.tf.Import(ctx, address, id, opts...))
}

// StateRm runs `terraform state rm ADDRESS`.
func (r *Runner) StateRm(ctx context.Context, address string) error {
	r.log.Info("terraform state rm", "address", address)
	return r.wrap(ctx, "state rm "+address, r.tf.StateRm(ctx, address))
}

// State runs `terraform show -json` on the current state.
func (r *Runner) State(ctx context.Context) (*tfjson.State, error) {
	st, err := r.tf.Show(ctx)
	return st, r.wrap(ctx, "show", err)
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
