package progress

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestTrainPyLines reads a progress file that examples/finetune/train.py
// wrote (3 epochs, one rank).
func TestTrainPyLines(t *testing.T) {
	tl := NewTailer(filepath.Join("testdata", "train_py.jsonl"), TailOptions{})
	us, rej, err := tl.Poll(t0)
	if err != nil || len(rej) != 0 {
		t.Fatalf("Poll: %v %v", err, rej)
	}
	wantSteps(t, us, 1, 90, 180, 270)
	last, _ := Latest(us)
	if last.TotalSteps != 270 || last.Loss == nil || last.SamplesPerSecond == nil || *last.SamplesPerSecond <= 0 {
		t.Errorf("last update = %+v", last)
	}
	if last.Metrics["epoch"] != 3 || last.Metrics["test_acc"] < 0.9 || last.Metrics["lr"] != 0.003 {
		t.Errorf("last metrics = %v", last.Metrics)
	}
	if want := time.Date(2026, 11, 29, 11, 29, 13, 66e6, time.UTC); !last.Time.Equal(want) {
		t.Errorf("last time = %v, want %v", last.Time, want)
	}
}

// TestDocHelper runs the Python helper of docs/progress.md and reads what it
// wrote.
func TestDocHelper(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	doc, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "progress.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```python\n")
	helper, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 || !strings.Contains(helper, "def write_progress(") {
		t.Fatal("docs/progress.md has no write_progress helper")
	}
	script := helper + `
write_progress(1, 3, 2.5, samples_per_second=100.0, lr=0.1, epoch=0.5)
write_progress(2, 3, float("nan"), grad_norm=float("inf"), lr=0.1)
write_progress(3, fsync=True)
`
	path := filepath.Join(t.TempDir(), "progress.jsonl")
	cmd := exec.Command(py, "-c", script)
	cmd.Env = append(os.Environ(), EnvVar+"="+path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("python3: %v\n%s", err, out)
	}
	before := time.Now()
	us, rej, err := NewTailer(path, TailOptions{}).Poll(time.Now())
	if err != nil || len(rej) != 0 {
		t.Fatalf("Poll: %v %v", err, rej)
	}
	wantSteps(t, us, 1, 2, 3)
	if us[0].TotalSteps != 3 || *us[0].Loss != 2.5 || *us[0].SamplesPerSecond != 100 ||
		us[0].Metrics["lr"] != 0.1 || us[0].Metrics["epoch"] != 0.5 {
		t.Errorf("line 1 = %+v", us[0])
	}
	if us[1].Loss != nil || len(us[1].Metrics) != 1 {
		t.Errorf("line 2 (non-finite values left out) = %+v", us[1])
	}
	if us[2].TotalSteps != 0 || us[2].Metrics != nil {
		t.Errorf("line 3 = %+v", us[2])
	}
	for _, u := range us {
		if d := before.Sub(u.Time); d < 0 || d > time.Minute {
			t.Errorf("time %v is not when the line was written (%v)", u.Time, before)
		}
	}
}

// TestTrainPyCheckpointLines reads a progress file that train.py wrote with
// --checkpoint-every 40 (3 epochs of 90 steps, one rank): a checkpoint line
// every 40 steps and at each epoch end.
func TestTrainPyCheckpointLines(t *testing.T) {
	tl := NewTailer(filepath.Join("testdata", "train_py_checkpoints.jsonl"), TailOptions{})
	us, rej, err := tl.Poll(t0)
	if err != nil || len(rej) != 0 {
		t.Fatalf("Poll: %v %v", err, rej)
	}
	var steps []int64
	for _, u := range us {
		if u.Checkpoint != "" {
			if want := fmt.Sprintf("/shared/ckpt/run-7/checkpoint-step%d.pt", u.Step); u.Checkpoint != want {
				t.Errorf("step %d: checkpoint %q, want %q", u.Step, u.Checkpoint, want)
			}
			steps = append(steps, u.Step)
		}
	}
	if want := []int64{40, 80, 90, 120, 160, 180, 200, 240, 270}; !slices.Equal(steps, want) {
		t.Errorf("checkpoint steps = %v, want %v", steps, want)
	}
	if c, ok := LatestCheckpoint(us); !ok || c.Step != 270 {
		t.Errorf("LatestCheckpoint = %+v, %v; want step 270", c, ok)
	}
}
