package version

import (
	"runtime/debug"
	"testing"
)

func TestFrom(t *testing.T) {
	vcs := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "4366ca8e1f0b"}, {Key: "vcs.time", Value: "2026-05-01T10:00:00Z"}, {Key: "vcs.modified", Value: "true"},
	}}
	tests := []struct {
		name       string
		v, c, d    string
		bi         *debug.BuildInfo
		want       Info
		wantString string
	}{
		{"linker flags win", "0.1.0", "abc123", "2026-06-01T00:00:00Z", vcs,
			Info{Version: "0.1.0", Commit: "abc123", Date: "2026-06-01T00:00:00Z", GoVersion: "go1.26.8"},
			"0.1.0 (commit abc123, built 2026-06-01T00:00:00Z, go1.26.8)"},
		{"VCS stamp of a go build in a checkout", "", "", "", vcs,
			Info{Version: "dev", Commit: "4366ca8e1f0b-dirty", Date: "2026-05-01T10:00:00Z", GoVersion: "go1.26.8"},
			"dev (commit 4366ca8e1f0b-dirty, built 2026-05-01T10:00:00Z, go1.26.8)"},
		{"go install of a tagged module", "", "", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.2.0"}},
			Info{Version: "v0.2.0", Commit: Unknown, Date: Unknown, GoVersion: "go1.26.8"},
			"v0.2.0 (commit unknown, built unknown, go1.26.8)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := from(tt.v, tt.c, tt.d, tt.bi)
			if got != tt.want || got.String() != tt.wantString {
				t.Errorf("got %+v %q, want %+v %q", got, got.String(), tt.want, tt.wantString)
			}
		})
	}
}

func TestRequested(t *testing.T) {
	tests := []struct {
		args []string
		want bool
	}{
		{[]string{"--version"}, true},
		{[]string{"--db", "x", "-version"}, true},
		{[]string{"--", "--version"}, false},
		{[]string{"--log-level", "debug"}, false},
		{nil, false},
	}
	for _, tt := range tests {
		if got := Requested(tt.args); got != tt.want {
			t.Errorf("Requested(%q) = %v, want %v", tt.args, got, tt.want)
		}
	}
}
