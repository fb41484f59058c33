package results

import (
	"errors"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// readBatches reads all of in with a Reader, n records a batch, and
// builds a Set from the batches alone, as the API's handler would from
// the messages they become. It also checks the offsets ascend.
func readBatches(t testing.TB, in string, n int, l Limits) (*Set, []Batch, error) {
	t.Helper()
	r := NewReader(strings.NewReader(in), l)
	b := NewBuilder(l)
	var batches []Batch
	var offset int64
	for {
		batch, err := r.Next(n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, batches, err
		}
		if batch.Offset < offset {
			t.Fatalf("batch %d: offset %d, before the previous %d", len(batches), batch.Offset, offset)
		}
		offset = batch.Offset
		if len(batch.IDs) > n {
			t.Fatalf("batch %d: %d records, asked for %d", len(batches), len(batch.IDs), n)
		}
		batches = append(batches, batch)
		if err := b.AddColumns(batch.Columns); err != nil {
			t.Fatalf("batch %d does not build: %v", len(batches)-1, err)
		}
		for _, name := range slices.Sorted(maps.Keys(batch.RunMetrics)) {
			if err := b.AddRunMetric(name, batch.RunMetrics[name]); err != nil {
				t.Fatalf("batch %d run metric: %v", len(batches)-1, err)
			}
		}
	}
	if _, err := r.Next(n); !errors.Is(err, io.EOF) {
		t.Fatalf("Next after the end: %v, want io.EOF", err)
	}
	s, err := b.Finish()
	return s, batches, err
}

func TestReaderBatchesBuildWhatParseReads(t *testing.T) {
	in := "\ufeff" + lines(
		`{"sample_id": "b", "correct": 1, "loss": 0.25}`,
		``,
		`{"sample_id": "a", "values": {"correct": 0, "loss": null}}`,
		`{"run_metrics": {"accuracy": 0.5}}`,
		`{"sample_id": "c", "loss": 2, "score": -1e-3}`,
		`{"sample_id": "d", "score": 7}`,
		`{"sample_id": "e", "correct": true, "loss": 1.5}`,
		`{"run_metrics": {"f1": 0.75}}`,
	)
	want, err := Parse(strings.NewReader(in), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 2, 3, 5, 100} {
		got, batches, err := readBatches(t, in, n, Limits{})
		if err != nil {
			t.Fatalf("batches of %d: %v", n, err)
		}
		if !got.Equal(want) {
			t.Errorf("batches of %d built\n%s\nwant\n%s", n, jsonl(t, got), jsonl(t, want))
		}
		if last := batches[len(batches)-1]; last.Offset != int64(len(in)) {
			t.Errorf("batches of %d: last offset %d, want the input's %d bytes", n, last.Offset, len(in))
		}
	}
	// The batches of 2: ids split as read, a column left out of a batch
	// where every sample lacks it, run metrics with the batch they were
	// read in.
	_, batches, err := readBatches(t, in, 2, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	type shape struct {
		ids     []string
		metrics []string
		absent  map[string][]uint32
		run     map[string]float64
	}
	var got []shape
	for _, b := range batches {
		s := shape{ids: b.IDs, absent: map[string][]uint32{}, run: b.RunMetrics}
		for _, c := range b.Metrics {
			s.metrics = append(s.metrics, c.Name)
			if c.Absent != nil {
				s.absent[c.Name] = c.Absent
			}
		}
		got = append(got, s)
	}
	wantShapes := []shape{
		{ids: []string{"b", "a"}, metrics: []string{"correct", "loss"}, absent: map[string][]uint32{"loss": {1}}},
		{ids: []string{"c", "d"}, metrics: []string{"loss", "score"}, absent: map[string][]uint32{"loss": {1}}, run: map[string]float64{"accuracy": 0.5}},
		{ids: []string{"e"}, metrics: []string{"correct", "loss"}, absent: map[string][]uint32{}, run: map[string]float64{"f1": 0.75}},
	}
	if len(got) != len(wantShapes) {
		t.Fatalf("%d batches, want %d: %+v", len(got), len(wantShapes), got)
	}
	for i := range got {
		g, w := got[i], wantShapes[i]
		if !slices.Equal(g.ids, w.ids) || !slices.Equal(g.metrics, w.metrics) || len(g.absent) != len(w.absent) || len(g.run) != len(w.run) {
			t.Errorf("batch %d = %+v, want %+v", i, g, w)
			continue
		}
		for k, v := range w.absent {
			if !slices.Equal(g.absent[k], v) {
				t.Errorf("batch %d absent[%s] = %v, want %v", i, k, g.absent[k], v)
			}
		}
		for k, v := range w.run {
			if g.run[k] != v {
				t.Errorf("batch %d run[%s] = %v, want %v", i, k, g.run[k], v)
			}
		}
	}
}

func TestReaderErrorAfterBatches(t *testing.T) {
	in := lines(
		`{"sample_id": "a", "x": 1}`,
		`{"sample_id": "b", "x": 2}`,
		`{"sample_id": "c", "x": 3}`,
		`{"sample_id": "a", "x": 4}`,
	)
	r := NewReader(strings.NewReader(in), Limits{})
	b, err := r.Next(2)
	if err != nil || !slices.Equal(b.IDs, []string{"a", "b"}) {
		t.Fatalf("first batch %v, %v; want a, b", b.IDs, err)
	}
	_, err = r.Next(2)
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrInvalid) || e.Line != 4 || e.Field != "sample_id" || e.FirstLine != 1 {
		t.Fatalf("second batch: %v (%#v), want the duplicate on line 4, first on line 1", err, e)
	}
	const want = `line 4: sample_id: duplicate sample_id "a", first used on line 1`
	if err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	for _, again := range []func() error{
		func() error { _, err := r.Next(2); return err },
		func() error { _, err := r.Finish(); return err },
	} {
		if err2 := again(); err2 != err {
			t.Errorf("after the error: %v, want the same error", err2)
		}
	}
}

func TestParseNumbersAsStrconv(t *testing.T) {
	for _, text := range []string{
		"0", "-0", "1", "-1", "0.231", "1.92", "0.1", "0.3", "123456789012345", "1234567890123456",
		"12345678901234567890", "0.000000000000000000001", "0.0000000000000000000001",
		"0.00000000000000000000001", "9007199254740993", "900719925474099.3", "1.000000000000000000",
		"3.141592653589793", "0.30000000000000004", "1e3", "-2.5E-3", "1e-400", "4.9e-324",
		"1.7976931348623157e308", "123.456", "99999999999999.9", "0.999999999999999",
	} {
		p := lineParser{line: []byte(text)}
		got, err := p.readNumber()
		want, werr := strconv.ParseFloat(text, 64)
		if err != nil || werr != nil || math.Float64bits(got) != math.Float64bits(want) || p.pos != len(text) {
			t.Errorf("%s: %v (%x), %v; strconv: %v (%x), %v", text, got, math.Float64bits(got), err, want, math.Float64bits(want), werr)
		}
	}
}

// FuzzReadNumber checks every number the parser accepts has the value
// strconv gives it, whichever of its paths converted it.
func FuzzReadNumber(f *testing.F) {
	for _, s := range []string{"0", "-0", "0.231", "123456789012345", "1234567890123456", "0.000001", "1e5", "-0.5e+1", "01", "1.", "-", "9007199254740993.5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		p := lineParser{line: []byte(text)}
		got, err := p.readNumber()
		if err != nil || p.pos != len(text) {
			return
		}
		want, werr := strconv.ParseFloat(text, 64)
		if werr != nil || math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("%q: %v (%x); strconv: %v (%x), %v", text, got, math.Float64bits(got), want, math.Float64bits(want), werr)
		}
	})
}
