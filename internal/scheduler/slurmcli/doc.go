// Package slurmcli implements scheduler.Backend with Slurm's command-line
// tools: sbatch submits, squeue reports, scancel cancels.
//
// Every value goes to the tools as its own argv element (never through a
// shell), the batch script goes to sbatch on stdin, and sbatch runs with a
// clean environment (PATH, HOME, LANG, SLURM_CONF and the job's own
// variables), so nothing from the controller's environment reaches a job.
//
// Job state comes from one squeue call per query, listing every job Slurm
// still knows; the requested ids (or the comment prefix) are filtered here.
// Config.Query chooses how squeue is asked:
//
//   - QueryJSON: squeue --all --states=all --json, read by
//     slurmjson.ParseJobs. squeue prints the same document as slurmrestd's
//     GET /slurm/v0.0.38/jobs (openapi/v0.0.38 on 22.05; the data_parser
//     v0.0.39+ shapes on newer Slurm, which slurmjson also reads), and costs
//     exactly one slurmctld RPC, REQUEST_JOB_INFO.
//   - QueryFormat: squeue --all --noheader --states=all
//     --Format=JobID:0<US>,Name:0<US>,...,EndTime:0<RS>, where <US> is the
//     ASCII unit separator 0x1f and <RS> the record separator 0x1e; ":0"
//     turns off squeue's padding and truncation and the separator is the
//     field's suffix. This costs two RPCs on 22.05, REQUEST_JOB_INFO and
//     REQUEST_PARTITION_INFO: squeue loads the partitions on every run,
//     --all or not, whatever the format.
//   - QueryAuto (the default): QueryJSON, falling back to QueryFormat for
//     the life of the Backend (one warning logged) the first time squeue
//     says it cannot print JSON: "unrecognized option" from a squeue older
//     than 21.08, or "Unable to find plugin: openapi/..." (or data_parser,
//     serializer/json) from a Slurm built or installed without them.
//     Failures to reach slurmctld never cause the fallback.
//
// Measured with sdiag on 22.05.8 (TestLiveListingRPCs): one Jobs call with
// 30 ids is 1 REQUEST_JOB_INFO and nothing else in JSON mode, 1
// REQUEST_JOB_INFO + 1 REQUEST_PARTITION_INFO in format mode; so at a 5 s
// poll the controller costs slurmctld 0.2 RPC/s, not 0.4. Neither mode
// passes --jobs: squeue turns a single --jobs id into a different RPC
// (REQUEST_FED_INFO + REQUEST_JOB_INFO_SINGLE) that fails for an unknown id,
// while a listing is always one REQUEST_JOB_INFO.
//
// Both modes report the same values (finalizeStatus): exit codes only in
// final states, no times Slurm merely expects, no start time for a job
// that ended without nodes.
//
// Nodes (scheduler.NodeBackend) come from one sinfo --all --json, which
// prints slurmrestd's node document (read by slurmrest.ParseNodes) and
// costs REQUEST_NODE_INFO + REQUEST_PARTITION_INFO on 22.05, as scontrol
// show nodes does; scontrol's text is not used because its Reason cannot
// always be told apart from the " [user@time]" after it. Drain and Resume
// run scontrol update NodeName=... State=DRAIN Reason=... (or
// State=RESUME), one argv element each, for one node name that
// scheduler.CheckNodeName accepts (never a hostlist).
//
// Running a tool (exec.go, the only file that uses os/exec) is separate from
// building its arguments (args.go) and parsing its output (parse.go and
// slurmjson), which are tested against output captured from a real Slurm
// 22.05 cluster in testdata/slurm-22.05.
package slurmcli
