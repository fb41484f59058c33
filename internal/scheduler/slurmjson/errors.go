package slurmjson

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
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
	var doc map[string]json.RawMessage
	if json.Unmarshal(data, &doc) != nil || doc == nil {
		return nil, false
	}
	var items []json.RawMessage
	if raw, ok := doc["errors"]; !ok || json.Unmarshal(raw, &items) != nil {
		return nil, true
	}
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
	return out, true
}
