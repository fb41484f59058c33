package slurmcli

// Prestarted sbatch (Config.Prestart).
//
// sbatch spends the first third of its run starting up (loading libslurm
// and its plugins, reading slurm.conf) before it reads its script: 2-3 ms
// of a 6-9 ms submission on a small machine. A prestarted sbatch has done
// that before the submission arrives. It is started with arguments that are
// the same for every job, prestartArgs, and waits for its script on stdin
// and for the job's environment on descriptor 3. Everything that differs
// between jobs travels in those two: the options as the script's #SBATCH
// lines (scheduler.RenderScript writes exactly the lines JobSpec.Options
// gives, right after the #! line; any other script is submitted cold), the
// environment as sbatch's --export-file format (NAME=value definitions
// separated by NUL bytes, which carries any byte but NUL). The job is the
// one a cold sbatch with the options on its command line makes:
// TestLivePrestartedMakesTheSameJob compares the two on every Slurm
// version, field by field and by the environment the job sees.
//
// Crash safety is the gated submission's (see execRunner.runGated): the
// environment, then the script, each go into a pipe that holds all of it
// in one write, and only once the gate has returned nil. A controller that
// dies before the script's write leaves sbatch an empty script, which it
// refuses. A prestarted sbatch older than prestartMaxAge is retired the same
// way (its pipes closed: it refuses the empty script and exits) and
// replaced, so none submits with a slurm.conf read long ago.

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/sopilot/sopilot/internal/scheduler"
)

const (
	// prestartMaxAge is how long a prestarted sbatch may wait for a job.
	prestartMaxAge = 30 * time.Second
	// prestartIdle: after this long without a submission, a retired
	// sbatch is not replaced; the next submission starts cold.
	prestartIdle = 10 * time.Minute
	// prestartDelay: a replacement starts this long after a submission,
	// once the caller has had its answer. Started at once, on a machine
	// with no core to spare, sbatch's start-up would delay that answer.
	prestartDelay = 5 * time.Millisecond
)

// retireGrace: a retired sbatch that has not exited this long after its
// input ended (stuck before reading it: a hung file system, an unreachable
// slurmctld in configless mode) is killed. A variable for the tests.
var retireGrace = 10 * time.Second

// prestartArgs are a prestarted sbatch's arguments: the job's environment
// is read from descriptor 3 (exec.Cmd.ExtraFiles[0]). Given an export
// file, sbatch passes the job that file's variables and its own SLURM_*
// ones, and nothing of its own environment (seen on 22.05 and 24.11).
var prestartArgs = []string{"--parsable", "--export=ALL", "--export-file=3"}

// prestarted is one sbatch waiting for a job.
type prestarted struct {
	cmd            *exec.Cmd
	script, env    *os.File // write ends of its stdin and its descriptor 3
	stdout, stderr *bytes.Buffer
	born           time.Time
	retired        sync.Once
	done           chan struct{} // closed once it has exited and been reaped
	waitErr        error         // cmd.Wait's, set before done is closed
}

// startSbatch starts sbatch at path with prestartArgs and environment env.
func startSbatch(path string, env []string) (*prestarted, error) {
	sr, sw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	er, ew, err := os.Pipe()
	if err != nil {
		sr.Close()
		sw.Close()
		return nil, err
	}
	p := &prestarted{script: sw, env: ew, born: time.Now(), done: make(chan struct{})}
	// No context: it outlives the call that started it; submit kills it
	// when its caller's context ends.
	cmd, stdout, stderr := newCmd(context.Background(), command{path: path, args: prestartArgs, env: env})
	p.stdout, p.stderr = stdout, stderr
	cmd.Stdin = sr
	cmd.ExtraFiles = []*os.File{er}
	err = cmd.Start()
	// The child has its own copies; ours would hide EOF from it.
	sr.Close()
	er.Close()
	if err != nil {
		sw.Close()
		ew.Close()
		return nil, err
	}
	p.cmd = cmd
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *prestarted) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// retire ends its input: sbatch reads whatever was written (nothing, if
// retired unused, and refuses the empty script) and exits; if it has not
// within retireGrace, it is killed. Only the first call does anything.
func (p *prestarted) retire() {
	p.retired.Do(func() {
		p.env.Close()
		p.script.Close()
		time.AfterFunc(retireGrace, func() {
			if !p.exited() {
				_ = p.cmd.Process.Kill()
			}
		})
	})
}

// fits says whether env and script each fit in their pipe, growing the
// pipes if need be: only then does each go in one write.
func (p *prestarted) fits(env, script string) bool {
	ce, err := growPipe(p.env, len(env))
	if err != nil || ce < len(env) {
		return false
	}
	cs, err := growPipe(p.script, len(script))
	return err == nil && cs >= len(script)
}

// submit calls gate and, only if it returns nil, sends env and then script,
// each in one write; then it waits for sbatch to exit. ctx ending kills it,
// as exec.CommandContext would.
func (p *prestarted) submit(ctx context.Context, c command, env string, gate func() error) (result, error) {
	stop := context.AfterFunc(ctx, func() { _ = p.cmd.Process.Kill() })
	defer stop()
	defer p.retire() // should gate panic
	var werr error
	if gate() == nil {
		// The environment first: dying between the two writes leaves
		// sbatch an environment and an empty script, which it refuses;
		// the other order would leave a whole script and a job without
		// its environment.
		werr = writeOnce(p.env, env)
		if werr == nil {
			werr = writeOnce(p.script, c.stdin)
		}
	}
	p.retire()
	<-p.done
	res, err := exitResult(c, p.stdout, p.stderr, p.waitErr)
	if err == nil && werr != nil && res.exitCode == 0 {
		return res, fmt.Errorf("run %s: write its input: %w", c.path, werr)
	}
	return res, err
}

// optionEnv is what sbatch adds to the job's environment for options on
// its command line and not for the same options in the script (its
// _opt_verify, which slurmrestd mirrors too): the job's name and
// dependency, of the options sopilot passes.
func optionEnv(job scheduler.JobSpec) []string {
	var env []string
	for _, o := range job.Options() {
		switch o.Name {
		case "job-name":
			env = append(env, "SLURM_JOB_NAME="+o.Value)
		case "dependency":
			env = append(env, "SLURM_JOB_DEPENDENCY="+o.Value)
		}
	}
	return env
}

// exportFile is env in sbatch's --export-file format.
func exportFile(env []string) string {
	var b strings.Builder
	for _, kv := range env {
		b.WriteString(kv)
		b.WriteByte(0)
	}
	return b.String()
}

// prestartable says whether job can go to a prestarted sbatch: its script
// starts with a #! line and then exactly the #SBATCH lines of its options,
// every option value is one that sbatch reads the same from a script as
// from its command line (RenderScript refuses the others), and no other
// #SBATCH line follows (on the command line the options would override
// it; in the script it would override them).
func prestartable(job scheduler.JobSpec) bool {
	for _, o := range job.Options() {
		if scheduler.DirectiveValueProblem(o.Value) != "" {
			return false
		}
	}
	d := scheduler.Directives(job)
	first, rest, ok := strings.Cut(job.Script, "\n")
	if !ok || !strings.HasPrefix(first, "#!") || !strings.HasPrefix(rest, d) {
		return false
	}
	// sbatch reads #SBATCH lines up to the first line that is neither
	// blank nor a comment.
	for rest = rest[len(d):]; rest != ""; {
		var line string
		line, rest, _ = strings.Cut(rest, "\n")
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "#SBATCH") {
			return false
		}
		if t != "" && !strings.HasPrefix(t, "#") {
			break
		}
	}
	return true
}

// prestarter keeps at most one sbatch started ahead of the next
// submission. It starts the first after the first submission, replaces
// each one used or retired, and stops replacing them once submissions
// have stopped for prestartIdle.
type prestarter struct {
	start  func() (*prestarted, error)
	log    *slog.Logger
	maxAge time.Duration

	mu       sync.Mutex
	ready    *prestarted
	starting bool
	closed   bool
	lastUse  time.Time
	// running counts the sbatch processes started and not yet reaped;
	// close waits for them. Add happens under mu while not closed.
	running sync.WaitGroup
}

// take returns the waiting sbatch, or nil if there is none fit to use
// (then the caller starts one cold). Either way, it is no longer waiting.
func (ps *prestarter) take() *prestarted {
	ps.mu.Lock()
	p := ps.ready
	ps.ready = nil
	ps.lastUse = time.Now()
	ps.mu.Unlock()
	if p == nil {
		return nil
	}
	if p.exited() {
		p.retire() // its pipes
		ps.log.Warn("a prestarted sbatch exited before it was used; submitting cold",
			"stderr", truncate(strings.TrimSpace(p.stderr.String()), 512), "error", p.waitErr)
		return nil
	}
	if time.Since(p.born) > ps.maxAge { // its timer has not retired it yet
		p.retire()
		return nil
	}
	return p
}

// refill starts a sbatch to wait for the next job, unless one is waiting
// or starting, or the prestarter is closed.
func (ps *prestarter) refill() {
	ps.mu.Lock()
	if ps.ready != nil || ps.starting || ps.closed {
		ps.mu.Unlock()
		return
	}
	ps.starting = true
	ps.running.Add(1)
	ps.mu.Unlock()
	p, err := ps.start()
	if err != nil {
		ps.running.Done()
	} else {
		go func() {
			<-p.done
			ps.running.Done()
		}()
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.starting = false
	if err != nil {
		ps.log.Warn("could not prestart sbatch; submissions start it themselves", "error", err)
		return
	}
	if ps.closed {
		p.retire()
		return
	}
	ps.ready = p
	time.AfterFunc(ps.maxAge, func() { ps.expire(p) })
}

// expire retires p if it is still waiting, and replaces it while
// submissions keep coming.
func (ps *prestarter) expire(p *prestarted) {
	ps.mu.Lock()
	mine := ps.ready == p
	if mine {
		ps.ready = nil
	}
	busy := time.Since(ps.lastUse) < prestartIdle
	ps.mu.Unlock()
	if mine {
		p.retire()
		if busy {
			ps.refill()
		}
	}
}

// close retires the waiting sbatch, starts no more, and waits until every
// sbatch it started has exited (at most retireGrace, then killed).
func (ps *prestarter) close() {
	ps.mu.Lock()
	p := ps.ready
	ps.ready, ps.closed = nil, true
	ps.mu.Unlock()
	if p != nil {
		p.retire()
	}
	ps.running.Wait()
}

// prestartEnv is a prestarted sbatch's own environment: SLURM_CONF alone,
// to find slurm.conf. The job's comes in its export file: sbatchEnv, which
// a cold sbatch gets as its own environment and passes on.
func prestartEnv(base baseEnv) []string {
	if base.slurmConf == "" {
		return []string{}
	}
	return []string{"SLURM_CONF=" + base.slurmConf}
}

// takePrestarted returns a prestarted sbatch ready for job, with c's
// environment in export-file form, or nil: ok is false (prestarting is
// off, or job is not prestartable), none is waiting, or its pipes cannot
// hold the job.
func (b *Backend) takePrestarted(ok bool, job scheduler.JobSpec, c command) (*prestarted, string) {
	if !ok {
		return nil, ""
	}
	p := b.prestart.take()
	if p == nil {
		return nil, ""
	}
	env := exportFile(append(c.env, optionEnv(job)...))
	if !p.fits(env, c.stdin) {
		p.retire()
		return nil, ""
	}
	return p, env
}
