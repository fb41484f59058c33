package uplink

import (
	"testing"

	"github.com/sopilot/sopilot/pkg/agentpb"
)

func telemetry(events int) *agentpb.Batch {
	b := &agentpb.Batch{GpuSamples: []*agentpb.GpuSample{{Index: 0}, {Index: 1}}}
	for range events {
		b.HealthEvents = append(b.HealthEvents, &agentpb.HealthEvent{Kind: "xid"})
	}
	return b
}

func seqsOf(bs []*agentpb.Batch) []uint64 {
	var out []uint64
	for _, b := range bs {
		out = append(out, b.GetSequence())
	}
	return out
}

func TestBufferNumbersOnSendAndResendsAfterHandshake(t *testing.T) {
	b := NewBuffer(BufferOptions{})
	for range 5 {
		b.Add(telemetry(0))
	}
	got := b.Take(3)
	if s := seqsOf(got); len(s) != 3 || s[0] != 1 || s[2] != 3 {
		t.Fatalf("first take = %v, want 1..3 (window 3)", s)
	}
	if more := b.Take(3); len(more) != 0 {
		t.Fatalf("take with a full window = %v", seqsOf(more))
	}
	b.Ack(2)
	if s := seqsOf(b.Take(3)); len(s) != 2 || s[0] != 4 || s[1] != 5 {
		t.Fatalf("after ack 2 = %v, want [4 5]", s)
	}
	// Reconnect: the controller has 3 durable; 4 and 5 are resent with the
	// same numbers.
	b.Handshake(3)
	if s := seqsOf(b.Take(10)); len(s) != 2 || s[0] != 4 || s[1] != 5 {
		t.Fatalf("resend after handshake = %v, want [4 5]", s)
	}
	if st := b.Stats(); st.ResentBatches != 2 || st.Acked != 3 {
		t.Errorf("stats = %+v", st)
	}
	b.Ack(1) // stale
	if st := b.Stats(); st.DuplicateAcksIgnored != 1 || st.Acked != 3 {
		t.Errorf("stale ack: %+v", st)
	}
}

// A fresh agent (nothing acked) behind the controller continues after the
// controller's sequence, so nothing it sends is taken for a duplicate.
func TestBufferHandshakeRenumbersFreshAgent(t *testing.T) {
	b := NewBuffer(BufferOptions{})
	b.Add(telemetry(0))
	b.Handshake(41)
	if s := seqsOf(b.Take(10)); len(s) != 1 || s[0] != 42 {
		t.Fatalf("first batch after handshake(41) = %v, want [42]", s)
	}
}

func TestBufferOverflowDropsTelemetryKeepsEvents(t *testing.T) {
	b := NewBuffer(BufferOptions{MaxTelemetryBatches: 3, MaxHealthEvents: 5})
	b.Add(telemetry(1))
	b.Add(telemetry(0))
	b.Add(telemetry(0))
	b.Add(telemetry(0))
	b.Add(telemetry(0))
	st := b.Stats()
	// Two oldest lose telemetry: 4 samples. The first keeps its event; the
	// second is left empty and removed, its drops carried forward.
	if st.DroppedSamples != 4 || st.Buffered != 4 || st.BufferedEvents != 1 {
		t.Fatalf("stats = %+v, want 4 dropped, 4 buffered, 1 event", st)
	}
	got := b.Take(10)
	if s := seqsOf(got); len(s) != 4 || s[0] != 1 || s[3] != 4 {
		t.Fatalf("sequences = %v, want 1..4 without holes", s)
	}
	// Batch 1 reports its own 2 dropped samples and the 2 of the removed
	// batch, whose drops go to the next batch numbered.
	if len(got[0].GpuSamples) != 0 || len(got[0].HealthEvents) != 1 || got[0].DroppedSamples != 4 {
		t.Errorf("first batch = %v, want its event, no samples, dropped 4", got[0])
	}
	if got[1].DroppedSamples != 0 || len(got[1].GpuSamples) != 2 {
		t.Errorf("second batch = %v, want intact", got[1])
	}
	// Events are dropped only past their own bound, and only when no
	// telemetry is left to drop.
	b2 := NewBuffer(BufferOptions{MaxTelemetryBatches: 100, MaxHealthEvents: 5})
	b2.Add(telemetry(4))
	b2.Add(telemetry(4))
	if st := b2.Stats(); st.DroppedHealthEvents != 3 || st.BufferedEvents != 5 || st.DroppedSamples != 0 {
		t.Errorf("event bound: %+v, want 3 events dropped, 5 kept, no samples dropped", st)
	}
}

// In-flight (numbered) batches are never changed by trimming.
func TestBufferNeverTrimsInFlight(t *testing.T) {
	b := NewBuffer(BufferOptions{MaxTelemetryBatches: 1})
	b.Add(telemetry(0))
	inflight := b.Take(10)
	b.Add(telemetry(0))
	b.Add(telemetry(0))
	if len(inflight[0].GpuSamples) != 2 {
		t.Fatalf("in-flight batch was trimmed: %v", inflight[0])
	}
	if st := b.Stats(); st.DroppedSamples != 2 {
		t.Errorf("dropped = %d, want 2 (the older unsent batch)", st.DroppedSamples)
	}
}
