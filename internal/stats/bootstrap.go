package stats

import (
	"context"
	"fmt"
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
	// Bins is the number of dense bins (ResampleBinned only), each
	// resampled through one binomial count and represented by its mean.
	Bins int
	// Individual is the number of values in sparse bins (ResampleBinned
	// only), resampled value by value as the naive bootstrap does: exact.
	Individual int
	// VarianceShare is W/S², the fraction of the bootstrap variance of
	// the mean that binning removes (0 for the other methods, and 0 for
	// ResampleBinned when every dense bin holds a single distinct value,
	// where the method is exact). See the package documentation.
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
	// maxBins caps the dense bins: a resample then costs at most maxBins
	// binomial draws (≈ 40–100 ns each) plus one index draw per value in a
	// sparse bin, however the data are spread.
	maxBins = 4096
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
	b := newCappedBinnedResampler(of, x, mean, ss, binVarianceShare, maxBins)
	// Bin only when it is cheaper than drawing n indices per resample.
	if b.cost() < n {
		return b
	}
	return newNaiveResampler(of, x, mean)
}

// newCappedBinnedResampler bins x with tolerance tol, widening the bins
// until at most maxDense are dense: the time per resample is then bounded
// whatever the data. Dense bins scale about as 1/width, i.e. as 1/√tol.
// Typical data never widen (normal data at n = 10⁶: ≈ 1,000 dense bins);
// VarianceShare reports the W/S² actually achieved.
func newCappedBinnedResampler(of string, x []float64, mean, ss, tol float64, maxDense int) *binnedResampler {
	b := newBinnedResampler(of, x, mean, ss, tol)
	for b.ri.Bins > maxDense {
		r := float64(b.ri.Bins) / float64(maxDense)
		tol *= 1.2 * r * r
		b = newBinnedResampler(of, x, mean, ss, tol)
	}
	return b
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

// binnedResampler draws the bootstrap mean through category counts. The
// categories are the dense bins (frequencies f₁…f_m, means μ₁…μ_m) and one
// more holding every value of the sparse bins (fewer than sparseBelow values
// each), kept individually. A resample's category counts are
// Multinomial(n; f/n), drawn as conditional binomials
// Cᵢ ~ Bin(n − Σ_{j<i}C_j, fᵢ/Σ_{j≥i}f_j); a dense bin contributes Cᵢμᵢ, and
// the sparse category's C_s draws pick its values uniformly with
// replacement, which is exactly what the naive bootstrap does to them.
type binnedResampler struct {
	ri       ResampleInfo
	n        int64
	mean     float64
	freq     []int64   // per dense bin
	tail     []int64   // tail[i] = Σ_{j≥i} freq[j] + len(sparse)
	centered []float64 // dense bin mean − overall mean
	sparse   []float64 // values of sparse bins − overall mean
}

// sparseBelow: a bin with fewer values than this is cheaper to resample
// value by value (≈ 5 ns a value) than through a binomial draw (≈ 70 ns),
// and is then exact.
const sparseBelow = 16

// newBinnedResampler bins x into equal-width bins of width h = 2√(tol·S²)
// (S² = ss/n > 0), so that the dense bins' W ≤ h²/4 = tol·S².
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
	b := &binnedResampler{n: int64(n), mean: mean}
	anySparse, anyMixed := false, false
	for i, c := range count {
		switch {
		case c == 0:
		case c < sparseBelow:
			anySparse = true
		default:
			if mixed[i] {
				sum[i] /= float64(c) // now the bin's centred mean
				anyMixed = true
			} else {
				sum[i] = first[i] - mean // one distinct value: exact
			}
			b.freq = append(b.freq, c)
			b.centered = append(b.centered, sum[i])
		}
	}
	// One pass for the sparse values and W = (1/n)·Σ (x − μ_bin)² over the
	// dense bins, computed exactly; W = 0 when every dense bin holds one
	// distinct value (then the method is exact).
	var within float64
	if anySparse || anyMixed {
		for _, v := range x {
			i := slot(v)
			switch {
			case count[i] < sparseBelow:
				b.sparse = append(b.sparse, v-mean)
			case mixed[i]:
				d := (v - mean) - sum[i]
				within += d * d
			}
		}
	}
	b.tail = make([]int64, len(b.freq))
	acc := int64(len(b.sparse))
	for i := len(b.freq) - 1; i >= 0; i-- {
		acc += b.freq[i]
		b.tail[i] = acc
	}
	b.ri = ResampleInfo{Of: of, N: n, Method: ResampleBinned, Bins: len(b.freq),
		Individual: len(b.sparse), VarianceShare: within / ss}
	return b
}

// cost is the approximate price of one resample in index draws.
func (s *binnedResampler) cost() int {
	return len(s.freq)*binnedCostFactor + len(s.sparse)
}

func (s *binnedResampler) draw(r *rng) float64 {
	remaining := s.n
	var sum float64
	for i, f := range s.freq {
		if remaining == 0 {
			break
		}
		c := r.binomial(remaining, float64(f)/float64(s.tail[i]))
		sum += float64(c) * s.centered[i]
		remaining -= c
	}
	// Whatever is left falls in the sparse category (Σ f + len(sparse) = n).
	if k := uint64(len(s.sparse)); k > 0 {
		for range remaining {
			sum += s.sparse[r.index(k)]
		}
	}
	return s.mean + sum/float64(s.n)
}

func (s *binnedResampler) info() ResampleInfo { return s.ri }

// bootstrapReplicates returns b replicates of stat, computed in parallel in
// fixed chunks of chunkResamples; chunk c draws from newRNG(seed, c), so the
// result depends only on seed, b and the data. The replicates are returned
// sorted. Workers check ctx before each chunk, so a cancelled comparison
// stops within one chunk's work and returns ctx's error.
func bootstrapReplicates(ctx context.Context, b int, seed uint64, stat func(r *rng) float64) ([]float64, error) {
	out := make([]float64, b)
	chunks := (b + chunkResamples - 1) / chunkResamples
	workers := min(runtime.GOMAXPROCS(0), chunks)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
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
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	sortFloat64s(out)
	return out, nil
}

// percentileInterval returns the type-7 quantiles (1−level)/2 and
// (1+level)/2 of sorted replicates.
func percentileInterval(sorted []float64, level float64) (lo, hi float64) {
	a := (1 - level) / 2
	return quantileSorted(sorted, a), quantileSorted(sorted, 1-a)
}
