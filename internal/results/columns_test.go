package results

import (
	"errors"
	"fmt"
	"math"
	"testing"
)

func TestAddColumns(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name    string
		batches []Columns
		// wantErr: the Error() of the rejection; empty: all accepted.
		wantErr   string
		wantField string
		wantIndex int // Error.Record
		wantLen   int // samples accepted before the error (or all)
	}{
		{
			name: "two batches, absent values ignored whatever they hold",
			batches: []Columns{
				{IDs: []string{"s-0", "s-1"}, Metrics: []Column{{Name: "loss", Values: []float64{0.5, 0.7}}, {Name: "correct", Values: []float64{1, nan}, Absent: []uint32{1}}}},
				{IDs: []string{"s-2"}, Metrics: []Column{{Name: "correct", Values: []float64{0}}, {Name: "loss", Values: []float64{0.1}}}},
			},
			wantLen: 3,
		},
		{
			name: "non-finite value named by its index across batches",
			batches: []Columns{
				{IDs: []string{"s-0", "s-1"}, Metrics: []Column{{Name: "loss", Values: []float64{0.5, 0.7}}}},
				{IDs: []string{"s-2", "s-3"}, Metrics: []Column{{Name: "loss", Values: []float64{0.1, math.Inf(1)}}}},
			},
			wantErr: `records[3].values["loss"]: must be a finite number, got +Inf`, wantField: `values["loss"]`, wantIndex: 3, wantLen: 3,
		},
		{
			name: "NaN not listed as absent",
			batches: []Columns{
				{IDs: []string{"s-0"}, Metrics: []Column{{Name: "score", Values: []float64{nan}}}},
			},
			wantErr: `records[0].values["score"]: must be a finite number, got NaN`, wantField: `values["score"]`, wantIndex: 0,
		},
		{
			name: "the first bad sample wins, id before values",
			batches: []Columns{
				{IDs: []string{"s-0", "s-0", "s-2"}, Metrics: []Column{{Name: "b", Values: []float64{1, 1, nan}}, {Name: "a", Values: []float64{1, nan, 1}}}},
			},
			wantErr: `records[1].sample_id: duplicate sample_id "s-0", first used by records[0]`, wantField: "sample_id", wantIndex: 1, wantLen: 1,
		},
		{
			name: "every value of a sample absent",
			batches: []Columns{
				{IDs: []string{"s-0", "s-1"}, Metrics: []Column{{Name: "loss", Values: []float64{1, 0}, Absent: []uint32{1}}}},
			},
			wantErr: `records[1]: record "s-1" has no values; it needs at least one metric besides sample_id`, wantIndex: 1, wantLen: 1,
		},
		{
			name: "bad sample id",
			batches: []Columns{
				{IDs: []string{"s-0", ""}, Metrics: []Column{{Name: "loss", Values: []float64{1, 0}}}},
			},
			wantErr: `records[1].sample_id: required, non-empty`, wantField: "sample_id", wantIndex: 1, wantLen: 1,
		},
		{
			name: "column shorter than the ids",
			batches: []Columns{
				{IDs: []string{"s-0", "s-1"}, Metrics: []Column{{Name: "loss", Values: []float64{1, 0}}, {Name: "x", Values: []float64{1}}}},
			},
			wantErr: `columns.metrics[1].values: 1 values for 2 sample_ids; want one per sample id`, wantField: "columns.metrics[1].values", wantIndex: -1,
		},
		{
			name: "bad metric name",
			batches: []Columns{
				{IDs: []string{"s-0"}, Metrics: []Column{{Name: "sample_id", Values: []float64{1}}}},
			},
			wantErr: `columns.metrics[0].name: "sample_id" is reserved and cannot be a metric name`, wantField: "columns.metrics[0].name", wantIndex: -1,
		},
		{
			name: "metric twice in a batch",
			batches: []Columns{
				{IDs: []string{"s-0"}, Metrics: []Column{{Name: "loss", Values: []float64{1}}, {Name: "acc", Values: []float64{1}}, {Name: "loss", Values: []float64{2}}}},
			},
			wantErr: `columns.metrics[2].name: metric "loss" appears twice in the batch`, wantField: "columns.metrics[2].name", wantIndex: -1,
		},
		{
			name: "absent positions out of order",
			batches: []Columns{
				{IDs: []string{"s-0", "s-1", "s-2"}, Metrics: []Column{{Name: "loss", Values: []float64{1, 2, 3}, Absent: []uint32{2, 1}}}},
			},
			wantErr: `columns.metrics[0].absent[1]: positions must ascend strictly; 1 follows 2`, wantField: "columns.metrics[0].absent[1]", wantIndex: -1,
		},
		{
			name: "absent position past the batch",
			batches: []Columns{
				{IDs: []string{"s-0"}, Metrics: []Column{{Name: "loss", Values: []float64{1}, Absent: []uint32{1}}}},
			},
			wantErr: `columns.metrics[0].absent[0]: position 1 is past the batch's 1 samples`, wantField: "columns.metrics[0].absent[0]", wantIndex: -1,
		},
		{
			name: "ids without metrics",
			batches: []Columns{
				{IDs: []string{"s-0"}},
			},
			wantErr: `columns.metrics: 1 sample_ids and no metric; a sample needs at least one value`, wantField: "columns.metrics", wantIndex: -1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewBuilder(Limits{})
			var err error
			for _, c := range tt.batches {
				if err = b.AddColumns(c); err != nil {
					break
				}
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("AddColumns: %v", err)
				}
			} else {
				var e *Error
				if !errors.As(err, &e) || !errors.Is(err, ErrInvalid) {
					t.Fatalf("err = %v, want an *Error wrapping ErrInvalid", err)
				}
				if e.Error() != tt.wantErr || e.Field != tt.wantField || e.Record != tt.wantIndex {
					t.Errorf("err = %q (field %q, record %d), want %q (field %q, record %d)", e.Error(), e.Field, e.Record, tt.wantErr, tt.wantField, tt.wantIndex)
				}
			}
			if b.Len() != tt.wantLen {
				t.Errorf("Len = %d, want %d", b.Len(), tt.wantLen)
			}
		})
	}
}

// TestAddColumnsMatchesAdd: the same samples through Add and through
// AddColumns, in batches of several sizes, give equal sets.
func TestAddColumnsMatchesAdd(t *testing.T) {
	const n = 10_000
	byRecord := NewBuilder(Limits{})
	ids := make([]string, n)
	loss, score := make([]float64, n), make([]float64, n)
	var absent []uint32
	for i := range n {
		ids[i] = fmt.Sprintf("img-%05d", (i*7919)%n)
		loss[i] = float64(i) / 3
		v := map[string]float64{"loss": loss[i]}
		score[i] = math.NaN()
		if i%7 == 0 {
			absent = append(absent, uint32(i))
		} else {
			score[i] = float64(i % 11)
			v["score"] = score[i]
		}
		if err := byRecord.Add(ids[i], v); err != nil {
			t.Fatal(err)
		}
	}
	want, err := byRecord.Finish()
	if err != nil {
		t.Fatal(err)
	}
	for _, per := range []int{1, 7, 4096, n} {
		b := NewBuilder(Limits{})
		for start := 0; start < n; start += per {
			end := min(start+per, n)
			var abs []uint32
			for _, p := range absent {
				if int(p) >= start && int(p) < end {
					abs = append(abs, p-uint32(start))
				}
			}
			c := Columns{IDs: ids[start:end], Metrics: []Column{
				{Name: "score", Values: score[start:end], Absent: abs},
				{Name: "loss", Values: loss[start:end]},
			}}
			if err := b.AddColumns(c); err != nil {
				t.Fatalf("batch at %d: %v", start, err)
			}
		}
		got, err := b.Finish()
		if err != nil {
			t.Fatal(err)
		}
		if !got.Equal(want) {
			t.Errorf("batches of %d: set differs from the one Add built", per)
		}
		for _, i := range []int{0, 1, n / 2, n - 1} {
			if j, ok := got.Index(ids[i]); !ok || j != i {
				t.Errorf("batches of %d: Index(%q) = %d, %v; want %d", per, ids[i], j, ok, i)
			}
		}
	}
}
