package slurmrest

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sopilot/sopilot/internal/scheduler"
)

// Environment defaults added to every job when JobSpec.Environment does not
// set them. Slurm runs the batch script with exactly the environment it is
// given (nothing from slurmrestd's), so a PATH is needed to find srun.
const (
	defaultPATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	defaultLANG = "C.UTF-8"
)

// jobEnvironment is the job's complete environment: spec's variables plus
// PATH and LANG when spec does not set them.
func jobEnvironment(spec map[string]string) map[string]string {
	env := make(map[string]string, len(spec)+2)
	for k, v := range spec {
		env[k] = v
	}
	if _, ok := env["PATH"]; !ok {
		env["PATH"] = defaultPATH
	}
	if _, ok := env["LANG"]; !ok {
		env["LANG"] = defaultLANG
	}
	return env
}

// timeLimitMinutes rounds d up to whole minutes (Slurm's unit); 0 means
// "not set" (the partition's default).
func timeLimitMinutes(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Minute - 1) / time.Minute)
}

// checkSpec rejects what no Slurm version could accept, before a request is
// sent.
func checkSpec(job scheduler.JobSpec) error {
	var problems []string
	if !strings.HasPrefix(job.Script, "#!") {
		problems = append(problems, "script must start with #!")
	}
	if job.Nodes < 0 || job.TasksPerNode < 0 || job.GPUsPerNode < 0 || job.CPUsPerTask < 0 {
		problems = append(problems, "negative resource count")
	}
	if job.TimeLimit < 0 {
		problems = append(problems, "negative time limit")
	}
	for k := range job.Environment {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			problems = append(problems, fmt.Sprintf("invalid environment variable name %q", k))
		}
	}
	for _, d := range job.Dependencies {
		if d == "" || strings.ContainsAny(d, ":,?") {
			problems = append(problems, fmt.Sprintf("invalid dependency job id %q", d))
		}
	}
	for _, n := range job.Exclude {
		if !scheduler.ValidNodeName(n) {
			problems = append(problems, fmt.Sprintf("invalid excluded node name %q", n))
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return fmt.Errorf("%w: invalid job spec: %s", scheduler.ErrRejected, strings.Join(problems, "; "))
	}
	return nil
}

// submitBody renders the POST /slurm/{ver}/job/submit body for the version.
func submitBody(v apiVersion, job scheduler.JobSpec) ([]byte, error) {
	if err := checkSpec(job); err != nil {
		return nil, err
	}
	if v.dataParser() {
		return json.Marshal(map[string]any{"job": jobDescNew(job)})
	}
	return json.Marshal(map[string]any{"script": job.Script, "job": jobDesc38(job)})
}

// commonFields are the keys both request shapes spell the same way.
func commonFields(job scheduler.JobSpec) map[string]any {
	m := map[string]any{}
	put := func(k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	put("name", job.Name)
	put("partition", job.Partition)
	put("current_working_directory", job.WorkDir)
	put("standard_output", job.OutputPath)
	put("standard_error", job.OutputPath)
	put("comment", job.Comment)
	if len(job.Dependencies) > 0 {
		put("dependency", "afterok:"+strings.Join(job.Dependencies, ":"))
	}
	if job.TasksPerNode > 0 {
		m["tasks_per_node"] = job.TasksPerNode
		// What sbatch does in _opt_verify: ntasks = nodes × ntasks-per-node
		// (nodes defaulting to 1).
		m["tasks"] = max(job.Nodes, 1) * job.TasksPerNode
	}
	if job.CPUsPerTask > 0 {
		m["cpus_per_task"] = job.CPUsPerTask
	}
	return m
}

// jobDesc38 is v0.0.38's job_properties. slurmrestd 22.05 feeds each key to
// sbatch's option parser (src/common/slurm_opt.c), with these traps, all
// checked on a 22.05.8 cluster:
//   - "nodes" must be a number or a string: the [min, max] array the OpenAPI
//     document describes is accepted but silently ignored (the list branch
//     of arg_set_data_nodes never sets nodes_set), leaving a 1-node job;
//   - "tasks" must be sent: sbatch computes ntasks = nodes × ntasks-per-node
//     on the client side, slurmrestd does not, and without it the job gets
//     SLURM_NTASKS=1 and a bare srun starts one task;
//   - "environment" must be a non-empty object of strings;
//   - GPUs are "gres": "gpu:N" (--gres); "tres_per_node" is "Unknown key".
//
// "time_limit" is minutes.
func jobDesc38(job scheduler.JobSpec) map[string]any {
	m := commonFields(job)
	if job.Nodes > 0 {
		m["nodes"] = job.Nodes
	}
	if t := timeLimitMinutes(job.TimeLimit); t > 0 {
		m["time_limit"] = t
	}
	if job.GPUsPerNode > 0 {
		m["gres"] = fmt.Sprintf("gpu:%d", job.GPUsPerNode)
	}
	m["environment"] = jobEnvironment(job.Environment)
	return m
}

// noValNumber is the {"set","infinite","number"} structure of v0.0.39+.
type noValNumber struct {
	Set      bool  `json:"set"`
	Infinite bool  `json:"infinite"`
	Number   int64 `json:"number"`
}

// jobDescNew is job_desc_msg of v0.0.39 and later: the script is in the job
// (the top-level "script" is deprecated since v0.0.41), the environment an
// array of NAME=value, GPUs a TRES string with the "gres/" prefix Slurm uses
// since 23.02, the time limit a number structure.
func jobDescNew(job scheduler.JobSpec) map[string]any {
	m := commonFields(job)
	m["script"] = job.Script
	if job.Nodes > 0 {
		m["nodes"] = strconv.Itoa(job.Nodes) // a node count range, "N" = exactly N
	}
	if t := timeLimitMinutes(job.TimeLimit); t > 0 {
		m["time_limit"] = noValNumber{Set: true, Number: t}
	}
	if job.GPUsPerNode > 0 {
		m["tres_per_node"] = fmt.Sprintf("gres/gpu:%d", job.GPUsPerNode)
	}
	env := jobEnvironment(job.Environment)
	list := make([]string, 0, len(env))
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	sort.Strings(list)
	m["environment"] = list
	if len(job.Exclude) > 0 {
		m["excluded_nodes"] = job.Exclude
	}
	return m
}

var errNoJobID = errors.New("slurmrestd accepted the job but its answer has no job_id")
