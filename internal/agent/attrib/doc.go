// Package attrib tells which Slurm job owns a GPU or a process, so that the
// node agent can attribute GPU samples and GPU processes (from NVML) to
// jobs.
//
// On Soperator the first source is the GPU→job files that its prolog
// writes (GPUJobs, ParseJobFile): one file per GPU index holding the job
// id, which needs no process ids at all. Where there is no such file the
// agent asks a Resolver about each process.
//
// A Resolver reads /proc/<pid>/cgroup first: with Slurm's cgroup plugins
// (proctrack/cgroup, task/cgroup) every process of a job lives below a
// job_<id> cgroup, on cgroup v1 and v2 alike (ParseCgroup lists the
// layouts). Where Slurm does not place jobs in cgroups (proctrack/linuxproc,
// proctrack/pgid), it falls back to SLURM_JOB_ID in /proc/<pid>/environ,
// the environment the process was started with (ParseEnviron). The cgroup
// is preferred because a process cannot leave it, whereas an environment
// can be inherited by a process that Slurm does not track.
//
// Answers are cached per pid and process start time (field 22 of
// /proc/<pid>/stat), so a pid reused by a new process is never attributed
// to the old one's job; Forget drops the pids that are gone.
package attrib
