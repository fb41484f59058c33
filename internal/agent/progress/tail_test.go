package progress

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func appendFile(t testing.TB, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func steps(us []Update) []int64 {
	out := make([]int64, len(us))
	for i, u := range us {
		out[i] = u.Step
	}
	return out
}

func poll(t *testing.T, tl *Tailer, now time.Time) ([]Update, []error) {
	t.Helper()
	us, rej, err := tl.Poll(now)
	if err != nil {
		t.Fatalf("Poll: %v", err)
	}
	return us, rej
}

func wantSteps(t *testing.T, us []Update, want ...int64) {
	t.Helper()
	got := steps(us)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		if len(want) == 0 && len(got) == 0 {
			return
		}
		t.Fatalf("steps = %v, want %v", got, want)
	}
}

func TestTailerMissingThenAppendedInPieces(t *testing.T) {
	path := filepath.Join(t.TempDir(), "progress.jsonl")
	tl := NewTailer(path, TailOptions{})
	us, rej := poll(t, tl, t0)
	if len(us)+len(rej) != 0 || tl.Offset() != 0 {
		t.Fatalf("missing file: %v %v offset %d", us, rej, tl.Offset())
	}

	appendFile(t, path, `{"step":1,"total_steps":10,"loss":2.5}`+"\n"+`{"step":2,"time":"2026-11-29T11:59:59Z"}`+"\n")
	us, rej = poll(t, tl, t0)
	wantSteps(t, us, 1, 2)
	if len(rej) != 0 {
		t.Fatalf("rejected %v", rej)
	}
	if !us[0].Time.Equal(t0) || us[0].TotalSteps != 10 || *us[0].Loss != 2.5 {
		t.Errorf("first update = %+v", us[0])
	}
	if want := t0.Add(-time.Second); !us[1].Time.Equal(want) {
		t.Errorf("second update time = %v, want %v (from the line)", us[1].Time, want)
	}

	// A line written in three pieces comes back once, when complete.
	appendFile(t, path, `{"step":3,`)
	us, _ = poll(t, tl, t0.Add(time.Second))
	wantSteps(t, us)
	appendFile(t, path, `"loss":1.`)
	us, _ = poll(t, tl, t0.Add(2*time.Second))
	wantSteps(t, us)
	appendFile(t, path, "25}\n{\"step\":4}\n")
	us, rej = poll(t, tl, t0.Add(3*time.Second))
	wantSteps(t, us, 3, 4)
	if *us[0].Loss != 1.25 || !us[0].Time.Equal(t0.Add(3*time.Second)) {
		t.Errorf("reassembled update = %+v", us[0])
	}
	if len(rej) != 0 {
		t.Fatalf("rejected %v", rej)
	}
	fi, _ := os.Stat(path)
	if tl.Offset() != fi.Size() || tl.Resets() != 0 {
		t.Errorf("offset %d (file %d), resets %d", tl.Offset(), fi.Size(), tl.Resets())
	}
	// Nothing new: nothing returned.
	us, rej = poll(t, tl, t0.Add(4*time.Second))
	if len(us)+len(rej) != 0 {
		t.Errorf("idle poll returned %v %v", us, rej)
	}
	if l, ok := Latest(us); ok {
		t.Errorf("Latest of an idle poll = %+v", l)
	}
}

func TestTailerGarbageInterleaved(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p")
	appendFile(t, path, strings.Join([]string{
		`{"step":1}`,
		`Epoch 1: 100%|##########| 10/10`,
		``,
		`{"step":2,"loss":NaN}`,
		"{\"step\":3}\r",
		`{"step":-4}`,
		`{"step":5,"total_steps":4}`,
		`{"step":6}`,
	}, "\n")+"\n")
	tl := NewTailer(path, TailOptions{})
	us, rej := poll(t, tl, t0)
	wantSteps(t, us, 1, 3, 6)
	want := []struct {
		line  int64
		field string
	}{{2, ""}, {4, "loss"}, {6, "step"}, {7, "step"}}
	if len(rej) != len(want) {
		t.Fatalf("rejected %v, want %d errors", rej, len(want))
	}
	for i, w := range want {
		var le *LineError
		var fe *FieldError
		if !errors.As(rej[i], &le) || !errors.As(rej[i], &fe) {
			t.Fatalf("rejected[%d] = %T %v", i, rej[i], rej[i])
		}
		if le.Line != w.line || fe.Field != w.field {
			t.Errorf("rejected[%d] = line %d field %q, want line %d field %q", i, le.Line, fe.Field, w.line, w.field)
		}
		if !strings.HasPrefix(rej[i].Error(), fmt.Sprintf("progress: line %d: ", w.line)) {
			t.Errorf("rejected[%d].Error() = %q", i, rej[i])
		}
	}
	if got := rej[1].Error(); got != `progress: line 4: field "loss": must be a finite number, got NaN` {
		t.Errorf("message = %q", got)
	}
	// Line numbers continue across polls.
	appendFile(t, path, "oops\n")
	_, rej = poll(t, tl, t0)
	var le *LineError
	if len(rej) != 1 || !errors.As(rej[0], &le) || le.Line != 9 {
		t.Errorf("next rejection = %v, want line 9", rej)
	}
}

func TestTailerTruncate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p")
	appendFile(t, path, "{\"step\":1}\n{\"step\":2}\n{\"step\":3}\n{\"step\":4,")
	tl := NewTailer(path, TailOptions{})
	us, _ := poll(t, tl, t0)
	wantSteps(t, us, 1, 2, 3)

	// The run restarts and opens the file with "w": same inode, shorter.
	if err := os.WriteFile(path, []byte("{\"step\":0}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	us, rej := poll(t, tl, t0)
	wantSteps(t, us, 0)
	if len(rej) != 0 || tl.Resets() != 1 || tl.Offset() != 11 {
		t.Errorf("after truncation: rejected %v, resets %d, offset %d", rej, tl.Resets(), tl.Offset())
	}
	appendFile(t, path, "bad\n")
	_, rej = poll(t, tl, t0)
	var le *LineError
	if len(rej) != 1 || !errors.As(rej[0], &le) || le.Line != 2 {
		t.Errorf("line numbers restart after truncation: %v", rej)
	}
}

func TestTailerRotate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p")
	appendFile(t, path, "{\"step\":1}\n{\"step\":2}\n")
	tl := NewTailer(path, TailOptions{})
	us, _ := poll(t, tl, t0)
	wantSteps(t, us, 1, 2)

	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	// Between the rename and the new file: nothing, no error, no reset.
	us, rej := poll(t, tl, t0)
	if len(us)+len(rej) != 0 || tl.Resets() != 0 {
		t.Fatalf("renamed away: %v %v resets %d", us, rej, tl.Resets())
	}
	// The new file is longer than the offset: only its identity tells.
	appendFile(t, path, "{\"step\":10}\n{\"step\":11}\n{\"step\":12}\n")
	us, _ = poll(t, tl, t0)
	wantSteps(t, us, 10, 11, 12)
	if tl.Resets() != 1 {
		t.Errorf("resets = %d, want 1", tl.Resets())
	}

	// Replaced by rename over it (an atomic rewrite).
	tmp := filepath.Join(dir, "tmp")
	appendFile(t, tmp, "{\"step\":20}\n{\"step\":21}\n{\"step\":22}\n{\"step\":23}\n")
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	us, _ = poll(t, tl, t0)
	wantSteps(t, us, 20, 21, 22, 23)
	if tl.Resets() != 2 {
		t.Errorf("resets = %d, want 2", tl.Resets())
	}
}

func TestTailerPartialDiscardedAfterReset(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p")
	appendFile(t, path, "{\"step\":1}\n{\"step\":")
	tl := NewTailer(path, TailOptions{})
	poll(t, tl, t0)
	if err := os.WriteFile(path, []byte("2}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	us, rej := poll(t, tl, t0)
	if len(us) != 0 || len(rej) != 1 {
		t.Fatalf("the old partial line must not join the new file: %v %v", us, rej)
	}
}

func TestTailerOverlongLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p")
	tl := NewTailer(path, TailOptions{})
	long := `{"step":1,"pad":"` + strings.Repeat("x", MaxLineBytes) + `"}`

	// Complete in one read.
	appendFile(t, path, long+"\n{\"step\":2}\n")
	us, rej := poll(t, tl, t0)
	wantSteps(t, us, 2)
	if len(rej) != 1 || !strings.Contains(rej[0].Error(), "line 1: line is") {
		t.Fatalf("rejected = %v", rej)
	}

	// Arriving in pieces: rejected once, as soon as it is too long, and
	// the rest up to its newline is dropped.
	appendFile(t, path, long[:MaxLineBytes/2])
	us, rej = poll(t, tl, t0)
	if len(us)+len(rej) != 0 {
		t.Fatalf("half a long line: %v %v", us, rej)
	}
	appendFile(t, path, long[MaxLineBytes/2:])
	us, rej = poll(t, tl, t0)
	if len(us) != 0 || len(rej) != 1 || !strings.Contains(rej[0].Error(), "line 3: line is longer than the limit") {
		t.Fatalf("overlong partial: %v %v", us, rej)
	}
	appendFile(t, path, "still the same line")
	us, rej = poll(t, tl, t0)
	if len(us)+len(rej) != 0 {
		t.Fatalf("rest of the long line: %v %v", us, rej)
	}
	appendFile(t, path, "\n{\"step\":4}\n")
	us, rej = poll(t, tl, t0)
	wantSteps(t, us, 4)
	if len(rej) != 0 {
		t.Fatalf("rejected %v", rej)
	}

	// A line of exactly MaxLineBytes is accepted.
	exact := `{"step":5,"pad":"` + strings.Repeat("y", MaxLineBytes-len(`{"step":5,"pad":""}`)) + `"}`
	if len(exact) != MaxLineBytes {
		t.Fatalf("test line is %d bytes", len(exact))
	}
	appendFile(t, path, exact[:100])
	poll(t, tl, t0)
	appendFile(t, path, exact[100:]+"\n")
	us, rej = poll(t, tl, t0)
	wantSteps(t, us, 5)
	if len(rej) != 0 {
		t.Fatalf("rejected %v", rej)
	}
}

func TestTailerBacklogAcrossPolls(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p")
	var b strings.Builder
	n := 0
	for b.Len() < 10<<20 {
		fmt.Fprintf(&b, `{"step":%d,"total_steps":1000000,"loss":%g,"samples_per_second":812.5,"metrics":{"lr":0.0003,"epoch":%d}}`+"\n", n, 1/float64(n+1), n/1000)
		n++
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	tl := NewTailer(path, TailOptions{})
	var all []Update
	polls := 0
	for {
		us, rej, err := tl.Poll(t0)
		if err != nil || len(rej) != 0 {
			t.Fatalf("poll %d: %v %v", polls, err, rej)
		}
		if len(us) == 0 {
			break
		}
		polls++
		all = append(all, us...)
		if tl.Offset() > int64(polls)*DefaultMaxBytesPerPoll {
			t.Fatalf("poll %d read past %d bytes: offset %d", polls, polls*DefaultMaxBytesPerPoll, tl.Offset())
		}
	}
	if len(all) != n {
		t.Fatalf("read %d updates, want %d", len(all), n)
	}
	for i, u := range all {
		if u.Step != int64(i) {
			t.Fatalf("update %d has step %d", i, u.Step)
		}
	}
	if want := (b.Len() + DefaultMaxBytesPerPoll - 1) / DefaultMaxBytesPerPoll; polls != want {
		t.Errorf("%d polls, want %d", polls, want)
	}
	if tl.Offset() != int64(b.Len()) {
		t.Errorf("offset %d, want %d", tl.Offset(), b.Len())
	}
}

func TestTailerSmallReadLimitIsRaised(t *testing.T) {
	tl := NewTailer("x", TailOptions{MaxBytesPerPoll: 10})
	if tl.max != MaxLineBytes+1 {
		t.Errorf("max = %d", tl.max)
	}
}

func TestTailerErrors(t *testing.T) {
	dir := t.TempDir()
	// A directory is not a progress file.
	tl := NewTailer(dir, TailOptions{})
	if _, _, err := tl.Poll(t0); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: err = %v", err)
	}

	path := filepath.Join(dir, "p")
	appendFile(t, path, "{\"step\":1}\n")
	if err := os.Chmod(path, 0); err != nil {
		t.Fatal(err)
	}
	tl = NewTailer(path, TailOptions{})
	_, _, err := tl.Poll(t0)
	if os.Geteuid() == 0 {
		// root reads anything; the permission check cannot be observed.
		if err != nil {
			t.Errorf("as root: %v", err)
		}
		return
	}
	if !errors.Is(err, fs.ErrPermission) {
		t.Errorf("unreadable: err = %v, want a permission error", err)
	}
	// Readable again: the tail goes on from where it was.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	us, _ := poll(t, tl, t0)
	wantSteps(t, us, 1)
}

// BenchmarkPoll1Hz is the agent's steady state: one line appended, one
// Poll.
func BenchmarkPoll1Hz(b *testing.B) {
	path := filepath.Join(b.TempDir(), "p")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	tl := NewTailer(path, TailOptions{})
	line := []byte(`{"step":1234,"total_steps":100000,"loss":0.4321,"samples_per_second":812.5,"metrics":{"lr":0.0003,"epoch":2}}` + "\n")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.Write(line); err != nil {
			b.Fatal(err)
		}
		us, rej, err := tl.Poll(t0)
		if err != nil || len(rej) != 0 || len(us) != 1 {
			b.Fatalf("%v %v %v", us, rej, err)
		}
	}
}

// BenchmarkPollIdle is a Poll with nothing new.
func BenchmarkPollIdle(b *testing.B) {
	path := filepath.Join(b.TempDir(), "p")
	appendFile(b, path, "{\"step\":1}\n")
	tl := NewTailer(path, TailOptions{})
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := tl.Poll(t0); err != nil {
			b.Fatal(err)
		}
	}
}
