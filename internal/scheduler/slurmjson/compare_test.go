package slurmjson

import (
	"encoding/json"
	"reflect"
	"testing"
)

// sameResult compares ParseJobs with parseJobsReference on one input:
// the same jobs, field by field, and an error exactly when the reference
// has one (with the same text).
func sameResult(t *testing.T, data []byte) {
	t.Helper()
	got, err := ParseJobs(data)
	want, wantErr := parseJobsReference(data)
	if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
		t.Fatalf("input %q:\nerror %v\n want %v", truncate(data), err, wantErr)
	}
	if (got == nil) != (want == nil) || !reflect.DeepEqual(got, want) {
		t.Fatalf("input %q:\n got %+v\nwant %+v", truncate(data), got, want)
	}
	// ParseErrors reads what decoding the whole document read, and
	// ParseJobList says what ParseErrors and then ParseJobs say.
	gotErrs, gotObject := ParseErrors(data)
	wantErrs, wantObject := parseErrorsReference(data)
	if gotObject != wantObject || !reflect.DeepEqual(gotErrs, wantErrs) {
		t.Fatalf("ParseErrors(%q) = %+v, %v; want %+v, %v", truncate(data), gotErrs, gotObject, wantErrs, wantObject)
	}
	listJobs, listErrs, listErr := ParseJobList(data)
	switch {
	case len(gotErrs) > 0:
		if !reflect.DeepEqual(listErrs, gotErrs) || listJobs != nil || listErr != nil {
			t.Fatalf("ParseJobList(%q) = %+v, %+v, %v; want the errors %+v alone", truncate(data), listJobs, listErrs, listErr, gotErrs)
		}
	case listErrs != nil || (listErr == nil) != (err == nil) || (err != nil && listErr.Error() != err.Error()) || !reflect.DeepEqual(listJobs, got):
		t.Fatalf("ParseJobList(%q) = %+v, %+v, %v; want ParseJobs' %+v, %v", truncate(data), listJobs, listErrs, listErr, got, err)
	}
	// String is also compared with its slow path on every input.
	if g, w := String(json.RawMessage(data)), stringReference(data); g != w {
		t.Fatalf("String(%q) = %q, want %q", truncate(data), g, w)
	}
}

func truncate(data []byte) []byte {
	if len(data) > 300 {
		return data[:300]
	}
	return data
}

// Every fixture and seed gives exactly what the map-based parser gave.
func TestParseJobs_SameAsReference(t *testing.T) {
	for _, path := range seedFiles(t) {
		t.Run(path, func(t *testing.T) { sameResult(t, readFixture(t, path)) })
	}
	for i, in := range referenceCases {
		data := []byte(in)
		t.Run("case", func(t *testing.T) {
			t.Logf("case %d: %s", i, in)
			sameResult(t, data)
		})
	}
}

// referenceCases are inputs where a faster decoder could differ from the
// map-based one: case-folded and escaped keys, duplicates, whitespace,
// odd values, invalid documents.
var referenceCases = []string{
	`{"errors":[{"error_number":1007,"error":"Unable to contact slurm controller (connect failure)","source":"slurm_load_jobs"}],"jobs":[]}`,
	`{"errors":[],"jobs":[{"job_id":1}]}`, `{"errors":null,"jobs":[]}`, `{"errors":"down","jobs":[]}`, `{"ERRORS":[{"error":"x"}],"jobs":[]}`,
	`{"errors":[{"error":"x"}],"errors":[],"jobs":[]}`, `{"errors":[],"errors":[{"errno":5}]}`, `{"errors":["plain text",1,null,{}],"jobs":[]}`,
	`{"errors":[{"error":"x"}],"jobs":7}`, `{"errors":[{"error":"x"}]`, `{"errors":[{"error_code":3,"description":"d"}]} x`,
	``, ` `, `null`, ` null `, `[]`, `"x"`, `1`, `true`, `{}`, `{"jobs":1}`, `{"jobs":"x"}`, `{"jobs":true}`,
	`{"jobs":{}}`, `{"jobs":null}`, `{"jobs":[]}`, ` { "jobs" : [ ] } `, `{"jobs":[]} x`, `{"jobs":[],}`,
	`{"jobs":[1,]}`, `{"jobs":[{"job_id":1}`, `{"JOBS":[{"job_id":1}]}`, `{"Jobs":[{"job_id":1}]}`,
	`{"jobs":[{"job_id":1}],"JOBS":[{"job_id":2}]}`, `{"JOBS":[{"job_id":2}],"jobs":[{"job_id":1}]}`,
	`{"jobs":[{"job_id":1}],"jobs":[{"job_id":2}]}`, `{"jobs":[{"job_id":1}],"jobs":null}`,
	`{"jobs":null,"jobs":[{"job_id":3}]}`, `{"jobs":[{"job_id":1}],"jobs":{}}`,
	`{"jo\u0062s":[{"job_id":1}]}`, `{"\u006aobs":[{"job_id":1}]}`, `{"jobs\u0000":[{"job_id":1}]}`,
	`{"jobs":[{"JOB_ID":1}]}`, `{"jobs":[{"Job_Id":1}]}`, `{"jobs":[{"job_id":1,"JOB_ID":2}]}`,
	`{"jobs":[{"JOB_ID":2,"job_id":1}]}`, `{"jobs":[{"job_id":1,"job_id":2}]}`, `{"jobs":[{"job_id":1,"job_id":null}]}`,
	`{"jobs":[{"job_\u0069d":5}]}`, `{"jobs":[{"job\u005fid":5,"n\u0061me":"x"}]}`,
	"{\"jobs\":[{\"job_id\":5,\"job_\u017ftate\":\"FAILED\",\"job_state\":\"RUNNING\"}]}",
	"{\"jobs\":[{\"job_id\":5,\"job_state\":\"RUNNING\",\"job_\u017ftate\":\"FAILED\"}]}",
	"{\"jobs\":[{\"job_id\":5,\"job_state\":\"RUNNING\",\"job_s\\u017ftate\":\"FAILED\"}]}",
	"{\"jobs\":[{\"job_id\":5,\"job_state\":\"FAILED\",\"\\u212aame\":\"k\",\"name\":\"n\",\"NAME\":\"N\"}]}",
	`{"jobs":[{"job_id":5,"job_state":"FAILED","exit_code":256,"EXIT_CODE":512,"Start_Time":9,"end_time":10}]}`,
	`{"jobs":[{"job_id":5,"job_state":"FAILED","exit_code":{"RETURN_CODE":3},"start_time":{"NUMBER":7,"SET":true}}]}`,
	`{"jobs":[{"job_id":5,"job_state":"FAILED","exit_code":{"return_code":3,"return_code":4}}]}`,
	`{"jobs":[{"job_id":5,"job_state":["RUNNING","FAILED"],"name":"a\"b\\c\/d\u00e9\ud83d\ude00"}]}`,
	"{\"jobs\":[{\"job_id\":5,\"name\":\"bad \xff utf8\",\"comment\":\"\xed\xa0\x80\",\"nodes\":\"ok \u00e9\"}]}",
	"{\"jobs\":[{\"job_id\":5,\"name\":\"lone \\ud800 surrogate\",\"comment\":\"\\u0000\"}]}",
	"{\"jobs\":[{\"job_id\":5,\"name\":\"tab\there\"}]}",
	"{\"jobs\":[{\"job\xffid\":5,\"job_id\":6}]}",
	"\t\n{\r\n\"jobs\" :\n[ 1 , \"x\" , null , [ ] , { } , {\n\"job_id\" : 7 , \"name\" : \"n\" } ] }\n",
	`{"jobs":[{"job_id":7,"name":{"a":[1,{"b":"]}"}]},"comment":"}","nodes":"]"}]}`,
	`{"jobs":[{"job_id":"7 ","name":-1.5e3,"comment":true,"nodes":false,"state_reason":12}]}`,
	`{"jobs":[{"job_id":7,"job_state":"completed","exit_code":"256","start_time":"100","end_time":" 200 "}]}`,
	`{"jobs":[{"job_id":7},{"job_id":7},{"job_id":-1},{"job_id":1e400},{"job_id":"0x10"}]}`,
	`{"meta":{"jobs":[{"job_id":1}]},"errors":[{"jobs":2}],"jobs":[{"job_id":9,"jobs":{"job_id":1}}]}`,
	`{"jobs":[{"job_id":9,"job_state":["\u0052UNNING"],"exit_code":{"status":["SIGNALED"],"signal":{"ID":9}}}]}`,
	`{"jobs":[{"job_id":9,"job_state":"TIMEOUT","exit_code":{"set":true,"number":{"number":15}}}]}`,
}

// Deeply nested values are rejected by both (encoding/json's depth limit).
func TestParseJobs_SameAsReferenceDeep(t *testing.T) {
	deep := make([]byte, 0, 40010)
	deep = append(deep, `{"jobs":[{"job_id":1,"name":`...)
	for i := 0; i < 20000; i++ {
		deep = append(deep, '[')
	}
	for i := 0; i < 20000; i++ {
		deep = append(deep, ']')
	}
	deep = append(deep, `}]}`...)
	sameResult(t, deep)
}
