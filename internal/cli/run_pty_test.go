package cli

// Terminal test: the sopilot binary in a pseudo-terminal, as a person sees
// it, against the real controller on the local Slurm cluster. What it
// writes is played on a small screen emulator (screen) and the screen is
// checked, at 80 and at 200 columns.

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/creack/pty"
	"github.com/mattn/go-runewidth"

	"github.com/sopilot/sopilot/internal/slurmtest"
	"github.com/sopilot/sopilot/internal/testbin"
)

// screen is the part of a VT100 that sopilot's output uses: printable
// runes with autowrap (the cursor waits at the right margin until the
// next rune), CR, LF, cursor up (CSI n A), erase below (CSI J) and erase
// line (CSI K). Other escape sequences are skipped. It has no height
// limit, so scrolled-off rows stay for the checks.
type screen struct {
	width     int
	rows      [][]rune
	row, col  int
	wrapNext  bool
	unhandled []string
}

var csiRE = regexp.MustCompile(`^\x1b\[([0-9;?]*)([A-Za-z])`)

func (s *screen) line() []rune {
	for len(s.rows) <= s.row {
		s.rows = append(s.rows, nil)
	}
	return s.rows[s.row]
}

func (s *screen) put(r rune) {
	w := runewidth.RuneWidth(r)
	if s.wrapNext || s.col+w > s.width {
		s.row, s.col, s.wrapNext = s.row+1, 0, false
	}
	l := s.line()
	for len(l) < s.col+w {
		l = append(l, ' ')
	}
	l[s.col] = r
	for i := 1; i < w; i++ {
		l[s.col+i] = 0 // the second column of a wide rune
	}
	s.rows[s.row] = l
	s.col += w
	if s.col == s.width {
		s.col, s.wrapNext = s.width-1, true
	}
}

func (s *screen) write(text string) {
	for len(text) > 0 {
		if text[0] == 0x1b {
			m := csiRE.FindStringSubmatch(text)
			if m == nil {
				s.unhandled = append(s.unhandled, strconv.Quote(text[:min(len(text), 8)]))
				text = text[1:]
				continue
			}
			text = text[len(m[0]):]
			n := 1
			if v, err := strconv.Atoi(m[1]); err == nil {
				n = v
			}
			switch m[2] {
			case "A":
				s.row, s.wrapNext = max(s.row-n, 0), false
			case "J": // erase from the cursor to the end of the screen
				l := s.line()
				s.rows[s.row] = l[:min(s.col, len(l))]
				s.rows = s.rows[:s.row+1]
			case "K":
				l := s.line()
				s.rows[s.row] = l[:min(s.col, len(l))]
			default:
				s.unhandled = append(s.unhandled, strconv.Quote(m[0]))
			}
			continue
		}
		r, size := utf8.DecodeRuneInString(text)
		text = text[size:]
		switch r {
		case '\r':
			s.col, s.wrapNext = 0, false
		case '\n':
			s.row, s.wrapNext = s.row+1, false
			s.line()
		default:
			s.put(r)
		}
	}
}

// lines is the screen's rows as text, trailing spaces trimmed.
func (s *screen) lines() []string {
	out := make([]string, len(s.rows))
	for i, l := range s.rows {
		out[i] = strings.TrimRight(strings.ReplaceAll(string(l), "\x00", ""), " ")
	}
	return out
}

func TestScreenEmulator(t *testing.T) {
	s := &screen{width: 10}
	s.write("0123456789abc\r\n")           // wraps once
	s.write("x\r\033[1A\033[Jtop")         // back up into the wrapped line, erase below
	s.write("\r\n" + "0123456789\r\nnext") // exactly the width: the CR LF is not a second wrap
	want := []string{"0123456789", "top", "0123456789", "next"}
	if got := s.lines(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("screen = %q, want %q", got, want)
	}
}

// ptyRun runs sopilot args in a terminal cols wide; interruptAfter > 0
// types Ctrl-C then. It returns the screen and the exit code.
func ptyRun(t *testing.T, bin string, env []string, cols uint16, interruptAfter time.Duration, args ...string) (*screen, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: cols})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if interruptAfter > 0 {
		time.AfterFunc(interruptAfter, func() { _, _ = f.Write([]byte{3}) }) // ^C: the terminal sends SIGINT
	}
	var out bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(&out, f) // ends with EIO once the process exits
	}()
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	var code int
	select {
	case err := <-waitErr:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code = 128 + int(ws.Signal())
			}
		} else if err != nil {
			t.Fatal(err)
		}
	case <-time.After(90 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("sopilot %v did not end; output so far %q", args, out.String())
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	s := &screen{width: int(cols)}
	s.write(out.String())
	if len(s.unhandled) > 0 {
		t.Errorf("escape sequences the screen does not know: %v", s.unhandled)
	}
	return s, code
}

func TestRunWatchInTerminal(t *testing.T) {
	env := slurmtest.Require(t)
	addr := startRealController(t, env)
	cliEnv := map[string]string{"SOPILOT_CONTROLLER": addr}
	bin := testbin.Build(t, "sopilot", false)
	procEnv := append(os.Environ(), "SOPILOT_CONTROLLER="+addr, "SOPILOT_INSECURE=true", "TERM=xterm", "COLUMNS=", "NO_COLOR=1")

	submit := func(args ...string) string {
		t.Helper()
		r := sopilot(t, invocation{args: append([]string{"run", "submit", "-o", "json"}, args...), env: cliEnv})
		m := regexp.MustCompile(`"id": "(r-[^"]+)"`).FindStringSubmatch(r.stdout)
		if r.code != ExitOK || m == nil {
			t.Fatalf("submit %v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
		return m[1]
	}

	for _, cols := range []uint16{80, 200} {
		t.Run(strconv.Itoa(int(cols))+" columns", func(t *testing.T) {
			// B waits for A with reason Dependency: its status line,
			// "r-…  PENDING  slurm=PENDING  reason=Dependency  queued 3s",
			// is 82 columns, two rows at 80.
			a := submit("--job-name", "pty-first", "--time", "2m", "--", "sleep", "6")
			b := submit("--job-name", "pty-second", "--time", "2m", "--depends-on", a, "--", "true")
			s, code := ptyRun(t, bin, procEnv, cols, 0, "run", "watch", b)
			lines := s.lines()
			if code != ExitOK {
				t.Fatalf("run watch: exit %d; screen:\n%s", code, strings.Join(lines, "\n"))
			}
			var withID []string
			for _, l := range lines {
				if strings.Contains(l, b) {
					withID = append(withID, l)
				}
			}
			// The status block was redrawn in place every second: one
			// row with the run id on the screen, its final state.
			if len(withID) != 1 || !strings.Contains(withID[0], "COMPLETED") {
				t.Errorf("%d rows with the run id, want 1 (COMPLETED); screen:\n%s", len(withID), strings.Join(lines, "\n"))
			}
			for i, l := range lines {
				if runewidth.StringWidth(l) > int(cols) {
					t.Errorf("row %d is wider than the terminal: %q", i, l)
				}
			}
			t.Logf("screen at %d columns:\n%s", cols, strings.Join(lines, "\n"))
		})
	}

	t.Run("Ctrl-C", func(t *testing.T) {
		id := submit("--job-name", "pty-sleeper", "--time", "2m", "--", "sleep", "60")
		s, code := ptyRun(t, bin, procEnv, 80, 3*time.Second, "run", "watch", id)
		text := strings.Join(s.lines(), "\n")
		if code != ExitInterrupted || strings.Contains(text, "context canceled") ||
			!strings.Contains(text, "stopped watching; run "+id+" keeps running") {
			t.Errorf("Ctrl-C: exit %d; screen:\n%s", code, text)
		}
		if r := sopilot(t, invocation{args: []string{"run", "cancel", id}, env: cliEnv}); r.code != ExitOK {
			t.Errorf("cancel: exit %d %s", r.code, r.stderr)
		}
	})
}
