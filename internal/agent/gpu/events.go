package gpu

import (
	"context"
	"fmt"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/sopilot/sopilot/internal/health"
	"github.com/sopilot/sopilot/internal/telemetry"
)

// wantedEvents are registered on every GPU that supports them.
const wantedEvents = nvml.EventTypeXidCriticalError | nvml.EventTypeDoubleBitEccError

// RunEvents registers the GPUs for XID and uncorrectable-ECC events on one
// NVML event set and sends a HealthEvent to out for each event until ctx
// ends (then it returns nil) or the Collector is closed (ErrClosed). It
// returns ErrNoEvents when no GPU supports events.
//
// Setup goes through the worker; the blocking Wait runs here, in the
// caller's goroutine, so that it never holds up sampling. NVML itself is
// thread-safe. Close waits for RunEvents to return.
func (c *Collector) RunEvents(ctx context.Context, out chan<- HealthEvent) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	c.events.Add(1)
	c.mu.Unlock()
	defer c.events.Done()

	set, ret, err := call(ctx, c, c.lib.EventSetCreate)
	if err == nil && ret != nvml.SUCCESS {
		err = ret
	}
	if err != nil {
		return fmt.Errorf("create nvml event set: %w", err)
	}
	defer func() {
		if ret := set.Free(); ret != nvml.SUCCESS {
			c.log.Warn("free nvml event set", "err", ret)
		}
	}()

	registered, err := c.register(ctx, set)
	if err != nil {
		return err
	}
	if registered == 0 {
		return ErrNoEvents
	}

	waitMS := uint32(c.opts.EventWaitTimeout / time.Millisecond)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.quit:
			return ErrClosed
		default:
		}
		data, ret := set.Wait(waitMS)
		switch ret {
		case nvml.SUCCESS:
		case nvml.ERROR_TIMEOUT:
			continue
		default:
			// Not fatal: a GPU can fail while others still report. Pause so
			// that a persistent error does not spin.
			c.log.Warn("nvml event wait", "err", ret)
			select {
			case <-ctx.Done():
				return nil
			case <-c.quit:
				return ErrClosed
			case <-time.After(c.opts.EventWaitTimeout):
			}
			continue
		}
		ev, ok := c.healthEvent(data)
		if !ok {
			continue
		}
		select {
		case out <- ev:
		case <-ctx.Done():
			return nil
		case <-c.quit:
			return ErrClosed
		}
	}
}

func (c *Collector) register(ctx context.Context, set nvml.EventSet) (int, error) {
	registered := 0
	for _, d := range c.devices {
		supported, ret, err := call(ctx, c, d.handle.GetSupportedEventTypes)
		if err != nil {
			return 0, fmt.Errorf("gpu %d supported events: %w", d.index, err)
		}
		if ret != nvml.SUCCESS {
			if ret != nvml.ERROR_NOT_SUPPORTED {
				c.log.Warn("nvml supported event types", "gpu", d.index, "err", ret)
			}
			continue
		}
		mask := supported & wantedEvents
		if mask == 0 {
			continue
		}
		regRet, _, err := call(ctx, c, func() (nvml.Return, nvml.Return) {
			return d.handle.RegisterEvents(mask, set), nvml.SUCCESS
		})
		if err != nil {
			return 0, fmt.Errorf("gpu %d register events: %w", d.index, err)
		}
		if regRet != nvml.SUCCESS {
			c.log.Warn("nvml register events", "gpu", d.index, "err", regRet)
			continue
		}
		registered++
	}
	return registered, nil
}

func (c *Collector) healthEvent(data nvml.EventData) (HealthEvent, bool) {
	ev := HealthEvent{HealthEvent: telemetry.HealthEvent{Time: c.opts.Now()}, GPUIndex: -1}
	for _, d := range c.devices {
		if d.handle == data.Device {
			ev.GPUIndex, ev.UUID, ev.Component = d.index, d.uuid, component(d.index)
			break
		}
	}
	if ev.GPUIndex < 0 {
		ev.Component = "gpu"
	}
	switch {
	case data.EventType&nvml.EventTypeXidCriticalError != 0:
		ev.Kind = telemetry.KindXID
		ev.Code = int64(data.EventData)
		ev.Class = health.ClassifyXID(int64(data.EventData))
		ev.Message = fmt.Sprintf("XID %d on %s (%s): %s", data.EventData, ev.Component, ev.UUID, ev.Class)
	case data.EventType&nvml.EventTypeDoubleBitEccError != 0:
		ev.Kind = telemetry.KindECCUncorrected
		ev.Message = fmt.Sprintf("uncorrectable ECC error on %s (%s)", ev.Component, ev.UUID)
	default:
		return HealthEvent{}, false
	}
	c.log.Warn("gpu health event", "gpu", ev.GPUIndex, "kind", ev.Kind, "code", ev.Code, "class", string(ev.Class))
	return ev, true
}
