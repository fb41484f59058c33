package auth

import (
	"log/slog"
	"testing"
	"time"
)

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func ok(allowed bool, _ time.Duration) bool { return allowed }

func TestLimiter(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	l := newLimiter(RateLimit{Rate: 2, Burst: 3}, clock.now)
	for i := range 3 {
		if !ok(l.allow("alice", 1)) {
			t.Fatalf("call %d within the burst refused", i+1)
		}
	}
	if ok(l.allow("alice", 1)) {
		t.Fatal("4th call at once allowed with burst 3")
	}
	if !ok(l.allow("bob", 1)) {
		t.Fatal("bob limited by alice's bucket")
	}
	clock.advance(499 * time.Millisecond)
	if ok(l.allow("alice", 1)) {
		t.Fatal("allowed before a token refilled (rate 2/s)")
	}
	clock.advance(2 * time.Millisecond)
	if !ok(l.allow("alice", 1)) {
		t.Fatal("refused after 0.5s at rate 2/s")
	}
	clock.advance(time.Hour)
	for i := range 3 {
		if !ok(l.allow("alice", 1)) {
			t.Fatalf("after a long pause call %d refused", i+1)
		}
	}
	if ok(l.allow("alice", 1)) {
		t.Fatal("the bucket filled beyond its burst")
	}
	var off *limiter = newLimiter(RateLimit{}, clock.now)
	if off != nil || !ok(off.allow("x", 1)) {
		t.Fatal("zero RateLimit must disable limiting")
	}
}

func TestLimiterSweep(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	l := newLimiter(RateLimit{Rate: 1, Burst: 1}, clock.now)
	l.allow("a", 1)
	l.allow("b", 1)
	clock.advance(500 * time.Millisecond)
	l.sweepLocked(clock.now())
	if len(l.buckets) != 2 {
		t.Fatalf("swept buckets still refilling: %d left", len(l.buckets))
	}
	clock.advance(time.Second)
	l.sweepLocked(clock.now())
	if len(l.buckets) != 0 {
		t.Fatalf("full buckets not swept: %d left", len(l.buckets))
	}
}

func TestLimiterCost(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	l := newLimiter(RateLimit{Rate: 10, Burst: 20}, clock.now)
	for i := range 2 {
		if allowed, _ := l.allow("alice", 10); !allowed {
			t.Fatalf("expensive call %d within the burst refused", i+1)
		}
	}
	allowed, wait := l.allow("alice", 10)
	if allowed {
		t.Fatal("a third call costing 10 allowed from a burst of 20")
	}
	if wait != time.Second {
		t.Fatalf("retry after %v; want 1s (10 tokens at 10/s)", wait)
	}
	clock.advance(100 * time.Millisecond)
	if allowed, _ := l.allow("alice", 1); !allowed {
		t.Fatal("a cheap call refused although a token refilled")
	}
	if allowed, wait := l.allow("alice", 10); allowed || wait != time.Second {
		t.Fatalf("expensive call after the cheap one: allowed %v, wait %v; want refused, 1s", allowed, wait)
	}
	// A call costing more than the whole burst costs the burst.
	clock.advance(time.Hour)
	if allowed, _ := l.allow("bob", 1000); !allowed {
		t.Fatal("a call costing more than the burst is never allowed")
	}
	if allowed, _ := l.allow("bob", 1); allowed {
		t.Fatal("the over-burst call did not empty the bucket")
	}
}
