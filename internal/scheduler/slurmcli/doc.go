// Package slurmcli implements scheduler.Backend with Slurm's command-line
// tools: sbatch submits, squeue reports, scancel cancels.
//
// Every value goes to the tools as its own argv element (never through a
// shell), the batch script goes to sbatch on stdin, and sbatch runs with a
// clean environment (PATH, HOME, LANG, SLURM_CONF and the job's own
// variables), so nothing from the controller's environment reaches a job.
//
// Job state comes from one squeue call per query, listing every job Slurm
// still knows:
//
//	squeue --all --noheader --states=all --Format=JobID:0<US>,Name:0<US>,...,EndTime:0<RS>
//
// where <US> is the ASCII unit separator 0x1f and <RS> the record separator
// 0x1e; ":0" turns off squeue's padding and truncation and the separator is
// the field's suffix. The requested ids are filtered here rather than passed
// with --jobs: squeue turns a single --jobs id into a different RPC
// (REQUEST_FED_INFO + REQUEST_JOB_INFO_SINGLE) that fails for an unknown id,
// while a listing is always one REQUEST_JOB_INFO. (Slurm 22.05's squeue also
// sends one REQUEST_PARTITION_INFO per run, --all or not.)
//
// Running a tool (exec.go, the only file that uses os/exec) is separate from
// building its arguments (args.go) and parsing its output (parse.go), which
// are tested against output captured from a real Slurm 22.05 cluster in
// testdata/slurm-22.05.
package slurmcli
