// Package slurmjson reads Slurm's JSON job listings into scheduler.JobStatus
// values. Two producers print the same documents:
//
//   - slurmrestd's GET /slurm/{version}/jobs (package slurmrest), and
//   - `squeue --json` (package slurmcli), which Slurm 21.08 to 23.02 print
//     with the openapi plugin (openapi/v0.0.38 on 22.05, the same document
//     slurmrestd -s v0.0.38 serves) and 23.02 and later with the data_parser
//     plugins (v0.0.39 to v0.0.44).
//
// ParseJobs accepts every shape those versions have used (job_state as a
// string or as an array of base state and flags, exit_code as a raw wait(2)
// status, a number structure or a verbose object, times as Unix seconds or
// number structures) and never fails on one odd job: a field of an
// unexpected type reads as its zero value and a job without a usable id is
// skipped. Only a document that is not a job listing at all is an error.
//
// The package is pure: no I/O, no clock, no logging. Int and String, the
// lenient readers ParseJobs is built on, are exported for the other parts of
// slurmrestd's answers (errors, submit results).
package slurmjson
