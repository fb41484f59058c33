package slurmrest

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sopilot/sopilot/internal/scheduler/slurmjson"
)

// The job-list parser and its tests moved to package slurmjson, which reads
// these fixtures from here.

const (
	fixtures2205 = "testdata/slurm-22.05-v0.0.38"
)

func readFixture(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	return data
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		want   []APIErrorEntry
		isJSON bool
	}{
		{name: "not json", in: "Authentication failure", isJSON: false},
		{name: "no errors", in: `{"errors":[]}`, want: []APIErrorEntry{}, isJSON: true},
		{name: "no errors field", in: `{"jobs":[]}`, isJSON: true},
		{
			name: "v0.0.38 error_code form",
			in:   `{"errors":[{"error_code":2000,"error":"Invalid partition name specified"}]}`,
			want: []APIErrorEntry{{Number: 2000, Error: "Invalid partition name specified"}}, isJSON: true,
		},
		{
			name: "error_number with description and source",
			in:   `{"errors":[{"description":"d","error_number":2017,"error":"Invalid job id specified","source":"slurm_kill_job"}]}`,
			want: []APIErrorEntry{{Number: 2017, Error: "Invalid job id specified", Description: "d", Source: "slurm_kill_job"}}, isJSON: true,
		},
		{
			name: "entries without number, placeholders and strings",
			in:   `{"errors":[{"description":"Unknown key \"x\"","source":"hsearch_r"},{},"plain",{"error_number":{"set":true,"number":9001}}]}`,
			want: []APIErrorEntry{{Description: `Unknown key "x"`, Source: "hsearch_r"}, {Error: "plain"}, {Number: 9001}}, isJSON: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, isJSON := parseErrors([]byte(tt.in))
			if isJSON != tt.isJSON {
				t.Fatalf("isJSON = %v, want %v", isJSON, tt.isJSON)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("entry %d: got %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestParseSubmit(t *testing.T) {
	tests := []struct {
		name   string
		file   string
		in     string
		wantID string
		wantOK bool
	}{
		{name: "22.05 captured", file: filepath.Join(fixtures2205, "submit-success.json"), wantID: "14", wantOK: true},
		{name: "22.05 created with an error code", file: filepath.Join(fixtures2205, "submit-too-many-nodes.json"), wantID: "15", wantOK: true},
		{name: "22.05 rejected", file: filepath.Join(fixtures2205, "submit-invalid-partition.json")},
		{name: "24.11 v0.0.40 captured (with result)", file: "testdata/slurm-24.11-v0.0.40/submit-success.json", wantID: "11", wantOK: true},
		{name: "26.05 v0.0.44 captured", file: "testdata/slurm-26.05-v0.0.44/submit-success.json", wantID: "15", wantOK: true},
		{name: "26.05 v0.0.45 rejected", file: "testdata/slurm-26.05-v0.0.45/submit-invalid-partition.json"},
		{name: "only result object", in: `{"result":{"job_id":77}}`, wantID: "77", wantOK: true},
		{name: "job id zero", in: `{"job_id":0}`},
		{name: "garbage", in: `]]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := []byte(tt.in)
			if tt.file != "" {
				data = readFixture(t, tt.file)
			}
			id, ok := parseSubmit(data)
			if id != tt.wantID || ok != tt.wantOK {
				t.Errorf("parseSubmit = %q, %v; want %q, %v", id, ok, tt.wantID, tt.wantOK)
			}
		})
	}
}

// seedFiles are every JSON answer under testdata, captured or written.
func seedFiles(t testing.TB) []string {
	var files []string
	err := filepath.WalkDir("testdata", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".json") && !strings.HasSuffix(path, ".request.json") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk testdata: %v", err)
	}
	return files
}

// FuzzParseAnswers feeds any body to every reader of slurmrestd answers
// (the job listing's own invariants are checked by slurmjson.FuzzParseJobs).
func FuzzParseAnswers(f *testing.F) {
	for _, path := range seedFiles(f) {
		f.Add(readFixture(f, path))
	}
	f.Add([]byte(`{"errors":[{"error_number":2017,"error":"Invalid job id specified"}],"jobs":[{"job_id":1}],"result":{"job_id":5}}`))
	f.Add([]byte(`{"warnings":[{"description":"w"},1,null],"job_id":"7"}`))
	f.Add([]byte(`{"status":[{"error":{"string":"Invalid job id specified","code":2017}},{"error":{"code":0}},{"error":"x"},1],"errors":[]}`))
	f.Add([]byte(`{"paths":{"/slurm/v0.0.42/jobs":{},"/slurm/v0.0.40/ping":{},"/slurm/v0.0.42/ping":{},"/slurmdb/v0.0.42/x":{}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, isJSON := parseErrors(data)
		if !isJSON && entries != nil {
			t.Fatalf("entries %+v from a body that is not a JSON object", entries)
		}
		if isJSON {
			parseWarnings(data)
		}
		if id, ok := parseSubmit(data); ok != (id != "") {
			t.Fatalf("parseSubmit = %q, %v", id, ok)
		}
		_, _ = slurmjson.ParseJobs(data)
		for _, e := range parseCancelStatus(data) {
			if e.Number == 0 {
				t.Fatalf("cancel status entry without a number: %+v", e)
			}
		}
		v := ServedVersions(data)
		if !slices.IsSorted(v) || len(slices.Compact(slices.Clone(v))) != len(v) {
			t.Fatalf("ServedVersions = %v: not sorted and unique", v)
		}
		for _, m := range v {
			if m < 0 || m > 9999 {
				t.Fatalf("ServedVersions = %v", v)
			}
		}
	})
}

// parseWarnings keeps each warning's description, in order, and reads
// "warnings" as decoding into a map would: the exact key, the last of
// duplicates.
func TestParseWarnings(t *testing.T) {
	for _, tc := range []struct {
		body string
		want []string
	}{
		{`{"warnings":[{"description":"a","source":"x"},{"description":""},1,null,{"description":"b"}],"jobs":[]}`, []string{"a", "b"}},
		{`{"warnings":[{"description":"old"}],"warnings":[{"description":"new"}]}`, []string{"new"}},
		{`{"Warnings":[{"description":"a"}]}`, nil},
		{`{"warnings":"none"}`, nil},
		{`{"jobs":[]}`, nil},
	} {
		if got := parseWarnings([]byte(tc.body)); !slices.Equal(got, tc.want) {
			t.Errorf("parseWarnings(%s) = %q, want %q", tc.body, got, tc.want)
		}
	}
}
