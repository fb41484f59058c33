package attrib

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/slurmtest"
)

// TestSlurmJob runs a real batch job on the local cluster (whose slurmd
// daemons run on this host, so the job's processes are in this /proc) and
// checks that the job's sleep process is attributed to it.
func TestSlurmJob(t *testing.T) {
	cluster := slurmtest.Require(t)
	slurm := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Env = cluster.Environ()
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}

	out, err := slurm("sbatch", "--parsable", "--job-name", "attrib-test",
		"--output", filepath.Join(cluster.WorkDir, "attrib-test-%j.out"), "--wrap", "sleep 300")
	if err != nil {
		t.Fatalf("sbatch: %v: %s", err, out)
	}
	jobID, _, _ := strings.Cut(out, ";") // --parsable: "id" or "id;cluster"
	t.Cleanup(func() {
		if out, err := slurm("scancel", jobID); err != nil {
			t.Errorf("scancel %s: %v: %s", jobID, err, out)
		}
		_ = os.Remove(filepath.Join(cluster.WorkDir, "attrib-test-"+jobID+".out"))
	})

	// Wait for the job's sleep to appear among the job's processes, as
	// slurmstepd reports them. Every slurmd of the local cluster runs on
	// this host, so listpids must name the job's node: without it scontrol
	// asks whichever slurmd it finds first, which knows nothing of a job on
	// another node. The job sleeps far longer than the wait, so a slow start
	// on a busy machine cannot let it finish unseen; cleanup cancels it.
	var sleepPid int32
	const wait = 120 * time.Second
	deadline := time.Now().Add(wait)
	for sleepPid == 0 {
		if time.Now().After(deadline) {
			state, _ := slurm("squeue", "-h", "-j", jobID, "-o", "%T %R %N")
			t.Fatalf("job %s: no sleep process after %v (squeue: %s)", jobID, wait, state)
		}
		time.Sleep(500 * time.Millisecond)
		node, err := slurm("squeue", "-h", "-j", jobID, "-t", "RUNNING", "-o", "%N")
		if err != nil || node == "" {
			continue // not running yet
		}
		out, err := slurm("scontrol", "listpids", jobID, node)
		if err != nil {
			continue // running, but its step not started yet
		}
		for _, line := range strings.Split(out, "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 2 || f[1] != jobID {
				continue
			}
			pid, err := strconv.ParseInt(f[0], 10, 32)
			if err != nil {
				continue
			}
			if comm, _ := os.ReadFile("/proc/" + f[0] + "/comm"); strings.TrimSpace(string(comm)) == "sleep" {
				sleepPid = int32(pid)
			}
		}
	}

	cg, err := os.ReadFile("/proc/" + strconv.Itoa(int(sleepPid)) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	viaCgroup, ok := ParseCgroup(cg)
	t.Logf("job %s, sleep pid %d; cgroup (Slurm job found: %v):\n%s", jobID, sleepPid, ok, cg)
	if ok && viaCgroup != jobID {
		t.Errorf("ParseCgroup = %q, want %q", viaCgroup, jobID)
	}

	r := New("")
	got, err := r.JobOf(sleepPid)
	if err != nil || got != jobID {
		t.Fatalf("JobOf(%d) = %q, %v; want %q", sleepPid, got, err, jobID)
	}
	// A process of this host outside the job: this test.
	if got, err := r.JobOf(int32(os.Getpid())); err != nil || got != os.Getenv("SLURM_JOB_ID") {
		t.Errorf("JobOf(self) = %q, %v", got, err)
	}
	if got := r.JobsOf([]int32{sleepPid, int32(os.Getpid())}); got[sleepPid] != jobID {
		t.Errorf("JobsOf = %v", got)
	}
}
