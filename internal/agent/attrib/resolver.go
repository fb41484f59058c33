package attrib

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
)

// DefaultMaxEntries bounds a Resolver's cache unless changed with
// SetMaxEntries.
const DefaultMaxEntries = 4096

// maxProcFile bounds how much of a /proc file is read; environ can be large
// but a job id is far smaller than this in practice.
const maxProcFile = 1 << 20

// Resolver maps process ids to the Slurm jobs that own them, by reading a
// proc file system. Results are cached per (pid, start time), so a pid
// that the kernel reuses for another process is resolved afresh. It is
// safe for concurrent use.
type Resolver struct {
	root string

	mu    sync.Mutex
	max   int
	cache map[int32]entry
}

type entry struct {
	start uint64 // process start time, clock ticks after boot (stat field 22)
	job   string // "" for a process outside any Slurm job
}

// New returns a Resolver reading procRoot ("" means "/proc").
func New(procRoot string) *Resolver {
	if procRoot == "" {
		procRoot = "/proc"
	}
	return &Resolver{root: procRoot, max: DefaultMaxEntries, cache: make(map[int32]entry)}
}

// SetMaxEntries changes the cache bound (values < 1 mean 1). When the cache
// is full, an arbitrary entry makes room for a new one; Forget is the
// regular way entries leave.
func (r *Resolver) SetMaxEntries(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.max = max(n, 1)
	for pid := range r.cache {
		if len(r.cache) <= r.max {
			break
		}
		delete(r.cache, pid)
	}
}

// Len returns the number of cached processes.
func (r *Resolver) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.cache)
}

// JobOf returns the id of the Slurm job that process pid belongs to: from
// its cgroup when the cgroup is one that Slurm created (proctrack/cgroup,
// task/cgroup), else from SLURM_JOB_ID (or SLURM_JOBID) in its initial
// environment (proctrack/linuxproc and the like leave processes in the
// node's own cgroups). A process outside any Slurm job yields "", nil. A
// process that does not exist (any more) yields "" and an error wrapping
// fs.ErrNotExist. An environment that cannot be read (another user's
// process, without the privilege to read it) yields an error wrapping
// fs.ErrPermission, since the answer is then unknown.
//
// The answer for a process, including "not a Slurm process", is cached
// until Forget drops the pid or the pid is found with another start time.
func (r *Resolver) JobOf(pid int32) (string, error) {
	if pid <= 0 {
		return "", fmt.Errorf("attrib: pid %d: %w", pid, fs.ErrNotExist)
	}
	start, err := r.startTime(pid)
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	e, ok := r.cache[pid]
	r.mu.Unlock()
	if ok && e.start == start {
		return e.job, nil
	}
	// Resolve, then check that the pid still names the same process: a
	// process that exits and whose pid is reused while we read would
	// otherwise lend its job to the newcomer.
	for range 3 {
		job, err := r.resolve(pid)
		if err != nil {
			return "", err
		}
		again, err := r.startTime(pid)
		if err != nil {
			return "", err
		}
		if again == start {
			r.store(pid, entry{start: start, job: job})
			return job, nil
		}
		start = again
	}
	return "", fmt.Errorf("attrib: pid %d: reused while being read", pid)
}

// JobsOf resolves each of pids and returns the Slurm job of those that
// belong to one. Processes outside Slurm jobs, processes that are gone and
// processes that cannot be resolved are left out.
func (r *Resolver) JobsOf(pids []int32) map[int32]string {
	out := make(map[int32]string, len(pids))
	for _, pid := range pids {
		if job, err := r.JobOf(pid); err == nil && job != "" {
			out[pid] = job
		}
	}
	return out
}

// Forget drops the cached answers of every pid not in alive. The agent
// calls it with the processes it saw in its latest sample.
func (r *Resolver) Forget(alive map[int32]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for pid := range r.cache {
		if !alive[pid] {
			delete(r.cache, pid)
		}
	}
}

func (r *Resolver) store(pid int32, e entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.cache[pid]; !ok && len(r.cache) >= r.max {
		for old := range r.cache {
			delete(r.cache, old)
			if len(r.cache) < r.max {
				break
			}
		}
	}
	r.cache[pid] = e
}

func (r *Resolver) resolve(pid int32) (string, error) {
	cg, err := r.read(pid, "cgroup")
	if err != nil {
		return "", err
	}
	if job, ok := ParseCgroup(cg); ok {
		return job, nil
	}
	env, err := r.read(pid, "environ")
	if err != nil {
		return "", err
	}
	if job, ok := ParseEnviron(env); ok {
		return job, nil
	}
	return "", nil
}

func (r *Resolver) startTime(pid int32) (uint64, error) {
	b, err := r.read(pid, "stat")
	if err != nil {
		return 0, err
	}
	start, err := parseStartTime(b)
	if err != nil {
		return 0, fmt.Errorf("attrib: pid %d: stat: %w", pid, err)
	}
	return start, nil
}

// read reads <root>/<pid>/<name>. An ESRCH (a process that exits while its
// file is read) is reported as fs.ErrNotExist.
func (r *Resolver) read(pid int32, name string) ([]byte, error) {
	path := filepath.Join(r.root, strconv.Itoa(int(pid)), name)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("attrib: pid %d: %w", pid, err)
	}
	defer f.Close()
	var buf bytes.Buffer
	_, err = buf.ReadFrom(io.LimitReader(f, maxProcFile))
	if err != nil {
		if isESRCH(err) {
			return nil, fmt.Errorf("attrib: pid %d: %s: %w", pid, name, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("attrib: pid %d: %w", pid, err)
	}
	return buf.Bytes(), nil
}

func isESRCH(err error) bool { return errors.Is(err, syscall.ESRCH) }

// parseStartTime returns field 22 (starttime) of /proc/<pid>/stat. The
// second field, the command name in parentheses, may itself contain spaces
// and parentheses, so fields are counted from the last ')'.
func parseStartTime(b []byte) (uint64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("no ')' after the command name")
	}
	fields := bytes.Fields(b[i+1:])
	// fields[0] is field 3 (state), so field 22 is fields[19].
	if len(fields) < 20 {
		return 0, fmt.Errorf("%d fields, want at least 22", len(fields)+2)
	}
	v, err := strconv.ParseUint(string(fields[19]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("field 22 (starttime): %w", err)
	}
	return v, nil
}
