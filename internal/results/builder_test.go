package results

import (
	"errors"
	"fmt"
	"math"
	"testing"
)

// chunk is what one gRPC message carries.
type chunk struct {
	records []row
	run     map[string]float64
}

func TestBuilderAcrossChunks(t *testing.T) {
	tests := []struct {
		name   string
		limits Limits
		chunks []chunk
		// wantErr: the Error() of the first rejected record; empty: all
		// accepted.
		wantErr   string
		wantField string
		wantIndex int // Error.Record
		wantKind  error
		wantLen   int // records accepted before the error (or all)
	}{
		{
			name: "three chunks",
			chunks: []chunk{
				{records: []row{{"s-0", map[string]float64{"loss": 0.5, "correct": 1}}, {"s-1", map[string]float64{"loss": 0.7, "correct": 0}}}},
				{records: []row{{"s-2", map[string]float64{"loss": 0.1, "correct": 1}}}, run: map[string]float64{"accuracy": 0.667}},
				{records: []row{{"s-3", map[string]float64{"correct": 1}}}},
			},
			wantLen: 4,
		},
		{
			name: "non-finite value in chunk 2 is named by its index across chunks",
			chunks: []chunk{
				{records: []row{{"s-0", map[string]float64{"loss": 0.5}}, {"s-1", map[string]float64{"loss": 0.7}}}},
				{records: []row{{"s-2", map[string]float64{"loss": 0.1}}, {"s-3", map[string]float64{"loss": math.Inf(1), "correct": 1}}}},
			},
			wantErr: `records[3].values["loss"]: must be a finite number, got +Inf`, wantField: `values["loss"]`, wantIndex: 3, wantKind: ErrInvalid, wantLen: 3,
		},
		{
			name: "NaN value",
			chunks: []chunk{
				{records: []row{{"s-0", map[string]float64{"score": math.NaN()}}}},
			},
			wantErr: `records[0].values["score"]: must be a finite number, got NaN`, wantField: `values["score"]`, wantIndex: 0, wantKind: ErrInvalid,
		},
		{
			name: "duplicate id across chunks",
			chunks: []chunk{
				{records: []row{{"s-0", map[string]float64{"x": 1}}}},
				{records: []row{{"s-1", map[string]float64{"x": 1}}, {"s-0", map[string]float64{"x": 2}}}},
			},
			wantErr: `records[2].sample_id: duplicate sample_id "s-0", first used by records[0]`, wantField: "sample_id", wantIndex: 2, wantKind: ErrInvalid, wantLen: 2,
		},
		{
			name: "empty sample id",
			chunks: []chunk{
				{records: []row{{"", map[string]float64{"x": 1}}}},
			},
			wantErr: `records[0].sample_id: required, non-empty`, wantField: "sample_id", wantIndex: 0, wantKind: ErrInvalid,
		},
		{
			name: "no values",
			chunks: []chunk{
				{records: []row{{"s-0", nil}}},
			},
			wantErr: `records[0]: record "s-0" has no values; it needs at least one metric besides sample_id`, wantIndex: 0, wantKind: ErrInvalid,
		},
		{
			name: "bad metric name",
			chunks: []chunk{
				{records: []row{{"s-0", map[string]float64{"1st": 1}}}},
			},
			wantErr: `records[0].values["1st"]: metric name must start with a letter or _`, wantField: `values["1st"]`, wantIndex: 0, wantKind: ErrInvalid,
		},
		{
			name: "values are checked in name order",
			chunks: []chunk{
				{records: []row{{"s-0", map[string]float64{"zeta": math.NaN(), "alpha": math.Inf(-1), "mid": math.NaN()}}}},
			},
			wantErr: `records[0].values["alpha"]: must be a finite number, got -Inf`, wantField: `values["alpha"]`, wantIndex: 0, wantKind: ErrInvalid,
		},
		{
			name: "run metric twice",
			chunks: []chunk{
				{records: []row{{"s-0", map[string]float64{"x": 1}}}, run: map[string]float64{"accuracy": 1}},
				{run: map[string]float64{"accuracy": 1}},
			},
			wantErr: `run_metrics["accuracy"]: reported more than once`, wantField: `run_metrics["accuracy"]`, wantIndex: -1, wantKind: ErrInvalid, wantLen: 1,
		},
		{
			name: "non-finite run metric",
			chunks: []chunk{
				{run: map[string]float64{"accuracy": math.NaN()}},
			},
			wantErr: `run_metrics["accuracy"]: must be a finite number, got NaN`, wantField: `run_metrics["accuracy"]`, wantIndex: -1, wantKind: ErrInvalid,
		},
		{
			name:   "sample limit",
			limits: Limits{MaxSamples: 3},
			chunks: []chunk{
				{records: []row{{"s-0", map[string]float64{"x": 1}}, {"s-1", map[string]float64{"x": 1}}}},
				{records: []row{{"s-2", map[string]float64{"x": 1}}, {"s-3", map[string]float64{"x": 1}}}},
			},
			wantErr: `records[3]: more than 3 samples`, wantIndex: 3, wantKind: ErrTooLarge, wantLen: 3,
		},
		{
			name:   "run metric limit",
			limits: Limits{MaxRunMetrics: 1},
			chunks: []chunk{
				{run: map[string]float64{"a": 1}},
				{run: map[string]float64{"b": 1}},
			},
			wantErr: `run_metrics["b"]: a result set may have at most 1 run metrics`, wantField: `run_metrics["b"]`, wantIndex: -1, wantKind: ErrInvalid,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewBuilder(tt.limits)
			var err error
		feed:
			for _, c := range tt.chunks {
				for _, r := range c.records {
					if err = b.Add(r.id, r.vals); err != nil {
						break feed
					}
				}
				for _, k := range sortedKeys(c.run) {
					if err = b.AddRunMetric(k, c.run[k]); err != nil {
						break feed
					}
				}
			}
			if b.Len() != tt.wantLen {
				t.Errorf("Len() = %d, want %d", b.Len(), tt.wantLen)
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v (%T), want *Error", err, err)
			}
			if err.Error() != tt.wantErr || e.Field != tt.wantField || e.Record != tt.wantIndex || !errors.Is(err, tt.wantKind) || e.Line != 0 {
				t.Errorf("err = %q (field %q, record %d, line %d, kind %v)\nwant %q (field %q, record %d, kind %v)",
					err, e.Field, e.Record, e.Line, e.kind, tt.wantErr, tt.wantField, tt.wantIndex, tt.wantKind)
			}
		})
	}
}

func TestBuilderRejectedRecordLeavesNoTrace(t *testing.T) {
	b := NewBuilder(Limits{MaxMetrics: 2})
	if err := b.Add("a", map[string]float64{"loss": 1}); err != nil {
		t.Fatal(err)
	}
	// Rejected: a new metric alongside a bad value, a third metric, a
	// duplicate id. None of them may leave a column, an id or an index entry.
	for _, bad := range []row{
		{"b", map[string]float64{"correct": 1, "loss": math.NaN()}},
		{"b", map[string]float64{"correct": 1, "extra": 1}},
		{"a", map[string]float64{"correct": 1}},
	} {
		if err := b.Add(bad.id, bad.vals); err == nil {
			t.Fatalf("Add(%q, %v) accepted", bad.id, bad.vals)
		}
	}
	if err := b.Add("b", map[string]float64{"correct": 0}); err != nil {
		t.Fatalf("a valid record after rejected ones: %v", err)
	}
	got, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	want := buildSet(t, []row{{"a", map[string]float64{"loss": 1}}, {"b", map[string]float64{"correct": 0}}}, nil)
	if !got.Equal(want) {
		t.Errorf("got\n%s\nwant\n%s", jsonl(t, got), jsonl(t, want))
	}
}

func TestBuilderFinish(t *testing.T) {
	b := NewBuilder(Limits{})
	if _, err := b.Finish(); !errors.Is(err, ErrInvalid) {
		t.Errorf("Finish of an empty builder: err = %v, want ErrInvalid", err)
	}
	b = NewBuilder(Limits{})
	// First-seen order zeta, alpha; Finish sorts the columns with their
	// names.
	if err := b.Add("s", map[string]float64{"zeta": 26}); err != nil {
		t.Fatal(err)
	}
	if err := b.Add("t", map[string]float64{"alpha": 1, "zeta": 2}); err != nil {
		t.Fatal(err)
	}
	s, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if m := s.Metrics(); fmt.Sprint(m) != "[alpha zeta]" {
		t.Errorf("Metrics() = %v", m)
	}
	if col, _ := s.Column("zeta"); col[0] != 26 || col[1] != 2 {
		t.Errorf("zeta column = %v, want [26 2]", col)
	}
	if col, _ := s.Column("alpha"); !math.IsNaN(col[0]) || col[1] != 1 {
		t.Errorf("alpha column = %v, want [NaN 1]", col)
	}
	if err := b.Add("u", map[string]float64{"x": 1}); err == nil {
		t.Error("Add after Finish accepted")
	}
	if _, err := b.Finish(); err == nil {
		t.Error("second Finish succeeded")
	}
}

func TestBuilderIndexGrows(t *testing.T) {
	const n = 100_000
	b := NewBuilder(Limits{})
	// Descending ids: every one out of order, so the index is built at the
	// second and grows from there.
	for i := n - 1; i >= 0; i-- {
		if err := b.Add(fmt.Sprintf("sample-%06d", i), map[string]float64{"x": float64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	s, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 1, 4095, 65536, n - 1} {
		if got, ok := s.Index(fmt.Sprintf("sample-%06d", i)); !ok || got != n-1-i {
			t.Errorf("Index(sample-%06d) = %d, %v", i, got, ok)
		}
	}
	if _, ok := s.Index("sample-100000"); ok {
		t.Error("found an id never added")
	}
}
