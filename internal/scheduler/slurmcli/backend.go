package slurmcli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/internal/scheduler/slurmjson"
)

var (
	_ scheduler.Backend        = (*Backend)(nil)
	_ scheduler.GatedSubmitter = (*Backend)(nil)
)

// DefaultTimeout is the per-command time limit when Config.Timeout is zero.
// With slurmctld down, sbatch, squeue and scancel give up after about 9 s
// and scontrol show job after about 18 s (measured on 22.05).
const DefaultTimeout = 30 * time.Second

// Query modes of Config.Query: how Jobs and FindByComment ask squeue.
const (
	// QueryAuto (the default) uses squeue --json and, the first time squeue
	// says it cannot print JSON (an older squeue without the option, or a
	// Slurm without its openapi/data_parser or serializer/json plugin),
	// falls back to QueryFormat for the life of the Backend, with one
	// warning in the log.
	QueryAuto = "auto"
	// QueryJSON always uses squeue --json: one slurmctld RPC per call.
	QueryJSON = "json"
	// QueryFormat always uses squeue --Format with ASCII separators: two
	// slurmctld RPCs per call on Slurm 22.05.
	QueryFormat = "format"
)

// Config says where the Slurm tools are and how long one may run.
type Config struct {
	// Paths of the tools; empty means the bare name, looked up on the
	// controller's PATH when the command runs.
	Sbatch, Squeue, Scancel, Scontrol, Sinfo string
	// SlurmConf is the slurm.conf the tools read (SLURM_CONF). Empty means
	// the controller's own SLURM_CONF if it has one, else Slurm's default.
	SlurmConf string
	// Timeout bounds each command; zero means DefaultTimeout.
	Timeout time.Duration
	// Location is the time zone Slurm prints times in (slurmctld's local
	// time as seen by the tools); nil means time.Local. Only the format
	// query reads local times; squeue --json prints Unix times.
	Location *time.Location
	// Query is how job state is read: QueryAuto (also ""), QueryJSON or
	// QueryFormat; see the package comment. Any other value is logged and
	// treated as QueryAuto.
	Query string
	// Prestart keeps one sbatch started ahead of the next submission,
	// waiting for its job (see prestart.go): a submission then skips
	// sbatch's start-up. Off, every submission starts its own sbatch.
	Prestart bool
}

// Backend runs Slurm's command-line tools. It is safe for concurrent use.
type Backend struct {
	cfg    Config
	base   baseEnv
	runner runner
	log    *slog.Logger
	// noJSON is set once squeue has said it cannot print JSON (QueryAuto):
	// from then on every listing uses the format query.
	noJSON atomic.Bool
	// noScontrolJSON is set once scontrol has said it cannot print JSON
	// (Slurm before 23.02): from then on Nodes uses sinfo --json.
	noScontrolJSON atomic.Bool
	// versions: the tools' and slurmctld's Slurm releases, from the last
	// check after a successful Ping (nil before).
	versions atomic.Pointer[versions]
	// prestart holds the prestarted sbatch; nil when Config.Prestart is
	// off or the runner does not run real processes.
	prestart *prestarter
}

// New returns a Backend; it runs nothing until called.
func New(cfg Config, logger *slog.Logger) *Backend {
	return newBackend(cfg, logger, execRunner{}, os.Getenv)
}

func newBackend(cfg Config, logger *slog.Logger, r runner, getenv func(string) string) *Backend {
	def := func(p *string, name string) {
		if *p == "" {
			*p = name
		}
	}
	def(&cfg.Sbatch, "sbatch")
	def(&cfg.Squeue, "squeue")
	def(&cfg.Scancel, "scancel")
	def(&cfg.Scontrol, "scontrol")
	def(&cfg.Sinfo, "sinfo")
	if cfg.SlurmConf == "" {
		cfg.SlurmConf = getenv("SLURM_CONF")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Location == nil {
		cfg.Location = time.Local
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	switch q := strings.ToLower(strings.TrimSpace(cfg.Query)); q {
	case "", QueryAuto:
		cfg.Query = QueryAuto
	case QueryJSON, QueryFormat:
		cfg.Query = q
	default:
		logger.Warn("unknown squeue query mode, using auto", "query", truncate(cfg.Query, 40),
			"valid", []string{QueryAuto, QueryJSON, QueryFormat})
		cfg.Query = QueryAuto
	}
	base := baseEnv{path: getenv("PATH"), home: getenv("HOME"), slurmConf: cfg.SlurmConf}
	if base.path == "" {
		base.path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	if base.home == "" {
		base.home = "/"
	}
	b := &Backend{cfg: cfg, base: base, runner: r, log: logger}
	if _, real := r.(execRunner); real && cfg.Prestart {
		b.prestart = &prestarter{
			start:  func() (*prestarted, error) { return startSbatch(cfg.Sbatch, prestartEnv(base)) },
			log:    logger,
			maxAge: prestartMaxAge,
		}
	}
	return b
}

// Close retires the prestarted sbatch, if one is waiting (it exits without
// making a job), and prestarts no more. Submissions after Close start
// their own sbatch.
func (b *Backend) Close() error {
	if b.prestart != nil {
		b.prestart.close()
	}
	return nil
}

// Name implements scheduler.Backend.
func (b *Backend) Name() string { return "cli" }

// Submit runs sbatch --parsable with the script on stdin.
func (b *Backend) Submit(ctx context.Context, job scheduler.JobSpec) (string, error) {
	args, err := sbatchArgs(job)
	if err != nil {
		return "", fmt.Errorf("sbatch: %w", err)
	}
	c := command{path: b.cfg.Sbatch, args: args, env: sbatchEnv(b.base, job), stdin: job.Script}
	res, err := b.run(ctx, "sbatch", c)
	return b.submitted(job, res, err)
}

// SubmitGated implements scheduler.GatedSubmitter: it starts sbatch with
// its arguments at once, calls gate while sbatch starts up (sbatch reads
// its script only after loading libslurm and slurm.conf, 40-55 % into its
// run, and submits only once stdin ends), and sends the script only if
// gate returned nil. Otherwise sbatch's stdin ends empty, sbatch refuses
// the empty script and no job exists. Where the script cannot be sent in
// one write, or the runner cannot hold stdin back, gate is called before
// sbatch starts. With Config.Prestart, a prestarted sbatch, already past
// its start-up, takes the job the same way (gate, then its input) where
// the job allows it (prestart.go).
func (b *Backend) SubmitGated(ctx context.Context, job scheduler.JobSpec, gate func() error) (string, error) {
	called := false
	var gateErr error
	once := func() error {
		called = true
		gateErr = gate()
		return gateErr
	}
	args, err := sbatchArgs(job)
	if err != nil {
		if once() != nil {
			return "", withdrawn(gateErr)
		}
		return "", fmt.Errorf("sbatch: %w", err)
	}
	c := command{path: b.cfg.Sbatch, args: args, env: sbatchEnv(b.base, job), stdin: job.Script}
	var do func(context.Context, command) (result, error)
	warmable := b.prestart != nil && prestartable(job)
	if p, env := b.takePrestarted(warmable, job, c); p != nil {
		c.args = prestartArgs
		do = func(ctx context.Context, c command) (result, error) { return p.submit(ctx, c, env, once) }
	} else if gr, ok := b.runner.(gatedRunner); ok {
		do = func(ctx context.Context, c command) (result, error) { return gr.runGated(ctx, c, once) }
	} else {
		if once() != nil {
			return "", withdrawn(gateErr)
		}
		res, err := b.run(ctx, "sbatch", c)
		return b.submitted(job, res, err)
	}
	res, err := b.runWith(ctx, "sbatch", c, do)
	if warmable {
		time.AfterFunc(prestartDelay, b.prestart.refill)
	}
	if !called {
		// runGated gave up before the gate (its pipe could not be made,
		// or, with the gate first, sbatch could not be started):
		// nothing reached Slurm.
		if once() != nil {
			return "", withdrawn(gateErr)
		}
		if err == nil {
			err = errors.New("sbatch: not run, for no reason given")
		}
		return "", err
	}
	if gateErr == nil {
		return b.submitted(job, res, err)
	}
	// sbatch got an empty script, or never started: it cannot have made a
	// job. If it says it did, a job exists that no caller knows of.
	if id, perr := parseSbatch(res.stdout); err == nil && res.exitCode == 0 && perr == nil {
		b.log.Error("sbatch reported a job although it was sent no script; nothing owns that job, cancel it by hand",
			"job_id", id, "comment", job.Comment, "stderr", truncate(strings.TrimSpace(string(res.stderr)), 1024))
		return "", fmt.Errorf("sbatch: job %s created although no script was sent: %w", id, withdrawn(gateErr))
	}
	b.log.Debug("sbatch withdrawn before its script was sent", "comment", job.Comment, "gate", gateErr,
		"exit", res.exitCode, "stderr", truncate(strings.TrimSpace(string(res.stderr)), 256))
	return "", withdrawn(gateErr)
}

// withdrawn is SubmitGated's error when gate refused the submission.
func withdrawn(gateErr error) error {
	return fmt.Errorf("sbatch: submission withdrawn before the script was sent: %w", gateErr)
}

// submitted reads sbatch's answer to a submission.
func (b *Backend) submitted(job scheduler.JobSpec, res result, err error) (string, error) {
	if err != nil {
		return "", err
	}
	if res.exitCode != 0 {
		return "", toolError("sbatch", res, scheduler.ErrRejected)
	}
	id, err := parseSbatch(res.stdout)
	if err != nil {
		// sbatch said it succeeded; a job may exist. Neither sentinel:
		// the caller must look for it (FindByComment), not resubmit blindly.
		return "", fmt.Errorf("sbatch: %w", err)
	}
	if msg := strings.TrimSpace(string(res.stderr)); msg != "" {
		b.log.Warn("sbatch succeeded with messages", "job_id", id, "stderr", truncate(msg, 1024))
	}
	b.log.Debug("submitted", "job_id", id, "name", job.Name, "comment", job.Comment)
	return id, nil
}

// Jobs lists every job with one squeue call and keeps those in ids.
func (b *Backend) Jobs(ctx context.Context, ids []string) ([]scheduler.JobStatus, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[strings.TrimSpace(id)] = true
	}
	return b.list(ctx, func(id string) bool { return want[id] }, func(st scheduler.JobStatus) bool { return want[st.JobID] })
}

// FindByComment lists every job with one squeue call and keeps those whose
// comment starts with prefix.
func (b *Backend) FindByComment(ctx context.Context, prefix string) ([]scheduler.JobStatus, error) {
	return b.list(ctx, func(string) bool { return false }, func(st scheduler.JobStatus) bool {
		return strings.HasPrefix(st.Comment, prefix)
	})
}

// list runs squeue once and returns the jobs keep accepts, reading squeue's
// JSON or delimited output as Config.Query says. In QueryAuto, the one call
// that finds squeue unable to print JSON runs squeue a second time, in the
// format query, and so do all later calls.
func (b *Backend) list(ctx context.Context, mustRead func(id string) bool, keep func(scheduler.JobStatus) bool) ([]scheduler.JobStatus, error) {
	if b.cfg.Query == QueryFormat || b.noJSON.Load() {
		return b.listFormat(ctx, mustRead, keep)
	}
	jobs, err := b.listJSON(ctx)
	if err == nil {
		var out []scheduler.JobStatus
		for _, st := range jobs {
			if keep(st) {
				out = append(out, st)
			}
		}
		return out, nil
	}
	if !errors.Is(err, errNoJSON) {
		return nil, err
	}
	if b.cfg.Query == QueryJSON {
		return nil, fmt.Errorf("%w (query mode %q; %q or %q would fall back to squeue --Format)", err, QueryJSON, QueryAuto, QueryFormat)
	}
	if b.noJSON.CompareAndSwap(false, true) {
		b.log.Warn("squeue cannot print JSON; listing jobs with squeue --Format from now on (2 slurmctld RPCs per listing instead of 1)",
			"squeue", b.cfg.Squeue, "error", err)
	}
	return b.listFormat(ctx, mustRead, keep)
}

// errNoJSON means a tool (squeue, scontrol) cannot print JSON at all: it
// does not know --json, or a plugin it needs for it is missing.
var errNoJSON = errors.New("cannot print JSON")

// listJSON runs squeue --json once and returns every job it lists, with
// slurmcli's rules applied (finalizeStatus). The document is read by
// slurmjson.ParseJobs, the parser of slurmrestd's listings: squeue --json
// prints the same openapi/data_parser document. A job without a usable id
// is skipped there; a document that is not a job listing fails the call.
func (b *Backend) listJSON(ctx context.Context) ([]scheduler.JobStatus, error) {
	res, err := b.run(ctx, "squeue", command{path: b.cfg.Squeue, args: squeueJSONArgs(), env: toolEnv(b.base)})
	if err != nil {
		return nil, err
	}
	if res.exitCode != 0 {
		stderr := string(res.stderr)
		if !isUnavailable(stderr) && isNoJSON(stderr) {
			return nil, fmt.Errorf("squeue: %w: %s", errNoJSON, toolMessage("squeue", res.stderr))
		}
		// 22.05 reports a failed listing on stderr, as the format query
		// does; a newer squeue may put it in the document's "errors"
		// instead (not seen here), which must not read as a refusal.
		if !isUnavailable(stderr) && isUnavailable(string(res.stdout)) {
			return nil, fmt.Errorf("squeue: %w: %s", scheduler.ErrUnavailable, truncate(strings.Join(strings.Fields(string(res.stdout)), " "), 512))
		}
		return nil, toolError("squeue", res, nil)
	}
	jobs, errs, err := slurmjson.ParseJobList(res.stdout)
	if len(errs) > 0 {
		return nil, unavailable("squeue", errs)
	}
	if err != nil {
		return nil, fmt.Errorf("squeue --json: %w (output starts %q)", err, truncate(string(res.stdout), 120))
	}
	for i := range jobs {
		jobs[i] = finalizeStatus(jobs[i])
	}
	return jobs, nil
}

// documentErrors returns a scheduler.ErrUnavailable error when a tool's JSON
// output carries Slurm errors. With slurmctld down, squeue --json, sinfo
// --json and scontrol --json exit 0 and print an empty list next to an
// "errors" entry (captured on 22.05, 24.11 and 26.05): that is no listing
// at all, never "no jobs" or "no nodes". Whatever the error, nothing was
// asked that Slurm could refuse on its merits.
func documentErrors(tool string, stdout []byte) error {
	errs, _ := slurmjson.ParseErrors(stdout)
	if len(errs) == 0 {
		return nil
	}
	return unavailable(tool, errs)
}

// unavailable is documentErrors' error for the errors a document carried.
func unavailable(tool string, errs []slurmjson.Error) error {
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.String()
	}
	return fmt.Errorf("%s --json: %w: %s", tool, scheduler.ErrUnavailable, truncate(strings.Join(msgs, "; "), 512))
}

// listFormat runs squeue --Format once and returns the jobs keep accepts. A
// malformed record is skipped with a warning unless its job id is one
// mustRead accepts: then the whole call fails rather than report that job
// absent.
func (b *Backend) listFormat(ctx context.Context, mustRead func(id string) bool, keep func(scheduler.JobStatus) bool) ([]scheduler.JobStatus, error) {
	res, err := b.run(ctx, "squeue", command{path: b.cfg.Squeue, args: squeueArgs(), env: toolEnv(b.base)})
	if err != nil {
		return nil, err
	}
	if res.exitCode != 0 {
		return nil, toolError("squeue", res, nil)
	}
	var out []scheduler.JobStatus
	for _, rec := range parseSqueue(res.stdout, b.cfg.Location) {
		if rec.err != nil {
			if mustRead(rec.status.JobID) {
				return nil, fmt.Errorf("squeue: %w", rec.err)
			}
			b.log.Warn("skipping unreadable squeue record", "error", rec.err)
			continue
		}
		if keep(rec.status) {
			out = append(out, rec.status)
		}
	}
	return out, nil
}

// Cancel runs scancel. A job that has ended or that Slurm has forgotten is
// not an error (scancel itself exits 0 for both in 22.05).
func (b *Backend) Cancel(ctx context.Context, jobID string) error {
	if !isJobID(jobID) {
		return fmt.Errorf("scancel: %w: %q is not a job id", scheduler.ErrRejected, truncate(jobID, 40))
	}
	res, err := b.run(ctx, "scancel", command{path: b.cfg.Scancel, args: []string{jobID}, env: toolEnv(b.base)})
	if err != nil {
		return err
	}
	if res.exitCode == 0 || isGoneJob(string(res.stderr)) {
		return nil
	}
	return toolError("scancel", res, nil)
}

// Ping asks slurmctld whether it is up (scontrol ping), for health checks,
// and then (at most every 10 minutes) whether the Slurm tools may talk to
// it: an error wrapping ErrIncompatibleClient when Slurm's compatibility
// window says no (see CheckCompatible).
func (b *Backend) Ping(ctx context.Context) error {
	res, err := b.run(ctx, "scontrol", command{path: b.cfg.Scontrol, args: []string{"ping"}, env: toolEnv(b.base)})
	if err != nil {
		return err
	}
	// "Slurmctld(primary) at vm is UP"; exit status 1 and "DOWN" when not.
	if res.exitCode != 0 || !strings.Contains(string(res.stdout), " is UP") {
		return fmt.Errorf("scontrol ping: %w: %s", scheduler.ErrUnavailable,
			truncate(strings.TrimSpace(string(res.stdout)+" "+toolMessage("scontrol", res.stderr)), 512))
	}
	// slurmctld answers: check that the tools' release may talk to it, so
	// that a mismatch is said at start, not by the first sbatch.
	return b.checkVersions(ctx)
}

// run runs c under the per-command timeout. Failing to start the tool, a
// timeout and a kill are ErrUnavailable; the caller's own cancellation is
// returned as such.
func (b *Backend) run(ctx context.Context, tool string, c command) (result, error) {
	return b.runWith(ctx, tool, c, b.runner.run)
}

// runWith is run with the command run by do.
func (b *Backend) runWith(ctx context.Context, tool string, c command, do func(context.Context, command) (result, error)) (result, error) {
	cctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	start := time.Now()
	res, err := do(cctx, c)
	took := time.Since(start)
	b.log.Debug("slurm command", "tool", tool, "args", len(c.args), "exit", res.exitCode, "took", took, "error", err)
	if err == nil {
		return res, nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return res, fmt.Errorf("%s: %w", tool, ctxErr)
	}
	if errors.Is(cctx.Err(), context.DeadlineExceeded) {
		return res, fmt.Errorf("%s: %w: no answer within %s", tool, scheduler.ErrUnavailable, b.cfg.Timeout)
	}
	return res, fmt.Errorf("%s: %w: %w", tool, scheduler.ErrUnavailable, err)
}

// toolError turns a non-zero exit into an error: ErrUnavailable when the
// tool says slurmctld could not be reached, else refusal (nil: a plain
// error) with the tool's message.
func toolError(tool string, res result, refusal error) error {
	msg := toolMessage(tool, res.stderr)
	if isUnavailable(string(res.stderr)) {
		return fmt.Errorf("%s: %w: %s", tool, scheduler.ErrUnavailable, msg)
	}
	if refusal != nil {
		return fmt.Errorf("%s: %w: %s", tool, refusal, msg)
	}
	return fmt.Errorf("%s: exit status %d: %s", tool, res.exitCode, msg)
}
