package stats

import (
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
)

// BootstrapInfo says how a confidence interval was resampled.
type BootstrapInfo struct {
	Resamples int
	Seed      uint64
	// Interval is how replicates became an interval: "percentile" (the
	// type-7 quantiles α/2 and 1−α/2 of the sorted replicates).
	Interval string
	// Parts lists what was resampled: the deltas (paired), or the baseline
	// and the candidate independently (unpaired), or the per-run means of
	// each group.
	Parts []ResampleInfo
}

// ResampleInfo describes the resampling of one sample.
type ResampleInfo struct {
	Of     string // "deltas", "baseline", "candidate"
	N      int
	Method string // ResampleNaive, ResampleBinned or ResampleConstant
	// Bins is the number of nonempty bins (ResampleBinned only).
	Bins int
	// VarianceShare is W/S², the fraction of the bootstrap variance of
	// the mean that binning removes (0 for the other methods, and 0 for
	// ResampleBinned when every bin holds a single distinct value, where
	// the method is exact). See the package documentation.
	VarianceShare float64
}

// Resampling methods.
const (
	// ResampleNaive draws n indices per resample.
	ResampleNaive = "naive"
	// ResampleBinned draws multinomial bin counts per resample.
	ResampleBinned = "binned multinomial"
	// ResampleConstant: every value is equal, so every resample mean is.
	ResampleConstant = "constant"
)

const (
	// binVarianceShare is the bound on W/S² that sets the bin width:
	// h = 2·√(tol)·S guarantees W ≤ h²/4 = tol·S².
	binVarianceShare = 1e-5
	// maxBinSlots caps the bin array (16 bytes a slot). Samuelson's
	// inequality bounds the range by 2√(n−1)·S, so the cap binds only
	// beyond n ≈ 4·10⁷ samples; then bins widen and VarianceShare reports
	// the actual W/S².
	maxBinSlots = 1 << 21
	// binnedCostFactor: a binomial draw costs about this many index
	// draws; binning is used when bins·factor < n.
	binnedCostFactor = 8
	// chunkResamples is the unit of work given to one goroutine; chunk c
	// always uses random stream c, so results do not depend on GOMAXPROCS
	// or scheduling.
	chunkResamples = 128
)

// resampler draws the mean of one bootstrap resample.
type resampler interface {
	draw(r *rng) float64
	info() ResampleInfo
}

// newResampler picks the cheapest exact-or-bounded method for x, whose
// mean and Σ(x−mean)² the caller has computed.
func newResampler(of string, x []float64, mean, ss float64) resampler {
	n := len(x)
	if ss == 0 {
		return constantResampler{ResampleInfo{Of: of, N: n, Method: ResampleConstant}, mean}
	}
	// Bin only when it is cheaper than drawing n indices per resample.
	if b := newBinnedResampler(of, x, mean, ss, binVarianceShare); b.ri.Bins*binnedCostFactor < n {
		return b
	}
	return newNaiveResampler(of, x, mean)
}

type constantResampler struct {
	ri   ResampleInfo
	mean float64
}

func (c constantResampler) draw(*rng) float64  { return c.mean }
func (c constantResampler) info() ResampleInfo { return c.ri }

// naiveResampler is the textbook bootstrap: n uniform indices per resample.
type naiveResampler struct {
	ri       ResampleInfo
	mean     float64
	centered []float64
}

func newNaiveResampler(of string, x []float64, mean float64) *naiveResampler {
	c := make([]float64, len(x))
	for i, v := range x {
		c[i] = v - mean
	}
	return &naiveResampler{ri: ResampleInfo{Of: of, N: len(x), Method: ResampleNaive}, mean: mean, centered: c}
}

func (s *naiveResampler) draw(r *rng) float64 {
	n := uint64(len(s.centered))
	var sum float64
	for range n {
		sum += s.centered[r.index(n)]
	}
	return s.mean + sum/float64(n)
}

func (s *naiveResampler) info() ResampleInfo { return s.ri }

// binnedResampler draws the bootstrap mean through bin counts. With bins of
// frequencies f₁…f_m and means μ₁…μ_m, a resample's bin counts are
// Multinomial(n; f/n), drawn as conditional binomials
// Cᵢ ~ Bin(n − ΣⱼC_j, fᵢ/Σ_{j≥i} f_j), and its mean is ΣCᵢμᵢ/n.
type binnedResampler struct {
	ri       ResampleInfo
	n        int64
	mean     float64
	freq     []int64   // per nonempty bin
	tail     []int64   // tail[i] = Σ_{j≥i} freq[j]
	centered []float64 // bin mean − overall mean
}

// newBinnedResampler bins x into equal-width bins of width h = 2√(tol·S²)
// (S² = ss/n > 0), so that W ≤ h²/4 = tol·S².
func newBinnedResampler(of string, x []float64, mean, ss, tol float64) *binnedResampler {
	n := len(x)
	popVar := ss / float64(n)
	lo, hi := slices.Min(x), slices.Max(x)
	width := 2 * math.Sqrt(tol*popVar)
	slots := math.Floor((hi-lo)/width) + 1
	if !(slots <= maxBinSlots) { // also catches NaN from an overflowing range
		slots = maxBinSlots
		width = (hi - lo) / (maxBinSlots - 1)
	}
	ns := int(slots)
	slot := func(v float64) int {
		i := int((v - lo) / width)
		return min(max(i, 0), ns-1)
	}
	count := make([]int64, ns)
	sum := make([]float64, ns)
	first := make([]float64, ns) // the bin's first value …
	mixed := make([]bool, ns)    // … and whether any other value differs
	for _, v := range x {
		i := slot(v)
		if count[i] == 0 {
			first[i] = v
		} else if v != first[i] {
			mixed[i] = true
		}
		count[i]++
		sum[i] += v - mean
	}
	m := 0
	for _, c := range count {
		if c > 0 {
			m++
		}
	}
	b := &binnedResampler{
		n:        int64(n),
		mean:     mean,
		freq:     make([]int64, 0, m),
		tail:     make([]int64, m),
		centered: make([]float64, 0, m),
	}
	anyMixed := false
	for i, c := range count {
		if c == 0 {
			continue
		}
		if mixed[i] {
			sum[i] /= float64(c) // now the bin's centred mean
			anyMixed = true
		} else {
			sum[i] = first[i] - mean // one distinct value: exact
		}
		b.freq = append(b.freq, c)
		b.centered = append(b.centered, sum[i])
	}
	var acc int64
	for i := m - 1; i >= 0; i-- {
		acc += b.freq[i]
		b.tail[i] = acc
	}
	// W = (1/n)·Σ (x − μ_bin)², computed exactly; 0 when every bin holds
	// one distinct value (then the method is exact).
	var within float64
	if anyMixed {
		for _, v := range x {
			if i := slot(v); mixed[i] {
				d := (v - mean) - sum[i]
				within += d * d
			}
		}
	}
	b.ri = ResampleInfo{Of: of, N: n, Method: ResampleBinned, Bins: m, VarianceShare: within / ss}
	return b
}

func (s *binnedResampler) draw(r *rng) float64 {
	remaining := s.n
	var sum float64
	last := len(s.freq) - 1
	for i, f := range s.freq {
		if remaining == 0 {
			break
		}
		var c int64
		if i == last {
			c = remaining
		} else {
			c = r.binomial(remaining, float64(f)/float64(s.tail[i]))
		}
		sum += float64(c) * s.centered[i]
		remaining -= c
	}
	return s.mean + sum/float64(s.n)
}

func (s *binnedResampler) info() ResampleInfo { return s.ri }

// bootstrapReplicates returns b replicates of stat, computed in parallel in
// fixed chunks of chunkResamples; chunk c draws from newRNG(seed, c), so the
// result depends only on seed, b and the data. The replicates are returned
// sorted.
func bootstrapReplicates(b int, seed uint64, stat func(r *rng) float64) []float64 {
	out := make([]float64, b)
	chunks := (b + chunkResamples - 1) / chunkResamples
	workers := min(runtime.GOMAXPROCS(0), chunks)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				c := int(next.Add(1) - 1)
				if c >= chunks {
					return
				}
				r := newRNG(seed, uint64(c))
				for i := c * chunkResamples; i < min(b, (c+1)*chunkResamples); i++ {
					out[i] = stat(r)
				}
			}
		})
	}
	wg.Wait()
	sortFloat64s(out)
	return out
}

// percentileInterval returns the type-7 quantiles (1−level)/2 and
// (1+level)/2 of sorted replicates.
func percentileInterval(sorted []float64, level float64) (lo, hi float64) {
	a := (1 - level) / 2
	return quantileSorted(sorted, a), quantileSorted(sorted, 1-a)
}
