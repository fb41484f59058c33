package stats

import (
	"encoding/json"
	"math"
	"os"
	"testing"
)

// reference is testdata/reference.json, written by
// testdata/generate_reference.py from numpy/scipy (versions recorded in the
// file) and, for the exact Wilcoxon distribution with ties, by brute-force
// enumeration of every sign pattern.
type reference struct {
	Scipy     string `json:"scipy"`
	Numpy     string `json:"numpy"`
	Summaries []struct {
		Name                          string
		X                             []float64
		Mean, Std, Min, P50, P90, Max float64
	} `json:"summaries"`
	Paired []struct {
		Name      string
		Baseline  []float64
		Candidate []float64
		T         struct{ Statistic, DF, PValue float64 }
		Wilcoxon  struct {
			WPlus  float64 `json:"w_plus"`
			PValue float64
			Source string
		}
	} `json:"paired"`
	Welch []struct {
		Name                  string
		Baseline, Candidate   []float64
		Statistic, DF, PValue float64
		CI95                  [2]float64
	} `json:"welch"`
	McNemar []struct {
		B, C              int
		Statistic, PValue float64
		Method            string
	} `json:"mcnemar"`
	TTwoSided []struct{ T, DF, P float64 }       `json:"t_two_sided"`
	TQuantile []struct{ Q, DF, T float64 }       `json:"t_quantile"`
	IncBeta   []struct{ A, B, X, Value float64 } `json:"inc_beta"`
}

func loadReference(t *testing.T) reference {
	t.Helper()
	b, err := os.ReadFile("testdata/reference.json")
	if err != nil {
		t.Fatal(err)
	}
	var r reference
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if r.Scipy == "" || len(r.Paired) == 0 {
		t.Fatal("reference.json is incomplete")
	}
	return r
}

// near reports whether got is within rtol·|want| + atol of want.
func near(got, want, rtol, atol float64) bool {
	return math.Abs(got-want) <= rtol*math.Abs(want)+atol
}

func checkNear(t *testing.T, what string, got, want, rtol, atol float64) {
	t.Helper()
	if !near(got, want, rtol, atol) {
		t.Errorf("%s = %.17g, want %.17g (rtol %g, atol %g)", what, got, want, rtol, atol)
	}
}

func TestSummarizeMatchesNumpy(t *testing.T) {
	ref := loadReference(t)
	for _, c := range ref.Summaries {
		t.Run(c.Name, func(t *testing.T) {
			s, err := summarize("x", c.X)
			if err != nil {
				t.Fatal(err)
			}
			if s.N != len(c.X) {
				t.Errorf("N = %d, want %d", s.N, len(c.X))
			}
			for _, f := range []struct {
				name      string
				got, want float64
			}{
				{"Mean", s.Mean, c.Mean}, {"Std", s.Std, c.Std}, {"Min", s.Min, c.Min},
				{"P50", s.P50, c.P50}, {"P90", s.P90, c.P90}, {"Max", s.Max, c.Max},
			} {
				checkNear(t, f.name, f.got, f.want, 1e-13, 1e-15)
			}
		})
	}
}

func TestConstantDataHaveZeroVariance(t *testing.T) {
	// 1,000,003 copies of 0.7: the rounded sum/n is not 0.7, and without
	// the exact constant check the two-pass formula left ss = 6.2e-33,
	// which would turn "every delta equal" into t ≈ 1e22.
	x := make([]float64, 1_000_003)
	for i := range x {
		x[i] = 0.7
	}
	if mean, ss := meanAndSS(x); mean != 0.7 || ss != 0 {
		t.Errorf("meanAndSS = %v, %v; want 0.7, 0", mean, ss)
	}
}

func TestPairedTestsMatchScipy(t *testing.T) {
	ref := loadReference(t)
	for _, c := range ref.Paired {
		t.Run(c.Name, func(t *testing.T) {
			d := make([]float64, len(c.Baseline))
			for i := range d {
				d[i] = c.Candidate[i] - c.Baseline[i]
			}
			mean, ss := meanAndSS(d)
			pt, err := pairedT(len(d), mean, ss)
			if err != nil {
				t.Fatal(err)
			}
			checkNear(t, "t", pt.Statistic, c.T.Statistic, 1e-10, 0)
			checkNear(t, "t df", pt.DF, c.T.DF, 0, 0)
			checkNear(t, "t p", pt.PValue, c.T.PValue, 1e-9, 1e-300)

			pos, neg := signedMagnitudes(d)
			w := wilcoxonRanks(pos, neg, 0)
			checkNear(t, "W+", w.Statistic, c.Wilcoxon.WPlus, 0, 1e-9)
			checkNear(t, "Wilcoxon p ("+c.Wilcoxon.Source+")", w.PValue, c.Wilcoxon.PValue, 1e-9, 1e-300)
		})
	}
}

func TestWelchMatchesScipy(t *testing.T) {
	ref := loadReference(t)
	for _, c := range ref.Welch {
		t.Run(c.Name, func(t *testing.T) {
			bm, bss := meanAndSS(c.Baseline)
			cm, css := meanAndSS(c.Candidate)
			nb, nc := len(c.Baseline), len(c.Candidate)
			vb, vc := bss/float64(nb-1), css/float64(nc-1)
			w, err := welchT(nb, bm, vb, nc, cm, vc)
			if err != nil {
				t.Fatal(err)
			}
			checkNear(t, "t", w.Statistic, c.Statistic, 1e-10, 0)
			checkNear(t, "df", w.DF, c.DF, 1e-10, 0)
			checkNear(t, "p", w.PValue, c.PValue, 1e-9, 1e-300)
			lo, hi := welchCI(nb, vb, nc, vc, cm-bm, 0.95, w.DF)
			checkNear(t, "CI low", lo, c.CI95[0], 1e-9, 1e-12)
			checkNear(t, "CI high", hi, c.CI95[1], 1e-9, 1e-12)
		})
	}
}

func TestMcNemarMatchesScipy(t *testing.T) {
	ref := loadReference(t)
	for _, c := range ref.McNemar {
		m := mcnemar(c.B, c.C)
		checkNear(t, "McNemar statistic", m.Statistic, c.Statistic, 1e-12, 0)
		checkNear(t, "McNemar p ("+c.Method+")", m.PValue, c.PValue, 1e-10, 1e-300)
		if got, want := m.Method == "exact binomial", c.B+c.C < 25; got != want {
			t.Errorf("b=%d c=%d: method %q", c.B, c.C, m.Method)
		}
	}
}

func TestSpecialFunctionsMatchScipy(t *testing.T) {
	ref := loadReference(t)
	for _, c := range ref.TTwoSided {
		checkNear(t, "P(|T|≥t)", studentTTwoSided(c.T, c.DF), c.P, 1e-9, 1e-300)
		checkNear(t, "P(|T|≥−t)", studentTTwoSided(-c.T, c.DF), c.P, 1e-9, 1e-300)
	}
	for _, c := range ref.TQuantile {
		checkNear(t, "t quantile", studentTQuantile(c.Q, c.DF), c.T, 1e-10, 1e-12)
		checkNear(t, "t quantile (lower)", studentTQuantile(1-c.Q, c.DF), -c.T, 1e-10, 1e-12)
	}
	for _, c := range ref.IncBeta {
		lower, upper := incBeta(c.A, c.B, c.X, 1-c.X)
		checkNear(t, "I_x(a,b)", lower, c.Value, 1e-9, 1e-300)
		checkNear(t, "1−I_x(a,b)", upper, 1-c.Value, 1e-9, 1e-15)
	}
}
