package attrib

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseJobFile(t *testing.T) {
	for _, tc := range []struct {
		name, data, want string
	}{
		{"as the prolog writes it", "1234", "1234"},
		{"trailing newline", "1234\n", "1234"},
		{"surrounding blanks", " \t77\r\n", "77"},
		{"leading zeros normalised", "0042", "42"},
		{"largest job id", "4294967295", "4294967295"},
		{"no job id in the prolog", "0", ""},
		{"empty", "", ""},
		{"too large", "4294967296", ""},
		{"array-style id", "12_3", ""},
		{"negative", "-5", ""},
		{"two ids", "12\n13\n", ""},
		{"text", "job 12", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ParseJobFile([]byte(tc.data))
			if got != tc.want || ok != (tc.want != "") {
				t.Errorf("ParseJobFile(%q) = %q, %v; want %q", tc.data, got, ok, tc.want)
			}
		})
	}
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestGPUJobsRead(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"0":     "501",
		"1":     "501",
		"3":     "502\n",
		"4":     "0",                       // prolog without SLURM_JOB_ID
		"5":     "",                        // being written
		"6":     strings.Repeat("9", 1000), // garbage, read only in part
		"63":    "9",
		"64":    "10", // beyond any GPU index
		"07":    "11", // not how the prolog names GPU 7
		"-1":    "12",
		"x":     "13",
		".tmp0": "14",
	})
	if err := os.Mkdir(filepath.Join(dir, "2"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := NewGPUJobs(dir).Read()
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]string{0: "501", 1: "501", 3: "502", 63: "9"}
	if len(got) != len(want) {
		t.Errorf("Read = %v, want %v", got, want)
	}
	for idx, job := range want {
		if got[idx] != job {
			t.Errorf("GPU %d: job %q, want %q (all: %v)", idx, got[idx], job, got)
		}
	}

	// The epilog removes a GPU's file: that GPU has no job any more.
	if err := os.Remove(filepath.Join(dir, "3")); err != nil {
		t.Fatal(err)
	}
	got, _ = NewGPUJobs(dir).Read()
	if _, ok := got[3]; ok {
		t.Errorf("removed file still read: %v", got)
	}
	// The next job's prolog overwrites a file that a 1.20.x epilog left.
	writeFiles(t, dir, map[string]string{"0": "777"})
	if got, _ = NewGPUJobs(dir).Read(); got[0] != "777" {
		t.Errorf("GPU 0: job %q after overwrite, want 777", got[0])
	}
}

func TestGPUJobsMissingDir(t *testing.T) {
	// Before the first GPU job the prolog has not created the directory.
	got, err := NewGPUJobs(filepath.Join(t.TempDir(), "absent")).Read()
	if err != nil || len(got) != 0 {
		t.Errorf("Read of a missing directory = %v, %v; want empty, nil", got, err)
	}
	// A file where the directory should be is an error worth reporting.
	file := filepath.Join(t.TempDir(), "file")
	writeFiles(t, filepath.Dir(file), map[string]string{"file": "1"})
	if _, err := NewGPUJobs(file).Read(); err == nil {
		t.Error("Read of a regular file: no error")
	}
}

func FuzzParseJobFile(f *testing.F) {
	for _, s := range []string{"1234", "1234\n", "0", "", "4294967296", " 7 ", "12_3", "\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		id, ok := ParseJobFile(data)
		checkID(t, id, ok)
		if ok && !strings.Contains(string(data), strings.TrimLeft(id, "0")) {
			t.Fatalf("job %q from %q", id, data)
		}
	})
}
