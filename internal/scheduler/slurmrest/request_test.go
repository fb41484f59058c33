package slurmrest

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/scheduler"
)

// seedSpec is the shape the controller submits: 2 nodes × 8 tasks × 8 GPUs.
func seedSpec() scheduler.JobSpec {
	return scheduler.JobSpec{
		Name:         "train",
		Partition:    "main",
		Nodes:        2,
		TasksPerNode: 8,
		GPUsPerNode:  8,
		CPUsPerTask:  4,
		TimeLimit:    90*time.Minute + time.Second,
		WorkDir:      "/work/runs/r1",
		OutputPath:   "/work/runs/r1/%x-%j.out",
		Comment:      "sopilot:key=abc",
		Dependencies: []string{"11", "12"},
		Environment:  map[string]string{"FOO": "bar baz", "LANG": "en_US.UTF-8"},
		Script:       "#!/bin/bash\nsrun true\n",
	}
}

func mustVersion(t *testing.T, s string) apiVersion {
	t.Helper()
	v, err := parseAPIVersion(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestSubmitBody(t *testing.T) {
	tests := []struct {
		name    string
		version string
		spec    scheduler.JobSpec
		want    string
	}{
		{
			// The shape verified against slurmrestd 22.05.8 (see the
			// integration tests): nodes a number, tasks computed, gres,
			// environment an object.
			name:    "v0.0.38 seed shape",
			version: "v0.0.38",
			spec:    seedSpec(),
			want: `{"job":{"comment":"sopilot:key=abc","cpus_per_task":4,` +
				`"current_working_directory":"/work/runs/r1","dependency":"afterok:11:12",` +
				`"environment":{"FOO":"bar baz","LANG":"en_US.UTF-8","PATH":"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},` +
				`"gres":"gpu:8","name":"train","nodes":2,"partition":"main",` +
				`"standard_error":"/work/runs/r1/%x-%j.out","standard_output":"/work/runs/r1/%x-%j.out",` +
				`"tasks":16,"tasks_per_node":8,"time_limit":91},` +
				`"script":"#!/bin/bash\nsrun true\n"}`,
		},
		{
			name:    "v0.0.41 seed shape",
			version: "v0.0.41",
			spec:    seedSpec(),
			want: `{"job":{"comment":"sopilot:key=abc","cpus_per_task":4,` +
				`"current_working_directory":"/work/runs/r1","dependency":"afterok:11:12",` +
				`"environment":["FOO=bar baz","LANG=en_US.UTF-8","PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],` +
				`"name":"train","nodes":"2","partition":"main",` +
				`"script":"#!/bin/bash\nsrun true\n",` +
				`"standard_error":"/work/runs/r1/%x-%j.out","standard_output":"/work/runs/r1/%x-%j.out",` +
				`"tasks":16,"tasks_per_node":8,"time_limit":{"set":true,"infinite":false,"number":91},` +
				`"tres_per_node":"gres/gpu:8"}}`,
		},
		{
			name:    "v0.0.38 minimal: only the environment defaults",
			version: "v0.0.38",
			spec:    scheduler.JobSpec{Script: "#!/bin/sh\n"},
			want: `{"job":{"environment":{"LANG":"C.UTF-8","PATH":"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}},` +
				`"script":"#!/bin/sh\n"}`,
		},
		{
			name:    "v0.0.44 minimal",
			version: "v0.0.44",
			spec:    scheduler.JobSpec{Script: "#!/bin/sh\n", Environment: map[string]string{"PATH": "/bin"}},
			want:    `{"job":{"environment":["LANG=C.UTF-8","PATH=/bin"],"script":"#!/bin/sh\n"}}`,
		},
		{
			// Checked on 24.11 (v0.0.42) and 26.05 (v0.0.45): ExcNodeList
			// is set.
			name:    "v0.0.42 excluded nodes",
			version: "v0.0.42",
			spec:    scheduler.JobSpec{Script: "#!/bin/sh\n", Environment: map[string]string{"PATH": "/bin"}, Exclude: []string{"worker-0", "worker-3"}},
			want:    `{"job":{"environment":["LANG=C.UTF-8","PATH=/bin"],"excluded_nodes":["worker-0","worker-3"],"script":"#!/bin/sh\n"}}`,
		},
		{
			// 22.05's slurmrestd answers "Disabled key" for
			// excluded_nodes and "Unknown key" for exclude.
			name:    "v0.0.38 cannot exclude",
			version: "v0.0.38",
			spec:    scheduler.JobSpec{Script: "#!/bin/sh\n", Environment: map[string]string{"PATH": "/bin", "LANG": "C"}, Exclude: []string{"worker-0"}},
			want:    `{"job":{"environment":{"LANG":"C","PATH":"/bin"}},"script":"#!/bin/sh\n"}`,
		},
		{
			name:    "tasks per node without nodes means one node",
			version: "v0.0.38",
			spec:    scheduler.JobSpec{Script: "#!/bin/sh\n", TasksPerNode: 4, Environment: map[string]string{"PATH": "/bin", "LANG": "C"}},
			want:    `{"job":{"environment":{"LANG":"C","PATH":"/bin"},"tasks":4,"tasks_per_node":4},"script":"#!/bin/sh\n"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := submitBody(mustVersion(t, tt.version), tt.spec)
			if err != nil {
				t.Fatalf("submitBody: %v", err)
			}
			if !jsonEqual(t, got, []byte(tt.want)) {
				t.Errorf("body\n got: %s\nwant: %s", got, tt.want)
			}
		})
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("unmarshal %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
	return reflect.DeepEqual(x, y)
}

func TestSubmitBody_RejectsBadSpecs(t *testing.T) {
	tests := []struct {
		name string
		edit func(*scheduler.JobSpec)
	}{
		{name: "script without shebang", edit: func(s *scheduler.JobSpec) { s.Script = "srun true" }},
		{name: "negative nodes", edit: func(s *scheduler.JobSpec) { s.Nodes = -1 }},
		{name: "negative time", edit: func(s *scheduler.JobSpec) { s.TimeLimit = -time.Second }},
		{name: "env name with =", edit: func(s *scheduler.JobSpec) { s.Environment = map[string]string{"A=B": "x"} }},
		{name: "empty env name", edit: func(s *scheduler.JobSpec) { s.Environment = map[string]string{"": "x"} }},
		{name: "dependency smuggling a type", edit: func(s *scheduler.JobSpec) { s.Dependencies = []string{"1,afterany:2"} }},
		{name: "empty dependency", edit: func(s *scheduler.JobSpec) { s.Dependencies = []string{""} }},
		{name: "excluded node list syntax", edit: func(s *scheduler.JobSpec) { s.Exclude = []string{"worker-[0-1]"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := seedSpec()
			tt.edit(&spec)
			for _, v := range []string{"v0.0.38", "v0.0.40"} {
				_, err := submitBody(mustVersion(t, v), spec)
				if !errors.Is(err, scheduler.ErrRejected) {
					t.Errorf("%s: err = %v, want ErrRejected", v, err)
				}
			}
		})
	}
}

func TestTimeLimitMinutes(t *testing.T) {
	tests := []struct {
		name string
		in   time.Duration
		want int64
	}{
		{name: "zero is unset", in: 0, want: 0},
		{name: "negative is unset", in: -time.Minute, want: 0},
		{name: "one second rounds up", in: time.Second, want: 1},
		{name: "exact minute", in: time.Minute, want: 1},
		{name: "just over", in: time.Minute + time.Nanosecond, want: 2},
		{name: "hours", in: 48 * time.Hour, want: 2880},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := timeLimitMinutes(tt.in); got != tt.want {
				t.Errorf("timeLimitMinutes(%v) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestJobEnvironment_DoesNotModifySpec(t *testing.T) {
	spec := map[string]string{"A": "1"}
	env := jobEnvironment(spec)
	if len(spec) != 1 {
		t.Errorf("spec modified: %v", spec)
	}
	want := map[string]string{"A": "1", "PATH": defaultPATH, "LANG": defaultLANG}
	if !reflect.DeepEqual(env, want) {
		t.Errorf("env = %v, want %v", env, want)
	}
	if got := jobEnvironment(nil); len(got) != 2 {
		t.Errorf("nil spec: %v", got)
	}
}

func TestParseAPIVersion(t *testing.T) {
	tests := []struct {
		in       string
		want     string
		newShape bool
		wantErr  bool
	}{
		{in: "", want: "v0.0.38"},
		{in: "v0.0.38", want: "v0.0.38"},
		{in: "v0.0.39", want: "v0.0.39", newShape: true},
		{in: "v0.0.40", want: "v0.0.40", newShape: true},
		{in: "v0.0.44", want: "v0.0.44", newShape: true},
		{in: "v0.0.37", wantErr: true},
		{in: "0.0.40", wantErr: true},
		{in: "v0.0.40/../x", wantErr: true},
		{in: "v1", wantErr: true},
	}
	for _, tt := range tests {
		t.Run("version "+tt.in, func(t *testing.T) {
			v, err := parseAPIVersion(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && (v.name != tt.want || v.dataParser() != tt.newShape) {
				t.Errorf("got %+v", v)
			}
		})
	}
}
