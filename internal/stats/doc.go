// Package stats owns sopilot's comparisons of runs.
package stats
