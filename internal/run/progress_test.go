package run_test

import (
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/run"
)

func TestAcceptsProgress(t *testing.T) {
	end := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		end, now time.Time
		want     bool
	}{
		{"not ended", time.Time{}, end.Add(24 * time.Hour), true},
		{"before the end", end, end.Add(-time.Second), true},
		{"at the end", end, end, true},
		{"within the window", end, end.Add(59 * time.Second), true},
		{"at the window's end", end, end.Add(run.LateProgressWindow), true},
		{"just after the window", end, end.Add(run.LateProgressWindow + time.Nanosecond), false},
		{"long after", end, end.Add(time.Hour), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := run.AcceptsProgress(tt.end, tt.now); got != tt.want {
				t.Errorf("AcceptsProgress(%v, %v) = %v, want %v", tt.end, tt.now, got, tt.want)
			}
		})
	}
}
