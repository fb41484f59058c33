package results

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"

	"github.com/sopilot/sopilot/internal/jsonscan"
)

// Parse reads a results file: JSON lines, one object per line, each either
// a record of one sample or a run_metrics line (docs/results.md). A record
// has a "sample_id" string and its values either as top-level keys (the
// flat shape) or in a "values" object (the shape of the API's ResultRecord):
//
//	{"sample_id": "img-0017", "correct": 1, "loss": 0.231}
//	{"sample_id": "img-0018", "values": {"correct": 0, "loss": 1.92}}
//	{"run_metrics": {"accuracy": 0.97}}
//
// Values are JSON numbers; true and false count as 1 and 0, and null means
// the sample lacks that metric. Blank lines are skipped. Parse stops at the
// first problem and returns an *Error with its line number; a read error is
// returned wrapped as it is.
func Parse(r io.Reader, l Limits) (*Set, error) {
	rd := NewReader(r, l)
	if err := rd.advance(math.MaxInt); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return rd.Finish()
}

// Reader parses a results file as Parse does, a batch of records at a
// time, so that a caller can send each batch on while it parses the next
// (sopilot results upload). Every record is checked against the ones
// before it as it is read (a duplicate sample_id anywhere is found), but a
// problem on a later line is only found when that line is read: a caller
// that streams batches must be able to discard what it already sent. A
// Reader is not safe for concurrent use; the batches it returns are.
type Reader struct {
	sc      *bufio.Scanner
	p       lineParser
	maxLine int
	line    int
	offset  int64
	// lineOf[i] is the line of records[i], so a duplicate sample_id can
	// name the line that used it first.
	lineOf  []uint32
	handed  int                // records already returned in batches
	pending map[string]float64 // run metrics read since the last batch
	err     error              // sticky: the first error, or io.EOF
}

// NewReader returns a Reader of r with limits l (zero fields: defaults).
func NewReader(r io.Reader, l Limits) *Reader {
	l = l.withDefaults()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, min(256<<10, l.MaxLineBytes)), l.MaxLineBytes)
	return &Reader{sc: sc, p: lineParser{b: NewBuilder(l)}, maxLine: l.MaxLineBytes}
}

// Batch is a run of consecutive records a Reader parsed, in the form of
// the API's ResultColumns, with the run metrics read since the previous
// batch. Its slices are its own (values are the final set's, never
// written again) and safe to read while the Reader goes on.
type Batch struct {
	Columns
	// RunMetrics holds the run_metrics read since the previous batch; nil
	// if none.
	RunMetrics map[string]float64
	// Offset is about how many bytes of the input were read to its end
	// (each line and its newline).
	Offset int64
}

// Next reads up to n more records (and any run_metrics lines among them)
// and returns them. At the end of the input it returns the last records
// with a nil error, then an empty Batch and io.EOF; a bad line returns its
// *Error, and every call after an error returns it again. The records of
// earlier batches are not affected by a later error, so a caller that
// needs all or nothing must undo them itself (the API's stream stores
// nothing unless it is closed).
func (r *Reader) Next(n int) (Batch, error) {
	err := r.advance(max(n, 1))
	if err != nil && !errors.Is(err, io.EOF) {
		return Batch{}, err
	}
	batch := r.batch()
	if err != nil && len(batch.IDs) == 0 && batch.RunMetrics == nil {
		return Batch{Offset: r.offset}, err
	}
	return batch, nil
}

// advance parses lines until n more records were read, the input ends
// (io.EOF) or a line is bad.
func (r *Reader) advance(n int) error {
	if r.err != nil {
		return r.err
	}
	b := r.p.b
	stop := b.Len() + min(n, math.MaxInt-b.Len())
	for b.Len() < stop {
		if !r.sc.Scan() {
			r.err = io.EOF
			if err := r.sc.Err(); err != nil {
				r.err = fmt.Errorf("read results: %w", err)
				if errors.Is(err, bufio.ErrTooLong) {
					r.err = &Error{Line: r.line + 1, Record: -1, FirstRecord: -1, Reason: fmt.Sprintf("line is longer than %d bytes", r.maxLine), kind: ErrInvalid}
				}
			}
			return r.err
		}
		r.line++
		if r.line > math.MaxUint32 {
			r.err = &Error{Line: r.line, Record: -1, FirstRecord: -1, Reason: "more than 2^32 lines", kind: ErrInvalid}
			return r.err
		}
		text := r.sc.Bytes()
		r.offset += int64(len(text)) + 1
		if r.line == 1 {
			text = bytes.TrimPrefix(text, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark
		}
		if blank(text) {
			continue
		}
		isRecord, err := r.p.parse(text)
		if err != nil {
			err.Line = r.line
			if err.FirstRecord >= 0 {
				err.FirstLine = int(r.lineOf[err.FirstRecord])
				err.Reason = fmt.Sprintf("duplicate sample_id %q, first used on line %d", r.p.idBuf, err.FirstLine)
			}
			r.err = err
			return err
		}
		if isRecord {
			r.lineOf = append(r.lineOf, uint32(r.line))
			continue
		}
		for _, f := range r.p.run {
			if !f.absent {
				if r.pending == nil {
					r.pending = map[string]float64{}
				}
				r.pending[f.name] = f.value
			}
		}
	}
	return nil
}

// batch returns the records read since the last batch and the pending run
// metrics.
func (r *Reader) batch() Batch {
	s := r.p.b.set
	start, end := r.handed, s.Len()
	r.handed = end
	out := Batch{RunMetrics: r.pending, Offset: r.offset}
	r.pending = nil
	if start == end {
		return out
	}
	// One string holds the batch's ids; each id is a piece of it.
	var from uint32
	if start > 0 {
		from = s.idEnds[start-1]
	}
	all := string(s.ids[from:s.idEnds[end-1]])
	out.IDs = make([]string, end-start)
	for i := range out.IDs {
		lo := from
		if i > 0 {
			lo = s.idEnds[start+i-1]
		}
		out.IDs[i] = all[lo-from : s.idEnds[start+i]-from]
	}
	for j, name := range r.p.b.names {
		values := s.columns[j][start:end:end]
		col := Column{Name: name, Values: values}
		for i, v := range values {
			if math.IsNaN(v) {
				col.Absent = append(col.Absent, uint32(i))
			}
		}
		if len(col.Absent) < len(values) {
			out.Metrics = append(out.Metrics, col)
		}
	}
	return out
}

// Finish reads the rest of the input and returns the whole Set, as Parse
// would have; after an error it returns that error.
func (r *Reader) Finish() (*Set, error) {
	if err := r.advance(math.MaxInt); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return r.p.b.Finish()
}

func blank(line []byte) bool {
	for _, c := range line {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}

// lineParser reads one line's JSON object. It is a small hand-written
// scanner for exactly the grammar results lines use (an object of strings,
// numbers, booleans, nulls and one level of nested objects): it rejects
// duplicate keys, which encoding/json would silently resolve, and it does
// not allocate per key or value, which matters at millions of lines.
// FuzzParse checks that every line it accepts is valid JSON.
type lineParser struct {
	b      *Builder
	line   []byte
	pos    int
	str    []byte  // the string last read
	fields []field // the record's values
	run    []field // the line's run metrics
	record int     // index the record on this line would get
	idBuf  []byte  // its sample_id
}

// parse reads one non-blank line into the Builder and reports whether it
// was a record (the other kind is a run_metrics line).
func (p *lineParser) parse(line []byte) (bool, *Error) {
	p.line, p.pos = line, 0
	p.fields, p.run = p.fields[:0], p.run[:0]
	p.record, p.idBuf = p.b.Len(), p.idBuf[:0]
	var haveID, haveValues, flat, haveRunMetrics, emptyValue bool
	p.ws()
	if !p.consume('{') {
		return false, p.syntax("a line must be one JSON object")
	}
	p.ws()
	if p.consume('}') {
		return false, invalid(-1, "", "empty object; a line is a record with a sample_id or a run_metrics line")
	}
	for {
		p.ws()
		if err := p.readString(); err != nil {
			return false, err
		}
		p.ws()
		if !p.consume(':') {
			return false, p.syntax("expected ':' after a key")
		}
		p.ws()
		switch string(p.str) {
		case "sample_id":
			if haveID {
				return false, invalid(p.record, "sample_id", "key appears twice in the line")
			}
			haveID = true
			if p.peek() != '"' {
				return false, invalid(p.record, "sample_id", "must be a string, got %s", p.kind())
			}
			if err := p.readString(); err != nil {
				return false, err
			}
			p.idBuf = append(p.idBuf, p.str...)
		case "values":
			if haveValues {
				return false, invalid(p.record, "values", "key appears twice in the line")
			}
			haveValues = true
			if p.peek() != '{' {
				return false, invalid(p.record, "values", "must be an object of metric names to numbers, got %s", p.kind())
			}
			n := len(p.fields)
			if err := p.readObject(&p.fields, false); err != nil {
				return false, err
			}
			emptyValue = len(p.fields) == n
		case "run_metrics":
			if haveRunMetrics {
				return false, invalid(-1, "run_metrics", "key appears twice in the line")
			}
			haveRunMetrics = true
			if p.peek() != '{' {
				return false, invalid(-1, "run_metrics", "must be an object of metric names to numbers, got %s", p.kind())
			}
			if err := p.readObject(&p.run, true); err != nil {
				return false, err
			}
		default:
			flat = true
			if err := p.readField(&p.fields, false); err != nil {
				return false, err
			}
		}
		p.ws()
		if p.consume(',') {
			continue
		}
		if p.consume('}') {
			break
		}
		return false, p.syntax("expected ',' or '}'")
	}
	p.ws()
	if p.pos != len(p.line) {
		return false, p.syntax("unexpected text after the object")
	}

	if haveRunMetrics {
		if haveID || haveValues || flat {
			return false, invalid(-1, "", "a run_metrics line must have no other keys")
		}
		for _, f := range p.run {
			if f.absent {
				continue
			}
			if err := p.b.addRunMetric(f.name, f.value); err != nil {
				return false, err
			}
		}
		return false, nil
	}
	switch {
	case !haveID:
		return false, invalid(p.record, "sample_id", "missing; every record needs a sample_id string")
	case haveValues && flat:
		return false, invalid(p.record, "", "has both a values object and top-level values; use one shape per line")
	case haveValues && emptyValue:
		return false, invalid(p.record, "values", "empty; a record needs at least one metric")
	}
	// The id is a view of idBuf: add copies what it keeps, and a line
	// allocates no string for it.
	if err := p.b.add(unsafe.String(unsafe.SliceData(p.idBuf), len(p.idBuf)), p.fields); err != nil {
		return false, err
	}
	return true, nil
}

// readObject reads {"name": value, ...} into fields.
func (p *lineParser) readObject(fields *[]field, run bool) *Error {
	p.consume('{')
	p.ws()
	if p.consume('}') {
		return nil
	}
	for {
		p.ws()
		if err := p.readString(); err != nil {
			return err
		}
		p.ws()
		if !p.consume(':') {
			return p.syntax("expected ':' after a key")
		}
		p.ws()
		if err := p.readField(fields, run); err != nil {
			return err
		}
		p.ws()
		if p.consume(',') {
			continue
		}
		if p.consume('}') {
			return nil
		}
		return p.syntax("expected ',' or '}'")
	}
}

// readField reads the value of the key in p.str into fields.
func (p *lineParser) readField(fields *[]field, run bool) *Error {
	name, col := p.b.intern(p.str, len(*fields))
	if run {
		col = 0 // run metrics have no column
	}
	limit := p.b.lim.MaxMetrics
	if run {
		limit = p.b.lim.MaxRunMetrics
	}
	// The field's name is only spelled out for an error: building it for
	// every value would be most of what a line allocates.
	bad := func(format string, args ...any) *Error {
		if run {
			return invalid(-1, RunMetricsField(name), format, args...)
		}
		return invalid(p.record, ValuesField(name), format, args...)
	}
	for _, f := range *fields {
		if f.name == name {
			return bad("key appears twice in the line")
		}
	}
	if len(*fields) >= limit {
		return bad("more than %d values in one line", limit)
	}
	f := field{name: name, col: col}
	switch c := p.peek(); {
	case c == '-' || c >= '0' && c <= '9':
		v, err := p.readNumber()
		if err != nil {
			return bad("%s", err)
		}
		f.value = v
	case p.literal("true"):
		f.value = 1
	case p.literal("false"):
		f.value = 0
	case p.literal("null"):
		f.absent = true
	default:
		return bad("must be a number, true, false or null, got %s", p.kind())
	}
	*fields = append(*fields, f)
	return nil
}

func (p *lineParser) ws() { p.pos = jsonscan.SkipSpace(p.line, p.pos) }

func (p *lineParser) peek() byte {
	if p.pos < len(p.line) {
		return p.line[p.pos]
	}
	return 0
}

func (p *lineParser) consume(c byte) bool {
	if p.peek() == c {
		p.pos++
		return true
	}
	return false
}

func (p *lineParser) literal(lit string) bool {
	if bytes.HasPrefix(p.line[p.pos:], []byte(lit)) {
		p.pos += len(lit)
		return true
	}
	return false
}

// kind names the JSON value starting at pos, for error messages.
func (p *lineParser) kind() string {
	switch c := p.peek(); {
	case c == '"':
		return "a string"
	case c == '{':
		return "an object"
	case c == '[':
		return "an array"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	case c == '-' || c >= '0' && c <= '9':
		return "a number"
	case c == 0 && p.pos >= len(p.line):
		return "the end of the line"
	}
	return fmt.Sprintf("%q", p.peek())
}

func (p *lineParser) syntax(msg string) *Error {
	return invalid(-1, "", "invalid JSON at column %d: %s", p.pos+1, msg)
}

// readString reads a JSON string at pos into p.str, unescaped.
func (p *lineParser) readString() *Error {
	if !p.consume('"') {
		return p.syntax("expected a string key")
	}
	p.str = p.str[:0]
	for {
		start := p.pos
		for p.pos < len(p.line) {
			c := p.line[p.pos]
			if c == '"' || c == '\\' || c < 0x20 {
				break
			}
			p.pos++
		}
		p.str = append(p.str, p.line[start:p.pos]...)
		if p.pos >= len(p.line) {
			return p.syntax("unterminated string")
		}
		switch c := p.line[p.pos]; {
		case c == '"':
			p.pos++
			return nil
		case c < 0x20:
			return p.syntax("control character in a string")
		}
		// A backslash escape.
		escape := p.pos
		p.pos++
		if p.pos >= len(p.line) {
			return p.syntax("unterminated string")
		}
		c := p.line[p.pos]
		p.pos++
		switch c {
		case '"', '\\', '/':
			p.str = append(p.str, c)
		case 'b':
			p.str = append(p.str, '\b')
		case 'f':
			p.str = append(p.str, '\f')
		case 'n':
			p.str = append(p.str, '\n')
		case 'r':
			p.str = append(p.str, '\r')
		case 't':
			p.str = append(p.str, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return p.syntax(`\u must be followed by 4 hex digits`)
			}
			if utf16.IsSurrogate(r) {
				var r2 rune = -1
				if bytes.HasPrefix(p.line[p.pos:], []byte(`\u`)) {
					p.pos += 2
					if r2, ok = p.hex4(); !ok {
						return p.syntax(`\u must be followed by 4 hex digits`)
					}
				}
				if r = utf16.DecodeRune(r, r2); r == utf8.RuneError {
					p.pos = escape
					return p.syntax("unpaired UTF-16 surrogate in a \\u escape")
				}
			}
			p.str = utf8.AppendRune(p.str, r)
		default:
			return p.syntax(fmt.Sprintf("invalid escape \\%c", c))
		}
	}
}

func (p *lineParser) hex4() (rune, bool) {
	if p.pos+4 > len(p.line) {
		return 0, false
	}
	var r rune
	for _, c := range p.line[p.pos : p.pos+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	p.pos += 4
	return r, true
}

// readNumber reads a number in JSON's grammar (strconv.ParseFloat alone
// would also take "Inf", "0x1p3" or "1_000") and returns it if finite.
// Numbers of at most 15 significant digits and a small decimal exponent
// (0, 1, 0.231, 12.5e-3: what results files mostly hold) are converted
// here from the digits the scan collects (exactFloat); the others go to
// strconv.ParseFloat. Both give the correctly rounded float64.
func (p *lineParser) readNumber() (float64, error) {
	start := p.pos
	var mant uint64 // the significant digits, while there are at most 19
	ndigits := 0    // digits in mant, leading zeros excluded
	exp10 := 0      // the decimal exponent mant needs: digits after '.', minus
	digits := func(fraction bool) int {
		n := 0
		for p.pos < len(p.line) && p.line[p.pos] >= '0' && p.line[p.pos] <= '9' {
			if d := p.line[p.pos] - '0'; ndigits > 0 || d != 0 {
				if ndigits < 19 {
					mant = mant*10 + uint64(d)
				}
				ndigits++
			}
			if fraction {
				exp10--
			}
			p.pos++
			n++
		}
		return n
	}
	neg := p.consume('-')
	switch {
	case p.consume('0'):
	case digits(false) > 0:
	default:
		return 0, errors.New("malformed number")
	}
	if p.consume('.') && digits(true) == 0 {
		return 0, errors.New("malformed number: no digits after '.'")
	}
	fast := true
	if p.consume('e') || p.consume('E') {
		fast = false // rare in results files: strconv reads the exponent
		if !p.consume('+') {
			p.consume('-')
		}
		if digits(false) == 0 {
			return 0, errors.New("malformed number: no digits in the exponent")
		}
	}
	text := p.line[start:p.pos]
	if c := p.peek(); c >= '0' && c <= '9' {
		return 0, fmt.Errorf("malformed number %s%c: leading zero", text, c)
	}
	if fast {
		if v, ok := exactFloat(mant, ndigits, exp10, neg); ok {
			return v, nil
		}
	}
	v, err := strconv.ParseFloat(string(text), 64)
	if err != nil || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%s is beyond the range of a float64", text)
	}
	return v, nil
}

// exactPow10 are the powers of ten a float64 holds exactly.
var exactPow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// exactFloat is mant × 10^exp10 (negated if neg) when it can be computed
// exactly rounded in one step (Clinger's fast path, as strconv's own):
// mant has at most 15 digits, so it is an exact float64, and 10^-exp10 is
// an exact power of ten; one IEEE division of two exact values is rounded
// correctly.
func exactFloat(mant uint64, ndigits, exp10 int, neg bool) (float64, bool) {
	if ndigits > 15 || exp10 > 0 || -exp10 >= len(exactPow10) {
		return 0, false
	}
	v := float64(mant) / exactPow10[-exp10]
	if neg {
		v = -v
	}
	return v, true
}

// WriteJSONL writes s in the flat line shape Parse reads: one record per
// sample in order, keys sorted, absent values left out, then one
// run_metrics line if there are run metrics. Numbers are written in the
// shortest form that parses back to the same float64.
func (s *Set) WriteJSONL(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	var line []byte
	for i := range s.Len() {
		line = append(line[:0], `{"sample_id":`...)
		line = appendJSONString(line, s.idBytes(i))
		for j, name := range s.metrics {
			v := s.columns[j][i]
			if math.IsNaN(v) {
				continue
			}
			line = append(line, ',', '"')
			line = append(line, name...)
			line = append(line, '"', ':')
			line = strconv.AppendFloat(line, v, 'g', -1, 64)
		}
		line = append(line, '}', '\n')
		if _, err := bw.Write(line); err != nil {
			return err
		}
	}
	if len(s.run) > 0 {
		line = append(line[:0], `{"run_metrics":{`...)
		for k, name := range sortedKeys(s.run) {
			if k > 0 {
				line = append(line, ',')
			}
			line = append(line, '"')
			line = append(line, name...)
			line = append(line, '"', ':')
			line = strconv.AppendFloat(line, s.run[name], 'g', -1, 64)
		}
		line = append(line, '}', '}', '\n')
		if _, err := bw.Write(line); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// appendJSONString quotes a valid sample id. Ids hold no control
// characters, so only the quote and the backslash need escaping.
func appendJSONString(dst, s []byte) []byte {
	dst = append(dst, '"')
	for _, c := range s {
		if c == '"' || c == '\\' {
			dst = append(dst, '\\')
		}
		dst = append(dst, c)
	}
	return append(dst, '"')
}
