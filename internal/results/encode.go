package results

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"slices"
)

// EncodingVersion is the version byte Encode writes first.
const EncodingVersion = 1

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Encode writes s in the storage encoding, version 1, and returns the bytes
// written. It is columnar so values of one metric lie together, and it holds
// nothing but the data (no field names per record):
//
//	version      1 byte: 1
//	samples      uvarint n
//	metrics      uvarint m, then m times: uvarint length, name, uvarint present
//	run metrics  uvarint r, then r times: uvarint length, name, float64
//	sample ids   n times: uvarint length, id bytes
//	columns      m times n float64: metric j of sample i at column j, row i
//	checksum     uint32, CRC-32C (Castagnoli) of every byte before it
//
// Integers are unsigned varints (encoding/binary) in their shortest form;
// float64s are 8 bytes little-endian IEEE 754, with the one NaN
// 0x7ff8000000000001 marking an absent value. Metric names are in ascending
// order, run metric names too. With 3 metrics and 12-byte ids a sample takes
// 1 + 12 + 3*8 = 37 bytes.
//
// The header (everything before the sample ids) is small and comes first, so
// DecodeInfo reads it alone.
func Encode(w io.Writer, s *Set) (int64, error) {
	e := &encoder{w: w, buf: make([]byte, 0, 64<<10)}
	e.byte(EncodingVersion)
	e.uvarint(uint64(s.Len()))
	e.uvarint(uint64(len(s.metrics)))
	for j, name := range s.metrics {
		e.string(name)
		e.uvarint(uint64(s.present[j]))
	}
	e.uvarint(uint64(len(s.run)))
	for _, name := range sortedKeys(s.run) {
		e.string(name)
		e.float(s.run[name])
	}
	for i := range s.Len() {
		id := s.idBytes(i)
		e.uvarint(uint64(len(id)))
		e.bytes(id)
	}
	for _, col := range s.columns {
		for _, v := range col {
			e.float(v)
		}
	}
	e.flush()
	var sum [4]byte
	binary.LittleEndian.PutUint32(sum[:], e.crc)
	e.buf = append(e.buf, sum[:]...)
	e.n += 4
	e.flushRaw()
	return e.n, e.err
}

// encoder buffers writes and keeps a running CRC of what it flushed.
type encoder struct {
	w   io.Writer
	buf []byte
	crc uint32
	n   int64
	err error
}

func (e *encoder) room(n int) {
	if len(e.buf)+n > cap(e.buf) {
		e.flush()
	}
}

func (e *encoder) flush() {
	e.crc = crc32.Update(e.crc, castagnoli, e.buf)
	e.flushRaw()
}

func (e *encoder) flushRaw() {
	if e.err == nil && len(e.buf) > 0 {
		_, e.err = e.w.Write(e.buf)
	}
	e.buf = e.buf[:0]
}

func (e *encoder) byte(c byte) {
	e.room(1)
	e.buf = append(e.buf, c)
	e.n++
}

func (e *encoder) uvarint(v uint64) {
	e.room(binary.MaxVarintLen64)
	before := len(e.buf)
	e.buf = binary.AppendUvarint(e.buf, v)
	e.n += int64(len(e.buf) - before)
}

func (e *encoder) bytes(b []byte) {
	for len(b) > 0 {
		e.room(1)
		k := min(len(b), cap(e.buf)-len(e.buf))
		e.buf = append(e.buf, b[:k]...)
		b = b[k:]
		e.n += int64(k)
	}
}

func (e *encoder) string(s string) {
	e.uvarint(uint64(len(s)))
	e.bytes([]byte(s))
}

func (e *encoder) float(v float64) {
	e.room(8)
	bits := math.Float64bits(v)
	if math.IsNaN(v) {
		bits = absentBits
	}
	e.buf = binary.LittleEndian.AppendUint64(e.buf, bits)
	e.n += 8
}

// Decode reads one encoding written by Encode and returns the Set. It
// checks everything a Builder would (names, ids, uniqueness, finite values)
// as well as the checksum, so corrupt input returns ErrCorrupt and never a
// Set that breaks the invariants. It reads r to its end.
func Decode(r io.Reader) (*Set, error) {
	d := newDecoder(r)
	info, err := d.header()
	if err != nil {
		return nil, err
	}
	n, m := info.Samples, len(info.Metrics)
	s := &Set{index: newIDIndex(), run: info.RunMetrics, metrics: make([]string, m), present: make([]int, m)}
	for j, mi := range info.Metrics {
		s.metrics[j], s.present[j] = mi.Name, mi.Present
	}
	// The ids grow as the data arrives (doubling, so about twice their
	// size is allocated in all) rather than trusting the header's count
	// for an allocation: a short corrupt input cannot make Decode allocate
	// much more than its own size. Once the ids are in, the input has
	// proved n (at least 2 bytes a sample), and each column is allocated
	// whole.
	s.idEnds = make([]uint32, 0, min(n, 1<<16))
	for i := range n {
		l, err := d.uvarint()
		if err != nil {
			return nil, fmt.Errorf("sample id %d: %w", i, err)
		}
		if l > HardMaxSampleIDBytes {
			return nil, fmt.Errorf("%w: sample id %d is %d bytes, at most %d", ErrCorrupt, i, l, HardMaxSampleIDBytes)
		}
		id, err := d.bytes(int(l))
		if err != nil {
			return nil, fmt.Errorf("sample id %d: %w", i, err)
		}
		if msg := validateSampleIDBytes(id, HardMaxSampleIDBytes); msg != "" {
			return nil, fmt.Errorf("%w: sample id %d: %s", ErrCorrupt, i, msg)
		}
		if uint64(len(s.ids))+l > math.MaxUint32 {
			return nil, fmt.Errorf("%w: sample ids exceed 4 GiB", ErrCorrupt)
		}
		if !s.indexed && !s.followsBytes(id) {
			s.buildIndex() // the first id out of order
		}
		s.ids = appendDoubling(s.ids, id...)
		s.idEnds = appendDoubling(s.idEnds, uint32(len(s.ids)))
		if !s.indexed {
			continue // ascending ids are unique
		}
		if first, dup := s.index.insert(s, i); dup {
			return nil, fmt.Errorf("%w: sample %d repeats the id of sample %d", ErrCorrupt, i, first)
		}
	}
	s.columns = make([][]float64, m)
	for j := range m {
		col := make([]float64, 0, n)
		present := 0
		for len(col) < n {
			k := min(n-len(col), len(d.buf)/8)
			raw, err := d.bytes(8 * k)
			if err != nil {
				return nil, fmt.Errorf("metric %q: %w", s.metrics[j], err)
			}
			for ; len(raw) > 0; raw = raw[8:] {
				bits := binary.LittleEndian.Uint64(raw)
				v := math.Float64frombits(bits)
				switch {
				case bits == absentBits:
				case math.IsNaN(v) || math.IsInf(v, 0):
					return nil, fmt.Errorf("%w: metric %q sample %d is %v", ErrCorrupt, s.metrics[j], len(col), v)
				default:
					present++
				}
				col = append(col, v)
			}
		}
		if present != s.present[j] {
			return nil, fmt.Errorf("%w: metric %q has %d values, header says %d", ErrCorrupt, s.metrics[j], present, s.present[j])
		}
		s.columns[j] = col
	}
	want := d.sum()
	raw, err := d.bytes(4)
	if err != nil {
		return nil, fmt.Errorf("checksum: %w", err)
	}
	if got := binary.LittleEndian.Uint32(raw); got != want {
		return nil, fmt.Errorf("%w: checksum %08x, computed %08x", ErrCorrupt, got, want)
	}
	if extra, err := d.fillUpTo(1); err != nil {
		return nil, err
	} else if extra > 0 {
		return nil, fmt.Errorf("%w: bytes after the checksum", ErrCorrupt)
	}
	return s, nil
}

// DecodeInfo reads only the header of an encoding: sample count, metric
// names with how many samples have each, and run metrics. It reads no
// further than the header, and so does not verify the checksum.
func DecodeInfo(r io.Reader) (*Info, error) {
	return newDecoder(r).header()
}

func (d *decoder) header() (*Info, error) {
	v, err := d.bytes(1)
	if err != nil {
		return nil, fmt.Errorf("version: %w", err)
	}
	if v[0] != EncodingVersion {
		return nil, fmt.Errorf("%w: encoding version %d, this build reads %d", ErrCorrupt, v[0], EncodingVersion)
	}
	n, err := d.uvarint()
	if err != nil {
		return nil, fmt.Errorf("sample count: %w", err)
	}
	if n > HardMaxSamples {
		return nil, fmt.Errorf("%w: %d samples, at most %d", ErrCorrupt, n, HardMaxSamples)
	}
	info := &Info{Samples: int(n), RunMetrics: map[string]float64{}}
	m, err := d.uvarint()
	if err != nil {
		return nil, fmt.Errorf("metric count: %w", err)
	}
	if m > HardMaxMetrics || m > 0 && n == 0 {
		return nil, fmt.Errorf("%w: %d metrics for %d samples", ErrCorrupt, m, n)
	}
	prev := ""
	for j := range int(m) {
		name, err := d.name(j, prev)
		if err != nil {
			return nil, err
		}
		present, err := d.uvarint()
		if err != nil {
			return nil, fmt.Errorf("metric %q count: %w", name, err)
		}
		if present == 0 || present > n {
			return nil, fmt.Errorf("%w: metric %q present in %d of %d samples", ErrCorrupt, name, present, n)
		}
		info.Metrics = append(info.Metrics, MetricInfo{Name: name, Present: int(present)})
		prev = name
	}
	r, err := d.uvarint()
	if err != nil {
		return nil, fmt.Errorf("run metric count: %w", err)
	}
	if r > HardMaxMetrics {
		return nil, fmt.Errorf("%w: %d run metrics", ErrCorrupt, r)
	}
	prev = ""
	for j := range int(r) {
		name, err := d.name(j, prev)
		if err != nil {
			return nil, err
		}
		raw, err := d.bytes(8)
		if err != nil {
			return nil, fmt.Errorf("run metric %q: %w", name, err)
		}
		v := math.Float64frombits(binary.LittleEndian.Uint64(raw))
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%w: run metric %q is %v", ErrCorrupt, name, v)
		}
		info.RunMetrics[name] = v
		prev = name
	}
	return info, nil
}

// name reads the j-th name of a list that must ascend strictly after prev.
func (d *decoder) name(j int, prev string) (string, error) {
	l, err := d.uvarint()
	if err != nil {
		return "", fmt.Errorf("name %d: %w", j, err)
	}
	if l > MaxNameBytes {
		return "", fmt.Errorf("%w: name %d is %d bytes", ErrCorrupt, j, l)
	}
	b, err := d.bytes(int(l))
	if err != nil {
		return "", fmt.Errorf("name %d: %w", j, err)
	}
	name := string(b)
	if msg := validateName(name); msg != "" {
		return "", fmt.Errorf("%w: name %d: %s", ErrCorrupt, j, msg)
	}
	if j > 0 && name <= prev {
		return "", fmt.Errorf("%w: name %q does not sort after %q", ErrCorrupt, name, prev)
	}
	return name, nil
}

// decoder reads through a fixed buffer and keeps a CRC of the bytes it has
// handed out (not of what it merely read ahead, so the trailing checksum
// itself stays out of it).
type decoder struct {
	r          io.Reader
	buf        []byte
	start, end int // unread bytes: buf[start:end]
	summed     int // buf[summed:start] is consumed but not yet in crc
	crc        uint32
	eof        bool
}

func newDecoder(r io.Reader) *decoder {
	return &decoder{r: r, buf: make([]byte, 64<<10)}
}

var errTruncated = fmt.Errorf("%w: truncated", ErrCorrupt)

// fillUpTo makes up to n bytes available (n <= len(buf)) and returns how
// many are.
func (d *decoder) fillUpTo(n int) (int, error) {
	if d.end-d.start >= n || d.eof {
		return min(n, d.end-d.start), nil
	}
	d.crc = crc32.Update(d.crc, castagnoli, d.buf[d.summed:d.start])
	copy(d.buf, d.buf[d.start:d.end])
	d.end -= d.start
	d.start, d.summed = 0, 0
	for d.end < n && !d.eof {
		k, err := d.r.Read(d.buf[d.end:])
		d.end += k
		switch {
		case errors.Is(err, io.EOF):
			d.eof = true
		case err != nil:
			return 0, fmt.Errorf("read results: %w", err)
		}
	}
	return min(n, d.end), nil
}

// bytes returns the next n bytes (n <= len(buf)); they are valid until the
// next call.
func (d *decoder) bytes(n int) ([]byte, error) {
	got, err := d.fillUpTo(n)
	if err != nil {
		return nil, err
	}
	if got < n {
		return nil, errTruncated
	}
	b := d.buf[d.start : d.start+n]
	d.start += n
	return b, nil
}

// uvarint reads an unsigned varint in its shortest form; a longer form
// would decode to the same number but re-encode differently.
func (d *decoder) uvarint() (uint64, error) {
	if _, err := d.fillUpTo(binary.MaxVarintLen64); err != nil {
		return 0, err
	}
	v, k := binary.Uvarint(d.buf[d.start:d.end])
	switch {
	case k == 0:
		return 0, errTruncated
	case k < 0:
		return 0, fmt.Errorf("%w: varint overflows 64 bits", ErrCorrupt)
	case k > 1 && d.buf[d.start+k-1] == 0:
		return 0, fmt.Errorf("%w: varint not in its shortest form", ErrCorrupt)
	}
	d.start += k
	return v, nil
}

// sum is the CRC of every byte consumed so far.
func (d *decoder) sum() uint32 {
	d.crc = crc32.Update(d.crc, castagnoli, d.buf[d.summed:d.start])
	d.summed = d.start
	return d.crc
}

// appendDoubling is append that at least doubles a full slice's capacity
// (append grows large slices by a quarter, which allocates five times the
// final size over a million appends).
func appendDoubling[T any](s []T, v ...T) []T {
	if len(s)+len(v) > cap(s) {
		s = slices.Grow(s, max(len(v), cap(s)))
	}
	return append(s, v...)
}
