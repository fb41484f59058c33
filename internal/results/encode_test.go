package results

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"strings"
	"testing"
	"testing/iotest"
)

func encode(t testing.TB, s *Set) []byte {
	t.Helper()
	var buf bytes.Buffer
	n, err := Encode(&buf, s)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) {
		t.Fatalf("Encode returned %d, wrote %d bytes", n, buf.Len())
	}
	return buf.Bytes()
}

// withCRC appends the checksum Encode would write.
func withCRC(body ...byte) []byte {
	return binary.LittleEndian.AppendUint32(body, crc32.Checksum(body, castagnoli))
}

func f64(v float64) []byte { return binary.LittleEndian.AppendUint64(nil, math.Float64bits(v)) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestEncodeGolden(t *testing.T) {
	s := buildSet(t, []row{
		{"a", map[string]float64{"x": 1}},
		{"bc", map[string]float64{"loss": 0.5}},
	}, map[string]float64{"acc": 2})
	want := withCRC(cat(
		[]byte{1},                            // version
		[]byte{2},                            // samples
		[]byte{2},                            // metrics
		[]byte{4}, []byte("loss"), []byte{1}, // name, present
		[]byte{1}, []byte("x"), []byte{1},
		[]byte{1},                        // run metrics
		[]byte{3}, []byte("acc"), f64(2), // name, value
		[]byte{1}, []byte("a"), // sample ids
		[]byte{2}, []byte("bc"),
		binary.LittleEndian.AppendUint64(nil, absentBits), f64(0.5), // loss column
		f64(1), binary.LittleEndian.AppendUint64(nil, absentBits), // x column
	)...)
	if got := encode(t, s); !bytes.Equal(got, want) {
		t.Errorf("Encode =\n% x\nwant\n% x", got, want)
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		rows []row
		run  map[string]float64
	}{
		{"one sample", []row{{"a", map[string]float64{"x": 1}}}, nil},
		{"run metrics only", nil, map[string]float64{"accuracy": 0.97, "bleu": 31.5}},
		{"absent values and run metrics", []row{
			{"img-0017", map[string]float64{"correct": 1, "loss": 0.231}},
			{"img-0018", map[string]float64{"correct": 0}},
			{"img-0019", map[string]float64{"loss": 1e-300, "score": math.Copysign(0, -1)}},
		}, map[string]float64{"accuracy": 0.5}},
		{"extreme values", []row{
			{"max", map[string]float64{"v": math.MaxFloat64}},
			{"min", map[string]float64{"v": -math.MaxFloat64}},
			{"tiny", map[string]float64{"v": math.SmallestNonzeroFloat64}},
		}, nil},
		{"ids needing escapes and long ids", []row{
			{`q"\`, map[string]float64{"x": 1}},
			{"画像/17 ✓", map[string]float64{"x": 2}},
			{strings.Repeat("z", 256), map[string]float64{"x": 3}},
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := buildSet(t, tt.rows, tt.run)
			data := encode(t, s)
			// One byte at a time: the decoder must not depend on how
			// its reader splits the input.
			got, err := Decode(iotest.OneByteReader(bytes.NewReader(data)))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !got.Equal(s) {
				t.Errorf("Decode gave\n%s\nwant\n%s", jsonl(t, got), jsonl(t, s))
			}
			if again := encode(t, got); !bytes.Equal(again, data) {
				t.Errorf("re-encoding differs")
			}
			for i := range s.Len() {
				if j, ok := got.Index(s.SampleID(i)); !ok || j != i {
					t.Errorf("decoded Index(%q) = %d, %v", s.SampleID(i), j, ok)
				}
			}
			info, err := DecodeInfo(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("DecodeInfo: %v", err)
			}
			if fmt.Sprint(info) != fmt.Sprint(s.Info()) {
				t.Errorf("DecodeInfo = %+v, want %+v", info, s.Info())
			}
		})
	}
}

// millionSet is 1M samples with ids "sample-0000000".., a loss, a 0/1
// correct and a score absent on every tenth sample.
func millionSet(t testing.TB) *Set {
	t.Helper()
	const n = 1_000_000
	b := NewBuilder(Limits{})
	vals := map[string]float64{}
	for i := range n {
		clear(vals)
		vals["loss"] = float64(i) / 7
		vals["correct"] = float64(i % 2)
		if i%10 != 0 {
			vals["score"] = math.Sqrt(float64(i))
		}
		if err := b.Add(fmt.Sprintf("sample-%07d", i), vals); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.AddRunMetric("accuracy", 0.5); err != nil {
		t.Fatal(err)
	}
	s, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestEncodeMillionSamples(t *testing.T) {
	s := millionSet(t)
	data := encode(t, s)
	// 1 length byte + 14 id bytes + 3 x 8 value bytes a sample, plus the
	// header and checksum.
	if perSample := float64(len(data)) / float64(s.Len()); perSample < 39 || perSample > 39.001 {
		t.Errorf("%d bytes, %.3f a sample; want 39", len(data), perSample)
	}
	got, err := Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(s) {
		t.Fatal("decoded set differs")
	}
	if v, ok := got.Value("score", 999_999); !ok || v != math.Sqrt(999_999) {
		t.Errorf("score of the last sample = %v, %v", v, ok)
	}
	if _, ok := got.Value("score", 999_990); ok {
		t.Error("score of sample 999990 present, want absent")
	}
	if got.Present("score") != 900_000 {
		t.Errorf("Present(score) = %d", got.Present("score"))
	}
	if i, ok := got.Index("sample-0123456"); !ok || i != 123456 {
		t.Errorf("Index = %d, %v", i, ok)
	}
}

func TestDecodeRejects(t *testing.T) {
	valid := encode(t, buildSet(t, []row{{"a", map[string]float64{"x": 1}}, {"bc", map[string]float64{"loss": 0.5}}}, map[string]float64{"acc": 2}))
	absentRaw := binary.LittleEndian.AppendUint64(nil, absentBits)
	otherNaN := binary.LittleEndian.AppendUint64(nil, 0x7ff8000000000002)
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "version: corrupt results encoding: truncated"},
		{"unknown version", withCRC(2, 0, 0, 0), "corrupt results encoding: encoding version 2, this build reads 1"},
		{"checksum altered", append(valid[:len(valid)-1:len(valid)-1], valid[len(valid)-1]^1), "corrupt results encoding: checksum"},
		{"bytes after the checksum", append(valid[:len(valid):len(valid)], 0), "corrupt results encoding: bytes after the checksum"},
		{"varint not shortest", withCRC(1, 0x80, 0x00, 0, 0), "sample count: corrupt results encoding: varint not in its shortest form"},
		{"varint overflow", withCRC(1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), "sample count: corrupt results encoding: varint overflows 64 bits"},
		{"more samples than the hard bound", withCRC(1, 0x80, 0x80, 0x80, 0x80, 0x10, 0, 0), "corrupt results encoding: 4294967296 samples, at most 4294967294"},
		{"huge sample count, no data", withCRC(1, 0xfe, 0xff, 0xff, 0xff, 0x0f, 0, 0), "sample id 0: corrupt results encoding: truncated"},
		{"metrics without samples", withCRC(1, 0, 1, 1, 'x', 1, 0), "corrupt results encoding: 1 metrics for 0 samples"},
		{"metric names out of order", withCRC(cat([]byte{1, 1, 2, 1, 'y', 1, 1, 'x', 1, 0, 1, 'a'}, f64(1), f64(2))...), `corrupt results encoding: name "x" does not sort after "y"`},
		{"metric name twice", withCRC(cat([]byte{1, 1, 2, 1, 'x', 1, 1, 'x', 1, 0, 1, 'a'}, f64(1), f64(2))...), `corrupt results encoding: name "x" does not sort after "x"`},
		{"invalid metric name", withCRC(cat([]byte{1, 1, 1, 2, 'x', ' ', 1, 0, 1, 'a'}, f64(1))...), "corrupt results encoding: name 0: metric name has ' '"},
		{"metric present in no sample", withCRC(cat([]byte{1, 1, 1, 1, 'x', 0, 0, 1, 'a'}, absentRaw)...), `corrupt results encoding: metric "x" present in 0 of 1 samples`},
		{"present count wrong", withCRC(cat([]byte{1, 2, 1, 1, 'x', 2, 0, 1, 'a', 1, 'b'}, f64(1), absentRaw)...), `corrupt results encoding: metric "x" has 1 values, header says 2`},
		{"duplicate sample id", withCRC(cat([]byte{1, 2, 1, 1, 'x', 2, 0, 1, 'a', 1, 'a'}, f64(1), f64(2))...), "corrupt results encoding: sample 1 repeats the id of sample 0"},
		{"empty sample id", withCRC(cat([]byte{1, 1, 1, 1, 'x', 1, 0, 0}, f64(1))...), "corrupt results encoding: sample id 0: required, non-empty"},
		{"sample id over the hard bound", withCRC(1, 1, 0, 0, 0x81, 0x08), "corrupt results encoding: sample id 0 is 1025 bytes, at most 1024"},
		{"a NaN that is not the absent marker", withCRC(cat([]byte{1, 1, 1, 1, 'x', 1, 0, 1, 'a'}, otherNaN)...), `corrupt results encoding: metric "x" sample 0 is NaN`},
		{"infinite value", withCRC(cat([]byte{1, 1, 1, 1, 'x', 1, 0, 1, 'a'}, f64(math.Inf(1)))...), `corrupt results encoding: metric "x" sample 0 is +Inf`},
		{"infinite run metric", withCRC(cat([]byte{1, 0, 0, 1, 1, 'a'}, f64(math.Inf(-1)))...), `corrupt results encoding: run metric "a" is -Inf`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Decode(bytes.NewReader(tt.data))
			if err == nil {
				t.Fatalf("Decode accepted it:\n%s", jsonl(t, s))
			}
			if !errors.Is(err, ErrCorrupt) || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("err = %v\nwant ErrCorrupt starting %q", err, tt.want)
			}
		})
	}
	// Every truncation and every single-bit change of a valid encoding is
	// refused: the structure or the checksum catches it.
	for n := range len(valid) {
		if _, err := Decode(bytes.NewReader(valid[:n])); !errors.Is(err, ErrCorrupt) {
			t.Errorf("truncated to %d bytes: err = %v, want ErrCorrupt", n, err)
		}
	}
	for i := range len(valid) {
		for bit := range 8 {
			bad := bytes.Clone(valid)
			bad[i] ^= 1 << bit
			if _, err := Decode(bytes.NewReader(bad)); !errors.Is(err, ErrCorrupt) {
				t.Errorf("byte %d bit %d flipped: err = %v, want ErrCorrupt", i, bit, err)
			}
		}
	}
}

func TestDecodeReadError(t *testing.T) {
	cause := errors.New("disk on fire")
	_, err := Decode(iotest.ErrReader(cause))
	if !errors.Is(err, cause) || errors.Is(err, ErrCorrupt) {
		t.Errorf("err = %v, want it to wrap %v and not be ErrCorrupt", err, cause)
	}
}

func BenchmarkParseMillion(b *testing.B) {
	var buf bytes.Buffer
	if err := millionSet(b).WriteJSONL(&buf); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(buf.Len()))
	for b.Loop() {
		if _, err := Parse(bytes.NewReader(buf.Bytes()), Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeMillion(b *testing.B) {
	s := millionSet(b)
	var buf bytes.Buffer
	for b.Loop() {
		buf.Reset()
		if _, err := Encode(&buf, s); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(buf.Len()))
}

func BenchmarkDecodeMillion(b *testing.B) {
	var buf bytes.Buffer
	if _, err := Encode(&buf, millionSet(b)); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(buf.Len()))
	for b.Loop() {
		if _, err := Decode(bytes.NewReader(buf.Bytes())); err != nil {
			b.Fatal(err)
		}
	}
}
