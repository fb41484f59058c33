package provision

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func recording(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "diagnostics", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestProgressRecorded(t *testing.T) {
	tests := []struct {
		file                 string
		showPlanned          bool
		done, total, errored int
		summary              ChangeSummary
		diags                int
		lines                []string
	}{
		{"plan-ok.jsonl", true, 0, 3, 0, ChangeSummary{Add: 3, Operation: "plan"}, 0,
			[]string{"  +   terraform_data.a (create)", "Plan: 3 to add, 0 to change, 0 to destroy."}},
		{"apply-ok.jsonl", false, 3, 3, 0, ChangeSummary{Add: 3, Operation: "apply"}, 0,
			[]string{"[0/3] terraform_data.a: Creating...", "Apply complete! Resources: 3 added, 0 changed, 0 destroyed."}},
		{"already-exists.jsonl", false, 2, 2, 2, ChangeSummary{Add: 2, Operation: "plan"}, 2,
			[]string{"Error: local-exec provisioner error", "  with module.k8s.terraform_data.accounting[0]", "  on modules/k8s/main.tf line 7"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			var out bytes.Buffer
			var events int
			p := NewProgress(&out, ProgressOptions{ShowPlanned: tt.showPlanned, OnEvent: func(Event) { events++ }})
			data := recording(t, tt.file)
			// Feed it in odd-sized chunks: terraform-exec writes whatever the
			// pipe gives it, not whole lines.
			for len(data) > 0 {
				n := min(37, len(data))
				if _, err := p.Write(data[:n]); err != nil {
					t.Fatal(err)
				}
				data = data[n:]
			}
			p.Flush()
			done, total, errored := p.Counts()
			if done != tt.done || total != tt.total || errored != tt.errored {
				t.Errorf("counts %d/%d errored %d, want %d/%d errored %d", done, total, errored, tt.done, tt.total, tt.errored)
			}
			if s, _ := p.Summary(); s != tt.summary {
				t.Errorf("summary %+v, want %+v", s, tt.summary)
			}
			if n := len(p.Diagnostics()); n != tt.diags {
				t.Errorf("%d diagnostics, want %d", n, tt.diags)
			}
			if events == 0 {
				t.Error("OnEvent never called")
			}
			for _, l := range tt.lines {
				if !strings.Contains(out.String(), l+"\n") {
					t.Errorf("output lacks line %q:\n%s", l, out.String())
				}
			}
			if strings.Contains(out.String(), "\x1b[") {
				t.Error("colour without Color")
			}
		})
	}
}

func TestProgressReplaceCountsOnce(t *testing.T) {
	lines := []string{
		`{"type":"planned_change","change":{"resource":{"addr":"a.b"},"action":"replace"}}`,
		`{"type":"planned_change","change":{"resource":{"addr":"a.c"},"action":"noop"}}`,
		`{"type":"planned_change","change":{"resource":{"addr":"a.d"},"action":"read"}}`,
		`{"type":"apply_complete","@message":"a.b: Destruction complete","hook":{"resource":{"addr":"a.b"},"action":"delete"}}`,
		`{"type":"apply_complete","@message":"a.b: Creation complete","hook":{"resource":{"addr":"a.b"},"action":"create"}}`,
		`not json at all`,
		`{"type":"apply_complete","@message":"x: unannounced","hook":{"resource":{"addr":"x"},"action":"update"}}`,
	}
	var out bytes.Buffer
	p := NewProgress(&out, ProgressOptions{Color: true})
	for _, l := range lines {
		p.Write([]byte(l + "\n"))
	}
	done, total, _ := p.Counts()
	if done != 2 || total != 2 {
		t.Fatalf("counts %d/%d, want 2/2 (a replace is one resource; noop and read are none)\n%s", done, total, out.String())
	}
	if !strings.Contains(out.String(), "not json at all\n") {
		t.Error("a plain line was not passed through")
	}
	for _, want := range []string{"[0/1] a.b: Destruction complete", "[1/1] a.b: Creation complete", "[2/2] x: unannounced"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestParseEvent(t *testing.T) {
	tests := []struct {
		name, line string
		err        bool
		typ        string
	}{
		{"version", `{"@level":"info","type":"version","terraform":"1.5.7"}`, false, "version"},
		{"empty", ``, true, ""},
		{"plain text", `Terraform crashed!`, true, ""},
		{"no type", `{"@level":"info"}`, true, ""},
		{"broken json", `{"type":`, true, ""},
		{"wrong field type is an error, not a panic", `{"type":"apply_complete","hook":{"elapsed_seconds":"x"}}`, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := ParseEvent([]byte(tt.line))
			if (err != nil) != tt.err || ev.Type != tt.typ {
				t.Fatalf("got %+v, %v", ev, err)
			}
			if err != nil && !errors.Is(err, ErrNotEvent) {
				t.Fatalf("error %v is not ErrNotEvent", err)
			}
		})
	}
}

// FuzzProgress: the JSON UI stream comes from another program; whatever
// it writes, Progress must not panic and its counts must stay sane.
func FuzzProgress(f *testing.F) {
	for _, name := range []string{"plan-ok.jsonl", "apply-ok.jsonl", "already-exists.jsonl"} {
		f.Add(recording(f, name))
	}
	f.Add([]byte(`{"type":"apply_complete","hook":{"resource":{"addr":"a"},"action":"replace"}}` + "\n"))
	f.Add([]byte(`{"type":"diagnostic","diagnostic":{"severity":"error","range":null}}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var out bytes.Buffer
		p := NewProgress(&out, ProgressOptions{ShowPlanned: true, Color: true})
		p.Write(data)
		p.Flush()
		done, total, errored := p.Counts()
		if done < 0 || done > total || errored < 0 {
			t.Fatalf("counts %d/%d errored %d", done, total, errored)
		}
	})
}
