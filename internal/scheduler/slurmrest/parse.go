package slurmrest

import (
	"encoding/json"
	"math"
	"strconv"

	"github.com/sopilot/sopilot/internal/jsonscan"
	"github.com/sopilot/sopilot/internal/scheduler/slurmjson"
)

// Job listings are read by slurmjson.ParseJobs, shared with slurmcli's
// squeue --json path. The rest of slurmrestd's answers (errors, warnings,
// submit results) are read here with the same lenient readers.

// parseErrors reads the "errors" array of any slurmrestd answer
// (slurmjson.ParseErrors).
func parseErrors(data []byte) ([]APIErrorEntry, bool) { return slurmjson.ParseErrors(data) }

// parseWarnings returns the descriptions in the "warnings" array (v0.0.39+)
// of an answer parseErrors found to be a JSON object (so valid: this walks
// the top level without validating it again, and decoding a job listing of
// megabytes to reach "warnings" cost more than reading its jobs).
func parseWarnings(object []byte) []string {
	raw, found, ok := jsonscan.Field(object, "warnings")
	var warnings []json.RawMessage
	if !ok || !found || json.Unmarshal(raw, &warnings) != nil {
		return nil
	}
	var out []string
	for _, w := range warnings {
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

// parseCancelStatus reads the per-job outcome of a DELETE
// /slurm/{version}/job/{id} answer. slurmrestd 24.11 and later answer HTTP
// 200 with an empty "errors" whatever Slurm said, and put Slurm's verdict in
// "status": [{"error":{"string":"Invalid job id specified","code":2017},
// "job_id":...,"step_id":...}]. Entries with code 0 (success) are dropped.
func parseCancelStatus(data []byte) []APIErrorEntry {
	var doc struct {
		Status []json.RawMessage `json:"status"`
	}
	if json.Unmarshal(data, &doc) != nil {
		return nil
	}
	var out []APIErrorEntry
	for _, raw := range doc.Status {
		var st struct {
			Error json.RawMessage `json:"error"`
		}
		if json.Unmarshal(raw, &st) != nil {
			continue
		}
		var e map[string]json.RawMessage
		if json.Unmarshal(st.Error, &e) != nil || e == nil {
			continue
		}
		code, ok := slurmjson.Int(e["code"])
		if !ok || code == 0 || code <= math.MinInt32 || code >= math.MaxInt32 {
			continue
		}
		out = append(out, APIErrorEntry{Number: int(code), Error: slurmjson.String(e["string"]), Source: "status"})
	}
	return out
}
