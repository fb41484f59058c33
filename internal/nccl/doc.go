// Package nccl runs and judges the NCCL bandwidth check of node health:
// nccl-tests' all_reduce_perf on one node (on demand, and when the node is
// idle), its output parsed, and the bus bandwidth at a large message size
// compared with the platform's floor (health.Thresholds'
// NCCLMinBusBandwidthGBps at NCCLMessageBytes).
//
// # Parsing
//
// Parse reads all_reduce_perf's text output: the parameter line, the
// "# Using devices" block, the data rows (out-of-place and in-place
// halves), the "Out of bounds values" and "Avg bus bandwidth" footers and
// the lines that report an aborted test ("<host>: Test NCCL failure
// common.cu:<line> '<error>'"). Column layouts are taken from the column
// header, so outputs of nccl-tests from 2017 on are understood, including
// per-iteration (-I) and timestamp (-S) columns. Numbers are parsed
// strictly; unknown comment lines, NCCL's own log lines and unrelated text
// are skipped.
//
// # Judging
//
// Measure and Judge fail a run that printed failure lines, wrong values or
// out of bounds values, whatever its bandwidth, and one cut short before
// its footer, and otherwise compare Result.BusBandwidthAt(messageBytes)
// with the floor. The bandwidth of a
// message size is the mean of its out-of-place and in-place busbw.
//
// # Running
//
// Runner executes all_reduce_perf directly (no shell) in its own process
// group, captures stdout and stderr together (at most MaxOutputBytes),
// kills the whole group on timeout or cancellation and parses what was
// printed, also when the run failed.
//
// # Simulation
//
// SimulatedOutput produces output in the real format for demos; it always
// starts with the SimulatedHeader comment line.
package nccl
