// Package results owns a run's per-sample results: the JSON-lines file an
// evaluation or inference job writes (Parse, WriteJSONL; the format is
// documented in docs/results.md), the Builder that the gRPC handler feeds
// record by record with the same rules, the in-memory columnar Set both
// produce, and the compact binary encoding the store keeps (Encode, Decode).
//
// A Set is what paired comparisons need: one row per test sample, keyed by a
// sample id that is unique within the set (so two runs scored on the same
// test set can be joined by id), and one float64 column per named metric
// ("score", "correct", "loss", ...). A sample may lack a metric that others
// have; the column then holds NaN there, and since every value a Set accepts
// is finite, NaN means "absent" and nothing else.
package results

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Sentinel errors. Every error this package returns for bad input is an
// *Error whose Unwrap gives one of them; test with errors.Is.
var (
	// ErrInvalid: the input breaks a rule of the format (bad JSON, a missing
	// or duplicate sample_id, a non-numeric or non-finite value, a bad
	// metric name, too many metrics).
	ErrInvalid = errors.New("invalid results")
	// ErrTooLarge: the input is well formed but exceeds Limits.MaxSamples or
	// Limits.MaxBytes.
	ErrTooLarge = errors.New("results too large")
	// ErrCorrupt: Decode was given bytes that are not an encoding Encode
	// produced (truncated, altered, or of an unknown version).
	ErrCorrupt = errors.New("corrupt results encoding")
)

// Hard bounds. Limits may lower them but not raise them: Decode accepts
// anything within them, so data stored under one configuration stays
// readable under another.
const (
	// HardMaxSamples keeps sample indexes in a uint32.
	HardMaxSamples = math.MaxUint32 - 1
	// HardMaxMetrics bounds the distinct per-sample metric names of a set,
	// and separately its run metrics.
	HardMaxMetrics = 1024
	// HardMaxSampleIDBytes bounds one sample id.
	HardMaxSampleIDBytes = 1024
	// MaxNameBytes bounds a metric name (per-sample or run-level).
	MaxNameBytes = 64
)

// Limits bound what Parse and a Builder accept. Zero fields take the
// default; values above the hard bounds are lowered to them.
type Limits struct {
	// MaxSamples is the most records (samples) a set may have. Default 10M.
	MaxSamples int
	// MaxMetrics is the most distinct per-sample metric names. Default 64.
	MaxMetrics int
	// MaxRunMetrics is the most run-level metrics. Default 64.
	MaxRunMetrics int
	// MaxSampleIDBytes bounds one sample id. Default 256.
	MaxSampleIDBytes int
	// MaxLineBytes bounds one line of a file Parse reads. Default 64 KiB.
	MaxLineBytes int
	// MaxBytes bounds the set's size in memory: the bytes of all sample ids
	// plus 8 bytes per sample and metric. Default 1 GiB (10M samples with
	// 12 metrics and 12-byte ids fit).
	MaxBytes int64
}

// DefaultLimits are the limits a zero Limits means.
func DefaultLimits() Limits {
	return Limits{
		MaxSamples:       10_000_000,
		MaxMetrics:       64,
		MaxRunMetrics:    64,
		MaxSampleIDBytes: 256,
		MaxLineBytes:     64 << 10,
		MaxBytes:         1 << 30,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	pick := func(v, def, hard int) int {
		if v <= 0 {
			v = def
		}
		return min(v, hard)
	}
	l.MaxSamples = pick(l.MaxSamples, d.MaxSamples, HardMaxSamples)
	l.MaxMetrics = pick(l.MaxMetrics, d.MaxMetrics, HardMaxMetrics)
	l.MaxRunMetrics = pick(l.MaxRunMetrics, d.MaxRunMetrics, HardMaxMetrics)
	l.MaxSampleIDBytes = pick(l.MaxSampleIDBytes, d.MaxSampleIDBytes, HardMaxSampleIDBytes)
	l.MaxLineBytes = pick(l.MaxLineBytes, d.MaxLineBytes, math.MaxInt32)
	if l.MaxBytes <= 0 {
		l.MaxBytes = d.MaxBytes
	}
	return l
}

// Error is one rejected piece of input. Its Error text names where:
// "line 17: values[\"loss\"]: ..." from Parse, "records[17].sample_id: ..."
// from a Builder.
type Error struct {
	// Line is the 1-based line of the input Parse read; 0 from a Builder,
	// and for problems of the whole input (no records at all).
	Line int
	// Record is the 0-based index of the sample record at fault among all
	// records so far; -1 when the problem is not one record's (a run metric,
	// an unreadable line, the input as a whole).
	Record int
	// Field names the offending field relative to the record, in the
	// data model's terms whichever shape the line used: "sample_id",
	// `values["loss"]`, `run_metrics["accuracy"]`; empty for the whole
	// line or record.
	Field string
	// Reason says what is wrong, for a human.
	Reason string
	// FirstRecord is, for a duplicate sample_id, the index of the record
	// that used it first; -1 otherwise.
	FirstRecord int
	// FirstLine is, for a duplicate sample_id found by Parse, the line of
	// the record that used it first; 0 otherwise.
	FirstLine int

	kind error // ErrInvalid or ErrTooLarge
}

func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.Line > 0:
		fmt.Fprintf(&b, "line %d: ", e.Line)
		if e.Field != "" {
			b.WriteString(e.Field + ": ")
		}
	case e.Record >= 0 && e.Field != "":
		fmt.Fprintf(&b, "records[%d].%s: ", e.Record, e.Field)
	case e.Record >= 0:
		fmt.Fprintf(&b, "records[%d]: ", e.Record)
	case e.Field != "":
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

// Unwrap returns ErrInvalid or ErrTooLarge.
func (e *Error) Unwrap() error { return e.kind }

func invalid(record int, field, format string, args ...any) *Error {
	return &Error{Record: record, Field: field, Reason: fmt.Sprintf(format, args...), FirstRecord: -1, kind: ErrInvalid}
}

func tooLarge(record int, format string, args ...any) *Error {
	return &Error{Record: record, Reason: fmt.Sprintf(format, args...), FirstRecord: -1, kind: ErrTooLarge}
}

// ValuesField is the Field of a per-sample value: values["name"].
func ValuesField(name string) string { return "values[" + strconv.Quote(name) + "]" }

// RunMetricsField is the Field of a run metric: run_metrics["name"].
func RunMetricsField(name string) string { return "run_metrics[" + strconv.Quote(name) + "]" }

// Reserved names cannot be metric names: in the flat line shape they are
// the record's other keys.
var reservedNames = map[string]bool{"sample_id": true, "values": true, "run_metrics": true}

// validateName checks a metric name: 1-64 bytes, a letter or underscore
// first, then letters, digits and _ . - : / @ (so "top5/acc" or "f1@0.5" are
// fine), and not one of the reserved keys.
func validateName(name string) string {
	switch {
	case name == "":
		return "metric name is empty"
	case len(name) > MaxNameBytes:
		return fmt.Sprintf("metric name is %d bytes, at most %d", len(name), MaxNameBytes)
	case reservedNames[name]:
		return fmt.Sprintf("%q is reserved and cannot be a metric name", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
		if i == 0 && !letter {
			return "metric name must start with a letter or _"
		}
		if !letter && !(c >= '0' && c <= '9') && !strings.ContainsRune(".-:/@", rune(c)) {
			return fmt.Sprintf("metric name has %q; allowed are letters, digits and _ . - : / @", c)
		}
	}
	return ""
}

// validateSampleID checks a sample id: 1 to max bytes of UTF-8 without
// control characters.
func validateSampleID(id string, max int) string {
	return checkSampleID(id, utf8.ValidString(id), max)
}

func validateSampleIDBytes(id []byte, max int) string {
	return checkSampleID(id, utf8.Valid(id), max)
}

func checkSampleID[T string | []byte](id T, validUTF8 bool, max int) string {
	switch {
	case len(id) == 0:
		return "required, non-empty"
	case len(id) > max:
		return fmt.Sprintf("%d bytes, at most %d", len(id), max)
	case !validUTF8:
		return "not valid UTF-8"
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x20 || c == 0x7f {
			return fmt.Sprintf("control character %q at byte %d", c, i)
		}
	}
	return ""
}

// absent is the canonical NaN that marks a missing value in a column.
var absent = math.NaN()

// absentBits are its bits; Decode accepts no other NaN.
var absentBits = math.Float64bits(absent)

// Set is a run's results: sample ids (unique, in the order they were
// reported), one float64 column per metric (NaN where a sample lacks the
// metric), and run-level metrics. Build one with a Builder, Parse or Decode.
// A Set is immutable once built and safe for concurrent reads.
type Set struct {
	ids    []byte   // every sample id, concatenated
	idEnds []uint32 // idEnds[i] is where sample i's id ends in ids
	// indexed: index holds every id. While the ids ascend strictly (byte
	// order; "sample-0000001", "sample-0000002", ... as most evaluation
	// scripts write them) they are unique by construction and a lookup is
	// a binary search, so no index is built: that saves hashing every id
	// on upload and on every read from the store, and 16 bytes a sample.
	// The first id out of order builds it.
	indexed bool
	index   idIndex
	metrics []string    // sorted, unique
	columns [][]float64 // columns[j][i]: metric j of sample i
	present []int       // present[j]: samples that have metric j
	run     map[string]float64
}

// Len is the number of samples.
func (s *Set) Len() int { return len(s.idEnds) }

// SampleID returns the id of sample i, 0 <= i < Len().
func (s *Set) SampleID(i int) string {
	return string(s.idBytes(i))
}

func (s *Set) idBytes(i int) []byte {
	start := uint32(0)
	if i > 0 {
		start = s.idEnds[i-1]
	}
	return s.ids[start:s.idEnds[i]]
}

// Index returns the position of the sample with this id.
func (s *Set) Index(sampleID string) (int, bool) {
	if !s.indexed {
		return s.search(sampleID)
	}
	return s.index.find(s, sampleID)
}

// search finds id by binary search; the ids must ascend (!s.indexed).
func (s *Set) search(id string) (int, bool) {
	i := sort.Search(s.Len(), func(i int) bool { return string(s.idBytes(i)) >= id })
	return i, i < s.Len() && string(s.idBytes(i)) == id
}

// indexBytes is Index for an id held as bytes (another set's).
func (s *Set) indexBytes(id []byte) (int, bool) {
	if !s.indexed {
		return s.search(string(id))
	}
	return s.index.findBytes(s, id)
}

// follows reports whether id sorts strictly after the last id of s (true
// for an empty s): then it is new, and the ids still ascend.
func (s *Set) follows(id string) bool {
	n := s.Len()
	return n == 0 || id > string(s.idBytes(n-1))
}

// followsBytes is follows for an id held as bytes.
func (s *Set) followsBytes(id []byte) bool {
	n := s.Len()
	return n == 0 || string(id) > string(s.idBytes(n-1))
}

// buildIndex indexes every id of s; they must be unique.
func (s *Set) buildIndex() {
	s.index.reserve(s, s.Len())
	for i := range s.Len() {
		s.index.insert(s, i)
	}
	s.indexed = true
}

// NoMatch is the position MatchSamples gives a sample the other set lacks.
const NoMatch = math.MaxUint32

// MatchSamples joins s to o by sample id: pos[i] is the position in o of
// sample i of s, or NoMatch if o has no sample with its id. When both sets
// hold the same ids in the same order (two runs scored on one test set,
// written in the same order, the usual case) it returns nil and same =
// true without looking up a single id: sample i is sample i. A comparison
// of several metrics joins once and reuses the answer.
func (s *Set) MatchSamples(o *Set) (pos []uint32, same bool) {
	if slices.Equal(s.idEnds, o.idEnds) && string(s.ids) == string(o.ids) {
		return nil, true
	}
	pos = make([]uint32, s.Len())
	if !s.indexed && !o.indexed {
		// Both ascend: one merge, no lookups.
		k := 0
		for i := range pos {
			id := s.idBytes(i)
			for k < o.Len() && string(o.idBytes(k)) < string(id) {
				k++
			}
			pos[i] = NoMatch
			if k < o.Len() && string(o.idBytes(k)) == string(id) {
				pos[i] = uint32(k)
			}
		}
		return pos, false
	}
	for i := range pos {
		k, ok := o.indexBytes(s.idBytes(i))
		if !ok {
			k = NoMatch
		}
		pos[i] = uint32(k)
	}
	return pos, false
}

// Metrics returns the per-sample metric names, sorted.
func (s *Set) Metrics() []string { return slices.Clone(s.metrics) }

func (s *Set) metricIndex(name string) (int, bool) {
	return slices.BinarySearch(s.metrics, name)
}

// Column returns the values of one metric, indexed like the samples, NaN
// where a sample lacks it; false if no sample has the metric. The slice is
// the Set's own: read it, never write it.
func (s *Set) Column(name string) ([]float64, bool) {
	j, ok := s.metricIndex(name)
	if !ok {
		return nil, false
	}
	return s.columns[j], true
}

// Value returns metric name of sample i, and false if the sample lacks it.
func (s *Set) Value(name string, i int) (float64, bool) {
	j, ok := s.metricIndex(name)
	if !ok {
		return 0, false
	}
	v := s.columns[j][i]
	return v, !math.IsNaN(v)
}

// Present returns how many samples have the metric.
func (s *Set) Present(name string) int {
	j, ok := s.metricIndex(name)
	if !ok {
		return 0
	}
	return s.present[j]
}

// RunMetrics returns a copy of the run-level metrics.
func (s *Set) RunMetrics() map[string]float64 {
	out := make(map[string]float64, len(s.run))
	for k, v := range s.run {
		out[k] = v
	}
	return out
}

// Size is the set's size as Limits.MaxBytes counts it: the bytes of the
// sample ids plus 8 per sample and metric.
func (s *Set) Size() int64 {
	return int64(len(s.ids)) + 8*int64(s.Len())*int64(len(s.metrics))
}

// Equal reports whether two sets hold the same samples in the same order
// with bit-identical values and the same run metrics.
func (s *Set) Equal(o *Set) bool {
	if s.Len() != o.Len() || !slices.Equal(s.metrics, o.metrics) || len(s.run) != len(o.run) {
		return false
	}
	if string(s.ids) != string(o.ids) || !slices.Equal(s.idEnds, o.idEnds) {
		return false
	}
	for j := range s.columns {
		a, b := s.columns[j], o.columns[j]
		for i := range a {
			if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
				return false
			}
		}
	}
	for k, v := range s.run {
		w, ok := o.run[k]
		if !ok || math.Float64bits(v) != math.Float64bits(w) {
			return false
		}
	}
	return true
}

// Info summarises a set without its values.
type Info struct {
	Samples    int
	Metrics    []MetricInfo // sorted by name
	RunMetrics map[string]float64
}

// MetricInfo is one per-sample metric and how many samples have it.
type MetricInfo struct {
	Name    string
	Present int
}

// Info summarises s.
func (s *Set) Info() *Info {
	in := &Info{Samples: s.Len(), RunMetrics: s.RunMetrics()}
	for j, name := range s.metrics {
		in.Metrics = append(in.Metrics, MetricInfo{Name: name, Present: s.present[j]})
	}
	return in
}

func sortedKeys(m map[string]float64) []string {
	return slices.Sorted(maps.Keys(m))
}
