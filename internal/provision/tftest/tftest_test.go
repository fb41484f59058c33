package tftest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestVerdict(t *testing.T) {
	tests := []struct {
		name, require string
		fatal         bool
	}{
		{"skip by default", "", false},
		{"fail when required", "1", true},
		{"only 1 requires", "true", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fatal, msg := verdict("not on PATH", tt.require)
			if fatal != tt.fatal || !strings.Contains(msg, "not on PATH") || !strings.Contains(msg, "make tools") {
				t.Fatalf("verdict = %v, %q", fatal, msg)
			}
		})
	}
}

func TestRepoRoot(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "internal", "provision", "tftest", "tftest.go")); err != nil {
		t.Fatalf("root %q: %v", root, err)
	}
}
