package nvmlsim

import (
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
)

type nvmlEventSet = nvml.EventSet

// maxQueuedEvents bounds an event set's queue; older events are dropped
// first, as a driver with a full queue loses them.
const maxQueuedEvents = 1024

// eventSet is a simulated NVML event set. Faults post events to every set
// that registered the GPU for the event's type; Wait hands them out.
type eventSet struct {
	nvmlEventSet // fallback for methods the simulation does not model

	sim    *Sim
	notify chan struct{} // one token: the queue may be non-empty
	freed  chan struct{}

	mu     sync.Mutex
	masks  map[int]uint64 // registered event types by GPU index
	queue  []nvml.EventData
	isFree bool
}

// EventSetCreate returns a new, empty event set.
func (s *Sim) EventSetCreate() (nvml.EventSet, nvml.Return) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inits == 0 {
		return nil, nvml.ERROR_UNINITIALIZED
	}
	es := &eventSet{
		sim:    s,
		notify: make(chan struct{}, 1),
		freed:  make(chan struct{}),
		masks:  make(map[int]uint64),
	}
	fallback := &mock.EventSet{}
	fillUnset(fallback, func() nvml.Return { return nvml.ERROR_NOT_SUPPORTED })
	es.nvmlEventSet = fallback
	s.sets[es] = struct{}{}
	return es, nvml.SUCCESS
}

// register records mask for GPU i; false when the set has been freed.
func (es *eventSet) register(i int, mask uint64) bool {
	es.mu.Lock()
	defer es.mu.Unlock()
	if es.isFree {
		return false
	}
	es.masks[i] |= mask
	return true
}

// post queues ev if the set registered its GPU for its type.
func (es *eventSet) post(i int, ev nvml.EventData) {
	es.mu.Lock()
	defer es.mu.Unlock()
	if es.isFree || es.masks[i]&ev.EventType == 0 {
		return
	}
	if len(es.queue) >= maxQueuedEvents {
		es.queue = es.queue[1:]
	}
	es.queue = append(es.queue, ev)
	select {
	case es.notify <- struct{}{}:
	default:
	}
}

// Wait returns the next event, waiting up to timeoutMS milliseconds of
// real time; ERROR_TIMEOUT when none came.
func (es *eventSet) Wait(timeoutMS uint32) (nvml.EventData, nvml.Return) {
	timer := time.NewTimer(time.Duration(timeoutMS) * time.Millisecond)
	defer timer.Stop()
	for {
		es.mu.Lock()
		switch {
		case es.isFree:
			es.mu.Unlock()
			return nvml.EventData{}, nvml.ERROR_UNINITIALIZED
		case len(es.queue) > 0:
			ev := es.queue[0]
			es.queue = es.queue[1:]
			es.mu.Unlock()
			return ev, nvml.SUCCESS
		}
		es.mu.Unlock()
		select {
		case <-es.notify:
		case <-es.freed:
		case <-timer.C:
			return nvml.EventData{}, nvml.ERROR_TIMEOUT
		}
	}
}

// Free releases the set; a second Free fails like real NVML's.
func (es *eventSet) Free() nvml.Return {
	s := es.sim
	s.mu.Lock()
	defer s.mu.Unlock()
	es.mu.Lock()
	defer es.mu.Unlock()
	if es.isFree {
		return nvml.ERROR_INVALID_ARGUMENT
	}
	es.isFree = true
	es.queue = nil
	close(es.freed)
	delete(s.sets, es)
	return nvml.SUCCESS
}

// postEvent sends an event about GPU i to every registered set. s.mu must
// be held.
func (s *Sim) postEvent(i int, eventType, data uint64) {
	ev := nvml.EventData{
		Device:            s.devices[i],
		EventType:         eventType,
		EventData:         data,
		GpuInstanceId:     0xFFFFFFFF, // no MIG
		ComputeInstanceId: 0xFFFFFFFF,
	}
	for es := range s.sets {
		es.post(i, ev)
	}
}
