package controller

import (
	"sync"

	"github.com/sopilot/sopilot/internal/run"
)

// hub fans run changes out to watchers. Each subscription holds at most the
// latest version of its run: a slow watcher skips intermediate versions
// instead of blocking the tracker.
type hub struct {
	mu   sync.Mutex
	subs map[string]map[chan *run.Run]struct{}
	// done is closed when the controller stops: watchers end at once
	// instead of holding the gRPC server's graceful stop for its grace.
	done     chan struct{}
	doneOnce sync.Once
}

func newHub() *hub {
	return &hub{subs: map[string]map[chan *run.Run]struct{}{}, done: make(chan struct{})}
}

// close ends every watch (and every later one) with ErrShuttingDown.
func (h *hub) close() { h.doneOnce.Do(func() { close(h.done) }) }

func (h *hub) subscribe(runID string) (<-chan *run.Run, func()) {
	ch := make(chan *run.Run, 1)
	h.mu.Lock()
	if h.subs[runID] == nil {
		h.subs[runID] = map[chan *run.Run]struct{}{}
	}
	h.subs[runID][ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.subs[runID], ch)
		if len(h.subs[runID]) == 0 {
			delete(h.subs, runID)
		}
		h.mu.Unlock()
	}
}

func (h *hub) publish(r *run.Run) {
	if r == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs[r.ID] {
		c := r.Clone()
		select {
		case ch <- c:
		default:
			// Replace the unread version with the newer one.
			select {
			case <-ch:
			default:
			}
			ch <- c
		}
	}
}
