package auth

import (
	"math"
	"sync"
	"time"
)

// RateLimit is a per-identity token bucket: each caller name may spend
// Burst tokens at once and Rate tokens per second on average. A call costs
// its method's Rule.Cost tokens (1 unless the policy table says the method
// is expensive). Rate 0 disables limiting.
type RateLimit struct {
	Rate  float64
	Burst int
}

type bucket struct {
	tokens float64
	last   time.Time
}

// limiter holds one bucket per identity name.
type limiter struct {
	cfg RateLimit
	now func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

const maxBuckets = 10000

func newLimiter(cfg RateLimit, now func() time.Time) *limiter {
	if cfg.Rate <= 0 {
		return nil
	}
	if cfg.Burst < 1 {
		cfg.Burst = 1
	}
	return &limiter{cfg: cfg, now: now, buckets: map[string]*bucket{}}
}

// allow takes cost tokens from name's bucket. When there are not enough it
// takes none and returns false and how long until there would be. A call
// costing more than the burst costs the whole burst, so that it can still
// be made from a full bucket. A nil limiter allows everything.
func (l *limiter) allow(name string, cost int) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	need := float64(min(max(cost, 1), l.cfg.Burst))
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.now()
	b, ok := l.buckets[name]
	if !ok {
		if len(l.buckets) >= maxBuckets {
			l.sweepLocked(t)
		}
		b = &bucket{tokens: float64(l.cfg.Burst), last: t}
		l.buckets[name] = b
	}
	if el := t.Sub(b.last).Seconds(); el > 0 {
		b.tokens = min(float64(l.cfg.Burst), b.tokens+el*l.cfg.Rate)
	}
	b.last = t
	if b.tokens < need {
		wait := (need - b.tokens) / l.cfg.Rate
		return false, time.Duration(math.Ceil(wait * float64(time.Second)))
	}
	b.tokens -= need
	return true, 0
}

// sweepLocked forgets buckets that have refilled completely: forgetting
// them changes nothing.
func (l *limiter) sweepLocked(t time.Time) {
	for name, b := range l.buckets {
		if b.tokens+t.Sub(b.last).Seconds()*l.cfg.Rate >= float64(l.cfg.Burst) {
			delete(l.buckets, name)
		}
	}
}
