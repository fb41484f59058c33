package nccl

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// MaxLineBytes is the longest line Parse accepts.
const MaxLineBytes = 64 << 10

// Device is one "#  Rank ..." line of the "# Using devices" block.
type Device struct {
	Rank int
	// Group is the NCCL_TESTS_SPLIT group (0 for versions that do not
	// print it).
	Group int
	// Pid is 0 for versions that do not print it.
	Pid  int
	Host string
	// Index is the CUDA device index on Host.
	Index int
	// BusID is the PCI location as printed: "0x18" in older versions,
	// "0000:18:00" (domain:bus:device) since 2025.
	BusID string
	// Model is the CUDA device name, e.g. "NVIDIA H100 80GB HBM3".
	Model string
}

// Measurement is one half (out-of-place or in-place) of a data row.
type Measurement struct {
	// TimeMicros is the time per operation in microseconds (outputs that
	// print milliseconds are converted).
	TimeMicros float64
	// AlgBWGBps is the algorithm bandwidth: bytes / time.
	AlgBWGBps float64
	// BusBWGBps is the bus bandwidth: AlgBW scaled by 2(n-1)/n for
	// all-reduce, comparable with the hardware's link bandwidth.
	BusBWGBps float64
	// Wrong is the "#wrong" column: the number of wrong elements found by
	// validation. Nil when validation is off ("N/A") or when the output
	// has the older "error" column instead (see MaxError).
	Wrong *int64
	// MaxError is the older "error"/"res" column: the largest deviation
	// from the expected result. Nil for current outputs and "N/A".
	MaxError *float64
}

// Row is one data line: one message size.
type Row struct {
	SizeBytes int64
	Count     int64
	Type      string
	// RedOp is empty for outputs without a redop column.
	RedOp string
	// Root is -1 for all-reduce and for outputs without a root column.
	Root       int
	OutOfPlace Measurement
	InPlace    Measurement
	// Line is the 1-based input line of the row.
	Line int
}

// Config is the "# nThread ..." parameter line. Fields the line does not
// carry are zero.
type Config struct {
	Threads     int
	GPUs        int
	MinBytes    int64
	MaxBytes    int64
	Iters       int
	WarmupIters int
	// Validation is the -c check iteration count (0: validation off).
	Validation int
}

// Result is everything Parse understood in one all_reduce_perf output.
type Result struct {
	// Program is the collective test name from "# Collective test
	// starting: all_reduce_perf" (2025 and later).
	Program string
	// Version is the nccl-tests version from "# nccl-tests version 2.19.6
	// ..." (late 2025 and later); empty when not printed.
	Version string
	// NCCLVersion is the library version: from "nccl-library=22703" as
	// "2.27.3", or from NCCL's own "NCCL version 2.18.3+cuda12.1" line.
	NCCLVersion string
	Config      *Config
	Devices     []Device
	Rows        []Row
	// AvgBusBandwidthGBps is the "# Avg bus bandwidth" footer: the mean
	// busbw over every row, in-place and out-of-place.
	AvgBusBandwidthGBps *float64
	// OutOfBounds is the "# Out of bounds values" count (summed when the
	// output holds several runs).
	OutOfBounds *int64
	// OutOfBoundsOK is true when that footer (every one) said OK.
	OutOfBoundsOK bool
	// Failures are lines reporting that the test aborted: "Test NCCL
	// failure", "Test CUDA failure", "Test failure", "Test timeout",
	// "Invalid number of GPUs".
	Failures []string
	// Warnings are NCCL's own "NCCL WARN" log lines and "# error:" lines.
	Warnings []string
}

// ParseError is returned by Parse for input it cannot accept.
type ParseError struct {
	// Line is 1-based.
	Line int
	// Field names the column or item that was wrong.
	Field string
	Err   error
}

// Error reads "nccl: line N: field: reason".
func (e *ParseError) Error() string {
	return fmt.Sprintf("nccl: line %d: %s: %v", e.Line, e.Field, e.Err)
}

// Unwrap returns the underlying error.
func (e *ParseError) Unwrap() error { return e.Err }

// column kinds of a data row.
const (
	colSize = iota
	colCount
	colType
	colRedOp
	colRoot
	colTime
	colAlgBW
	colBusBW
	colWrong    // "#wrong": integer count or N/A
	colMaxError // "error"/"res": max deviation or N/A
	colSkip     // per-iteration statistics
	colTimestamp
)

type layout struct {
	cols []int
	// names are the header names, for error messages.
	names []string
	// timeScale converts the time columns to microseconds.
	timeScale float64
}

// currentLayout is the column layout of nccl-tests since 2019 (root
// column since 2022), used when rows appear before any column header.
var currentLayout = layout{
	cols:      []int{colSize, colCount, colType, colRedOp, colRoot, colTime, colAlgBW, colBusBW, colWrong, colTime, colAlgBW, colBusBW, colWrong},
	names:     []string{"size", "count", "type", "redop", "root", "time", "algbw", "busbw", "#wrong", "time", "algbw", "busbw", "#wrong"},
	timeScale: 1,
}

var (
	reDevice = regexp.MustCompile(`^#?\s*Rank\s+(\d+)(?:\s+Group\s+(\d+))?(?:\s+Pid\s+(\d+))?\s+on\s+(\S+)\s+device\s+(\d+)\s+\[([0-9A-Fa-fx:.]+)\]\s*(.*)$`)
	// Test NCCL/CUDA failure, with the host prefix since 2019 and without
	// it (and without "Test") before.
	reFailure  = regexp.MustCompile(`^(?:\S+: )?(?:Test )?(?:NCCL|CUDA) failure \S+:\d+ '(.*)'\s*$`)
	reTestFail = regexp.MustCompile(`^\.\. \S+ pid \d+: Test failure \S+:\d+`)
	reTimeout  = regexp.MustCompile(`^\S+: Test timeout \(\d+s\) \S+:\d+`)
	reNCCLLog  = regexp.MustCompile(`^\S+:\d+:\d+ \[\d+\] (?:\S+:\d+ )?NCCL (INFO|WARN|TRACE|ABORT)\b`)
	reNCCLVer  = regexp.MustCompile(`^NCCL version (\d+\.\d+\.\d+)\S*`)
	reTestsVer = regexp.MustCompile(`^#\s*nccl-tests version (\S+)(.*)$`)
	reLibCode  = regexp.MustCompile(`nccl-library=(\d+)`)
)

// Parse reads the output of nccl-tests' all_reduce_perf (stdout and
// stderr together). It understands the formats printed since 2019 (with
// and without the root column, "#wrong" and the older "error" column,
// microseconds) and the 2017-2019 one (time in milliseconds, "res"
// column), per-iteration columns (-I) and timestamps (-S).
//
// Parse is strict about what it recognises: a line whose first field is a
// plain decimal number is a data row and every field of it must be valid
// for the current column header; the known
// "#" lines (parameters, devices, column header, footer) must be
// well-formed. Other comment lines, NCCL's own log lines and unrelated
// text are skipped. Every error is a *ParseError naming the line and the
// field.
//
// Parse does not judge the run: a result with failures and no rows is not
// an error here (see Measure).
func Parse(r io.Reader) (Result, error) {
	var res Result
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), MaxLineBytes)
	lay := currentLayout
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		perr := func(field string, err error) error {
			return &ParseError{Line: n, Field: field, Err: err}
		}
		body := strings.TrimSpace(strings.TrimPrefix(line, "#"))
		fields := strings.Fields(body)
		switch {
		case reFailure.MatchString(line), reTestFail.MatchString(line), reTimeout.MatchString(line),
			strings.HasPrefix(line, "Invalid number of GPUs"):
			res.Failures = append(res.Failures, line)
		case reNCCLLog.MatchString(line):
			if strings.Contains(line, " NCCL WARN") || strings.Contains(line, " NCCL ABORT") {
				res.Warnings = append(res.Warnings, line)
			}
		case !strings.HasPrefix(line, "#") && isDataRow(fields):
			row, err := parseRow(line, lay)
			if err != nil {
				return res, perr(err.field, err.err)
			}
			row.Line = n
			res.Rows = append(res.Rows, row)
		case isColumnHeader(fields):
			l, err := parseHeader(fields)
			if err != nil {
				return res, perr("column header", err)
			}
			lay = l
		case len(fields) > 0 && strings.HasPrefix(fields[0], "(") && hasUnits(fields):
			// "(B) (elements) (us) (GB/s) ..." or "(ms)" for 2017 outputs.
			lay.timeScale = 1
			for _, f := range fields {
				if f == "(ms)" {
					lay.timeScale = 1000
				}
			}
		case reDevice.MatchString(line):
			d, err := parseDevice(line)
			if err != nil {
				return res, perr("device", err)
			}
			res.Devices = append(res.Devices, d)
		case strings.HasPrefix(body, "nThread "):
			c, err := parseConfig(fields)
			if err != nil {
				return res, perr("parameters", err)
			}
			res.Config = &c
		case strings.HasPrefix(body, "Out of bounds values"):
			v, ok, err := parseFooter(body, "Out of bounds values")
			if err != nil {
				return res, perr("out of bounds values", err)
			}
			i, err := parseCount(v)
			if err != nil {
				return res, perr("out of bounds values", err)
			}
			if res.OutOfBounds != nil {
				// Outputs of several runs concatenated: any failure counts.
				i = addSat(i, *res.OutOfBounds)
				ok = ok && res.OutOfBoundsOK
			}
			res.OutOfBounds, res.OutOfBoundsOK = &i, ok && i == 0
		case strings.HasPrefix(body, "Avg bus bandwidth"):
			v, _, err := parseFooter(body, "Avg bus bandwidth")
			if err != nil {
				return res, perr("avg bus bandwidth", err)
			}
			f, err := parseNonNeg(v)
			if err != nil {
				return res, perr("avg bus bandwidth", err)
			}
			res.AvgBusBandwidthGBps = &f
		case reTestsVer.MatchString(line):
			m := reTestsVer.FindStringSubmatch(line)
			res.Version = m[1]
			if lm := reLibCode.FindStringSubmatch(m[2]); lm != nil {
				res.NCCLVersion = versionFromCode(lm[1])
			}
		case strings.HasPrefix(body, "Collective test starting:") && strings.HasPrefix(line, "#"):
			res.Program = strings.TrimSpace(strings.TrimPrefix(body, "Collective test starting:"))
		case strings.HasPrefix(line, "#") && strings.HasPrefix(body, "error:"):
			res.Warnings = append(res.Warnings, line)
		case strings.HasPrefix(line, "#"):
			// Unknown comment: tolerated.
		case reNCCLVer.MatchString(line):
			if res.NCCLVersion == "" {
				res.NCCLVersion = reNCCLVer.FindStringSubmatch(line)[1]
			}
		default:
			// Unrelated text (MPI launchers, wrappers): skipped.
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return res, &ParseError{Line: n + 1, Field: "line", Err: fmt.Errorf("longer than %d bytes", MaxLineBytes)}
		}
		return res, &ParseError{Line: n + 1, Field: "input", Err: err}
	}
	return res, nil
}

// isDataRow reports whether the first field of a line is a plain decimal
// number, which in nccl-tests output only data rows are.
func isDataRow(fields []string) bool {
	if len(fields) == 0 {
		return false
	}
	for _, r := range fields[0] {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func isColumnHeader(fields []string) bool {
	if len(fields) < 4 {
		return false
	}
	if fields[0] != "size" && fields[0] != "bytes" {
		return false
	}
	for _, f := range fields {
		if f == "busbw" {
			return true
		}
	}
	return false
}

func hasUnits(fields []string) bool {
	for _, f := range fields {
		if f == "(us)" || f == "(ms)" {
			return true
		}
	}
	return false
}

func parseHeader(fields []string) (layout, error) {
	l := layout{timeScale: 1}
	add := func(c int, name string) {
		l.cols = append(l.cols, c)
		l.names = append(l.names, name)
	}
	var halves, times int
	for i := 0; i < len(fields); i++ {
		f := fields[i]
		switch f {
		case "size", "bytes":
			add(colSize, "size")
		case "count", "N":
			add(colCount, "count")
		case "type":
			add(colType, "type")
		case "redop", "op":
			add(colRedOp, "redop")
		case "root":
			add(colRoot, "root")
		case "time", "cputime":
			add(colTime, "time")
			times++
		case "algbw":
			add(colAlgBW, "algbw")
		case "busbw":
			add(colBusBW, "busbw")
			halves++
		case "#wrong":
			add(colWrong, "#wrong")
		case "error", "res":
			add(colMaxError, f)
		case "i_min", "i_max", "i_p99", "i_cv%":
			add(colSkip, f)
		case "timestamp":
			// "%Y-%m-%d %H:%M:%S": two fields.
			add(colTimestamp, "timestamp")
			add(colTimestamp, "timestamp")
		default:
			return layout{}, fmt.Errorf("unknown column %q", f)
		}
	}
	if fields[0] == "bytes" {
		// 2017-2019 outputs print milliseconds and no units line.
		l.timeScale = 1000
	}
	if halves != 2 || times != 2 {
		return layout{}, fmt.Errorf("want out-of-place and in-place time/algbw/busbw columns, got %d time and %d busbw", times, halves)
	}
	if l.cols[0] != colSize {
		return layout{}, fmt.Errorf("first column is %q, want size", l.names[0])
	}
	return l, nil
}

type fieldError struct {
	field string
	err   error
}

func parseRow(line string, lay layout) (Row, *fieldError) {
	fields := strings.Fields(line)
	row := Row{Root: -1}
	if len(fields) != len(lay.cols) {
		// A row where only the in-place half is printed (trace replay)
		// or a truncated line.
		return row, &fieldError{"row", fmt.Errorf("%d fields, want %d (%s)", len(fields), len(lay.cols), strings.Join(lay.names, " "))}
	}
	half := 0 // 0: out-of-place, 1: in-place; advances after busbw+wrong
	m := [2]*Measurement{&row.OutOfPlace, &row.InPlace}
	seenBus := 0
	for i, c := range lay.cols {
		f := fields[i]
		name := lay.names[i]
		if seenBus > 0 && c == colTime {
			half = 1
		}
		label := name
		if c >= colTime && c <= colMaxError {
			label = []string{"out-of-place ", "in-place "}[half] + name
		}
		var err error
		switch c {
		case colSize:
			row.SizeBytes, err = parseCount(f)
		case colCount:
			row.Count, err = parseCount(f)
		case colType:
			row.Type, err = parseWord(f)
		case colRedOp:
			row.RedOp, err = parseWord(f)
		case colRoot:
			var v int64
			v, err = strconv.ParseInt(f, 10, 32)
			if err == nil && v < -1 {
				err = fmt.Errorf("%d is below -1", v)
			}
			row.Root = int(v)
		case colTime:
			var v float64
			v, err = parseNonNeg(f)
			m[half].TimeMicros = v * lay.timeScale
		case colAlgBW:
			m[half].AlgBWGBps, err = parseNonNeg(f)
		case colBusBW:
			m[half].BusBWGBps, err = parseNonNeg(f)
			seenBus++
		case colWrong:
			if f != "N/A" {
				var v int64
				v, err = parseWrong(f)
				m[half].Wrong = &v
			}
		case colMaxError:
			if f != "N/A" {
				var v float64
				v, err = parseNonNeg(f)
				m[half].MaxError = &v
			}
		case colSkip, colTimestamp:
			if f == "" {
				err = errors.New("empty")
			}
		}
		if err != nil {
			return row, &fieldError{label, err}
		}
	}
	return row, nil
}

// parseCount reads a non-negative decimal integer.
func parseCount(s string) (int64, error) {
	if s == "" || s[0] == '+' || s[0] == '-' {
		return 0, fmt.Errorf("%q is not a non-negative integer", s)
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a non-negative integer", s)
	}
	return v, nil
}

// parseWrong reads the "#wrong" column, printed with %g: "0", "12",
// "1.23457e+06". The value must be a whole non-negative number.
func parseWrong(s string) (int64, error) {
	if v, err := parseCount(s); err == nil {
		return v, nil
	}
	f, err := parseNonNeg(s)
	if err != nil {
		return 0, err
	}
	if f != math.Trunc(f) || f >= math.MaxInt64 {
		return 0, fmt.Errorf("%q is not a whole number", s)
	}
	return int64(f), nil
}

// parseNonNeg reads a finite non-negative decimal number, exponent
// allowed; "nan", "inf" and hex floats are refused.
func parseNonNeg(s string) (float64, error) {
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r == '.' || r == 'e' || r == 'E' || r == '+' || r == '-') {
			return 0, fmt.Errorf("%q is not a number", s)
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("%q is not a finite number", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	return v, nil
}

// parseWord reads a type or reduction name such as "float", "bfloat16",
// "sum", "premulsum".
func parseWord(s string) (string, error) {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			return "", fmt.Errorf("%q is not a name", s)
		}
	}
	if s[0] >= '0' && s[0] <= '9' {
		return "", fmt.Errorf("%q is not a name", s)
	}
	return s, nil
}

func parseDevice(line string) (Device, error) {
	m := reDevice.FindStringSubmatch(line)
	var d Device
	var err error
	atoi := func(name, s string) int {
		if s == "" || err != nil {
			return 0
		}
		v, e := strconv.Atoi(s)
		if e != nil {
			err = fmt.Errorf("%s %q: %v", name, s, e)
		}
		return v
	}
	d.Rank = atoi("rank", m[1])
	d.Group = atoi("group", m[2])
	d.Pid = atoi("pid", m[3])
	d.Host = m[4]
	d.Index = atoi("device", m[5])
	d.BusID = m[6]
	d.Model = strings.TrimSpace(m[7])
	return d, err
}

// parseConfig reads "nThread 1 nGpus 8 minBytes 8 maxBytes 17179869184
// step: 2(factor) warmup iters: 5 iters: 20 agg iters: 1 validation: 1
// graph: 0 [unalign: 0]".
func parseConfig(fields []string) (Config, error) {
	var c Config
	for i := 0; i+1 < len(fields); i++ {
		key := fields[i]
		if i > 0 && key == "iters:" && fields[i-1] == "warmup" {
			key = "warmup iters:"
		} else if i > 0 && key == "iters:" && fields[i-1] == "agg" {
			continue
		}
		var dst64 *int64
		var dst *int
		switch key {
		case "nThread":
			dst = &c.Threads
		case "nGpus":
			dst = &c.GPUs
		case "minBytes":
			dst64 = &c.MinBytes
		case "maxBytes":
			dst64 = &c.MaxBytes
		case "iters:":
			dst = &c.Iters
		case "warmup iters:":
			dst = &c.WarmupIters
		case "validation:":
			dst = &c.Validation
		default:
			continue
		}
		v, err := parseCount(fields[i+1])
		if err != nil {
			return c, fmt.Errorf("%s: %v", strings.TrimSuffix(key, ":"), err)
		}
		if dst64 != nil {
			*dst64 = v
		} else {
			if v > math.MaxInt32 {
				return c, fmt.Errorf("%s: %d is too large", strings.TrimSuffix(key, ":"), v)
			}
			*dst = int(v)
		}
		i++
	}
	return c, nil
}

// parseFooter splits "Out of bounds values : 0 OK" into "0" and whether the
// verdict word was OK. The verdict word is optional ("Avg bus bandwidth :
// 12.3 " has none unless NCCL_TESTS_MIN_BW is set).
func parseFooter(body, name string) (value string, ok bool, err error) {
	rest := strings.TrimSpace(strings.TrimPrefix(body, name))
	if !strings.HasPrefix(rest, ":") {
		return "", false, errors.New(`missing ":"`)
	}
	f := strings.Fields(rest[1:])
	switch {
	case len(f) == 0:
		return "", false, errors.New("missing value")
	case len(f) > 2:
		return "", false, fmt.Errorf("unexpected %q", strings.Join(f[2:], " "))
	case len(f) == 2 && f[1] != "OK" && f[1] != "FAILED":
		return "", false, fmt.Errorf("verdict %q is neither OK nor FAILED", f[1])
	}
	return f[0], len(f) == 1 || f[1] == "OK", nil
}

// versionFromCode turns NCCL_VERSION_CODE (major*10000 + minor*100 +
// patch since 2.9; major*1000 + minor*100 + patch before) into "2.27.3".
func versionFromCode(s string) string {
	v, err := strconv.Atoi(s)
	if err != nil || v <= 0 {
		return ""
	}
	if v >= 10000 {
		return fmt.Sprintf("%d.%d.%d", v/10000, v/100%100, v%100)
	}
	return fmt.Sprintf("%d.%d.%d", v/1000, v/100%10, v%100)
}

// addSat adds two non-negative counts, stopping at math.MaxInt64.
func addSat(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
