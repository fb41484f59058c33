// Package slurmjson reads Slurm's JSON job listings into scheduler.JobStatus
// values. Two producers print the same documents:
//
//   - slurmrestd's GET /slurm/{version}/jobs (package slurmrest), and
//   - `squeue --json` (package slurmcli), which Slurm 21.08 to 23.02 print
//     with the openapi plugin (openapi/v0.0.38 on 22.05, the same document
//     slurmrestd -s v0.0.38 serves) and 23.02 and later with the data_parser
//     plugins (v0.0.39 to v0.0.45).
//
// ParseJobs accepts every shape those versions have used (job_state as a
// string or as an array of base state and flags, exit_code as a raw wait(2)
// status, a number structure or a verbose object, times as Unix seconds or
// number structures) and never fails on one odd job: a field of an
// unexpected type reads as its zero value and a job without a usable id is
// skipped. Only a document that is not a job listing at all is an error.
//
// A job_state array is read as Slurm's job_state_string() prints it, so
// that State is one word, the same on every version: the flag that takes
// precedence (COMPLETING, CONFIGURING, REQUEUED, ...) or else the base
// state. That matters right after scancel: 22.05 says "COMPLETING" with no
// exit status yet, while 24.11 and 26.05 say ["CANCELLED","COMPLETING"]
// with exit status SUCCESS (return code 0) and, about 3 s later,
// ["CANCELLED"] with signal 15 or return code 143. Both read COMPLETING (not
// final) with exit code -1 until Slurm has settled.
//
// ParseErrors reads the "errors" array these documents carry: with
// slurmctld down, squeue --json and sinfo --json exit 0 and print an empty
// list next to such an entry (22.05, 24.11 and 26.05 alike).
//
// The package is pure: no I/O, no clock, no logging. Int and String, the
// lenient readers ParseJobs is built on, are exported for the other parts of
// slurmrestd's answers (errors, submit results).
package slurmjson
