package slurmjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/sopilot/sopilot/internal/scheduler"
)

// parseJobsReference is ParseJobs as it was before the scanner: every job
// decoded into a map[string]json.RawMessage (exact-case keys, the last
// duplicate wins). The tests compare the two on every fixture, on
// hand-written edge cases and in FuzzParseJobs.
func parseJobsReference(data []byte) ([]scheduler.JobStatus, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("decode job list: %w", err)
	}
	if doc == nil {
		return nil, errors.New("decode job list: not a JSON object")
	}
	raw, ok := doc["jobs"]
	if !ok {
		return nil, errors.New("decode job list: no \"jobs\" field")
	}
	var items []json.RawMessage
	if isNull(raw) {
		return []scheduler.JobStatus{}, nil
	}
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("decode job list: \"jobs\" is not an array: %w", err)
	}
	out := make([]scheduler.JobStatus, 0, len(items))
	for _, item := range items {
		if js, ok := parseJobReference(item); ok {
			out = append(out, js)
		}
	}
	return out, nil
}

func parseJobReference(item json.RawMessage) (scheduler.JobStatus, bool) {
	var f map[string]json.RawMessage
	if err := json.Unmarshal(item, &f); err != nil || f == nil {
		return scheduler.JobStatus{}, false
	}
	id, ok := Int(f["job_id"])
	if !ok || id <= 0 || id >= NoVal {
		return scheduler.JobStatus{}, false
	}
	js := scheduler.JobStatus{
		JobID:     strconv.FormatInt(id, 10),
		Name:      stringReference(f["name"]),
		State:     flexState(f["job_state"]),
		Reason:    stringReference(f["state_reason"]),
		Comment:   stringReference(f["comment"]),
		Nodes:     stringReference(f["nodes"]),
		StartTime: flexTime(f["start_time"]),
		EndTime:   flexTime(f["end_time"]),
	}
	js.ExitCode, js.Signal = flexExit(f["exit_code"])
	if !started(js.State) {
		js.StartTime = time.Time{}
	}
	if !ended(js.State) {
		js.ExitCode, js.Signal = -1, 0
		js.EndTime = time.Time{}
	}
	if settling(js.State) {
		js.ExitCode, js.Signal = -1, 0
	}
	return js, true
}

// stringReference is String before its fast path for plain strings.
func stringReference(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return ""
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return ""
		}
		return s
	case '{', '[', 'n':
		return ""
	default:
		return string(raw)
	}
}

// parseErrorsReference is ParseErrors as it was before it walked the
// document: the whole of it decoded into a map[string]json.RawMessage to
// reach "errors". sameResult compares the two.
func parseErrorsReference(data []byte) (errs []Error, isObject bool) {
	var doc map[string]json.RawMessage
	if json.Unmarshal(data, &doc) != nil || doc == nil {
		return nil, false
	}
	var items []json.RawMessage
	if raw, ok := doc["errors"]; !ok || json.Unmarshal(raw, &items) != nil {
		return nil, true
	}
	return parseErrorItems(items), true
}
