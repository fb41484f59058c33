package attrib

import (
	"bytes"
	"strconv"
	"strings"
)

// ParseCgroup finds the Slurm job in the contents of /proc/<pid>/cgroup and
// returns its id, normalised to decimal without leading zeros. ok is false
// when no line places the process in a Slurm job's cgroup.
//
// Each line is "hierarchy-ID:controllers:path". A path belongs to a Slurm
// job when it has a component "job_<id>" below a component that Slurm
// creates:
//
//	cgroup v1: /slurm/uid_<uid>/job_<id>/step_<step>/task_<n>
//	           /slurm_<nodename>/uid_<uid>/job_<id>/...   (several slurmd per host)
//	cgroup v2: /system.slice/slurmstepd.scope/job_<id>/step_<step>/user/task_<n>
//	           /system.slice/<nodename>_slurmstepd.scope/job_<id>/...
//	           /slurm/uid_<uid>/job_<id>/step_<step>      (v1-style layout on v2)
//
// <id> is the job's own id (for an array task, its raw job id, not
// <array_job_id>_<index>), a positive 32-bit integer. The first line that
// matches wins.
func ParseCgroup(data []byte) (jobID string, ok bool) {
	for len(data) > 0 {
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		// hierarchy-ID:controllers:path; the path itself may contain ':'.
		i := bytes.IndexByte(line, ':')
		if i < 0 {
			continue
		}
		j := bytes.IndexByte(line[i+1:], ':')
		if j < 0 {
			continue
		}
		if id, ok := jobInPath(string(bytes.TrimRight(line[i+1+j+1:], "\r"))); ok {
			return id, true
		}
	}
	return "", false
}

// jobInPath returns the id of the first job_<id> component that follows a
// Slurm component.
func jobInPath(path string) (string, bool) {
	underSlurm := false
	for path != "" {
		var comp string
		if i := strings.IndexByte(path, '/'); i >= 0 {
			comp, path = path[:i], path[i+1:]
		} else {
			comp, path = path, ""
		}
		if underSlurm {
			if rest, ok := strings.CutPrefix(comp, "job_"); ok {
				if id, ok := jobID(rest); ok {
					return id, true
				}
			}
		}
		if comp == "slurm" || strings.HasPrefix(comp, "slurm_") ||
			comp == "slurmstepd.scope" || strings.HasSuffix(comp, "_slurmstepd.scope") {
			underSlurm = true
		}
	}
	return "", false
}

// jobID validates and normalises a Slurm job id: a positive decimal uint32.
func jobID(s string) (string, bool) {
	if s == "" || len(s) > 12 {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return "", false
		}
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 {
		return "", false
	}
	return strconv.FormatUint(n, 10), true
}

// ParseEnviron finds the Slurm job id in the contents of
// /proc/<pid>/environ (NUL-separated NAME=value entries): SLURM_JOB_ID, or
// the older SLURM_JOBID when SLURM_JOB_ID is absent. When a name appears
// more than once the first occurrence counts, as with getenv. A value that
// is not a valid job id counts as absent. ok is false when there is none.
func ParseEnviron(data []byte) (jobID string, ok bool) {
	var jobIDVal, jobidVal []byte
	var haveJobID, haveJobid bool
	for len(data) > 0 {
		var kv []byte
		if i := bytes.IndexByte(data, 0); i >= 0 {
			kv, data = data[:i], data[i+1:]
		} else {
			kv, data = data, nil
		}
		switch {
		case !haveJobID && bytes.HasPrefix(kv, []byte("SLURM_JOB_ID=")):
			jobIDVal, haveJobID = kv[len("SLURM_JOB_ID="):], true
		case !haveJobid && bytes.HasPrefix(kv, []byte("SLURM_JOBID=")):
			jobidVal, haveJobid = kv[len("SLURM_JOBID="):], true
		}
	}
	if haveJobID {
		if id, ok := jobIDOf(jobIDVal); ok {
			return id, true
		}
	}
	if haveJobid {
		return jobIDOf(jobidVal)
	}
	return "", false
}

func jobIDOf(b []byte) (string, bool) { return jobID(string(b)) }
