// Package progress reads the training progress files that runs write and
// the node agent streams to the controller.
//
// The controller gives each run a file path in the job environment variable
// SOPILOT_PROGRESS_FILE (EnvVar). Rank 0 of the training script appends one
// JSON object per line; the node agent follows the file with a Tailer,
// calling Poll about once a second. docs/progress.md is the user-facing
// description, with a helper to copy into training scripts.
//
// # Line format
//
// Each line is one JSON object, at most MaxLineBytes (64 KiB) long, ended by
// "\n" ("\r\n" is accepted; blank lines are skipped). Keys:
//
//	step                integer >= 0, required (12.0 is accepted as 12)
//	total_steps         integer >= 0, optional; step may not exceed it
//	loss                number, optional
//	samples_per_second  number >= 0, optional
//	time                RFC 3339 string or unix seconds, optional; default:
//	                    when the line was read
//	metrics             object of name -> number, optional
//	checkpoint          string, optional: the path of a checkpoint saved
//	                    after step steps (a checkpoint line); non-empty, at
//	                    most 4096 bytes, no control characters
//
// Every other top-level key whose value is a number is added to the
// metrics under its own name; a "metrics" entry wins over a top-level key of
// the same name. Other top-level values (strings, booleans, arrays, objects,
// null) are ignored, and so is null for any optional key. Numbers must be
// finite: NaN and Infinity (which Python's json module writes by default)
// reject the line, as do a negative or fractional step, a step greater than
// total_steps, more than MaxMetrics (64) metrics, an empty metric name, and
// a line longer than 64 KiB, and a checkpoint that is not such a path. A rejected line yields an error that names the
// field and, from a Tailer, the line number; it never stops the tail.
//
// A checkpoint line tells the controller where a later attempt of the run
// (docs/resilience.md) resumes from: the newest checkpoint reported becomes
// the next job's SOPILOT_RESUME_FROM. The node agent sends only the newest
// progress of each poll, so it carries the newest checkpoint line of the
// poll beside it (LatestCheckpoint).
package progress

// EnvVar is the job environment variable that holds the progress file path.
const EnvVar = "SOPILOT_PROGRESS_FILE"
