package slurmrest

import (
	"encoding/json"
	"math"
	"strconv"

	"github.com/sopilot/sopilot/internal/scheduler/slurmjson"
)

// Job listings are read by slurmjson.ParseJobs, shared with slurmcli's
// squeue --json path. The rest of slurmrestd's answers (errors, warnings,
// submit results) are read here with the same lenient readers.

// parseErrors reads the "errors" array of any slurmrestd answer. v0.0.38
// uses error_number, except for some submit failures which use error_code;
// later versions use error_number.
func parseErrors(data []byte) ([]APIErrorEntry, bool) {
	var doc map[string]json.RawMessage
	if json.Unmarshal(data, &doc) != nil || doc == nil {
		return nil, false
	}
	var items []json.RawMessage
	if raw, ok := doc["errors"]; !ok || json.Unmarshal(raw, &items) != nil {
		return nil, true
	}
	out := make([]APIErrorEntry, 0, len(items))
	for _, item := range items {
		var f map[string]json.RawMessage
		if json.Unmarshal(item, &f) != nil || f == nil {
			if s := slurmjson.String(item); s != "" {
				out = append(out, APIErrorEntry{Error: s})
			}
			continue
		}
		e := APIErrorEntry{
			Error:       slurmjson.String(f["error"]),
			Description: slurmjson.String(f["description"]),
			Source:      slurmjson.String(f["source"]),
		}
		if n, ok := slurmjson.Int(f["error_number"]); ok && n > math.MinInt32 && n < math.MaxInt32 {
			e.Number = int(n)
		} else if n, ok := slurmjson.Int(f["error_code"]); ok && n > math.MinInt32 && n < math.MaxInt32 {
			e.Number = int(n)
		}
		// Some answers carry an empty placeholder entry; it says nothing.
		if e.Number == 0 && e.Error == "" && e.Description == "" {
			continue
		}
		out = append(out, e)
	}
	return out, true
}

// parseWarnings returns the descriptions in the "warnings" array (v0.0.39+).
func parseWarnings(data []byte) []string {
	var doc struct {
		Warnings []json.RawMessage `json:"warnings"`
	}
	if json.Unmarshal(data, &doc) != nil {
		return nil
	}
	var out []string
	for _, w := range doc.Warnings {
		var f map[string]json.RawMessage
		if json.Unmarshal(w, &f) == nil && f != nil {
			if s := slurmjson.String(f["description"]); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// parseSubmit reads job_id from a submit answer: top level in every version,
// and under "result" in v0.0.40.
func parseSubmit(data []byte) (string, bool) {
	var doc map[string]json.RawMessage
	if json.Unmarshal(data, &doc) != nil || doc == nil {
		return "", false
	}
	if id, ok := slurmjson.Int(doc["job_id"]); ok && id > 0 && id < slurmjson.NoVal {
		return strconv.FormatInt(id, 10), true
	}
	var result map[string]json.RawMessage
	if json.Unmarshal(doc["result"], &result) == nil && result != nil {
		if id, ok := slurmjson.Int(result["job_id"]); ok && id > 0 && id < slurmjson.NoVal {
			return strconv.FormatInt(id, 10), true
		}
	}
	return "", false
}
