package slurmcli

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/sopilot/sopilot/internal/scheduler"
)

// sbatchArgs builds sbatch's argv (after the program name) for job: one
// element per option, values attached with "=", so no value can be read as
// another option. The script itself goes on stdin.
func sbatchArgs(job scheduler.JobSpec) ([]string, error) {
	if err := checkSpec(job); err != nil {
		return nil, err
	}
	args := []string{"--parsable"}
	for _, o := range job.Options() {
		args = append(args, "--"+o.Name+"="+o.Value)
	}
	args = append(args, "--export=ALL")
	return args, nil
}

// checkSpec refuses what sbatch would misread. Run validation should already
// have refused all of it; this is the last line of defence.
func checkSpec(job scheduler.JobSpec) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", scheduler.ErrRejected, fmt.Sprintf(format, a...))
	}
	switch {
	case job.Nodes < 0, job.TasksPerNode < 0, job.GPUsPerNode < 0, job.CPUsPerTask < 0:
		return bad("negative count in job spec")
	case job.TimeLimit < 0:
		return bad("negative time limit %s", job.TimeLimit)
	case job.Script == "":
		return bad("empty batch script")
	}
	for name, v := range map[string]string{
		"name": job.Name, "partition": job.Partition, "workdir": job.WorkDir,
		"output path": job.OutputPath, "comment": job.Comment,
	} {
		if strings.ContainsAny(v, "\x00\n\r") {
			return bad("job %s contains a NUL or line break", name)
		}
		if strings.ContainsAny(v, fieldSep+recordSep) {
			return bad("job %s contains an ASCII separator character", name)
		}
	}
	for _, d := range job.Dependencies {
		if !isJobID(d) {
			return bad("dependency %q is not a job id", truncate(d, 40))
		}
	}
	for _, n := range job.Exclude {
		if !scheduler.ValidNodeName(n) {
			return bad("excluded node %q is not a node name", truncate(n, 40))
		}
	}
	for k, v := range job.Environment {
		if !validEnvKey(k) {
			return bad("environment variable name %q is not valid", truncate(k, 40))
		}
		// sbatch reads SBATCH_* (and SLURM_CONF etc.) as its own input:
		// such a variable would change the submission, not just the job.
		if strings.HasPrefix(k, "SBATCH_") || strings.HasPrefix(k, "SLURM_") {
			return bad("environment variable %s is reserved for Slurm", k)
		}
		if strings.ContainsRune(v, 0) {
			return bad("environment variable %s contains a NUL byte", k)
		}
	}
	return nil
}

func validEnvKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// sbatchEnv is the complete environment of the sbatch process, which
// --export=ALL hands on to the job: the basics from base (PATH, HOME, the
// slurm.conf) and the job's own variables, which win over the basics.
func sbatchEnv(base baseEnv, job scheduler.JobSpec) []string {
	env := map[string]string{
		"PATH": base.path,
		"HOME": base.home,
		"LANG": "C.UTF-8",
	}
	if base.slurmConf != "" {
		env["SLURM_CONF"] = base.slurmConf
	}
	maps.Copy(env, job.Environment)
	out := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}

// toolEnv is the environment of squeue and scancel.
func toolEnv(base baseEnv) []string {
	env := []string{"PATH=" + base.path, "HOME=" + base.home, "LANG=C.UTF-8"}
	if base.slurmConf != "" {
		env = append(env, "SLURM_CONF="+base.slurmConf)
	}
	return env
}

// baseEnv is what the tools' environments are built from.
type baseEnv struct {
	path, home, slurmConf string
}

// squeueArgs lists every job Slurm still knows, in any state, in the
// delimited format (QueryFormat): --all also shows hidden partitions; no
// --jobs (see the package comment).
func squeueArgs() []string {
	return []string{"--all", "--noheader", "--states=all", "--Format=" + squeueFormat()}
}

// squeueJSONArgs lists every job Slurm still knows as one JSON document
// (QueryJSON). 22.05 ignores the filters with --json and dumps every job
// anyway; newer versions honour them, so they are passed for the same
// listing everywhere.
func squeueJSONArgs() []string {
	return []string{"--all", "--states=all", "--json"}
}
