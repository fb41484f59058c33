package attrib

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestParseCgroup(t *testing.T) {
	for _, tc := range []struct {
		name, data, want string
	}{
		{"v1 task", "12:pids:/\n4:devices:/slurm/uid_1000/job_1234/step_0/task_0\n1:name=systemd:/system.slice/slurmd.service\n", "1234"},
		{"v1 batch step", "7:freezer:/slurm/uid_0/job_77/step_batch\n", "77"},
		{"v1 extern step", "3:cpuset:/slurm/uid_1000/job_9/step_extern\n", "9"},
		{"v1 job level", "5:memory:/slurm/uid_1000/job_4294967295\n", "4294967295"},
		{"v1 templated node", "4:devices:/slurm_worker-0/uid_1000/job_55/step_0/task_3\n", "55"},
		{"v1 templated node, systemd slice", "4:devices:/system.slice/slurm_gpu17/uid_1000/job_56/step_0\n", "56"},
		{"v2 task", "0::/system.slice/slurmstepd.scope/job_1234/step_batch/user/task_0\n", "1234"},
		{"v2 stepd", "0::/system.slice/slurmstepd.scope/job_1234/step_0/slurm\n", "1234"},
		{"v2 templated node", "0::/system.slice/worker-1_slurmstepd.scope/job_88/step_0/user/task_1\n", "88"},
		{"v2 slurm layout", "0::/slurm/uid_0/job_12/step_0\n", "12"},
		{"v2 nested in container", "0::/kubepods/burstable/pod1/abc/system.slice/slurmstepd.scope/job_31/step_1/user/task_0", "31"},
		{"leading zeros normalised", "0::/slurm/uid_0/job_0042/step_0\n", "42"},
		{"crlf", "0::/slurm/uid_0/job_12/step_0\r\n", "12"},
		{"colon in path", "0::/odd:dir/slurm/uid_0/job_13\n", "13"},
		{"first line wins", "4:devices:/slurm/uid_0/job_1/step_0\n0::/slurm/uid_0/job_2/step_0\n", "1"},
		{"not slurm", "12:pids:/user.slice/user-1000.slice\n0::/user.slice/user-1000.slice/session-3.scope\n", ""},
		{"job_ without slurm above", "0::/system.slice/job_12/step_0\n", ""},
		{"job dir above slurm", "0::/job_12/slurm/uid_0\n", ""},
		{"array-style id rejected", "0::/slurm/uid_0/job_12_3/step_0\n", ""},
		{"zero job", "0::/slurm/uid_0/job_0/step_0\n", ""},
		{"too large", "0::/slurm/uid_0/job_4294967296/step_0\n", ""},
		{"slurmd's own cgroup", "0::/system.slice/slurmd.service\n", ""},
		{"slurmstepd not a job", "0::/system.slice/slurmstepd.scope/system\n", ""},
		{"no colons", "/slurm/uid_0/job_12\n", ""},
		{"empty", "", ""},
		{"local cluster", "9:name=systemd:/\n8:pids:/\n7:blkio:/\n6:freezer:/\n5:devices:/\n4:memory:/process_api/5da914a6\n3:cpuset:/\n2:cpuacct:/\n1:cpu:/\n0::/\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ParseCgroup([]byte(tc.data))
			if got != tc.want || ok != (tc.want != "") {
				t.Errorf("ParseCgroup = %q, %v; want %q", got, ok, tc.want)
			}
		})
	}
}

func env(kv ...string) string { return strings.Join(kv, "\x00") + "\x00" }

func TestParseEnviron(t *testing.T) {
	for _, tc := range []struct {
		name, data, want string
	}{
		{"job id", env("PATH=/bin", "SLURM_JOB_ID=1234", "HOME=/root"), "1234"},
		{"old name only", env("SLURM_JOBID=99"), "99"},
		{"both, old first (as srun sets them)", env("SLURM_JOBID=5248", "SLURM_JOB_ID=5248"), "5248"},
		{"prefer SLURM_JOB_ID", env("SLURM_JOBID=1", "SLURM_JOB_ID=2"), "2"},
		{"invalid SLURM_JOB_ID, valid SLURM_JOBID", env("SLURM_JOB_ID=abc", "SLURM_JOBID=3"), "3"},
		{"first occurrence wins", env("SLURM_JOB_ID=4", "SLURM_JOB_ID=5"), "4"},
		{"no trailing NUL", "A=b\x00SLURM_JOB_ID=6", "6"},
		{"similar names", env("XSLURM_JOB_ID=7", "SLURM_JOB_IDX=8", "SLURM_JOB_NAME=9", "SLURM_ARRAY_JOB_ID=10"), ""},
		{"empty value", env("SLURM_JOB_ID="), ""},
		{"array-style value", env("SLURM_JOB_ID=12_3"), ""},
		{"zero", env("SLURM_JOB_ID=0"), ""},
		{"none", env("PATH=/bin"), ""},
		{"empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ParseEnviron([]byte(tc.data))
			if got != tc.want || ok != (tc.want != "") {
				t.Errorf("ParseEnviron = %q, %v; want %q", got, ok, tc.want)
			}
		})
	}
}

func TestParseStartTime(t *testing.T) {
	// The command name may contain spaces and parentheses.
	line := statLine(42, "py (worker) 1", 987654)
	got, err := parseStartTime([]byte(line))
	if err != nil || got != 987654 {
		t.Errorf("parseStartTime = %d, %v; want 987654", got, err)
	}
	for _, bad := range []string{"", "42 (x", "42 (x) S 1 2 3", strings.Replace(line, "987654", "x", 1)} {
		if _, err := parseStartTime([]byte(bad)); err == nil {
			t.Errorf("parseStartTime(%q) accepted", bad)
		}
	}
}

// statLine is a /proc/<pid>/stat line with the given start time (field 22).
func statLine(pid int, comm string, start uint64) string {
	f := []string{strconv.Itoa(pid), "(" + comm + ")", "S", "1", strconv.Itoa(pid), strconv.Itoa(pid), "0", "-1",
		"4194560", "100", "0", "0", "0", "5", "3", "0", "0", "20", "0", "1", "0",
		strconv.FormatUint(start, 10), "12345678", "300", "18446744073709551615"}
	return strings.Join(f, " ") + "\n"
}

type fakeProc struct {
	t    *testing.T
	root string
}

func newFakeProc(t *testing.T) fakeProc { return fakeProc{t, t.TempDir()} }

// add creates <root>/<pid> with stat, cgroup and environ.
func (p fakeProc) add(pid int, start uint64, cgroup, environ string) {
	p.t.Helper()
	dir := filepath.Join(p.root, strconv.Itoa(pid))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		p.t.Fatal(err)
	}
	for name, data := range map[string]string{"stat": statLine(pid, "python3", start), "cgroup": cgroup, "environ": environ} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			p.t.Fatal(err)
		}
	}
}

func (p fakeProc) remove(pid int) {
	if err := os.RemoveAll(filepath.Join(p.root, strconv.Itoa(pid))); err != nil {
		p.t.Fatal(err)
	}
}

const hostCgroup = "12:pids:/user.slice\n0::/user.slice/user-1000.slice/session-1.scope\n"

func TestResolver(t *testing.T) {
	p := newFakeProc(t)
	p.add(100, 1000, "4:devices:/slurm/uid_1000/job_1234/step_0/task_0\n0::/\n", env("SLURM_JOB_ID=999"))
	p.add(101, 1000, "0::/system.slice/slurmstepd.scope/job_2001/step_batch/user/task_0\n", "")
	p.add(102, 1000, "4:devices:/slurm_worker-1/uid_0/job_3001/step_0/task_1\n", "")
	p.add(103, 1000, "0::/slurm/uid_0/job_12/step_0\n", "")
	p.add(104, 1000, hostCgroup, env("HOME=/root", "SLURM_JOBID=4001", "SLURM_JOB_ID=4001"))
	p.add(105, 1000, hostCgroup, env("HOME=/root", "PATH=/bin"))
	p.add(106, 1000, "0::/system.slice/worker-1_slurmstepd.scope/job_5001/step_0/user/task_0\n", "")
	r := New(p.root)
	for pid, want := range map[int32]string{
		100: "1234", // cgroup wins over the environment
		101: "2001",
		102: "3001",
		103: "12",
		104: "4001", // environment fallback
		105: "",     // not a Slurm process
		106: "5001",
	} {
		got, err := r.JobOf(pid)
		if err != nil || got != want {
			t.Errorf("JobOf(%d) = %q, %v; want %q", pid, got, err, want)
		}
	}
	if r.Len() != 7 {
		t.Errorf("cache has %d entries, want 7", r.Len())
	}

	got := r.JobsOf([]int32{100, 104, 105, 999})
	want := map[int32]string{100: "1234", 104: "4001"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("JobsOf = %v, want %v", got, want)
	}
}

func TestResolverMissingPid(t *testing.T) {
	p := newFakeProc(t)
	r := New(p.root)
	for _, pid := range []int32{4242, 0, -1} {
		job, err := r.JobOf(pid)
		if job != "" || !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("JobOf(%d) = %q, %v; want an fs.ErrNotExist error", pid, job, err)
		}
	}
	// Gone between stat and cgroup: still ErrNotExist.
	p.add(7, 1, "", "")
	if err := os.Remove(filepath.Join(p.root, "7", "cgroup")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.JobOf(7); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("JobOf without cgroup: %v", err)
	}
	if r.Len() != 0 {
		t.Errorf("failures were cached: %d entries", r.Len())
	}
}

func TestResolverCachesAndNoticesPidReuse(t *testing.T) {
	p := newFakeProc(t)
	p.add(300, 5000, "0::/slurm/uid_0/job_10/step_0\n", "")
	r := New(p.root)
	if job, err := r.JobOf(300); job != "10" || err != nil {
		t.Fatalf("JobOf = %q, %v", job, err)
	}
	// Same process (same start time): the cache answers, even though the
	// files say otherwise now.
	p.add(300, 5000, "0::/slurm/uid_0/job_11/step_0\n", "")
	if job, _ := r.JobOf(300); job != "10" {
		t.Errorf("cached JobOf = %q, want 10", job)
	}
	// The pid is reused by another process: another start time.
	p.add(300, 7000, "0::/slurm/uid_0/job_11/step_0\n", "")
	if job, _ := r.JobOf(300); job != "11" {
		t.Errorf("after pid reuse JobOf = %q, want 11", job)
	}
	// Reused by a process outside Slurm: "" is cached as well.
	p.add(300, 8000, hostCgroup, "")
	if job, err := r.JobOf(300); job != "" || err != nil {
		t.Errorf("after reuse by a non-Slurm process JobOf = %q, %v", job, err)
	}
	if e := r.cache[300]; e.start != 8000 || e.job != "" {
		t.Errorf("cache entry = %+v", e)
	}
	// The process is gone: an error, not the cached answer.
	p.remove(300)
	if _, err := r.JobOf(300); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("JobOf of a gone process: %v", err)
	}
}

func TestResolverForgetAndBound(t *testing.T) {
	p := newFakeProc(t)
	for pid := 1; pid <= 10; pid++ {
		p.add(pid, uint64(pid), fmt.Sprintf("0::/slurm/uid_0/job_%d/step_0\n", 100+pid), "")
	}
	r := New(p.root)
	for pid := int32(1); pid <= 10; pid++ {
		if _, err := r.JobOf(pid); err != nil {
			t.Fatal(err)
		}
	}
	r.Forget(map[int32]bool{2: true, 5: true, 77: true})
	if r.Len() != 2 {
		t.Fatalf("after Forget: %d entries, want 2", r.Len())
	}
	if _, ok := r.cache[5]; !ok {
		t.Error("Forget dropped a live pid")
	}

	r.SetMaxEntries(3)
	for pid := int32(1); pid <= 10; pid++ {
		job, err := r.JobOf(pid)
		if err != nil || job != strconv.Itoa(100+int(pid)) {
			t.Fatalf("JobOf(%d) = %q, %v", pid, job, err)
		}
		if r.Len() > 3 {
			t.Fatalf("cache grew to %d entries, bound 3", r.Len())
		}
	}
	if _, ok := r.cache[10]; !ok {
		t.Error("the newest entry was not cached")
	}
	r.SetMaxEntries(1)
	if r.Len() != 1 {
		t.Errorf("shrinking the bound left %d entries", r.Len())
	}
}

func TestResolverUnreadableEnviron(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads any file; the permission error cannot be observed")
	}
	p := newFakeProc(t)
	p.add(5, 1, hostCgroup, env("SLURM_JOB_ID=3"))
	if err := os.Chmod(filepath.Join(p.root, "5", "environ"), 0); err != nil {
		t.Fatal(err)
	}
	if job, err := New(p.root).JobOf(5); job != "" || !errors.Is(err, fs.ErrPermission) {
		t.Errorf("JobOf = %q, %v; want a permission error", job, err)
	}
}

func TestResolverRealSelf(t *testing.T) {
	// This test process: it has a stat and a cgroup; its job, if any, must
	// match what the environment says when the cgroup says nothing.
	r := New("")
	pid := int32(os.Getpid())
	job, err := r.JobOf(pid)
	if err != nil {
		t.Fatalf("JobOf(self): %v", err)
	}
	cg, _ := os.ReadFile("/proc/self/cgroup")
	if _, ok := ParseCgroup(cg); !ok {
		if want := os.Getenv("SLURM_JOB_ID"); job != want {
			t.Errorf("JobOf(self) = %q, SLURM_JOB_ID = %q", job, want)
		}
	}
}

func FuzzParseCgroup(f *testing.F) {
	for _, s := range []string{
		"4:devices:/slurm/uid_1000/job_1234/step_0/task_0\n",
		"0::/system.slice/slurmstepd.scope/job_1234/step_batch/user/task_0\n",
		"0::/system.slice/n1_slurmstepd.scope/job_5/step_0\n",
		"4:devices:/slurm_node/uid_0/job_007\n",
		"0::/user.slice\n",
		"garbage",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		id, ok := ParseCgroup(data)
		checkID(t, id, ok)
		if ok && !strings.Contains(string(data), "job_") {
			t.Fatalf("job %q from %q without job_", id, data)
		}
	})
}

func FuzzParseEnviron(f *testing.F) {
	for _, s := range []string{
		env("SLURM_JOB_ID=1234"),
		env("SLURM_JOBID=1", "SLURM_JOB_ID=2"),
		env("SLURM_JOB_ID=x", "SLURM_JOBID=3"),
		"SLURM_JOB_ID=4",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		id, ok := ParseEnviron(data)
		checkID(t, id, ok)
		if ok && !strings.Contains(string(data), "SLURM_JOB_ID=") && !strings.Contains(string(data), "SLURM_JOBID=") {
			t.Fatalf("job %q from %q", id, data)
		}
	})
}

// checkID checks that a parsed job id is a positive 32-bit decimal without
// leading zeros, and that ok agrees with it.
func checkID(t *testing.T, id string, ok bool) {
	t.Helper()
	if !ok {
		if id != "" {
			t.Fatalf("ok = false with id %q", id)
		}
		return
	}
	n, err := strconv.ParseUint(id, 10, 32)
	if err != nil || n == 0 || strconv.FormatUint(n, 10) != id {
		t.Fatalf("invalid job id %q", id)
	}
}
