package monitor

import (
	"context"
	"sync"
)

// tasks owns the monitor's background work (marking runs with an incident,
// scheduled NCCL checks): Run stops it on its way out, cancelling what is
// in flight and waiting for it.
type tasks struct {
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	stopped bool
	wg      sync.WaitGroup
}

func newTasks() *tasks {
	ctx, cancel := context.WithCancel(context.Background())
	return &tasks{ctx: ctx, cancel: cancel}
}

// Go runs f in its own goroutine; after stop, it runs nothing.
func (t *tasks) Go(f func(ctx context.Context)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	t.wg.Go(func() { f(t.ctx) })
}

// stop cancels the tasks in flight and waits for them.
func (t *tasks) stop() {
	t.mu.Lock()
	t.stopped = true
	t.mu.Unlock()
	t.cancel()
	t.wg.Wait()
}
