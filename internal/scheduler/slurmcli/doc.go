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
//     job listing (openapi/v0.0.38 on 22.05; the data_parser shapes on
//     24.11 and 26.05, job_state an array, which slurmjson also reads).
//   - QueryFormat: squeue --all --noheader --states=all
//     --Format=JobID:0<US>,Name:0<US>,...,EndTime:0<RS>, where <US> is the
//     ASCII unit separator 0x1f and <RS> the record separator 0x1e; ":0"
//     turns off squeue's padding and truncation and the separator is the
//     field's suffix. Its exit_code column is the raw wait status on 22.05
//     ("768" for exit 3, "15" for SIGTERM) and "exit:signal" from 24.11
//     ("3:0", "0:15"); both are read.
//   - QueryAuto (the default): QueryJSON, falling back to QueryFormat for
//     the life of the Backend (one warning logged) the first time squeue
//     says it cannot print JSON: "unrecognized option" from a squeue older
//     than 21.08, or "Unable to find plugin: openapi/..." (or data_parser,
//     serializer/json) from a Slurm built or installed without them.
//     Failures to reach slurmctld never cause the fallback.
//
// Measured with sdiag (TestLiveListingRPCs) on 22.05.8, 24.11.5 and 26.05.5
// alike: one Jobs call with 30 ids is 1 REQUEST_JOB_INFO and nothing else in
// JSON mode, 1 REQUEST_JOB_INFO + 1 REQUEST_PARTITION_INFO in format mode
// (squeue loads the partitions on every run, whatever the format); so at a
// 5 s poll the controller costs slurmctld 0.2 RPC/s, not 0.4. Neither mode
// passes --jobs: squeue turns a single --jobs id into a different RPC
// (REQUEST_FED_INFO + REQUEST_JOB_INFO_SINGLE) that fails for an unknown id,
// while a listing is always one REQUEST_JOB_INFO.
//
// Both modes report the same values on every version (finalizeStatus, and
// the captures of each version in testdata): exit codes only in final
// states, no times Slurm merely expects, no start time for a job that ended
// without nodes. A job Slurm still flags COMPLETING is reported as
// COMPLETING (not final, exit code -1) in both modes: right after scancel,
// 24.11 and 26.05 say ["CANCELLED","COMPLETING"] with exit status SUCCESS in
// JSON, and only about 3 s later ["CANCELLED"] with the signal.
//
// A listing that cannot be had is scheduler.ErrUnavailable, never an empty
// success: with slurmctld unreachable, 22.05's squeue --json exits 0 and
// prints an empty job list next to an "errors" entry (24.11 and 26.05 exit
// 1 with "Unable to contact slurm controller"); any JSON output that
// carries errors fails the call.
//
// Nodes (scheduler.NodeBackend) come from one `scontrol --all --json show
// nodes` where scontrol has --json (23.02 and later: slurmrestd's node
// document), else from one `sinfo --all --json` (22.05, whose scontrol says
// "unrecognized option '--json'"), detected once per Backend like the
// squeue fallback; both documents are read by slurmrest.ParseNodes (which
// also reads the grouped {"sinfo":[...]} document of sinfo 23.11+). Either
// costs REQUEST_NODE_INFO + REQUEST_PARTITION_INFO, measured on all three
// versions (TestLiveNodeListingRPCs). scontrol is preferred where it can:
// from 23.11 sinfo groups nodes, and 26.05's sinfo no longer says who set a
// reason. scontrol's text output is not used because its Reason cannot
// always be told apart from the " [user@time]" after it. Drain and Resume
// run scontrol update NodeName=... State=DRAIN Reason=... (or
// State=RESUME), one argv element each, for one node name that
// scheduler.CheckNodeName accepts (never a hostlist); RESUME of a node with
// nothing to resume ("Invalid node state specified", 26.05: "Invalid node
// state transition") is not an error.
//
// Running a tool (exec.go, the only file that uses os/exec) is separate from
// building its arguments (args.go) and parsing its output (parse.go and
// slurmjson), which are tested against output captured from real Slurm
// 22.05.8, 24.11.5 and 26.05.5 clusters in testdata/slurm-VERSION.
package slurmcli
