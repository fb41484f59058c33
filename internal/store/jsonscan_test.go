package store

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/run"
)

// trickyRuns are records whose strings need escaping or that repeat filter
// field names in nested places.
func trickyRuns() []*run.Run {
	var out []*run.Run
	add := func(mod func(r *run.Run)) {
		r := testRun(len(out), run.StateCompleted)
		mod(r)
		out = append(out, r)
	}
	add(func(r *run.Run) {
		r.Spec.JobName = `quote"back\slash<tag>&amp`
		r.Spec.Labels = map[string]string{`k"ey`: `v"al`, "html": "<b>&", "uni": "日本語€", "ctl": "a\tb\nc\x01"}
	})
	add(func(r *run.Run) {
		r.Spec.JobName = "€uro-run"
		r.Spec.Labels = map[string]string{"spec": "nested", "create_time": "2020-01-01T00:00:00Z", "labels": "x", "job_name": "fake"}
		r.Spec.Environment = map[string]string{"team": "nlp", "job_name": "also fake"}
	})
	add(func(r *run.Run) { r.Spec.Labels = nil; r.Spec.JobName = "" })
	add(func(r *run.Run) { r.Spec.Labels = map[string]string{"team": "", "empty": ""} })
	add(func(r *run.Run) { r.Spec.Labels = map[string]string{"team": "nlp", "\u2028sep": "\u2029"} })
	add(func(r *run.Run) { r.CreateTime = time.Time{} })
	add(func(r *run.Run) { r.CreateTime = testEpoch.In(time.FixedZone("odd", -(3*3600 + 1800))).Add(123456789) })
	add(func(r *run.Run) { r.Spec.Labels = map[string]string{"bad-utf8": "a\xffb", "team": "nlp"} })
	return out
}

// TestMatchRawAgreesWithMatch: the raw-JSON filter must never reject a record
// the decoded filter accepts (nor the other way round), and must be able to
// answer for every record the store writes.
func TestMatchRawAgreesWithMatch(t *testing.T) {
	records := trickyRuns()
	for i := range 30 {
		records = append(records, testRun(i, mixedState(i)))
	}
	var queries []ListQuery
	for _, prefix := range []string{"", "quote\"", "quote\"back\\slash<", "€", "\xe2\x82", "llama", "zzz"} {
		queries = append(queries, ListQuery{NamePrefix: prefix})
	}
	for _, l := range []map[string]string{
		{`k"ey`: `v"al`}, {"html": "<b>&"}, {"uni": "日本語€"}, {"ctl": "a\tb\nc\x01"},
		{"spec": "nested"}, {"create_time": "2020-01-01T00:00:00Z"}, {"job_name": "fake"},
		{"team": "nlp"}, {"team": ""}, {"empty": ""}, {"team": "nlp", "project": "atlas"},
		{"\u2028sep": "\u2029"}, {"bad-utf8": "a\uFFFDb"}, {"missing": ""},
	} {
		queries = append(queries, ListQuery{Labels: l})
	}
	for _, tm := range []time.Time{testEpoch, testEpoch.Add(10 * time.Second), testEpoch.Add(123456789), {}} {
		queries = append(queries, ListQuery{CreatedAfter: tm}, ListQuery{CreatedBefore: tm}, ListQuery{CreatedAfter: tm.Add(-time.Hour), CreatedBefore: tm.Add(time.Nanosecond)})
	}
	queries = append(queries, ListQuery{NamePrefix: "vit", Labels: map[string]string{"team": "nlp"}, CreatedAfter: testEpoch})

	for ri, r := range records {
		data, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		decoded, err := decodeRun(0, data)
		if err != nil {
			t.Fatal(err)
		}
		for qi, q := range queries {
			f, err := newFilter(q)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := f.matchRaw(data)
			if err != nil {
				t.Errorf("record %d query %d: matchRaw could not read a record the store wrote: %v\n%s", ri, qi, err, data)
				continue
			}
			if want := f.match(decoded); raw != want {
				t.Errorf("record %d query %d %+v on %s: matchRaw = %v, match = %v", ri, qi, q, data, raw, want)
			}
		}
	}
}

func TestMatchRawFallsBack(t *testing.T) {
	f, err := newFilter(ListQuery{Labels: map[string]string{"team": "nlp"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, data := range []string{`[]`, `{"spec":{"labels":{"team":7}}}`, `{"spec":{"labels":{"team":"nlp"}`} {
		if _, err := f.matchRaw([]byte(data)); !errors.Is(err, errJSONScan) {
			t.Errorf("matchRaw(%s) error = %v, want errJSONScan", data, err)
		}
	}
}
