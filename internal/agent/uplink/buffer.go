package uplink

import (
	"sync"

	"github.com/sopilot/sopilot/pkg/agentpb"
)

// BufferOptions bound a Buffer. The zero value is usable.
type BufferOptions struct {
	// MaxTelemetryBatches is how many unsent batches may hold telemetry (GPU
	// and IB samples, progress) while the controller is unreachable; older
	// ones lose their telemetry first. Batches in flight (sent, not yet
	// acked) are bounded by the client's window instead. Default 600 (ten
	// minutes at 1 Hz).
	MaxTelemetryBatches int
	// MaxHealthEvents is how many health events may wait. They are dropped
	// (oldest first) only when there is no telemetry left to drop and this
	// many are waiting. Default 100,000.
	MaxHealthEvents int
}

func (o BufferOptions) withDefaults() BufferOptions {
	if o.MaxTelemetryBatches <= 0 {
		o.MaxTelemetryBatches = 600
	}
	if o.MaxHealthEvents <= 0 {
		o.MaxHealthEvents = 100_000
	}
	return o
}

// entry is one batch waiting for an ack. seq is 0 until the batch is handed
// to a connection; from then on it keeps its number until acked, so a
// resend after a reconnect carries the same sequence and the controller can
// drop duplicates. Unnumbered entries can still be trimmed or removed
// freely, which is what keeps the buffer bounded during a long partition
// without leaving holes in the sequence.
type entry struct {
	b    *agentpb.Batch
	seq  uint64
	sent bool // sent on the current connection
}

// Buffer holds batches until the controller acks them. It is safe for
// concurrent use.
type Buffer struct {
	opts BufferOptions

	mu      sync.Mutex
	entries []*entry // in order: numbered entries first, then unnumbered
	next    uint64   // sequence the next numbered batch gets
	acked   uint64   // highest sequence the controller acked
	// droppedPending counts samples removed with whole batches; the next
	// batch to be numbered reports them in dropped_samples.
	droppedPending uint64
	telemetry      int // entries holding telemetry
	events         int // health events held

	stats  Stats
	notify chan struct{}
}

// Stats are the buffer's counters since it was created.
type Stats struct {
	Buffered             int    // batches waiting (numbered and not)
	BufferedEvents       int    // health events waiting
	DroppedSamples       uint64 // telemetry samples dropped on overflow
	DroppedHealthEvents  uint64 // health events dropped (only past MaxHealthEvents)
	DroppedProgress      uint64 // progress updates dropped on overflow
	Acked                uint64 // highest acked sequence
	NextSequence         uint64
	SentBatches          uint64 // batches written to a connection, resends included
	ResentBatches        uint64
	DuplicateAcksIgnored uint64
}

// NewBuffer returns an empty buffer whose first batch will be sequence 1.
func NewBuffer(opts BufferOptions) *Buffer {
	return &Buffer{opts: opts.withDefaults(), next: 1, notify: make(chan struct{}, 1)}
}

// Ready is signalled (without blocking the sender) whenever a batch is added
// or an ack frees room in the send window.
func (b *Buffer) Ready() <-chan struct{} { return b.notify }

func (b *Buffer) signal() {
	select {
	case b.notify <- struct{}{}:
	default:
	}
}

func samples(bt *agentpb.Batch) int {
	return len(bt.GetGpuSamples()) + len(bt.GetIbSamples()) + len(bt.GetProgress())
}

// Add queues a batch. Health events go first in the batch and are kept when
// the buffer overflows; telemetry is dropped oldest first and counted.
func (b *Buffer) Add(bt *agentpb.Batch) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.entries = append(b.entries, &entry{b: bt})
	if samples(bt) > 0 {
		b.telemetry++
	}
	b.events += len(bt.GetHealthEvents())
	b.trim()
	b.signal()
}

// trim enforces the bounds on unnumbered entries. Numbered entries are in
// flight (bounded by the send window) and are never changed: the sender may
// be marshalling them.
func (b *Buffer) trim() {
	unsent := b.telemetry
	for _, e := range b.entries {
		if e.seq != 0 && samples(e.b) > 0 {
			unsent--
		}
	}
	for i := 0; unsent > b.opts.MaxTelemetryBatches && i < len(b.entries); i++ {
		e := b.entries[i]
		if e.seq != 0 || samples(e.b) == 0 {
			continue
		}
		n := uint64(len(e.b.GpuSamples) + len(e.b.IbSamples))
		b.stats.DroppedSamples += n
		b.stats.DroppedProgress += uint64(len(e.b.Progress))
		e.b.DroppedSamples += n
		e.b.GpuSamples, e.b.IbSamples, e.b.Progress = nil, nil, nil
		b.telemetry--
		unsent--
	}
	for i := 0; b.events > b.opts.MaxHealthEvents && i < len(b.entries); i++ {
		e := b.entries[i]
		if e.seq != 0 || len(e.b.HealthEvents) == 0 {
			continue
		}
		drop := min(len(e.b.HealthEvents), b.events-b.opts.MaxHealthEvents)
		e.b.HealthEvents = e.b.HealthEvents[drop:]
		b.events -= drop
		b.stats.DroppedHealthEvents += uint64(drop)
	}
	// Remove unnumbered entries left with nothing in them; what they had
	// dropped is reported by the next batch that gets a number.
	kept := b.entries[:0]
	for _, e := range b.entries {
		if e.seq == 0 && samples(e.b) == 0 && len(e.b.HealthEvents) == 0 {
			b.droppedPending += e.b.DroppedSamples
			continue
		}
		kept = append(kept, e)
	}
	for i := len(kept); i < len(b.entries); i++ {
		b.entries[i] = nil
	}
	b.entries = kept
}

// Handshake applies the controller's answer to Hello: the highest sequence
// it holds durably for this node and boot. Entries up to it are dropped
// (acked before the connection broke); a fresh agent whose numbering is
// behind the controller continues after it, so a restarted agent never
// reuses a sequence the controller already has.
func (b *Buffer) Handshake(controllerAck uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ackLocked(controllerAck)
	if controllerAck >= b.next {
		// Our numbered entries were all ≤ controllerAck and are gone now.
		b.next = controllerAck + 1
	}
	for _, e := range b.entries {
		if e.sent {
			b.stats.ResentBatches++
		}
		e.sent = false
	}
	b.signal()
}

// Ack drops every batch up to seq.
func (b *Buffer) Ack(seq uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ackLocked(seq)
	b.signal()
}

func (b *Buffer) ackLocked(seq uint64) {
	if seq <= b.acked {
		if seq < b.acked {
			b.stats.DuplicateAcksIgnored++
		}
		return
	}
	b.acked = seq
	n := 0
	for n < len(b.entries) && b.entries[n].seq != 0 && b.entries[n].seq <= seq {
		e := b.entries[n]
		if samples(e.b) > 0 {
			b.telemetry--
		}
		b.events -= len(e.b.HealthEvents)
		b.entries[n] = nil
		n++
	}
	b.entries = b.entries[n:]
}

// Take returns the batches to write now, in sequence order: numbered ones
// not yet sent on this connection, then newly numbered ones, while fewer
// than window batches are unacked.
func (b *Buffer) Take(window int) []*agentpb.Batch {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []*agentpb.Batch
	inflight := 0
	for _, e := range b.entries {
		if e.seq != 0 && e.sent {
			inflight++
		}
	}
	for _, e := range b.entries {
		if inflight >= window {
			break
		}
		if e.sent {
			continue
		}
		if e.seq == 0 {
			e.seq = b.next
			b.next++
			e.b.Sequence = e.seq
			e.b.DroppedSamples += b.droppedPending
			b.droppedPending = 0
		}
		e.sent = true
		inflight++
		b.stats.SentBatches++
		out = append(out, e.b)
	}
	return out
}

// Acked is the highest sequence the controller acked.
func (b *Buffer) Acked() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.acked
}

// Stats returns the buffer's counters.
func (b *Buffer) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.stats
	s.Buffered = len(b.entries)
	s.BufferedEvents = b.events
	s.Acked = b.acked
	s.NextSequence = b.next
	return s
}
