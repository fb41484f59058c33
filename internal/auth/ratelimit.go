package auth

import (
	"sync"
	"time"
)

// RateLimit is a per-identity token bucket: each caller name may make
// Burst calls at once and Rate calls per second on average. Rate 0
// disables limiting.
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

// allow takes one token from name's bucket, reporting false when it is
// empty. A nil limiter allows everything.
func (l *limiter) allow(name string) bool {
	if l == nil {
		return true
	}
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
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
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
