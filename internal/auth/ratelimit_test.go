package auth

import (
	"log/slog"
	"testing"
	"time"
)

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestLimiter(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	l := newLimiter(RateLimit{Rate: 2, Burst: 3}, clock.now)
	for i := range 3 {
		if !l.allow("alice") {
			t.Fatalf("call %d within the burst refused", i+1)
		}
	}
	if l.allow("alice") {
		t.Fatal("4th call at once allowed with burst 3")
	}
	if !l.allow("bob") {
		t.Fatal("bob limited by alice's bucket")
	}
	clock.advance(499 * time.Millisecond)
	if l.allow("alice") {
		t.Fatal("allowed before a token refilled (rate 2/s)")
	}
	clock.advance(2 * time.Millisecond)
	if !l.allow("alice") {
		t.Fatal("refused after 0.5s at rate 2/s")
	}
	clock.advance(time.Hour)
	for i := range 3 {
		if !l.allow("alice") {
			t.Fatalf("after a long pause call %d refused", i+1)
		}
	}
	if l.allow("alice") {
		t.Fatal("the bucket filled beyond its burst")
	}
	var off *limiter = newLimiter(RateLimit{}, clock.now)
	if off != nil || !off.allow("x") {
		t.Fatal("zero RateLimit must disable limiting")
	}
}

func TestLimiterSweep(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	l := newLimiter(RateLimit{Rate: 1, Burst: 1}, clock.now)
	l.allow("a")
	l.allow("b")
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
