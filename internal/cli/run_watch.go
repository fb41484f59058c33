package cli

// run_watch.go: following a run (run watch, run submit --watch) and its
// output (run logs -f) the way a person at a terminal expects: the live
// block is redrawn by screen rows, a lost controller is reconnected to with
// backoff, Ctrl-C says that the run goes on.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-runewidth"
	"golang.org/x/term"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/sopilot/sopilot/pkg/apipb"
)

// ErrUnreachable: the controller could not be reached, or did not answer in
// time (exit code ExitUnreachable). Nothing is known about the run then.
var ErrUnreachable = errors.New("controller unreachable")

type unreachableError struct{ error }

func (e unreachableError) Unwrap() error        { return e.error }
func (e unreachableError) Is(target error) bool { return target == ErrUnreachable }

// unreachable marks err as ErrUnreachable, keeping its message.
func unreachable(err error) error { return unreachableError{err} }

// stoppedError is a watch or a log follow ended by Ctrl-C: it says that
// the run goes on and how to get back to it, and is context.Canceled for
// the exit code (130) without saying "context canceled".
type stoppedError struct {
	what  string // "watching"
	again string // the command that resumes: "watch"
	id    string
}

func (e stoppedError) Error() string {
	return fmt.Sprintf("stopped %s; run %s keeps running (again: sopilot run %s %s; stop it: sopilot run cancel %s)",
		e.what, e.id, e.again, e.id, e.id)
}
func (stoppedError) Is(target error) bool { return target == context.Canceled }

// followSettings say how long a watch or a log follow keeps reconnecting
// to a controller that went away, and how fast.
type followSettings struct {
	// reconnectFor is how long the controller may stay unreachable before
	// the command gives up with ErrUnreachable: long enough for a rolling
	// restart of the controller (helm upgrade).
	reconnectFor time.Duration
	// firstRetry is the first wait; each next one doubles, up to maxRetry,
	// with ±20% jitter so that many watchers do not return at once.
	firstRetry, maxRetry time.Duration
}

var defaultFollow = followSettings{reconnectFor: 5 * time.Minute, firstRetry: 500 * time.Millisecond, maxRetry: 10 * time.Second}

// retryDelay is the wait before reconnect attempt n (1, 2, ...).
func (f followSettings) retryDelay(n int) time.Duration {
	d := f.firstRetry
	for i := 1; i < n && d < f.maxRetry; i++ {
		d *= 2
	}
	d = min(d, f.maxRetry)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// maxEarlyEnds is how many times in a row a watch reconnects after the
// controller ended its stream cleanly before the run ended.
const maxEarlyEnds = 3

// reconnectable: the stream broke in a way that a new stream may mend
// (the controller restarted, or ended the stream while shutting down).
func reconnectable(err error) bool {
	return errors.Is(err, io.EOF) || status.Code(err) == codes.Unavailable
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// termWidth is w's width in columns when w is a terminal, else $COLUMNS,
// else 80.
func termWidth(w io.Writer, getenv func(string) string) int {
	if f, ok := w.(interface{ Fd() uintptr }); ok {
		if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 0 {
			return cols
		}
	}
	if getenv != nil {
		if n, err := strconv.Atoi(getenv("COLUMNS")); err == nil && n > 0 {
			return n
		}
	}
	return 80
}

var ansiRE = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

// screenRows is how many terminal rows s takes at width columns: a line
// wider than the terminal wraps, wide runes (CJK) take two columns and
// move to the next row when only one is left, escape sequences take none.
// A line that exactly fills its last row leaves the cursor on that row.
func screenRows(s string, width int) int {
	rows, col := 1, 0
	for _, r := range ansiRE.ReplaceAllString(s, "") {
		rw := runewidth.RuneWidth(r)
		if rw == 0 {
			continue
		}
		if col+rw > width {
			rows++
			col = 0
		}
		col += rw
	}
	return rows
}

// liveBlock is a block of lines redrawn in place on a terminal.
type liveBlock struct {
	w     io.Writer
	width func() int
	shown []string // the lines on the screen now
}

// draw replaces the block on the screen with lines. The rows to go back
// up are counted at the current width: terminals that reflow on resize
// (most) show the old lines at the new width too.
func (b *liveBlock) draw(lines []string) {
	width := b.width()
	rows := 0
	for _, l := range b.shown {
		rows += screenRows(l, width)
	}
	if rows <= 1 {
		fmt.Fprint(b.w, "\r\033[J")
	} else {
		fmt.Fprintf(b.w, "\r\033[%dA\033[J", rows-1)
	}
	fmt.Fprint(b.w, strings.Join(lines, "\n"))
	b.shown = lines
}

// finish leaves the block on the screen and moves below it.
func (b *liveBlock) finish() {
	if len(b.shown) > 0 {
		fmt.Fprintln(b.w)
		b.shown = nil
	}
}

type watchEvent struct {
	run *apipb.Run
	err error
}

// watchRun follows run id with the default reconnect settings.
func watchRun(ctx context.Context, a *app, o *clientOptions, c apipb.RunServiceClient, nodes apipb.NodeServiceClient, id string) error {
	return watchRunWith(ctx, a, o, c, nodes, id, defaultFollow)
}

// watchRunWith streams WatchRun until the run ends. On a terminal it
// redraws a status block in place every second (the elapsed time moves):
// the status line and, when the run reports progress, a progress bar with
// the mean GPU utilization of its nodes (read from nodes every two seconds;
// nil nodes, or a controller without NodeService, leaves it out).
// Otherwise it prints a line whenever the status changes; -o json/yaml
// prints each run. When the run has ended, a usage summary follows if the
// run has one.
//
// When the stream breaks (the controller restarts), it reconnects with
// backoff for up to fs.reconnectFor; WatchRun sends the current state
// first, so nothing is lost, and a state seen already is not printed
// twice. It returns nil when the run COMPLETED, ErrRunNotCompleted when it
// ended otherwise, ErrUnreachable when the controller could not be reached,
// and a stoppedError (exit 130) when ctx ends (Ctrl-C).
func watchRunWith(ctx context.Context, a *app, o *clientOptions, c apipb.RunServiceClient, nodes apipb.NodeServiceClient, id string, fs followSettings) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	events := make(chan watchEvent)
	retry := make(chan time.Duration)
	wg.Go(func() {
		for {
			stream, err := c.WatchRun(ctx, &apipb.WatchRunRequest{RunId: id})
			for err == nil {
				var resp *apipb.WatchRunResponse
				if resp, err = stream.Recv(); err == nil {
					select {
					case events <- watchEvent{run: resp.GetRun()}:
					case <-ctx.Done():
						return
					}
				}
			}
			select {
			case events <- watchEvent{err: err}:
			case <-ctx.Done():
				return
			}
			// The loop decides: a delay to try again, or it returns.
			select {
			case d := <-retry:
				if sleepCtx(ctx, d) != nil {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	})

	w, errw := a.env.Stdout, a.env.Stderr
	if errw == nil {
		errw = io.Discard
	}
	live := !a.json() && a.env.IsTerminal(w)
	block := &liveBlock{w: w, width: func() int { return termWidth(w, a.env.Getenv) }}
	var poller *nodePoller
	var polls <-chan pollResult
	if nodes != nil && !a.json() {
		poller = newNodePoller(nodes, c, id, o.timeout)
		polls = poller.out
		wg.Go(func() { poller.run(ctx) })
	}
	var tick <-chan time.Time
	if live {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		tick = t.C
	}
	var (
		last           *apipb.Run
		lastLine       string
		util           float64
		utilOK         bool
		attempts       int       // reconnect attempts in the current outage
		lostSince      time.Time // zero while connected
		reconnectingAt time.Time
		earlyEnds      int // streams ended (EOF) before the run did, with no news since
	)
	notice := func() string {
		if lostSince.IsZero() {
			return ""
		}
		return fmt.Sprintf("lost the controller %s ago; reconnecting (attempt %d, next in %s)",
			fmtDuration(time.Since(lostSince)), attempts, fmtDuration(max(time.Until(reconnectingAt), 0)))
	}
	draw := func() {
		lines := watchLines(last, util, utilOK, time.Now(), true)
		if n := notice(); n != "" {
			lines = append(lines, n)
		}
		block.draw(lines)
	}
	// show prints a line when the status changed (ignoring the elapsed
	// time, which changes every line).
	show := func() {
		key := statusLine(last, time.Time{})
		if key != lastLine {
			lastLine = key
			fmt.Fprintln(w, watchLines(last, util, utilOK, time.Now(), false)[0])
		}
	}
	stopped := func() error {
		if live {
			block.finish()
		}
		return stoppedError{what: "watching", again: "watch", id: id}
	}
	for {
		select {
		case <-ctx.Done(): // interrupted (Ctrl-C): exit 130
			return stopped()
		case <-tick:
			if last != nil {
				draw()
			}
		case res := <-polls:
			if res.utilOK {
				util, utilOK = res.util, true
			}
			if last == nil {
				continue
			}
			if !terminal(last.GetState()) && newerProgress(last.GetProgress(), res.progress) {
				last = withProgress(last, res.progress)
				if !live {
					show()
				}
			}
			if live {
				draw()
			}
		case ev := <-events:
			if ctx.Err() != nil {
				return stopped()
			}
			if ev.err != nil && errors.Is(ev.err, io.EOF) && last != nil && terminal(last.GetState()) {
				if live {
					block.finish()
				}
				if !a.json() {
					if last.GetUsage() == nil {
						// The usage may be stored just after the final state.
						last = finalUsage(ctx, o, c, last)
					}
					if u := usageText(last.GetUsage()); u != "" {
						fmt.Fprintln(w, u)
					}
					printAttempts(w, last)
				}
				return endError(last)
			}
			if ev.err != nil {
				// A controller that was never reached is reported at once;
				// one that went away is waited for.
				if last == nil || !reconnectable(ev.err) {
					if live {
						block.finish()
					}
					return o.clientError("watch run "+id, ev.err)
				}
				if errors.Is(ev.err, io.EOF) {
					// A controller that shuts down may end streams
					// cleanly; one that keeps ending them with nothing
					// new in between is not restarting.
					if earlyEnds++; earlyEnds > maxEarlyEnds {
						if live {
							block.finish()
						}
						return fmt.Errorf("watch run %s: the controller ended the stream before the run ended, %d times; run 'sopilot run watch %s' again", id, earlyEnds, id)
					}
				}
				if lostSince.IsZero() {
					lostSince = time.Now()
					if !live {
						fmt.Fprintf(errw, "sopilot: lost the controller at %s (%s); reconnecting for up to %s\n", o.controller, status.Convert(ev.err).Message(), fmtDuration(fs.reconnectFor))
					}
				}
				if time.Since(lostSince) >= fs.reconnectFor {
					if live {
						block.finish()
					}
					return unreachable(fmt.Errorf("watch run %s: the controller at %s was unreachable for %s; the run may still be running: sopilot run watch %s (last seen: %s)",
						id, o.controller, fmtDuration(time.Since(lostSince)), id, stateName(last.GetState())))
				}
				attempts++
				d := fs.retryDelay(attempts)
				reconnectingAt = time.Now().Add(d)
				if live {
					draw()
				}
				select {
				case retry <- d:
				case <-ctx.Done():
					return stopped()
				}
				continue
			}
			if !lostSince.IsZero() {
				if !live {
					fmt.Fprintf(errw, "sopilot: reconnected to the controller after %s\n", fmtDuration(time.Since(lostSince)))
				}
				lostSince, attempts = time.Time{}, 0
			}
			seen := last != nil && proto.Equal(last, ev.run)
			if !seen {
				earlyEnds = 0
			}
			last = ev.run
			if poller != nil {
				poller.target(last)
			}
			switch {
			case a.json():
				if !seen {
					if err := writeProtoLine(w, a.root.output, last); err != nil {
						return err
					}
				}
			case live:
				draw()
			default:
				show()
			}
		}
	}
}
