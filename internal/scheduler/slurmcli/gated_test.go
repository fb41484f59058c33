package slurmcli

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/scheduler"
)

// fakeSbatch writes an sbatch stand-in into a new directory and returns
// its path and the directory. It creates the file "started" there first
// thing, copies its stdin to the file "stdin", and then runs answer: by
// default, sbatch's own behaviour, which refuses an empty script and
// otherwise prints a job id.
func fakeSbatch(t *testing.T, answer string) (path, dir string) {
	t.Helper()
	dir = t.TempDir()
	if answer == "" {
		answer = `if [ ! -s "$d/stdin" ]; then
	echo 'sbatch: error: Batch script is empty!' >&2
	exit 1
fi
echo 4242`
	}
	script := "#!/bin/sh\nd='" + dir + "'\n: > \"$d/started\"\ncat > \"$d/stdin\"\n" + answer + "\n"
	path = filepath.Join(dir, "sbatch")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path, dir
}

// execBackend is a Backend that runs the tools for real, with r.
func execBackend(sbatch string, r execRunner) *Backend {
	return newBackend(Config{Sbatch: sbatch, Timeout: 20 * time.Second}, nil, r, os.Getenv)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// waitForFile waits until path exists, at most 10 s.
func waitForFile(path string) error {
	for deadline := time.Now().Add(10 * time.Second); !exists(path); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			return errors.New(path + " did not appear within 10 s")
		}
	}
	return nil
}

func gatedJob(scriptSize int) scheduler.JobSpec {
	job := scheduler.JobSpec{Name: "gated", Comment: "sopilot:run=r-gated", Script: "#!/bin/sh\ntrue\n"}
	if scriptSize > len(job.Script) {
		job.Script += "# " + strings.Repeat("x", scriptSize-len(job.Script)-3) + "\n"
	}
	return job
}

func TestSubmitGatedSendsTheScriptOnlyAfterTheGate(t *testing.T) {
	// 256 KiB is four times a new pipe's capacity: only a pipe grown by
	// F_SETPIPE_SZ takes it in one write.
	for _, size := range []int{0, 256 << 10} {
		job := gatedJob(size)
		sbatch, dir := fakeSbatch(t, "")
		b := execBackend(sbatch, execRunner{})
		calls := 0
		id, err := b.SubmitGated(context.Background(), job, func() error {
			calls++
			// sbatch runs while the gate does: the point of it all.
			if err := waitForFile(filepath.Join(dir, "started")); err != nil {
				return err
			}
			// ... and has received nothing yet: its copy of stdin
			// is still empty (cat has not seen EOF).
			if got, _ := os.ReadFile(filepath.Join(dir, "stdin")); len(got) != 0 {
				t.Errorf("sbatch read %d bytes before the gate opened", len(got))
			}
			return nil
		})
		if err != nil || id != "4242" {
			t.Fatalf("script of %d bytes: SubmitGated = %q, %v; want 4242", len(job.Script), id, err)
		}
		if calls != 1 {
			t.Errorf("gate called %d times, want 1", calls)
		}
		got, err := os.ReadFile(filepath.Join(dir, "stdin"))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != job.Script {
			t.Errorf("sbatch read %d bytes, want the script's %d byte for byte", len(got), len(job.Script))
		}
	}
}

func TestSubmitGatedRefusedGateSendsNothing(t *testing.T) {
	sbatch, dir := fakeSbatch(t, "")
	b := execBackend(sbatch, execRunner{})
	refused := errors.New("record run: disk full")
	calls := 0
	id, err := b.SubmitGated(context.Background(), gatedJob(0), func() error {
		calls++
		return refused
	})
	if !errors.Is(err, refused) || id != "" {
		t.Fatalf("SubmitGated = %q, %v; want no id and the gate's error", id, err)
	}
	if errors.Is(err, scheduler.ErrRejected) || errors.Is(err, scheduler.ErrUnavailable) {
		t.Errorf("err %v reads as Slurm's answer; it is the gate's", err)
	}
	if calls != 1 {
		t.Errorf("gate called %d times, want 1", calls)
	}
	// sbatch did run (it was started before the gate) and was reaped
	// having read an empty script.
	got, rerr := os.ReadFile(filepath.Join(dir, "stdin"))
	if rerr != nil || len(got) != 0 {
		t.Errorf("sbatch's stdin: %d bytes (%v), want an empty file", len(got), rerr)
	}
}

func TestSubmitGatedJobDespiteEmptyScriptIsAnError(t *testing.T) {
	// An sbatch that would submit an empty script: the serious bug the
	// gate must not hide.
	sbatch, _ := fakeSbatch(t, "echo 777")
	b := execBackend(sbatch, execRunner{})
	refused := errors.New("duplicate request")
	id, err := b.SubmitGated(context.Background(), gatedJob(0), func() error { return refused })
	if id != "" || !errors.Is(err, refused) || !strings.Contains(err.Error(), "job 777 created") {
		t.Fatalf("SubmitGated = %q, %v; want an error naming job 777 and wrapping the gate's", id, err)
	}
}

func TestSubmitGatedGateFirstWhenThePipeIsTooSmall(t *testing.T) {
	small := execRunner{pipeSize: func(*os.File, int) (int, error) { return 4096, nil }}
	job := gatedJob(10 << 10)

	sbatch, dir := fakeSbatch(t, "")
	calls := 0
	id, err := execBackend(sbatch, small).SubmitGated(context.Background(), job, func() error {
		calls++
		if exists(filepath.Join(dir, "started")) {
			t.Error("sbatch started before the gate was called")
		}
		return nil
	})
	if err != nil || id != "4242" || calls != 1 {
		t.Fatalf("SubmitGated = %q, %v, gate called %d times; want 4242, once", id, err, calls)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "stdin")); string(got) != job.Script {
		t.Errorf("sbatch read %d bytes, want the script's %d", len(got), len(job.Script))
	}

	// Refused: sbatch never starts.
	sbatch, dir = fakeSbatch(t, "")
	refused := errors.New("no")
	id, err = execBackend(sbatch, small).SubmitGated(context.Background(), job, func() error { return refused })
	if id != "" || !errors.Is(err, refused) {
		t.Fatalf("SubmitGated = %q, %v; want the gate's error", id, err)
	}
	if exists(filepath.Join(dir, "started")) {
		t.Error("sbatch ran although the gate refused first")
	}
}

func TestSubmitGatedCancellationKillsSbatch(t *testing.T) {
	sbatch, _ := fakeSbatch(t, "exec sleep 30")
	b := execBackend(sbatch, execRunner{})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := b.SubmitGated(ctx, gatedJob(0), func() error { return nil })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the context's deadline", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("SubmitGated returned after %s; sbatch was not killed", took)
	}
}

func TestSubmitGatedUnstartableSbatchStillCallsTheGate(t *testing.T) {
	b := execBackend(filepath.Join(t.TempDir(), "no-such-sbatch"), execRunner{})
	calls := 0
	_, err := b.SubmitGated(context.Background(), gatedJob(0), func() error { calls++; return nil })
	if !errors.Is(err, scheduler.ErrUnavailable) || calls != 1 {
		t.Fatalf("err = %v, gate called %d times; want ErrUnavailable after one call", err, calls)
	}
}

// A runner that cannot hold stdin back (the fakes) gets the old order.
func TestSubmitGatedWithAPlainRunnerCallsTheGateFirst(t *testing.T) {
	calls := 0
	r := &fakeRunner{reply: func(context.Context, command) (result, error) {
		if calls != 1 {
			t.Errorf("sbatch ran after %d gate calls, want 1", calls)
		}
		return result{stdout: []byte("55\n")}, nil
	}}
	b := newTestBackend(Config{}, r)
	id, err := b.SubmitGated(context.Background(), seedJob(), func() error { calls++; return nil })
	if err != nil || id != "55" || len(r.calls) != 1 || r.calls[0].stdin != seedJob().Script {
		t.Fatalf("SubmitGated = %q, %v after %d commands", id, err, len(r.calls))
	}

	refused := errors.New("no")
	r = &fakeRunner{}
	b = newTestBackend(Config{}, r)
	if _, err := b.SubmitGated(context.Background(), seedJob(), func() error { return refused }); !errors.Is(err, refused) || len(r.calls) != 0 {
		t.Fatalf("refused gate: err %v, %d commands run; want the gate's error and none", err, len(r.calls))
	}

	// A spec sbatch must not see is refused after the gate, as Submit
	// would after the caller's own first step.
	calls = 0
	bad := seedJob()
	bad.Script = ""
	if _, err := b.SubmitGated(context.Background(), bad, func() error { calls++; return nil }); !errors.Is(err, scheduler.ErrRejected) || calls != 1 || len(r.calls) != 0 {
		t.Fatalf("bad spec: err %v, gate called %d times, %d commands; want ErrRejected, 1, 0", err, calls, len(r.calls))
	}
}
