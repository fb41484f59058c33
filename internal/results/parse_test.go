package results

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
)

// row is one expected record; a metric missing from vals is absent.
type row struct {
	id   string
	vals map[string]float64
}

// buildSet builds the Set a test expects, through a Builder.
func buildSet(t testing.TB, rows []row, run map[string]float64) *Set {
	t.Helper()
	b := NewBuilder(Limits{})
	for _, r := range rows {
		if err := b.Add(r.id, r.vals); err != nil {
			t.Fatalf("building expected set: %v", err)
		}
	}
	for k, v := range run {
		if err := b.AddRunMetric(k, v); err != nil {
			t.Fatalf("building expected set: %v", err)
		}
	}
	s, err := b.Finish()
	if err != nil {
		t.Fatalf("building expected set: %v", err)
	}
	return s
}

func jsonl(t testing.TB, s *Set) string {
	t.Helper()
	var buf bytes.Buffer
	if err := s.WriteJSONL(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func lines(ls ...string) string { return strings.Join(ls, "\n") + "\n" }

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name string
		in   string
		rows []row
		run  map[string]float64
	}{
		{
			name: "flat records and run metrics",
			in: lines(
				`{"sample_id": "img-0017", "correct": 1, "loss": 0.231}`,
				`{"sample_id": "img-0018", "correct": 0, "loss": 1.92}`,
				`{"run_metrics": {"accuracy": 0.5, "f1": 0.4}}`,
			),
			rows: []row{{"img-0017", map[string]float64{"correct": 1, "loss": 0.231}}, {"img-0018", map[string]float64{"correct": 0, "loss": 1.92}}},
			run:  map[string]float64{"accuracy": 0.5, "f1": 0.4},
		},
		{
			name: "values object, the API's shape",
			in: lines(
				`{"sample_id": "img-0017", "values": {"correct": 1, "loss": 0.231}}`,
				`{"values": {"loss": 1.92, "correct": 0}, "sample_id": "img-0018"}`,
			),
			rows: []row{{"img-0017", map[string]float64{"correct": 1, "loss": 0.231}}, {"img-0018", map[string]float64{"correct": 0, "loss": 1.92}}},
		},
		{
			name: "both shapes in one file, one per line",
			in:   lines(`{"sample_id": "a", "score": 0.9}`, `{"sample_id": "b", "values": {"score": 0.1}}`),
			rows: []row{{"a", map[string]float64{"score": 0.9}}, {"b", map[string]float64{"score": 0.1}}},
		},
		{
			name: "a metric some records lack is absent there",
			in:   lines(`{"sample_id": "a", "loss": 0.5, "correct": 1}`, `{"sample_id": "b", "correct": 0}`, `{"sample_id": "c", "loss": 2}`),
			rows: []row{{"a", map[string]float64{"loss": 0.5, "correct": 1}}, {"b", map[string]float64{"correct": 0}}, {"c", map[string]float64{"loss": 2}}},
		},
		{
			name: "null means absent",
			in:   lines(`{"sample_id": "a", "loss": null, "correct": 1}`, `{"sample_id": "b", "values": {"loss": 3, "correct": null}}`),
			rows: []row{{"a", map[string]float64{"correct": 1}}, {"b", map[string]float64{"loss": 3}}},
		},
		{
			name: "true and false are 1 and 0",
			in:   lines(`{"sample_id": "a", "correct": true}`, `{"sample_id": "b", "correct": false}`),
			rows: []row{{"a", map[string]float64{"correct": 1}}, {"b", map[string]float64{"correct": 0}}},
		},
		{
			name: "byte order mark, CRLF, blank lines, no final newline",
			in:   "\ufeff{\"sample_id\":\"a\",\"x\":1}\r\n\r\n   \n\t\n{\"sample_id\":\"b\",\"x\":2}",
			rows: []row{{"a", map[string]float64{"x": 1}}, {"b", map[string]float64{"x": 2}}},
		},
		{
			name: "escapes in a sample id",
			in:   lines(`{"sample_id": "q\"\\\/\u00e9\ud83d\ude00 x", "x": 1}`),
			rows: []row{{`q"\/é😀 x`, map[string]float64{"x": 1}}},
		},
		{
			name: "number forms",
			in:   lines(`{"sample_id": "a", "n1": -0, "n2": 1e3, "n3": 1E-2, "n4": -0.5e+1, "n5": 12345678901234567890, "n6": 5e-324}`),
			rows: []row{{"a", map[string]float64{"n1": math.Copysign(0, -1), "n2": 1000, "n3": 0.01, "n4": -5, "n5": 12345678901234567890, "n6": 5e-324}}},
		},
		{
			name: "metric names with punctuation",
			in:   lines(`{"sample_id": "a", "top5/acc": 1, "f1@0.5": 0.25, "_x": 2, "eval:loss-v2": 3}`),
			rows: []row{{"a", map[string]float64{"top5/acc": 1, "f1@0.5": 0.25, "_x": 2, "eval:loss-v2": 3}}},
		},
		{
			name: "run metrics only, over two lines",
			in:   lines(`{"run_metrics": {"accuracy": 0.97}}`, `{"run_metrics": {"bleu": 31.5, "skipped": null}}`),
			run:  map[string]float64{"accuracy": 0.97, "bleu": 31.5},
		},
		{
			name: "run metrics before records",
			in:   lines(`{"run_metrics": {"accuracy": 1}}`, `{"sample_id": "a", "correct": 1}`),
			rows: []row{{"a", map[string]float64{"correct": 1}}},
			run:  map[string]float64{"accuracy": 1},
		},
		{
			name: "non-ASCII sample id",
			in:   lines(`{"sample_id": "画像-17", "x": 1}`),
			rows: []row{{"画像-17", map[string]float64{"x": 1}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tt.in), Limits{})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			want := buildSet(t, tt.rows, tt.run)
			if !got.Equal(want) {
				t.Errorf("Parse gave\n%s\nwant\n%s", jsonl(t, got), jsonl(t, want))
			}
			// What WriteJSONL writes parses back to the same set.
			again, err := Parse(strings.NewReader(jsonl(t, got)), Limits{})
			if err != nil || !again.Equal(got) {
				t.Errorf("round trip through WriteJSONL: err %v\n%s", err, jsonl(t, got))
			}
		})
	}
}

func TestParseValuesAreReadable(t *testing.T) {
	s, err := Parse(strings.NewReader(lines(
		`{"sample_id": "img-0017", "correct": 1, "loss": 0.231}`,
		`{"sample_id": "img-0018", "correct": 0}`,
		`{"run_metrics": {"accuracy": 0.5}}`,
	)), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 2 || s.SampleID(0) != "img-0017" || s.SampleID(1) != "img-0018" {
		t.Errorf("samples: %d, %q, %q", s.Len(), s.SampleID(0), s.SampleID(1))
	}
	if got := s.Metrics(); len(got) != 2 || got[0] != "correct" || got[1] != "loss" {
		t.Errorf("Metrics() = %q, want [correct loss]", got)
	}
	if i, ok := s.Index("img-0018"); !ok || i != 1 {
		t.Errorf("Index(img-0018) = %d, %v", i, ok)
	}
	if _, ok := s.Index("img-9999"); ok {
		t.Error("Index found an unknown id")
	}
	if v, ok := s.Value("loss", 0); !ok || v != 0.231 {
		t.Errorf("Value(loss, 0) = %v, %v", v, ok)
	}
	if _, ok := s.Value("loss", 1); ok {
		t.Error("Value(loss, 1) present, want absent")
	}
	if col, ok := s.Column("correct"); !ok || len(col) != 2 || col[0] != 1 || col[1] != 0 {
		t.Errorf("Column(correct) = %v, %v", col, ok)
	}
	if s.Present("loss") != 1 || s.Present("correct") != 2 || s.Present("nope") != 0 {
		t.Errorf("Present: loss %d correct %d nope %d", s.Present("loss"), s.Present("correct"), s.Present("nope"))
	}
	if rm := s.RunMetrics(); len(rm) != 1 || rm["accuracy"] != 0.5 {
		t.Errorf("RunMetrics() = %v", rm)
	}
	// 8 + 8 id bytes, 2 samples x 2 metrics x 8 bytes.
	if s.Size() != 16+32 {
		t.Errorf("Size() = %d, want 48", s.Size())
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		limits Limits
		line   int
		record int
		field  string
		kind   error
		msg    string // the whole Error() text
	}{
		{
			name: "unterminated object on line 2",
			in:   lines(`{"sample_id": "a", "x": 1}`, `{"sample_id": "b", "x": 1`),
			line: 2, record: -1, kind: ErrInvalid,
			msg: `line 2: invalid JSON at column 26: expected ',' or '}'`,
		},
		{
			name: "an array is not a line",
			in:   lines(`[1, 2]`),
			line: 1, record: -1, kind: ErrInvalid,
			msg: `line 1: invalid JSON at column 1: a line must be one JSON object`,
		},
		{
			name: "missing sample_id",
			in:   lines(`{"sample_id": "a", "x": 1}`, `{"x": 1}`),
			line: 2, record: 1, field: "sample_id", kind: ErrInvalid,
			msg: `line 2: sample_id: missing; every record needs a sample_id string`,
		},
		{
			name: "empty sample_id",
			in:   lines(`{"sample_id": "", "x": 1}`),
			line: 1, record: 0, field: "sample_id", kind: ErrInvalid,
			msg: `line 1: sample_id: required, non-empty`,
		},
		{
			name: "numeric sample_id",
			in:   lines(`{"sample_id": 17, "x": 1}`),
			line: 1, record: 0, field: "sample_id", kind: ErrInvalid,
			msg: `line 1: sample_id: must be a string, got a number`,
		},
		{
			name: "duplicate sample_id names the first line",
			in:   lines(`{"sample_id": "a", "x": 1}`, ``, `{"sample_id": "b", "x": 1}`, `{"sample_id": "a", "x": 2}`),
			line: 4, record: 2, field: "sample_id", kind: ErrInvalid,
			msg: `line 4: sample_id: duplicate sample_id "a", first used on line 1`,
		},
		{
			name: "string value",
			in:   lines(`{"sample_id": "a", "prediction": "cat"}`),
			line: 1, record: 0, field: `values["prediction"]`, kind: ErrInvalid,
			msg: `line 1: values["prediction"]: must be a number, true, false or null, got a string`,
		},
		{
			name: "NaN is not JSON",
			in:   lines(`{"sample_id": "a", "values": {"loss": NaN}}`),
			line: 1, record: 0, field: `values["loss"]`, kind: ErrInvalid,
			msg: `line 1: values["loss"]: must be a number, true, false or null, got 'N'`,
		},
		{
			name: "Infinity is not JSON",
			in:   lines(`{"sample_id": "a", "loss": -Infinity}`),
			line: 1, record: 0, field: `values["loss"]`, kind: ErrInvalid,
			msg: `line 1: values["loss"]: malformed number`,
		},
		{
			name: "number beyond float64",
			in:   lines(`{"sample_id": "a", "loss": 1e400}`),
			line: 1, record: 0, field: `values["loss"]`, kind: ErrInvalid,
			msg: `line 1: values["loss"]: 1e400 is beyond the range of a float64`,
		},
		{
			name: "leading zero",
			in:   lines(`{"sample_id": "a", "x": 012}`),
			line: 1, record: 0, field: `values["x"]`, kind: ErrInvalid,
			msg: `line 1: values["x"]: malformed number 01: leading zero`,
		},
		{
			name: "key twice",
			in:   lines(`{"sample_id": "a", "loss": 1, "loss": 2}`),
			line: 1, record: 0, field: `values["loss"]`, kind: ErrInvalid,
			msg: `line 1: values["loss"]: key appears twice in the line`,
		},
		{
			name: "sample_id twice",
			in:   lines(`{"sample_id": "a", "sample_id": "b", "x": 1}`),
			line: 1, record: 0, field: "sample_id", kind: ErrInvalid,
			msg: `line 1: sample_id: key appears twice in the line`,
		},
		{
			name: "both shapes in one line",
			in:   lines(`{"sample_id": "a", "values": {"x": 1}, "y": 2}`),
			line: 1, record: 0, kind: ErrInvalid,
			msg: `line 1: has both a values object and top-level values; use one shape per line`,
		},
		{
			name: "reserved name inside values",
			in:   lines(`{"sample_id": "a", "values": {"sample_id": 1}}`),
			line: 1, record: 0, field: `values["sample_id"]`, kind: ErrInvalid,
			msg: `line 1: values["sample_id"]: "sample_id" is reserved and cannot be a metric name`,
		},
		{
			name: "metric name with a space",
			in:   lines(`{"sample_id": "a", "my loss": 1}`),
			line: 1, record: 0, field: `values["my loss"]`, kind: ErrInvalid,
			msg: `line 1: values["my loss"]: metric name has ' '; allowed are letters, digits and _ . - : / @`,
		},
		{
			name: "record without values",
			in:   lines(`{"sample_id": "a"}`),
			line: 1, record: 0, kind: ErrInvalid,
			msg: `line 1: record "a" has no values; it needs at least one metric besides sample_id`,
		},
		{
			name: "record whose values are all null",
			in:   lines(`{"sample_id": "a", "loss": null}`),
			line: 1, record: 0, kind: ErrInvalid,
			msg: `line 1: record "a" has no values; it needs at least one metric besides sample_id`,
		},
		{
			name: "empty values object",
			in:   lines(`{"sample_id": "a", "values": {}}`),
			line: 1, record: 0, field: "values", kind: ErrInvalid,
			msg: `line 1: values: empty; a record needs at least one metric`,
		},
		{
			name: "run_metrics with a sample_id",
			in:   lines(`{"sample_id": "a", "run_metrics": {"accuracy": 1}}`),
			line: 1, record: -1, kind: ErrInvalid,
			msg: `line 1: a run_metrics line must have no other keys`,
		},
		{
			name: "run metric reported on two lines",
			in:   lines(`{"run_metrics": {"accuracy": 0.9}}`, `{"sample_id": "a", "x": 1}`, `{"run_metrics": {"accuracy": 0.8}}`),
			line: 3, record: -1, field: `run_metrics["accuracy"]`, kind: ErrInvalid,
			msg: `line 3: run_metrics["accuracy"]: reported more than once`,
		},
		{
			name: "run metric as a string",
			in:   lines(`{"run_metrics": {"accuracy": "97%"}}`),
			line: 1, record: -1, field: `run_metrics["accuracy"]`, kind: ErrInvalid,
			msg: `line 1: run_metrics["accuracy"]: must be a number, true, false or null, got a string`,
		},
		{
			name: "nested object as a value",
			in:   lines(`{"sample_id": "a", "x": {"y": 1}}`),
			line: 1, record: 0, field: `values["x"]`, kind: ErrInvalid,
			msg: `line 1: values["x"]: must be a number, true, false or null, got an object`,
		},
		{
			name: "control character in a sample id",
			in:   lines(`{"sample_id": "a\u0001", "x": 1}`),
			line: 1, record: 0, field: "sample_id", kind: ErrInvalid,
			msg: `line 1: sample_id: control character '\x01' at byte 1`,
		},
		{
			name: "invalid UTF-8 in a sample id",
			in:   "{\"sample_id\": \"a\xff\", \"x\": 1}\n",
			line: 1, record: 0, field: "sample_id", kind: ErrInvalid,
			msg: `line 1: sample_id: not valid UTF-8`,
		},
		{
			name: "unpaired surrogate",
			in:   lines(`{"sample_id": "a\ud83d", "x": 1}`),
			line: 1, record: -1, kind: ErrInvalid,
			msg: `line 1: invalid JSON at column 17: unpaired UTF-16 surrogate in a \u escape`,
		},
		{
			name: "text after the object",
			in:   lines(`{"sample_id": "a", "x": 1} {}`),
			line: 1, record: -1, kind: ErrInvalid,
			msg: `line 1: invalid JSON at column 28: unexpected text after the object`,
		},
		{
			name: "trailing comma",
			in:   lines(`{"sample_id": "a", "x": 1,}`),
			line: 1, record: -1, kind: ErrInvalid,
			msg: `line 1: invalid JSON at column 27: expected a string key`,
		},
		{
			name: "empty object",
			in:   lines(`{}`),
			line: 1, record: -1, kind: ErrInvalid,
			msg: `line 1: empty object; a line is a record with a sample_id or a run_metrics line`,
		},
		{
			name: "empty input",
			in:   "",
			line: 0, record: -1, kind: ErrInvalid,
			msg: `no records and no run_metrics`,
		},
		{
			name: "only blank lines",
			in:   "\n \n\r\n",
			line: 0, record: -1, kind: ErrInvalid,
			msg: `no records and no run_metrics`,
		},
		{
			name:   "line longer than the limit",
			in:     lines(`{"sample_id": "a", "x": 1}`, `{"sample_id": "b", "x": 1, "y": 2, "z": 3}`),
			limits: Limits{MaxLineBytes: 32},
			line:   2, record: -1, kind: ErrInvalid,
			msg: `line 2: line is longer than 32 bytes`,
		},
		{
			name:   "more samples than the limit",
			in:     lines(`{"sample_id": "a", "x": 1}`, `{"sample_id": "b", "x": 1}`, `{"sample_id": "c", "x": 1}`),
			limits: Limits{MaxSamples: 2},
			line:   3, record: 2, kind: ErrTooLarge,
			msg: `line 3: more than 2 samples`,
		},
		{
			name:   "more bytes than the limit",
			in:     lines(`{"sample_id": "a", "x": 1}`, `{"sample_id": "b", "x": 1}`),
			limits: Limits{MaxBytes: 17},
			line:   2, record: 1, kind: ErrTooLarge,
			msg: `line 2: results would take 18 bytes (sample ids plus 8 bytes per value), more than the limit of 17`,
		},
		{
			name:   "more metrics than the limit",
			in:     lines(`{"sample_id": "a", "x": 1, "y": 1}`, `{"sample_id": "b", "x": 1, "z": 1}`),
			limits: Limits{MaxMetrics: 2},
			line:   2, record: 1, field: `values["z"]`, kind: ErrInvalid,
			msg: `line 2: values["z"]: a result set may have at most 2 distinct metrics; this record brings the count to 3`,
		},
		{
			name:   "sample id longer than the limit",
			in:     lines(`{"sample_id": "abcde", "x": 1}`),
			limits: Limits{MaxSampleIDBytes: 4},
			line:   1, record: 0, field: "sample_id", kind: ErrInvalid,
			msg: `line 1: sample_id: 5 bytes, at most 4`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse(strings.NewReader(tt.in), tt.limits)
			if err == nil {
				t.Fatalf("Parse accepted it:\n%s", jsonl(t, s))
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T) is not an *Error", err, err)
			}
			if e.Line != tt.line || e.Record != tt.record || e.Field != tt.field || !errors.Is(err, tt.kind) {
				t.Errorf("error line %d record %d field %q kind %v; want line %d record %d field %q kind %v",
					e.Line, e.Record, e.Field, e.kind, tt.line, tt.record, tt.field, tt.kind)
			}
			if err.Error() != tt.msg {
				t.Errorf("error text\n %s\nwant\n %s", err, tt.msg)
			}
		})
	}
}

func TestParseDuplicateNamesBothRecords(t *testing.T) {
	_, err := Parse(strings.NewReader(lines(`{"sample_id": "a", "x": 1}`, `{"sample_id": "b", "x": 1}`, `{"sample_id": "b", "x": 1}`)), Limits{})
	var e *Error
	if !errors.As(err, &e) || e.FirstRecord != 1 || e.FirstLine != 2 || e.Record != 2 || e.Line != 3 {
		t.Fatalf("err = %#v", err)
	}
}

type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) { return 0, r.err }

func TestParseReadError(t *testing.T) {
	cause := errors.New("stale NFS file handle")
	_, err := Parse(failingReader{cause}, Limits{})
	if !errors.Is(err, cause) {
		t.Fatalf("err = %v, want it to wrap %v", err, cause)
	}
	var e *Error
	if errors.As(err, &e) {
		t.Errorf("a read error is not bad input, got *Error %v", e)
	}
}
