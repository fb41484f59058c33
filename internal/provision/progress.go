package provision

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
)

// Event is one message of Terraform's machine-readable UI (`-json` on plan,
// apply and destroy), as documented at
// https://developer.hashicorp.com/terraform/internals/machine-readable-ui.
// Only the fields sopilot uses are decoded; the rest are ignored.
type Event struct {
	Level     string `json:"@level"`
	Message   string `json:"@message"`
	Type      string `json:"type"`
	Terraform string `json:"terraform,omitempty"`
	// Hook is set on apply_*, refresh_*, provision_* messages.
	Hook *Hook `json:"hook,omitempty"`
	// Change is set on planned_change and resource_drift.
	Change *Hook `json:"change,omitempty"`
	// Changes is set on change_summary.
	Changes *ChangeSummary `json:"changes,omitempty"`
	// Diagnostic is set on diagnostic.
	Diagnostic *Diagnostic `json:"diagnostic,omitempty"`
}

// Hook is the resource an event is about and what happens to it.
type Hook struct {
	Resource       Resource `json:"resource"`
	Action         string   `json:"action,omitempty"`
	IDKey          string   `json:"id_key,omitempty"`
	IDValue        string   `json:"id_value,omitempty"`
	ElapsedSeconds float64  `json:"elapsed_seconds,omitempty"`
}

// Resource identifies a resource instance.
type Resource struct {
	Addr         string `json:"addr"`
	ResourceType string `json:"resource_type"`
}

// ChangeSummary counts a plan's or an apply's changes.
type ChangeSummary struct {
	Add       int    `json:"add"`
	Change    int    `json:"change"`
	Import    int    `json:"import"`
	Remove    int    `json:"remove"`
	Operation string `json:"operation"`
}

// Diagnostic is an error or warning in the JSON stream.
type Diagnostic struct {
	Severity string `json:"severity"`
	Summary  string `json:"summary"`
	Detail   string `json:"detail"`
	Address  string `json:"address,omitempty"`
	Range    *struct {
		Filename string `json:"filename"`
		Start    struct {
			Line int `json:"line"`
		} `json:"start"`
	} `json:"range,omitempty"`
}

// ErrNotEvent is returned by ParseEvent for a line that is not a JSON UI
// message (Terraform prints a few plain lines, e.g. on a crash).
var ErrNotEvent = errors.New("not a Terraform JSON UI message")

// ParseEvent decodes one line of the JSON UI stream.
func ParseEvent(line []byte) (Event, error) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' {
		return Event{}, ErrNotEvent
	}
	var ev Event
	if err := json.Unmarshal(line, &ev); err != nil {
		return Event{}, fmt.Errorf("%w: %v", ErrNotEvent, err)
	}
	if ev.Type == "" {
		return Event{}, fmt.Errorf("%w: no type", ErrNotEvent)
	}
	return ev, nil
}

// ProgressOptions configure a Progress.
type ProgressOptions struct {
	// Color adds ANSI colours; set it only when Out is a terminal.
	Color bool
	// ShowPlanned prints each planned change (for plan; apply repeats them).
	ShowPlanned bool
	// OnEvent, if set, sees every event after it is counted (tests use it
	// to act at a given point of a real run, e.g. cancel mid-apply).
	OnEvent func(Event)
}

// Progress is an io.Writer for terraform-exec's PlanJSON/ApplyJSON: it
// parses the JSON UI stream line by line, keeps count of resources done
// against resources planned, and prints one human line per event that
// matters, prefixed with the count: "[ 3/12] addr: Creation complete after
// 2s". It keeps the diagnostics for the caller.
type Progress struct {
	out  io.Writer
	opts ProgressOptions

	mu       sync.Mutex
	buf      []byte
	expected map[string]int // hooks an address will complete: 2 for a replace
	finished map[string]int
	total    int
	done     int
	errored  int
	summary  *ChangeSummary
	diags    []Diagnostic
}

// NewProgress returns a Progress printing to out.
func NewProgress(out io.Writer, opts ProgressOptions) *Progress {
	return &Progress{out: out, opts: opts, expected: map[string]int{}, finished: map[string]int{}}
}

// Write implements io.Writer; it may be called with partial lines.
func (p *Progress) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		line := p.buf[:i]
		p.handle(line)
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

// Flush handles a last line without a newline.
func (p *Progress) Flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(bytes.TrimSpace(p.buf)) > 0 {
		p.handle(p.buf)
	}
	p.buf = nil
}

// Counts returns resources done (completed or errored) and expected.
func (p *Progress) Counts() (done, total, errored int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done, p.total, p.errored
}

// Summary returns the last change_summary seen.
func (p *Progress) Summary() (ChangeSummary, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.summary == nil {
		return ChangeSummary{}, false
	}
	return *p.summary, true
}

// Diagnostics returns the diagnostics seen so far.
func (p *Progress) Diagnostics() []Diagnostic {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Diagnostic(nil), p.diags...)
}

func countable(action string) int {
	switch action {
	case "create", "update", "delete":
		return 1
	case "replace":
		return 2 // a delete hook and a create hook
	}
	return 0 // noop, read, move, import, forget
}

const (
	ansiReset  = "\x1b[0m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiBold   = "\x1b[1m"
)

func (p *Progress) paint(color, s string) string {
	if !p.opts.Color || color == "" {
		return s
	}
	return color + s + ansiReset
}

func actionColor(action string) string {
	switch action {
	case "create":
		return ansiGreen
	case "update":
		return ansiYellow
	case "delete", "replace":
		return ansiRed
	}
	return ""
}

var actionSymbol = map[string]string{"create": "+", "update": "~", "delete": "-", "replace": "-/+", "read": "<=", "noop": " "}

func (p *Progress) counter() string {
	width := len(fmt.Sprint(p.total))
	return fmt.Sprintf("[%*d/%d]", width, p.done, p.total)
}

func (p *Progress) handle(line []byte) {
	ev, err := ParseEvent(line)
	if err != nil {
		if s := strings.TrimRight(string(line), "\r"); strings.TrimSpace(s) != "" {
			fmt.Fprintln(p.out, s)
		}
		return
	}
	switch ev.Type {
	case "planned_change":
		if ev.Change == nil {
			break
		}
		addr := ev.Change.Resource.Addr
		n := countable(ev.Change.Action)
		if n > 0 && p.expected[addr] == 0 {
			p.expected[addr] = n
			p.total++
		}
		if p.opts.ShowPlanned && n > 0 {
			sym := actionSymbol[ev.Change.Action]
			fmt.Fprintf(p.out, "  %s %s (%s)\n", p.paint(actionColor(ev.Change.Action), fmt.Sprintf("%-3s", sym)), addr, ev.Change.Action)
		}
	case "change_summary":
		if ev.Changes != nil {
			c := *ev.Changes
			p.summary = &c
		}
		fmt.Fprintln(p.out, p.paint(ansiBold, ev.Message))
	case "apply_start":
		fmt.Fprintf(p.out, "%s %s\n", p.counter(), ev.Message)
	case "apply_progress":
		fmt.Fprintf(p.out, "%s %s\n", p.counter(), ev.Message)
	case "apply_complete", "apply_errored":
		if ev.Hook != nil && countable(ev.Hook.Action) > 0 {
			addr := ev.Hook.Resource.Addr
			if p.expected[addr] == 0 { // not announced: count it anyway
				p.expected[addr] = 1
				p.total++
			}
			p.finished[addr]++
			if p.finished[addr] == p.expected[addr] {
				p.done++
			}
			if ev.Type == "apply_errored" {
				p.errored++
			}
		}
		color := ""
		if ev.Type == "apply_errored" {
			color = ansiRed
		}
		fmt.Fprintf(p.out, "%s %s\n", p.counter(), p.paint(color, ev.Message))
	case "diagnostic":
		if ev.Diagnostic == nil {
			break
		}
		d := *ev.Diagnostic
		p.diags = append(p.diags, d)
		color, label := ansiYellow, "Warning"
		if d.Severity == "error" {
			color, label = ansiRed, "Error"
		}
		fmt.Fprintf(p.out, "%s %s\n", p.paint(color, label+":"), d.Summary)
		if d.Address != "" {
			fmt.Fprintf(p.out, "  with %s\n", d.Address)
		}
		if d.Range != nil && d.Range.Filename != "" {
			fmt.Fprintf(p.out, "  on %s line %d\n", d.Range.Filename, d.Range.Start.Line)
		}
		if s := strings.TrimSpace(d.Detail); s != "" {
			for _, l := range strings.Split(s, "\n") {
				fmt.Fprintf(p.out, "  %s\n", l)
			}
		}
	case "resource_drift":
		fmt.Fprintln(p.out, p.paint(ansiYellow, "Note: "+ev.Message))
	case "provision_errored":
		fmt.Fprintln(p.out, p.paint(ansiRed, ev.Message))
	case "log":
		if ev.Level == "error" || ev.Level == "warn" {
			fmt.Fprintln(p.out, ev.Message)
		}
	}
	// version, refresh_*, outputs, provision_start/progress/complete and
	// types newer than this code are counted by nobody and not printed.
	if p.opts.OnEvent != nil {
		p.opts.OnEvent(ev)
	}
}
