package gpu

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// Errors returned by the watchdog.
var (
	// ErrCallTimeout: an NVML call ran longer than Options.CallTimeout.
	ErrCallTimeout = errors.New("nvml call timed out")
	// ErrWedged: an earlier NVML call has not returned yet.
	ErrWedged = errors.New("nvml is wedged: an earlier call has not returned")
	// ErrClosed: the Collector has been closed.
	ErrClosed = errors.New("gpu collector closed")
	// ErrPanic: an NVML call panicked (seen with incomplete fakes); it is
	// recorded like any failed field.
	ErrPanic = errors.New("nvml call panicked")
	// ErrNoEvents: no GPU accepted registration for health events.
	ErrNoEvents = errors.New("no gpu supports nvml health events")
)

// Options tune a Collector. The zero value is usable.
type Options struct {
	// CallTimeout bounds each NVML call made through the worker (default 2s).
	CallTimeout time.Duration
	// EventWaitTimeout is how long one event set Wait blocks (default 1s);
	// RunEvents notices cancellation at this granularity.
	EventWaitTimeout time.Duration
	// CloseTimeout bounds how long Close waits for the worker (default
	// CallTimeout).
	CloseTimeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.CallTimeout <= 0 {
		o.CallTimeout = 2 * time.Second
	}
	if o.EventWaitTimeout <= 0 {
		o.EventWaitTimeout = time.Second
	}
	if o.EventWaitTimeout < time.Millisecond {
		o.EventWaitTimeout = time.Millisecond // Wait(0) would spin
	}
	if o.CloseTimeout <= 0 {
		o.CloseTimeout = o.CallTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Collector reads GPU inventory, telemetry and health events from NVML.
// Its methods are safe for concurrent use.
type Collector struct {
	lib  nvml.Interface
	log  *slog.Logger
	opts Options

	reqs       chan *request
	quit       chan struct{} // closed by Close: no new calls
	stop       chan struct{} // closed by Close after RunEvents have left: worker shuts down
	workerDone chan struct{}
	hung       atomic.Pointer[request] // a call that overran CallTimeout, until it returns
	running    atomic.Pointer[request] // the call the worker is in

	devices []device // fixed after New

	mu         sync.Mutex
	closed     bool
	events     sync.WaitGroup // running RunEvents
	loggedErrs map[fieldKey]struct{}
	lost       map[int]bool
	closeOnce  sync.Once
	closeErr   error
}

type device struct {
	index  int
	uuid   string
	handle nvml.Device
}

type fieldKey struct {
	gpu   int // -1 for system-wide values
	field string
}

type request struct {
	fn   func()
	err  error // a panic in fn, written before done is closed
	done chan struct{}
}

// New initialises NVML through lib and enumerates the GPUs.
func New(lib nvml.Interface, logger *slog.Logger, opts Options) (*Collector, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Collector{
		lib:        lib,
		log:        logger.With("component", "gpu_collector"),
		opts:       opts.withDefaults(),
		reqs:       make(chan *request),
		quit:       make(chan struct{}),
		stop:       make(chan struct{}),
		workerDone: make(chan struct{}),
		loggedErrs: make(map[fieldKey]struct{}),
		lost:       make(map[int]bool),
	}
	initialised := false
	go c.work(&initialised)

	ctx := context.Background()
	_, ret, err := call(ctx, c, func() (struct{}, nvml.Return) {
		r := lib.Init()
		initialised = r == nvml.SUCCESS // read only by the worker
		return struct{}{}, r
	})
	if err == nil && ret != nvml.SUCCESS {
		err = ret
	}
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("nvml init: %w", err)
	}

	if err := c.enumerate(ctx); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

func (c *Collector) enumerate(ctx context.Context) error {
	count, ret, err := call(ctx, c, c.lib.DeviceGetCount)
	if err == nil && ret != nvml.SUCCESS {
		err = ret
	}
	if err != nil {
		return fmt.Errorf("nvml device count: %w", err)
	}
	for i := 0; i < count; i++ {
		h, ret, err := call(ctx, c, func() (nvml.Device, nvml.Return) { return c.lib.DeviceGetHandleByIndex(i) })
		if err == nil && ret != nvml.SUCCESS {
			err = ret
		}
		if err != nil {
			return fmt.Errorf("nvml device %d handle: %w", i, err)
		}
		uuid, ret, err := call(ctx, c, h.GetUUID)
		if err == nil && ret != nvml.SUCCESS {
			err = ret
		}
		if err != nil {
			return fmt.Errorf("nvml device %d uuid: %w", i, err)
		}
		c.devices = append(c.devices, device{index: i, uuid: uuid, handle: h})
	}
	return nil
}

// work is the only goroutine that calls NVML for Inventory and Sample.
// initialised is only touched on this goroutine.
func (c *Collector) work(initialised *bool) {
	defer close(c.workerDone)
	for {
		select {
		case req := <-c.reqs:
			c.run(req)
		case <-c.stop:
			if *initialised {
				if ret := c.lib.Shutdown(); ret != nvml.SUCCESS {
					c.log.Warn("nvml shutdown", "err", ret)
				}
			}
			return
		}
	}
}

func (c *Collector) run(req *request) {
	c.running.Store(req)
	defer c.running.Store(nil)
	defer close(req.done)
	defer func() {
		if r := recover(); r != nil {
			req.err = fmt.Errorf("%w: %v", ErrPanic, r)
		}
	}()
	req.fn()
}

// do runs fn on the worker and waits for it for at most CallTimeout. When do
// returns an error, fn may still run later: callers must not read what fn
// writes unless do returned nil.
func (c *Collector) do(ctx context.Context, fn func()) error {
	if h := c.hung.Load(); h != nil {
		select {
		case <-h.done:
			if c.hung.CompareAndSwap(h, nil) {
				c.log.Info("nvml call returned; collector recovered")
			}
		default:
			return ErrWedged
		}
	}
	req := &request{fn: fn, done: make(chan struct{})}
	timer := time.NewTimer(c.opts.CallTimeout)
	defer timer.Stop()
	select {
	case c.reqs <- req:
	case <-timer.C:
		// The worker stayed busy with another call for a whole CallTimeout
		// (its caller may have given up through ctx): mark that call hung.
		if cur := c.running.Load(); cur != nil {
			c.hung.CompareAndSwap(nil, cur)
		}
		return ErrWedged
	case <-ctx.Done():
		return ctx.Err()
	case <-c.quit:
		return ErrClosed
	}
	select {
	case <-req.done:
		return req.err
	case <-timer.C:
		if c.hung.CompareAndSwap(nil, req) {
			c.log.Error("nvml call hung; collector wedged until it returns", "timeout", c.opts.CallTimeout)
		}
		return ErrCallTimeout
	case <-ctx.Done():
		return ctx.Err()
	}
}

// call runs fn on the worker. On a non-nil error the value and Return are
// zero and must not be used.
func call[T any](ctx context.Context, c *Collector, fn func() (T, nvml.Return)) (T, nvml.Return, error) {
	var v T
	var ret nvml.Return
	if err := c.do(ctx, func() { v, ret = fn() }); err != nil {
		var zero T
		return zero, nvml.SUCCESS, err
	}
	return v, ret, nil
}

// Close stops the worker and shuts NVML down. It waits for running RunEvents
// to return and for the worker, at most CloseTimeout for the latter. A worker
// stuck in a hung call cannot be stopped: Close returns ErrWedged and the
// worker calls Shutdown and exits if and when that call returns.
func (c *Collector) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		close(c.quit)
		c.events.Wait()
		close(c.stop)
		timer := time.NewTimer(c.opts.CloseTimeout)
		defer timer.Stop()
		select {
		case <-c.workerDone:
		case <-timer.C:
			c.closeErr = fmt.Errorf("close gpu collector: %w", ErrWedged)
		}
	})
	return c.closeErr
}

func (c *Collector) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// noteFieldError logs err once per (gpu, field) until the field reads again.
func (c *Collector) noteFieldError(gpu int, field string, err error) {
	c.mu.Lock()
	k := fieldKey{gpu, field}
	_, seen := c.loggedErrs[k]
	c.loggedErrs[k] = struct{}{}
	c.mu.Unlock()
	if !seen {
		c.log.Warn("nvml field unreadable", "gpu", gpu, "field", field, "err", err)
	}
}

func (c *Collector) noteFieldOK(gpu int, field string) {
	c.mu.Lock()
	delete(c.loggedErrs, fieldKey{gpu, field})
	c.mu.Unlock()
}
