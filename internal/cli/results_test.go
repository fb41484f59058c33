package cli

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/sopilot/sopilot/internal/results"
)

// TestSplitColumnsKeepsEverySample: a batch over maxUploadMessage (long
// ids after short ones) goes out in pieces that hold every sample once,
// each piece's absent positions its own.
func TestSplitColumnsKeepsEverySample(t *testing.T) {
	const n = 30_000
	c := results.Columns{IDs: make([]string, n)}
	loss := results.Column{Name: "loss", Values: make([]float64, n)}
	only := results.Column{Name: "rare", Values: make([]float64, n)}
	for i := range n {
		c.IDs[i] = strings.Repeat("x", 200) + string(rune('a'+i%26)) + strings.Repeat("y", i%7)
		loss.Values[i] = float64(i)
		only.Values[i] = math.NaN()
		if i%3 == 0 {
			loss.Absent = append(loss.Absent, uint32(i))
			loss.Values[i] = math.NaN()
		}
		if i == n-1 {
			only.Values[i] = 1
		} else {
			only.Absent = append(only.Absent, uint32(i))
		}
	}
	c.Metrics = []results.Column{loss, only}
	per := nextBatchSize(c)
	if per >= n {
		t.Fatalf("nextBatchSize = %d, want fewer than the batch's %d samples", per, n)
	}
	var ids []string
	var values []float64
	pieces := 0
	for k, p := range splitColumns(c) {
		if k != pieces || len(p.IDs) > per {
			t.Fatalf("piece %d (number %d): %d samples, at most %d", k, pieces, len(p.IDs), per)
		}
		pieces++
		ids = append(ids, p.IDs...)
		for _, m := range p.Metrics {
			if m.Name != "loss" {
				if m.Name != "rare" || len(m.Absent) != len(p.IDs)-1 {
					t.Errorf("piece %d: column %q with %d of %d absent; a column all absent is left out", k, m.Name, len(m.Absent), len(p.IDs))
				}
				continue
			}
			if len(m.Values) != len(p.IDs) {
				t.Fatalf("piece %d: %d values for %d ids", k, len(m.Values), len(p.IDs))
			}
			next := 0
			for i, v := range m.Values {
				isAbsent := next < len(m.Absent) && int(m.Absent[next]) == i
				if isAbsent {
					next++
				}
				if isAbsent != math.IsNaN(v) {
					t.Fatalf("piece %d position %d: value %v, absent %v", k, i, v, isAbsent)
				}
				if !isAbsent {
					values = append(values, v)
				}
			}
		}
	}
	if pieces < 2 || !slices.Equal(ids, c.IDs) {
		t.Fatalf("%d pieces with %d ids, want every id of the batch once, in order", pieces, len(ids))
	}
	var want []float64
	for i, v := range loss.Values {
		if i%3 != 0 {
			want = append(want, v)
		}
	}
	if !slices.Equal(values, want) {
		t.Errorf("values differ after the split: %d present, want %d", len(values), len(want))
	}
	// A batch within the limit is one piece, the batch itself.
	small := results.Columns{IDs: c.IDs[:10], Metrics: []results.Column{{Name: "loss", Values: loss.Values[:10]}}}
	for k, p := range splitColumns(small) {
		if k != 0 || len(p.IDs) != 10 {
			t.Errorf("small batch: piece %d of %d samples, want one of 10", k, len(p.IDs))
		}
	}
}
