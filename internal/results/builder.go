package results

import (
	"bytes"
	"hash/maphash"
	"math"
	"slices"
	"sort"
	"strings"
)

// Builder accumulates records one at a time (the gRPC handler feeds it chunk
// by chunk; Parse feeds it line by line) and checks each against the rules
// and Limits as it arrives. A rejected record or run metric leaves the
// Builder as it was. Finish returns the Set. A Builder is not safe for
// concurrent use.
type Builder struct {
	lim     Limits
	set     *Set
	columns map[string]int // metric name -> column, first-seen order until Finish
	names   []string       // column names in first-seen order
	fields  []field        // scratch for Add
	cols    []int          // scratch for add
	done    bool
}

// field is one named value of a record; absent marks a JSON null.
type field struct {
	name   string
	value  float64
	absent bool
}

// NewBuilder returns an empty Builder with limits l (zero fields: defaults).
func NewBuilder(l Limits) *Builder {
	return &Builder{
		lim:     l.withDefaults(),
		set:     &Set{index: newIDIndex(), run: map[string]float64{}},
		columns: map[string]int{},
	}
}

// Len is the number of records accepted so far; the next record Add sees
// is records[Len()].
func (b *Builder) Len() int { return b.set.Len() }

// Add appends one record: its sample id and its named values. It returns an
// *Error naming the field at fault (sample_id or values["name"]) if the
// record breaks a rule, with ErrTooLarge for MaxSamples and MaxBytes.
// Values are checked in name order, so the error is the same whatever the
// map's order.
func (b *Builder) Add(sampleID string, values map[string]float64) error {
	fields := b.fields[:0]
	for name, v := range values {
		fields = append(fields, field{name: name, value: v})
	}
	slices.SortFunc(fields, func(x, y field) int { return strings.Compare(x.name, y.name) })
	b.fields = fields
	if err := b.add(sampleID, fields); err != nil {
		return err
	}
	return nil
}

// add checks a record completely before changing anything, so a rejected
// record leaves no trace. fields has no repeated names.
func (b *Builder) add(id string, fields []field) *Error {
	if b.done {
		return invalid(-1, "", "builder already finished")
	}
	s, rec := b.set, b.set.Len()
	if msg := validateSampleID(id, b.lim.MaxSampleIDBytes); msg != "" {
		return invalid(rec, "sample_id", "%s", msg)
	}
	if first, dup := s.index.find(s, id); dup {
		e := invalid(rec, "sample_id", "duplicate sample_id %q, first used by records[%d]", id, first)
		e.FirstRecord = first
		return e
	}
	present, newMetrics := 0, 0
	var firstNew string
	cols := b.cols[:0] // column of each field; -1 for a new metric
	for _, f := range fields {
		j, known := b.columns[f.name]
		if !known {
			j = -1
		}
		cols = append(cols, j)
		if !known {
			if msg := validateName(f.name); msg != "" {
				return invalid(rec, ValuesField(f.name), "%s", msg)
			}
		}
		if f.absent {
			continue
		}
		if math.IsNaN(f.value) || math.IsInf(f.value, 0) {
			return invalid(rec, ValuesField(f.name), "must be a finite number, got %v", f.value)
		}
		present++
		if !known {
			if newMetrics == 0 {
				firstNew = f.name
			}
			newMetrics++
		}
	}
	if present == 0 {
		return invalid(rec, "", "record %q has no values; it needs at least one metric besides sample_id", id)
	}
	metrics := len(b.names) + newMetrics
	if metrics > b.lim.MaxMetrics {
		return invalid(rec, ValuesField(firstNew), "a result set may have at most %d distinct metrics; this record brings the count to %d", b.lim.MaxMetrics, metrics)
	}
	if rec >= b.lim.MaxSamples {
		return tooLarge(rec, "more than %d samples", b.lim.MaxSamples)
	}
	size := int64(len(s.ids)+len(id)) + 8*int64(rec+1)*int64(metrics)
	if size > b.lim.MaxBytes {
		return tooLarge(rec, "results would take %d bytes (sample ids plus 8 bytes per value), more than the limit of %d", size, b.lim.MaxBytes)
	}
	if len(s.ids)+len(id) > math.MaxUint32 {
		return tooLarge(rec, "sample ids exceed 4 GiB in total")
	}

	s.ids = append(s.ids, id...)
	s.idEnds = append(s.idEnds, uint32(len(s.ids)))
	for k, f := range fields {
		if f.absent || cols[k] >= 0 {
			continue
		}
		col := make([]float64, rec, rec+1)
		for i := range col {
			col[i] = absent
		}
		cols[k] = len(b.names)
		b.columns[f.name] = cols[k]
		b.names = append(b.names, f.name)
		s.columns = append(s.columns, col)
		s.present = append(s.present, 0)
	}
	for j := range s.columns {
		s.columns[j] = append(s.columns[j], absent)
	}
	for k, f := range fields {
		if !f.absent {
			s.columns[cols[k]][rec] = f.value
			s.present[cols[k]]++
		}
	}
	b.cols = cols
	s.index.insert(s, rec)
	return nil
}

// intern returns the metric name in name as a string, reusing the string
// of a known metric so a parsed line allocates none for them.
func (b *Builder) intern(name []byte) string {
	if j, ok := b.columns[string(name)]; ok {
		return b.names[j]
	}
	return string(name)
}

// AddRunMetric records one run-level metric. Each name may be reported once.
func (b *Builder) AddRunMetric(name string, value float64) error {
	if err := b.addRunMetric(name, value); err != nil {
		return err
	}
	return nil
}

func (b *Builder) addRunMetric(name string, value float64) *Error {
	field := RunMetricsField(name)
	switch {
	case b.done:
		return invalid(-1, "", "builder already finished")
	case validateName(name) != "":
		return invalid(-1, field, "%s", validateName(name))
	case math.IsNaN(value) || math.IsInf(value, 0):
		return invalid(-1, field, "must be a finite number, got %v", value)
	}
	if _, dup := b.set.run[name]; dup {
		return invalid(-1, field, "reported more than once")
	}
	if len(b.set.run) >= b.lim.MaxRunMetrics {
		return invalid(-1, field, "a result set may have at most %d run metrics", b.lim.MaxRunMetrics)
	}
	b.set.run[name] = value
	return nil
}

// Finish returns the Set (metrics sorted by name) and ends the Builder. A
// set needs at least one record or one run metric.
func (b *Builder) Finish() (*Set, error) {
	if b.done {
		return nil, invalid(-1, "", "builder already finished")
	}
	s := b.set
	if s.Len() == 0 && len(s.run) == 0 {
		return nil, invalid(-1, "", "no records and no run_metrics")
	}
	b.done = true
	order := make([]int, len(b.names))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(i, j int) bool { return b.names[order[i]] < b.names[order[j]] })
	s.metrics = make([]string, len(order))
	columns := make([][]float64, len(order))
	present := make([]int, len(order))
	for k, j := range order {
		s.metrics[k], columns[k], present[k] = b.names[j], s.columns[j], s.present[j]
	}
	s.columns, s.present = columns, present
	b.set, b.columns, b.names = nil, nil, nil
	return s, nil
}

// idIndex maps sample ids to their positions: an open-addressing hash table
// of uint32 positions (4 bytes a slot, at most 3/4 full) over the Set's own
// id bytes, far smaller than a map[string]int of millions of ids.
type idIndex struct {
	seed  maphash.Seed
	slots []uint32 // 0: empty; otherwise sample position + 1
	n     int
}

func newIDIndex() idIndex { return idIndex{seed: maphash.MakeSeed()} }

// find returns the position of id in s.
func (x *idIndex) find(s *Set, id string) (int, bool) {
	if len(x.slots) == 0 {
		return 0, false
	}
	mask := uint64(len(x.slots) - 1)
	for i := maphash.String(x.seed, id) & mask; ; i = (i + 1) & mask {
		v := x.slots[i]
		if v == 0 {
			return 0, false
		}
		if string(s.idBytes(int(v-1))) == id {
			return int(v - 1), true
		}
	}
}

// insert adds sample pos of s; if another sample already has its id, it
// adds nothing and returns that sample's position.
func (x *idIndex) insert(s *Set, pos int) (dupOf int, dup bool) {
	if (x.n+1)*4 > len(x.slots)*3 {
		x.grow(s)
	}
	id := s.idBytes(pos)
	mask := uint64(len(x.slots) - 1)
	for i := maphash.Bytes(x.seed, id) & mask; ; i = (i + 1) & mask {
		v := x.slots[i]
		if v == 0 {
			x.slots[i] = uint32(pos + 1)
			x.n++
			return 0, false
		}
		if bytes.Equal(s.idBytes(int(v-1)), id) {
			return int(v - 1), true
		}
	}
}

func (x *idIndex) grow(s *Set) {
	size := max(16, 2*len(x.slots))
	old := x.slots
	x.slots = make([]uint32, size)
	mask := uint64(size - 1)
	for _, v := range old {
		if v == 0 {
			continue
		}
		i := maphash.Bytes(x.seed, s.idBytes(int(v-1))) & mask
		for x.slots[i] != 0 {
			i = (i + 1) & mask
		}
		x.slots[i] = v
	}
}
