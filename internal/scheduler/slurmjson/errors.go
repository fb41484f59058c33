package slurmjson

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/sopilot/sopilot/internal/jsonscan"
)

// Error is one entry of the "errors" array that slurmrestd's answers and the
// JSON output of squeue, sinfo and scontrol carry.
type Error struct {
	// Number is Slurm's error number (slurm/slurm_errno.h); 0 when absent.
	// It is "error_number" in most answers, "error_code" in some v0.0.38
	// submit answers and "errno" in 22.05's sinfo --json.
	Number int
	// Error is Slurm's short text for Number ("Invalid partition name
	// specified").
	Error string
	// Description is the long form, when one was given.
	Description string
	// Source names where the error was detected ("slurm_load_jobs").
	Source string
}

func (e Error) String() string {
	var parts []string
	if e.Description != "" {
		parts = append(parts, e.Description)
	}
	if e.Error != "" && e.Error != e.Description {
		parts = append(parts, e.Error)
	}
	s := strings.Join(parts, ": ")
	if s == "" {
		s = "unspecified error"
	}
	if e.Number != 0 {
		s = fmt.Sprintf("%s (slurm error %d)", s, e.Number)
	}
	return s
}

// ParseErrors reads the "errors" array of a Slurm JSON document. isObject
// is false when data is not a JSON object at all. Entries that say nothing
// (no number, no text) are dropped; an entry that is a plain string is kept
// as its text.
//
// A listing with errors is not a listing: with slurmctld down, squeue
// --json and sinfo --json exit 0 (22.05, 24.11 and 26.05 alike) and print
// an empty list next to the error, which must not be read as "no jobs".
func ParseErrors(data []byte) (errs []Error, isObject bool) {
	if !json.Valid(data) {
		return nil, false
	}
	return errorsOf(data)
}

// errorsOf is ParseErrors on a document json.Valid accepted. It walks the
// top level without decoding it: a listing of hundreds of jobs is
// megabytes (24.11's squeue --json, 27 KB a job), and decoding it into a
// map to reach "errors" cost 1.5 times what reading the jobs did.
func errorsOf(data []byte) (errs []Error, isObject bool) {
	raw, found, ok := jsonscan.Field(data, "errors")
	if !ok {
		return nil, false // not an object (null, an array, a string, ...)
	}
	var items []json.RawMessage
	if !found || json.Unmarshal(raw, &items) != nil {
		return nil, true
	}
	return parseErrorItems(items), true
}

// parseErrorItems reads the entries of an "errors" array.
func parseErrorItems(items []json.RawMessage) []Error {
	out := make([]Error, 0, len(items))
	for _, item := range items {
		var f map[string]json.RawMessage
		if json.Unmarshal(item, &f) != nil || f == nil {
			if s := String(item); s != "" {
				out = append(out, Error{Error: s})
			}
			continue
		}
		e := Error{
			Error:       String(f["error"]),
			Description: String(f["description"]),
			Source:      String(f["source"]),
		}
		for _, key := range []string{"error_number", "error_code", "errno"} {
			if n, ok := Int(f[key]); ok && n > math.MinInt32 && n < math.MaxInt32 {
				e.Number = int(n)
				break
			}
		}
		// Some answers carry an empty placeholder entry; it says nothing.
		if e.Number == 0 && e.Error == "" && e.Description == "" {
			continue
		}
		out = append(out, e)
	}
	return out
}
