package progress

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits on one progress line.
const (
	// MaxLineBytes is the longest line accepted, without its newline.
	MaxLineBytes = 64 << 10
	// MaxMetrics is the most metrics one line may carry, counting the
	// "metrics" object and the numeric top-level keys together.
	MaxMetrics = 64
	// maxDepth bounds the nesting of ignored values.
	maxDepth = 128
)

// Update is one parsed progress line.
type Update struct {
	// Step is the number of optimizer steps done (required, >= 0).
	Step int64
	// TotalSteps is the number of steps the run will take; 0 when the line
	// does not say.
	TotalSteps int64
	// Loss is the training loss, nil when absent.
	Loss *float64
	// SamplesPerSecond is the training throughput (>= 0), nil when absent.
	SamplesPerSecond *float64
	// Time is when the line was written, in UTC. Parse leaves it zero when
	// the line has no "time"; a Tailer sets it to the time of the Poll that
	// read the line.
	Time time.Time
	// Metrics holds the "metrics" object and every other top-level key
	// whose value is a number; nil when there are none.
	Metrics map[string]float64
	// Checkpoint is the path of a checkpoint the job saved after Step
	// steps; empty when the line reports none. A later attempt of the run
	// resumes from it.
	Checkpoint string
}

// MaxCheckpointPathBytes is the longest checkpoint path accepted (Linux's
// PATH_MAX).
const MaxCheckpointPathBytes = 4096

// LatestCheckpoint returns the last update of updates that reports a
// checkpoint, and whether there was one. Progress is latest-wins, but a
// checkpoint must not be lost because a plain progress line followed it
// before the file was read.
func LatestCheckpoint(updates []Update) (Update, bool) {
	for i := len(updates) - 1; i >= 0; i-- {
		if updates[i].Checkpoint != "" {
			return updates[i], true
		}
	}
	return Update{}, false
}

// Latest returns the last of updates (the newest, since a Tailer returns
// them in file order) and whether there was one.
func Latest(updates []Update) (Update, bool) {
	if len(updates) == 0 {
		return Update{}, false
	}
	return updates[len(updates)-1], true
}

// FieldError is why Parse rejected a line. Field names the offending
// top-level key ("step", "metrics.lr", ...), or is empty when the line as a
// whole is at fault (not JSON, not an object, too long).
type FieldError struct {
	Field  string
	Reason string
}

// Error implements error.
func (e *FieldError) Error() string { return "progress: " + e.msg() }

func (e *FieldError) msg() string {
	if e.Field == "" {
		return e.Reason
	}
	return "field " + strconv.Quote(e.Field) + ": " + e.Reason
}

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Parse parses one progress line: a JSON object, optionally surrounded by
// white space (a trailing "\r" included). The format is described in the
// package documentation. Python's json module writes NaN and Infinity for
// non-finite floats; Parse rejects them with an error naming the field
// rather than a bare syntax error.
func Parse(line []byte) (Update, error) {
	var u Update
	if len(line) > MaxLineBytes {
		return u, fieldErr("", "line is %d bytes, longer than the limit of %d", len(line), MaxLineBytes)
	}
	p := parser{b: line}
	p.ws()
	if p.i == len(p.b) {
		return u, fieldErr("", "empty line")
	}
	if p.b[p.i] != '{' {
		return u, fieldErr("", "not a JSON object")
	}
	p.i++
	var (
		haveStep, haveTotal bool
		explicit            map[string]float64 // the "metrics" object
		loose               map[string]float64 // numeric top-level keys
	)
	first := true
	for {
		p.ws()
		if p.i < len(p.b) && p.b[p.i] == '}' && first {
			p.i++
			break
		}
		key, err := p.key()
		if err != nil {
			return u, err
		}
		p.ws()
		if !p.eat(':') {
			return u, p.syntax(key, "expected ':' after the key")
		}
		p.ws()
		start := p.i
		kind, err := p.skip(key, 0)
		if err != nil {
			return u, err
		}
		raw := p.b[start:p.i]
		switch key {
		case "step":
			if kind == kindNull {
				haveStep = false
				break
			}
			n, err := intField(key, kind, raw)
			if err != nil {
				return u, err
			}
			u.Step, haveStep = n, true
		case "total_steps":
			if kind == kindNull {
				u.TotalSteps, haveTotal = 0, false
				break
			}
			n, err := intField(key, kind, raw)
			if err != nil {
				return u, err
			}
			u.TotalSteps, haveTotal = n, true
		case "loss":
			if kind == kindNull {
				u.Loss = nil
				break
			}
			v, err := numField(key, kind, raw)
			if err != nil {
				return u, err
			}
			u.Loss = &v
		case "samples_per_second":
			if kind == kindNull {
				u.SamplesPerSecond = nil
				break
			}
			v, err := numField(key, kind, raw)
			if err != nil {
				return u, err
			}
			if v < 0 {
				return u, fieldErr(key, "must be >= 0, got %v", v)
			}
			u.SamplesPerSecond = &v
		case "time":
			t, err := timeField(key, kind, raw)
			if err != nil {
				return u, err
			}
			u.Time = t
		case "checkpoint":
			c, err := checkpointField(key, kind, raw)
			if err != nil {
				return u, err
			}
			u.Checkpoint = c
		case "metrics":
			m, err := metricsField(raw, kind)
			if err != nil {
				return u, err
			}
			explicit = m
		default:
			switch kind {
			case kindNumber, kindNonFinite:
				v, err := numField(key, kind, raw)
				if err != nil {
					return u, err
				}
				if key == "" {
					return u, fieldErr(key, "a metric needs a non-empty name")
				}
				if loose == nil {
					loose = make(map[string]float64)
				}
				loose[key] = v
			}
		}
		first = false
		p.ws()
		if p.eat(',') {
			continue
		}
		if p.eat('}') {
			break
		}
		return u, p.syntax(key, "expected ',' or '}' after the value")
	}
	p.ws()
	if p.i != len(p.b) {
		return u, p.syntax("", "unexpected data after the object")
	}
	if !haveStep {
		return u, fieldErr("step", "required")
	}
	if haveTotal && u.Step > u.TotalSteps {
		return u, fieldErr("step", "%d is greater than total_steps %d", u.Step, u.TotalSteps)
	}
	// The "metrics" object wins over a top-level key of the same name.
	switch {
	case loose == nil:
		u.Metrics = explicit
	case explicit == nil:
		u.Metrics = loose
	default:
		for k, v := range explicit {
			loose[k] = v
		}
		u.Metrics = loose
	}
	if len(u.Metrics) > MaxMetrics {
		return u, fieldErr("metrics", "%d metrics, more than the limit of %d", len(u.Metrics), MaxMetrics)
	}
	return u, nil
}

// intField reads a non-negative integer. Integral floats (12.0, 1e3) are
// accepted because some writers produce them.
func intField(key string, kind valueKind, raw []byte) (int64, error) {
	if kind != kindNumber && kind != kindNonFinite {
		return 0, fieldErr(key, "must be an integer, got %s", kind)
	}
	if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
		if n < 0 {
			return 0, fieldErr(key, "must be >= 0, got %d", n)
		}
		return n, nil
	}
	v, err := numField(key, kind, raw)
	if err != nil {
		return 0, err
	}
	if v < 0 {
		return 0, fieldErr(key, "must be >= 0, got %v", v)
	}
	if v != math.Trunc(v) || v >= math.MaxInt64 {
		return 0, fieldErr(key, "must be an integer, got %s", raw)
	}
	return int64(v), nil
}

// numField reads a finite number.
func numField(key string, kind valueKind, raw []byte) (float64, error) {
	switch kind {
	case kindNonFinite:
		return 0, fieldErr(key, "must be a finite number, got %s", raw)
	case kindNumber:
	default:
		return 0, fieldErr(key, "must be a number, got %s", kind)
	}
	v, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fieldErr(key, "must be a finite number, got %s", raw)
	}
	return v, nil
}

// Unix-seconds times must lie in [0, maxUnix] (the year 5138): beyond that
// the value is certainly not a time, and time.Unix would lose precision.
const maxUnix = 1e11

// checkpointField reads a checkpoint path: a non-empty string without
// control characters (the path travels to the next job in an environment
// variable, where NUL cannot be and a newline would split the value), at
// most MaxCheckpointPathBytes long. null means none.
func checkpointField(key string, kind valueKind, raw []byte) (string, error) {
	switch kind {
	case kindNull:
		return "", nil
	case kindString:
	default:
		return "", fieldErr(key, "must be a path string, got %s", kind)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fieldErr(key, "invalid string: %v", err)
	}
	switch {
	case s == "":
		return "", fieldErr(key, "must not be empty")
	case len(s) > MaxCheckpointPathBytes:
		return "", fieldErr(key, "path is %d bytes, longer than the limit of %d", len(s), MaxCheckpointPathBytes)
	}
	if i := strings.IndexFunc(s, unicode.IsControl); i >= 0 {
		r, _ := utf8.DecodeRuneInString(s[i:])
		return "", fieldErr(key, "must not contain control characters, found %U", r)
	}
	return s, nil
}

func timeField(key string, kind valueKind, raw []byte) (time.Time, error) {
	switch kind {
	case kindNull:
		return time.Time{}, nil
	case kindString:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return time.Time{}, fieldErr(key, "invalid string: %v", err)
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return time.Time{}, fieldErr(key, "not an RFC 3339 time: %q", s)
		}
		return t.UTC(), nil
	case kindNumber, kindNonFinite:
		v, err := numField(key, kind, raw)
		if err != nil {
			return time.Time{}, err
		}
		if v < 0 || v > maxUnix {
			return time.Time{}, fieldErr(key, "unix seconds %v out of range [0, %g]", v, float64(maxUnix))
		}
		if t, ok := exactUnix(raw); ok {
			return t, nil
		}
		sec, frac := math.Modf(v)
		return time.Unix(int64(sec), int64(math.Round(frac*1e9))).UTC(), nil
	default:
		return time.Time{}, fieldErr(key, "must be an RFC 3339 string or unix seconds, got %s", kind)
	}
}

// exactUnix reads plain decimal unix seconds ("1795951753.066") without
// going through float64, which would turn .066 into .065999985; the
// fraction is truncated to nanoseconds. ok is false for other spellings
// (exponents), which the caller reads as a float. The caller has checked
// the range.
func exactUnix(raw []byte) (time.Time, bool) {
	intPart, frac, _ := bytes.Cut(raw, []byte("."))
	if len(intPart) == 0 || len(intPart) > 12 || bytes.ContainsAny(raw, "eE-+") {
		return time.Time{}, false
	}
	sec, err := strconv.ParseInt(string(intPart), 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	var nsec int64
	for i := 0; i < 9; i++ {
		nsec *= 10
		if i < len(frac) {
			nsec += int64(frac[i] - '0')
		}
	}
	return time.Unix(sec, nsec).UTC(), true
}

// metricsField reads the "metrics" object: names to finite numbers.
func metricsField(raw []byte, kind valueKind) (map[string]float64, error) {
	switch kind {
	case kindNull:
		return nil, nil
	case kindObject:
	default:
		return nil, fieldErr("metrics", "must be an object, got %s", kind)
	}
	p := parser{b: raw, i: 1}
	var m map[string]float64
	for {
		p.ws()
		if p.eat('}') { // the value is known to be well formed
			return m, nil
		}
		name, err := p.key()
		if err != nil {
			return nil, err
		}
		field := "metrics." + name
		if name == "" {
			return nil, fieldErr(field, "a metric needs a non-empty name")
		}
		p.ws()
		p.eat(':')
		p.ws()
		start := p.i
		k, err := p.skip(field, 1)
		if err != nil {
			return nil, err
		}
		v, err := numField(field, k, p.b[start:p.i])
		if err != nil {
			return nil, err
		}
		if m == nil {
			m = make(map[string]float64)
		}
		m[name] = v
		if len(m) > MaxMetrics {
			return nil, fieldErr("metrics", "more than the limit of %d metrics", MaxMetrics)
		}
		p.ws()
		p.eat(',')
	}
}

// valueKind is the JSON type of a value the parser skipped over.
type valueKind int

const (
	kindNull valueKind = iota
	kindBool
	kindNumber
	kindNonFinite // NaN, Infinity, -Infinity, as Python writes them
	kindString
	kindArray
	kindObject
)

func (k valueKind) String() string {
	switch k {
	case kindNull:
		return "null"
	case kindBool:
		return "a boolean"
	case kindNumber:
		return "a number"
	case kindNonFinite:
		return "a non-finite number"
	case kindString:
		return "a string"
	case kindArray:
		return "an array"
	default:
		return "an object"
	}
}

// parser is a small JSON scanner. It validates the syntax of every value
// and decodes only what Parse needs, so that an error can name the field it
// is in and NaN/Infinity can be told apart from garbage.
type parser struct {
	b []byte
	i int
}

func (p *parser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) eat(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *parser) syntax(field, what string) *FieldError {
	if p.i >= len(p.b) {
		return fieldErr(field, "invalid JSON: %s, got the end of the line", what)
	}
	return fieldErr(field, "invalid JSON at byte %d: %s", p.i, what)
}

// key reads an object key and decodes it.
func (p *parser) key() (string, error) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return "", p.syntax("", "expected a string key")
	}
	start := p.i
	escaped, err := p.str("")
	if err != nil {
		return "", err
	}
	raw := p.b[start+1 : p.i-1]
	if !escaped && utf8.Valid(raw) {
		return string(raw), nil
	}
	var s string
	if err := json.Unmarshal(p.b[start:p.i], &s); err != nil {
		return "", fieldErr("", "invalid key %s: %v", p.b[start:p.i], err)
	}
	return s, nil
}

// str skips a string starting at p.i (a '"') and reports whether it has
// escapes.
func (p *parser) str(field string) (escaped bool, err error) {
	p.i++ // opening quote
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return escaped, nil
		case c == '\\':
			escaped = true
			p.i++
			if p.i >= len(p.b) {
				return escaped, p.syntax(field, "unterminated string")
			}
			switch p.b[p.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.i++
			case 'u':
				p.i++
				for j := 0; j < 4; j++ {
					if p.i >= len(p.b) || !isHex(p.b[p.i]) {
						return escaped, p.syntax(field, "invalid \\u escape")
					}
					p.i++
				}
			default:
				return escaped, p.syntax(field, "invalid escape")
			}
		case c < 0x20:
			return escaped, p.syntax(field, "control character in a string")
		default:
			p.i++
		}
	}
	return escaped, p.syntax(field, "unterminated string")
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// skip moves past one value starting at p.i and returns its kind.
func (p *parser) skip(field string, depth int) (valueKind, error) {
	if depth > maxDepth {
		return 0, fieldErr(field, "nested more than %d deep", maxDepth)
	}
	if p.i >= len(p.b) {
		return 0, p.syntax(field, "expected a value")
	}
	switch c := p.b[p.i]; {
	case c == '"':
		_, err := p.str(field)
		return kindString, err
	case c == '{':
		p.i++
		p.ws()
		if p.eat('}') {
			return kindObject, nil
		}
		for {
			p.ws()
			if p.i >= len(p.b) || p.b[p.i] != '"' {
				return 0, p.syntax(field, "expected a string key")
			}
			if _, err := p.str(field); err != nil {
				return 0, err
			}
			p.ws()
			if !p.eat(':') {
				return 0, p.syntax(field, "expected ':' after the key")
			}
			p.ws()
			if _, err := p.skip(field, depth+1); err != nil {
				return 0, err
			}
			p.ws()
			if p.eat(',') {
				continue
			}
			if p.eat('}') {
				return kindObject, nil
			}
			return 0, p.syntax(field, "expected ',' or '}' in an object")
		}
	case c == '[':
		p.i++
		p.ws()
		if p.eat(']') {
			return kindArray, nil
		}
		for {
			p.ws()
			if _, err := p.skip(field, depth+1); err != nil {
				return 0, err
			}
			p.ws()
			if p.eat(',') {
				continue
			}
			if p.eat(']') {
				return kindArray, nil
			}
			return 0, p.syntax(field, "expected ',' or ']' in an array")
		}
	case c == 't':
		return kindBool, p.literal(field, "true")
	case c == 'f':
		return kindBool, p.literal(field, "false")
	case c == 'n':
		return kindNull, p.literal(field, "null")
	case c == 'N':
		return kindNonFinite, p.literal(field, "NaN")
	case c == 'I':
		return kindNonFinite, p.literal(field, "Infinity")
	case c == '-' && p.i+1 < len(p.b) && p.b[p.i+1] == 'I':
		return kindNonFinite, p.literal(field, "-Infinity")
	case c == '-' || '0' <= c && c <= '9':
		return kindNumber, p.number(field)
	default:
		return 0, p.syntax(field, "expected a value")
	}
}

func (p *parser) literal(field, lit string) error {
	if !bytes.HasPrefix(p.b[p.i:], []byte(lit)) {
		return p.syntax(field, "invalid literal")
	}
	p.i += len(lit)
	return nil
}

// number moves past a number in JSON's grammar.
func (p *parser) number(field string) error {
	p.eat('-')
	digits := func() int {
		n := 0
		for p.i < len(p.b) && '0' <= p.b[p.i] && p.b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	switch {
	case p.eat('0'):
	case digits() == 0:
		return p.syntax(field, "invalid number")
	}
	if p.eat('.') && digits() == 0 {
		return p.syntax(field, "invalid number: no digits after '.'")
	}
	if p.eat('e') || p.eat('E') {
		if !p.eat('+') {
			p.eat('-')
		}
		if digits() == 0 {
			return p.syntax(field, "invalid number: no digits in the exponent")
		}
	}
	return nil
}
