package fleet

import (
	"runtime/metrics"
	"testing"
	"time"
)

func TestOverloadFactorSteps(t *testing.T) {
	o := newOverload(DefaultOverloadSchedLatency, time.Second)
	if o.Factor() != 1 || o.hint() != nil {
		t.Fatalf("new: factor %d, hint %v; want 1, none", o.Factor(), o.hint())
	}
	calm := 0
	for _, want := range []int{2, 4, 8, 8} {
		calm = o.step(200*time.Millisecond, calm)
		if o.Factor() != want {
			t.Fatalf("after a slow second: factor %d, want %d", o.Factor(), want)
		}
	}
	if got := o.hint().AsDuration(); got != 8*time.Second {
		t.Fatalf("hint at factor 8: %v", got)
	}
	// Between a quarter of the threshold and the threshold: held.
	for range 30 {
		calm = o.step(DefaultOverloadSchedLatency/2, calm)
	}
	if o.Factor() != 8 {
		t.Fatalf("factor moved on middling seconds: %d", o.Factor())
	}
	for i := range overloadCalmSeconds - 1 {
		calm = o.step(time.Millisecond, calm)
		if o.Factor() != 8 {
			t.Fatalf("factor fell after %d calm seconds", i+1)
		}
	}
	calm = o.step(time.Millisecond, calm)
	if o.Factor() != 4 {
		t.Fatalf("after %d calm seconds: factor %d, want 4", overloadCalmSeconds, o.Factor())
	}
	// A slow second resets the calm count.
	for range overloadCalmSeconds - 1 {
		calm = o.step(time.Millisecond, calm)
	}
	calm = o.step(time.Second, calm)
	if o.Factor() != 8 || calm != 0 {
		t.Fatalf("slow second after calm ones: factor %d calm %d", o.Factor(), calm)
	}
}

func TestDeltaQuantile(t *testing.T) {
	h := &metrics.Float64Histogram{Buckets: []float64{0, 0.001, 0.01, 0.1, 1}, Counts: []uint64{10, 10, 10, 10}}
	prev := cloneCounts(h)
	if got := deltaQuantile(h, prev, 0.99); got != 0 {
		t.Fatalf("no new samples: %v", got)
	}
	h.Counts = []uint64{10 + 980, 10 + 10, 10, 10 + 10}
	if got := deltaQuantile(h, prev, 0.99); got != 10*time.Millisecond {
		t.Fatalf("p99 of 980 fast, 10 ~ms, 10 slow: %v, want 10ms", got)
	}
	if got := deltaQuantile(h, prev, 0.999); got != time.Second {
		t.Fatalf("p99.9: %v, want 1s", got)
	}
}

func TestOverloadOff(t *testing.T) {
	o := newOverload(-1, time.Second)
	o.step(time.Hour, 0)
	if o.Factor() != 1 {
		t.Fatalf("overload control off, yet factor %d", o.Factor())
	}
}
