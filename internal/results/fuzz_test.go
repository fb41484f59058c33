package results

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
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
		`{}`,
		``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(bytes.NewReader(data), Limits{MaxLineBytes: 4096})
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
