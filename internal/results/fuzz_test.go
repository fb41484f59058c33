package results

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		lines(`{"sample_id": "img-0017", "correct": 1, "loss": 0.231}`, `{"sample_id": "img-0018", "values": {"correct": 0, "loss": null}}`, `{"run_metrics": {"accuracy": 0.5}}`),
		lines(`{"sample_id": "q\"\\\/\u00e9\ud83d\ude00", "x": -0.5e+1, "y": true, "z": false}`),
		"\ufeff{\"sample_id\":\"a\",\"x\":1}\r\n\n",
		lines(`{"sample_id": "a", "x": 1}`, `{"sample_id": "a", "x": 2}`),
		lines(`{"sample_id": 17, "x": 1e400}`),
		lines(`{"run_metrics": {"a": 1}}`, `{"run_metrics": {"a": 2}}`),
		lines(`{"sample_id": "a", "values": {"x": 1}, "y": 2}`),
		"{\"sample_id\": \"a\xff\", \"x\": 1}",
		`{"sample_id":"a","x":012}`,
		lines(`{"sample_id": "a", "x": 123456789012345, "y": 0.000000000000000000001, "z": -0}`, `{"sample_id": "b", "y": 1234567890123456, "x": 9007199254740993}`, `{"run_metrics": {"r": 0.1}}`, `{"sample_id": "a", "x": 1}`),
		`{}`,
		``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(bytes.NewReader(data), Limits{MaxLineBytes: 4096})
		// A Reader, batch by batch, finds the same error or the same set.
		streamed, _, serr := readBatches(t, string(data), 1+len(data)%3, Limits{MaxLineBytes: 4096})
		if (err == nil) != (serr == nil) || err != nil && err.Error() != serr.Error() {
			t.Fatalf("Parse: %v; Reader: %v", err, serr)
		}
		if err == nil && !streamed.Equal(s) {
			t.Fatal("the Reader's batches built another set than Parse")
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T) is not an *Error", err, err)
			}
			if e.Error() == "" || e.Line < 0 || !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("malformed error %#v", e)
			}
			return
		}
		// Every line Parse accepted is JSON.
		for i, line := range bytes.Split(data, []byte("\n")) {
			if i == 0 {
				line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf"))
			}
			if !blank(line) && !json.Valid(line) {
				t.Fatalf("Parse accepted line %d, which is not JSON: %q", i+1, line)
			}
		}
		checkInvariants(t, s)
		// It round-trips through the file format and the storage encoding.
		var text bytes.Buffer
		if err := s.WriteJSONL(&text); err != nil {
			t.Fatal(err)
		}
		again, err := Parse(&text, Limits{})
		if err != nil {
			t.Fatalf("parsing what WriteJSONL wrote: %v", err)
		}
		if !again.Equal(s) {
			t.Fatal("WriteJSONL round trip changed the set")
		}
		var enc bytes.Buffer
		if _, err := Encode(&enc, s); err != nil {
			t.Fatal(err)
		}
		dec, err := Decode(&enc)
		if err != nil {
			t.Fatalf("decoding what Encode wrote: %v", err)
		}
		if !dec.Equal(s) {
			t.Fatal("Encode round trip changed the set")
		}
	})
}

func FuzzDecode(f *testing.F) {
	for _, s := range []*Set{
		buildSet(f, []row{{"a", map[string]float64{"x": 1}}}, nil),
		buildSet(f, []row{{"img-0017", map[string]float64{"correct": 1, "loss": 0.231}}, {"img-0018", map[string]float64{"correct": 0}}}, map[string]float64{"accuracy": 0.5}),
		buildSet(f, nil, map[string]float64{"bleu": 31.5}),
	} {
		var buf bytes.Buffer
		if _, err := Encode(&buf, s); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Add([]byte{1, 0xfe, 0xff, 0xff, 0xff, 0x0f, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		info, infoErr := DecodeInfo(bytes.NewReader(data))
		s, err := Decode(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		if infoErr != nil {
			t.Fatalf("Decode accepted what DecodeInfo refused: %v", infoErr)
		}
		if fmt.Sprint(info) != fmt.Sprint(s.Info()) {
			t.Fatalf("DecodeInfo = %+v, Decode's set says %+v", info, s.Info())
		}
		checkInvariants(t, s)
		var buf bytes.Buffer
		if _, err := Encode(&buf, s); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), data) {
			t.Fatalf("re-encoding differs:\n% x\n% x", buf.Bytes(), data)
		}
	})
}

// checkInvariants verifies what every Set promises.
func checkInvariants(t *testing.T, s *Set) {
	t.Helper()
	for i := range s.Len() {
		id := s.SampleID(i)
		if msg := validateSampleID(id, HardMaxSampleIDBytes); msg != "" {
			t.Fatalf("sample %d id %q: %s", i, id, msg)
		}
		if j, ok := s.Index(id); !ok || j != i {
			t.Fatalf("Index(%q) = %d, %v; want %d", id, j, ok, i)
		}
	}
	for j, name := range s.metrics {
		if msg := validateName(name); msg != "" || j > 0 && name <= s.metrics[j-1] {
			t.Fatalf("metric %d %q: %s (or out of order)", j, name, msg)
		}
		if len(s.columns[j]) != s.Len() {
			t.Fatalf("column %q has %d values for %d samples", name, len(s.columns[j]), s.Len())
		}
		present := 0
		for _, v := range s.columns[j] {
			switch {
			case math.Float64bits(v) == absentBits:
			case math.IsNaN(v) || math.IsInf(v, 0):
				t.Fatalf("column %q holds %v", name, v)
			default:
				present++
			}
		}
		if present == 0 || present != s.present[j] {
			t.Fatalf("column %q: %d present, recorded %d", name, present, s.present[j])
		}
	}
	for name, v := range s.run {
		if validateName(name) != "" || math.IsNaN(v) || math.IsInf(v, 0) {
			t.Fatalf("run metric %q = %v", name, v)
		}
	}
}

// fuzzBytes hands out a fuzz input piece by piece; past its end it gives
// zeros, so every input decodes to some batches.
type fuzzBytes struct{ b []byte }

func (f *fuzzBytes) byte() byte {
	if len(f.b) == 0 {
		return 0
	}
	c := f.b[0]
	f.b = f.b[1:]
	return c
}

func (f *fuzzBytes) bytes(n int) []byte {
	n = min(n, len(f.b))
	out := f.b[:n]
	f.b = f.b[n:]
	return out
}

// float is a value that is often hostile: NaN (quiet, signalling, any
// payload), ±Inf, ±MaxFloat64, −0, subnormals, or any 8 bytes.
func (f *fuzzBytes) float() float64 {
	special := []float64{0, math.Copysign(0, -1), 1, -1, math.NaN(), math.Float64frombits(0x7ff0000000000001), math.Inf(1), math.Inf(-1),
		math.MaxFloat64, -math.MaxFloat64, math.SmallestNonzeroFloat64, 1e308, -1e-308}
	if c := f.byte(); int(c) < len(special) {
		return special[c]
	}
	var bits uint64
	for _, c := range f.bytes(8) {
		bits = bits<<8 | uint64(c)
	}
	return math.Float64frombits(bits)
}

// batches decodes up to three Columns batches: ids (short, often repeated,
// sometimes empty or not UTF-8), metrics with names from a small set
// (repeats, empty and invalid names included), value counts that may
// differ from the ids', and absent positions that may be out of range or
// out of order.
func (f *fuzzBytes) batches() []Columns {
	names := []string{"x", "loss", "correct", "", "bad name", "x"}
	var out []Columns
	for range 1 + f.byte()%3 {
		var c Columns
		n := int(f.byte() % 9)
		for range n {
			switch k := f.byte(); {
			case k < 200:
				c.IDs = append(c.IDs, fmt.Sprintf("s-%d", k%16))
			default:
				c.IDs = append(c.IDs, string(f.bytes(int(k-200)%6)))
			}
		}
		for range f.byte() % 4 {
			col := Column{Name: names[int(f.byte())%len(names)]}
			if k := f.byte(); k >= 250 {
				col.Name = string(f.bytes(int(k - 248)))
			}
			count := n
			if k := f.byte(); k >= 240 {
				count = max(0, n+int(k%4)-2)
			}
			for range count {
				col.Values = append(col.Values, f.float())
			}
			for range f.byte() % 4 {
				p := uint32(f.byte())
				if p >= 128 {
					p = p<<24 | uint32(f.byte())
				} else {
					p %= 10
				}
				col.Absent = append(col.Absent, p)
			}
			c.Metrics = append(c.Metrics, col)
		}
		out = append(out, c)
	}
	return out
}

// fieldPattern is every field an AddColumns error may name: a column's
// part (batch shape), or a sample's id or value (as Add names them).
var fieldPattern = regexp.MustCompile(`^(columns\.metrics(\[\d+\]\.(name|values|absent\[\d+\]))?|sample_id|values\[".*"\])$`)

// FuzzAddColumns feeds typed batches to Builder.AddColumns. It must never
// panic; every error is an *Error that names the field at fault (with the
// batch's indexes in range) and says it in its text; and the outcome is
// exactly Add's, record by record, for the batches whose shape is valid.
func FuzzAddColumns(f *testing.F) {
	f.Add([]byte{0, 2, 1, 2, 1, 0, 0, 0, 0})
	f.Add([]byte{1, 3, 5, 5, 7, 2, 1, 0, 0, 1, 4, 6, 2, 0, 241, 2, 0, 0, 3, 9, 1})
	f.Add([]byte{2, 8, 1, 2, 3, 4, 5, 6, 7, 8, 3, 3, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8, 2, 200, 1})
	f.Add([]byte{0, 4, 255, 'a', 'b', 201, 1, 2, 1, 0, 250, 'z', 0, 0, 4, 0, 4, 0, 0, 5, 3, 130, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		in := &fuzzBytes{b: data}
		batches := in.batches()
		lim := Limits{MaxSamples: 12, MaxMetrics: 3}
		b, ref := NewBuilder(lim), NewBuilder(lim)
		for k, c := range batches {
			before := b.Len()
			err := b.AddColumns(c)
			var e *Error
			if err != nil {
				if !errors.As(err, &e) || !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrTooLarge) {
					t.Fatalf("batch %d: error %v (%T) is not an *Error of a known kind", k, err, err)
				}
				if e.Field != "" && !fieldPattern.MatchString(e.Field) || !strings.Contains(e.Error(), e.Field) {
					t.Fatalf("batch %d: error %q names field %q", k, e, e.Field)
				}
				if e.Field == "" && !strings.Contains(e.Reason, "has no values") {
					t.Fatalf("batch %d: error %q names no field", k, e)
				}
				var j, a int
				if _, scanErr := fmt.Sscanf(e.Field, "columns.metrics[%d].absent[%d]", &j, &a); scanErr == nil && (j >= len(c.Metrics) || a >= len(c.Metrics[j].Absent)) {
					t.Fatalf("batch %d: error %q points past the batch", k, e)
				} else if _, scanErr := fmt.Sscanf(e.Field, "columns.metrics[%d]", &j); scanErr == nil && j >= len(c.Metrics) {
					t.Fatalf("batch %d: error %q points past the batch", k, e)
				}
				if e.Record < 0 {
					// The batch's shape: nothing of it was added.
					if b.Len() != before || !strings.HasPrefix(e.Field, "columns.") {
						t.Fatalf("batch %d: shape error %q, but %d samples were added", k, e, b.Len()-before)
					}
					return
				}
				if e.Record != b.Len() || e.Record < before || e.Record >= before+len(c.IDs) {
					t.Fatalf("batch %d: error %q for record %d; %d samples before the batch, %d now", k, e, e.Record, before, b.Len())
				}
			}
			// Add, record by record, must agree.
			var refErr error
			for i, id := range c.IDs {
				v := map[string]float64{}
				for _, col := range c.Metrics {
					if !slices.Contains(col.Absent, uint32(i)) {
						v[col.Name] = col.Values[i]
					}
				}
				if refErr = ref.Add(id, v); refErr != nil {
					break
				}
			}
			var re *Error
			switch {
			case (err == nil) != (refErr == nil):
				t.Fatalf("batch %d: AddColumns %v, Add %v", k, err, refErr)
			case err != nil && (!errors.As(refErr, &re) || re.Field != e.Field || re.Record != e.Record || re.FirstRecord != e.FirstRecord):
				t.Fatalf("batch %d: AddColumns %q, Add %q", k, err, refErr)
			case b.Len() != ref.Len():
				t.Fatalf("batch %d: AddColumns kept %d samples, Add %d", k, b.Len(), ref.Len())
			}
			if err != nil {
				return
			}
		}
		got, err := b.Finish()
		want, refErr := ref.Finish()
		if (err == nil) != (refErr == nil) {
			t.Fatalf("Finish: %v, reference %v", err, refErr)
		}
		if err == nil {
			checkInvariants(t, got)
			if !got.Equal(want) {
				t.Fatal("the set differs from the one Add built")
			}
		}
	})
}
