package waitfile

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func write(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestWait(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, dir string) string // returns the path to wait for
		wantErr error
	}{
		{"present", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "toolkit-ready")
			write(t, p)
			return p
		}, nil},
		{"symbolic link to a file", func(t *testing.T, dir string) string {
			write(t, filepath.Join(dir, "target"))
			p := filepath.Join(dir, "toolkit-ready")
			if err := os.Symlink("target", p); err != nil {
				t.Fatal(err)
			}
			return p
		}, nil},
		{"missing", func(t *testing.T, dir string) string { return filepath.Join(dir, "toolkit-ready") }, ErrTimeout},
		{"directory missing too", func(t *testing.T, dir string) string {
			return filepath.Join(dir, "validations", "toolkit-ready")
		}, ErrTimeout},
		{"a directory is not the file", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "toolkit-ready")
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
			return p
		}, ErrTimeout},
		{"dangling symbolic link", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "toolkit-ready")
			if err := os.Symlink("nowhere", p); err != nil {
				t.Fatal(err)
			}
			return p
		}, ErrTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.prepare(t, t.TempDir())
			var logs bytes.Buffer
			err := Wait(context.Background(), path, Options{
				Interval: 5 * time.Millisecond, Timeout: 50 * time.Millisecond,
				Logger: slog.New(slog.NewTextHandler(&logs, nil)),
			})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Wait: %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				// The error says which file, how long, and why it did
				// not count; so does the log.
				for _, want := range []string{path, "after 50ms", "last: "} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q lacks %q", err, want)
					}
				}
				if !strings.Contains(logs.String(), "waiting for file") {
					t.Errorf("no log of the wait: %q", logs.String())
				}
			} else if logs.Len() != 0 {
				t.Errorf("a file already there logged %q", logs.String())
			}
		})
	}
}

// A file that appears while Wait waits ends the wait.
func TestWaitUntilAppears(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "validations", "toolkit-ready")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(30 * time.Millisecond)
		// As the validator does: the directory first, then the file.
		if err := os.Mkdir(filepath.Dir(path), 0o755); err != nil {
			t.Error(err)
			return
		}
		if err := os.WriteFile(path, nil, 0o644); err != nil {
			t.Error(err)
		}
	}()
	var logs bytes.Buffer
	err := Wait(context.Background(), path, Options{Interval: 5 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	wg.Wait()
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	for _, want := range []string{"waiting for file", "file appeared", "path=" + path} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

// Without a timeout, the wait ends with its context, and says so rather
// than ErrTimeout.
func TestWaitCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(20 * time.Millisecond)
		cancel()
	}()
	err := Wait(ctx, filepath.Join(t.TempDir(), "never"), Options{Interval: 5 * time.Millisecond})
	wg.Wait()
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
		t.Fatalf("Wait: %v, want context.Canceled", err)
	}
}
