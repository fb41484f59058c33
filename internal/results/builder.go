package results

import (
	"bytes"
	"fmt"
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
	col    int // 1 + the metric's column when the caller knows it; 0: look it up
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
	ascending := !s.indexed && s.follows(id)
	var h uint64
	if !ascending {
		if !s.indexed {
			s.buildIndex() // the first id out of order
		}
		h = s.index.hash(id)
		if first, dup := s.index.findHashed(s, id, h); dup {
			e := invalid(rec, "sample_id", "duplicate sample_id %q, first used by records[%d]", id, first)
			e.FirstRecord = first
			return e
		}
	}
	present, newMetrics := 0, 0
	var firstNew string
	cols := b.cols[:0] // column of each field; -1 for a new metric
	for _, f := range fields {
		j, known := f.col-1, f.col > 0
		if !known {
			if j, known = b.columns[f.name]; !known {
				j = -1
			}
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
	if !ascending {
		s.index.insertHashed(s, rec, h)
	}
	return nil
}

// intern returns the metric name in name as a string, and 1 + its column
// if it is a known metric (0 if not), reusing the known metric's string so
// a parsed line allocates none. hint is the column to try first: lines
// usually name their metrics in the same order, so the k-th value of a
// line is usually column k, found without hashing.
func (b *Builder) intern(name []byte, hint int) (string, int) {
	if hint < len(b.names) && string(name) == b.names[hint] {
		return b.names[hint], hint + 1
	}
	if j, ok := b.columns[string(name)]; ok {
		return b.names[j], j + 1
	}
	return string(name), 0
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
// over the Set's own id bytes, far smaller than a map[string]int of
// millions of ids. A slot is 8 bytes: the sample position + 1 in the low
// half (0: empty) and the top 32 bits of the id's hash in the high half.
// The top bits of the hash also pick the first slot to probe, so a probe
// compares id bytes (a random read elsewhere in memory) only when the hash
// bits match, and growing the table moves slots without hashing ids again.
// At most 3/4 full.
type idIndex struct {
	seed  maphash.Seed
	slots []uint64
	bits  uint // len(slots) == 1<<bits
	n     int
}

func newIDIndex() idIndex { return idIndex{seed: maphash.MakeSeed()} }

func (x *idIndex) hash(id string) uint64 { return maphash.String(x.seed, id) }

func (x *idIndex) hashBytes(id []byte) uint64 { return maphash.Bytes(x.seed, id) }

// home is the first slot to probe for hash h.
func (x *idIndex) home(h uint64) uint64 { return h >> (64 - x.bits) }

// find returns the position of id in s.
func (x *idIndex) find(s *Set, id string) (int, bool) {
	return x.findHashed(s, id, x.hash(id))
}

// findBytes is find for an id held as bytes (another set's), without
// converting it to a string.
func (x *idIndex) findBytes(s *Set, id []byte) (int, bool) {
	if len(x.slots) == 0 {
		return 0, false
	}
	h := x.hashBytes(id)
	mask, tag := uint64(len(x.slots)-1), h>>32
	for i := x.home(h); ; i = (i + 1) & mask {
		v := x.slots[i]
		if v == 0 {
			return 0, false
		}
		if v>>32 == tag && bytes.Equal(s.idBytes(int(uint32(v)-1)), id) {
			return int(uint32(v) - 1), true
		}
	}
}

func (x *idIndex) findHashed(s *Set, id string, h uint64) (int, bool) {
	if len(x.slots) == 0 {
		return 0, false
	}
	mask, tag := uint64(len(x.slots)-1), h>>32
	for i := x.home(h); ; i = (i + 1) & mask {
		v := x.slots[i]
		if v == 0 {
			return 0, false
		}
		if v>>32 == tag && string(s.idBytes(int(uint32(v)-1))) == id {
			return int(uint32(v) - 1), true
		}
	}
}

// insert adds sample pos of s; if another sample already has its id, it
// adds nothing and returns that sample's position.
func (x *idIndex) insert(s *Set, pos int) (dupOf int, dup bool) {
	return x.insertHashed(s, pos, x.hashBytes(s.idBytes(pos)))
}

// insertHashed is insert with the id's hash h already computed.
func (x *idIndex) insertHashed(s *Set, pos int, h uint64) (dupOf int, dup bool) {
	if (x.n+1)*4 > len(x.slots)*3 {
		x.grow(s, x.n+1)
	}
	id := s.idBytes(pos)
	mask, tag := uint64(len(x.slots)-1), h>>32
	for i := x.home(h); ; i = (i + 1) & mask {
		v := x.slots[i]
		if v == 0 {
			x.slots[i] = tag<<32 | uint64(pos+1)
			x.n++
			return 0, false
		}
		if v>>32 == tag && bytes.Equal(s.idBytes(int(uint32(v)-1)), id) {
			return int(uint32(v) - 1), true
		}
	}
}

// reserve grows the table for n entries in all.
func (x *idIndex) reserve(s *Set, n int) {
	if n*4 > len(x.slots)*3 {
		x.grow(s, n)
	}
}

// grow makes the table large enough for n entries (at least twice its
// size). Up to 2^32 slots the stored hash bits give each slot's new home;
// beyond, ids are hashed again.
func (x *idIndex) grow(s *Set, n int) {
	bits := max(4, x.bits+1)
	for (1<<bits)*3 < n*4 {
		bits++
	}
	old := x.slots
	x.slots, x.bits = make([]uint64, 1<<bits), bits
	mask := uint64(len(x.slots) - 1)
	for _, v := range old {
		if v == 0 {
			continue
		}
		var i uint64
		if bits <= 32 {
			i = (v >> 32) >> (32 - bits)
		} else {
			i = x.home(x.hashBytes(s.idBytes(int(uint32(v) - 1))))
		}
		for x.slots[i] != 0 {
			i = (i + 1) & mask
		}
		x.slots[i] = v
	}
}

// Columns is a batch of samples in columns, the compact form of the API's
// ResultColumns: sample IDs[i] has Metrics[j].Values[i] for every metric j,
// except at the positions Metrics[j].Absent lists.
type Columns struct {
	IDs     []string
	Metrics []Column
}

// Column is one metric's values for a Columns batch.
type Column struct {
	Name string
	// Values has one value per sample id; those at Absent positions are
	// ignored.
	Values []float64
	// Absent lists the positions (0-based within the batch, strictly
	// ascending) of the samples without a value for this metric.
	Absent []uint32
}

// AddColumns appends a batch of samples. The batch's shape is checked
// first: a column whose length differs from the ids', a bad or repeated
// metric name, or Absent positions out of order or out of range return an
// *Error whose Field names the column (columns.metrics[1].values) and
// whose Record is -1, and add nothing. Then every sample is checked and
// added in order with the rules of Add, so a bad sample returns the *Error
// Add would for it (records[17].values["loss"], counted across all
// records), after the samples before it were added.
func (b *Builder) AddColumns(c Columns) error {
	if err := b.addColumns(c); err != nil {
		return err
	}
	return nil
}

func (b *Builder) addColumns(c Columns) *Error {
	if b.done {
		return invalid(-1, "", "builder already finished")
	}
	n := len(c.IDs)
	order := make([]int, len(c.Metrics)) // columns in name order
	for j, col := range c.Metrics {
		field := fmt.Sprintf("columns.metrics[%d]", j)
		if msg := validateName(col.Name); msg != "" {
			return invalid(-1, field+".name", "%s", msg)
		}
		if len(col.Values) != n {
			return invalid(-1, field+".values", "%d values for %d sample_ids; want one per sample id", len(col.Values), n)
		}
		for k, p := range col.Absent {
			switch {
			case int64(p) >= int64(n):
				return invalid(-1, fmt.Sprintf("%s.absent[%d]", field, k), "position %d is past the batch's %d samples", p, n)
			case k > 0 && p <= col.Absent[k-1]:
				return invalid(-1, fmt.Sprintf("%s.absent[%d]", field, k), "positions must ascend strictly; %d follows %d", p, col.Absent[k-1])
			}
		}
		order[j] = j
	}
	slices.SortFunc(order, func(x, y int) int { return strings.Compare(c.Metrics[x].Name, c.Metrics[y].Name) })
	for k := 1; k < len(order); k++ {
		if c.Metrics[order[k]].Name == c.Metrics[order[k-1]].Name {
			return invalid(-1, fmt.Sprintf("columns.metrics[%d].name", max(order[k], order[k-1])), "metric %q appears twice in the batch", c.Metrics[order[k]].Name)
		}
	}
	if n > 0 && len(c.Metrics) == 0 {
		return invalid(-1, "columns.metrics", "%d sample_ids and no metric; a sample needs at least one value", n)
	}
	b.reserve(n)
	next := make([]int, len(order)) // per column: index of its next Absent entry
	fields := b.fields[:0]
	for i, id := range c.IDs {
		fields = fields[:0]
		for k, j := range order {
			col := &c.Metrics[j]
			f := field{name: col.Name, value: col.Values[i]}
			if a := col.Absent; next[k] < len(a) && int(a[next[k]]) == i {
				f.absent = true
				next[k]++
			}
			fields = append(fields, f)
		}
		if err := b.add(id, fields); err != nil {
			b.fields = fields
			return err
		}
	}
	b.fields = fields
	return nil
}

// reserve makes room for n more samples in the set's slices, so that a
// batch grows them once rather than by repeated doubling.
func (b *Builder) reserve(n int) {
	s := b.set
	n = min(n, b.lim.MaxSamples-s.Len())
	if n <= 0 {
		return
	}
	// At least double (within MaxSamples): batch after batch, growing by
	// exactly n would copy the columns once a batch.
	more := max(n, min(s.Len(), b.lim.MaxSamples-s.Len()))
	s.idEnds = slices.Grow(s.idEnds, more)
	if s.indexed {
		s.index.reserve(s, s.Len()+n)
	}
	for j := range s.columns {
		s.columns[j] = slices.Grow(s.columns[j], more)
	}
}
