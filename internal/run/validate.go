package run

import (
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits are the controller's bounds on what one spec may ask for. The
// cluster may impose tighter ones of its own; Slurm then rejects the job.
type Limits struct {
	MaxNodes        int
	MaxTasksPerNode int
	MaxGPUsPerNode  int
	MaxCPUsPerTask  int
	MaxTimeLimit    time.Duration
	// MaxEnvironmentBytes bounds the environment as the job's processes see
	// it: the sum over all variables of len(key)+len(value)+2 ("=" and the
	// terminating NUL).
	MaxEnvironmentBytes int
	// MaxScriptBytes bounds the script body, and also the argv elements
	// together as they are written, quoted, into the batch script (whose
	// size Slurm bounds too: 4 MiB by default).
	MaxScriptBytes int
	// MaxArgs bounds the number of argv elements.
	MaxArgs int
}

// DefaultLimits returns the limits used when the configuration sets none.
func DefaultLimits() Limits {
	return Limits{
		MaxNodes:            1024,
		MaxTasksPerNode:     256,
		MaxGPUsPerNode:      8,
		MaxCPUsPerTask:      256,
		MaxTimeLimit:        30 * 24 * time.Hour,
		MaxEnvironmentBytes: 64 << 10,
		MaxScriptBytes:      1 << 20,
		MaxArgs:             4096,
	}
}

// Fixed rules, not configurable.
const (
	maxNameLen       = 64
	maxPartitionLen  = 64
	maxPathLen       = 4096
	maxLabelKeyLen   = 63
	maxLabelValueLen = 256 // characters (runes), not bytes
	maxRequestIDLen  = 64
	maxRunIDChars    = 40 // after the "r-" prefix
	// maxArgBytes is Linux's MAX_ARG_STRLEN (32 pages) less the terminating
	// NUL: execve refuses any longer argument with E2BIG.
	maxArgBytes = 32*4096 - 1
	// maxQuoted bounds how much of a bad value is echoed in a description.
	maxQuoted = 40
)

// reservedEnvPrefixes are environment key prefixes a spec may not set:
// Slurm's own variables, the SRUN_/SBATCH_/SALLOC_ input variables that
// would silently change how the job is launched, and sopilot's.
var reservedEnvPrefixes = []string{"SLURM_", "SRUN_", "SBATCH_", "SALLOC_", "SOPILOT_"}

// FieldViolation is one broken rule: which field (as a path in the API's
// terms, e.g. `spec.environment["PATH"]` or `spec.argv[3]`) and what is wrong
// with it, including what would be allowed.
type FieldViolation struct {
	Field       string
	Description string
}

// ValidationError reports every rule a spec (or request) breaks. Use
// errors.As to get at the violations.
type ValidationError struct {
	Violations []FieldViolation
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	switch len(e.Violations) {
	case 0:
		return "invalid argument"
	case 1:
		b.WriteString("invalid argument: ")
	default:
		fmt.Fprintf(&b, "invalid argument (%d problems): ", len(e.Violations))
	}
	for i, v := range e.Violations {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(v.Field)
		b.WriteString(": ")
		b.WriteString(v.Description)
	}
	return b.String()
}

// violations collects FieldViolations.
type violations []FieldViolation

func (vs *violations) add(field, format string, args ...any) {
	*vs = append(*vs, FieldViolation{Field: field, Description: fmt.Sprintf(format, args...)})
}

func (vs violations) err() error {
	if len(vs) == 0 {
		return nil
	}
	return &ValidationError{Violations: vs}
}

// Normalize fills in defaults for fields left at their zero value:
// TasksPerNode 0 becomes 1. Call it before Validate; Validate checks the spec
// as it is, so a spec that was not normalized fails on tasks_per_node.
func (s *Spec) Normalize() {
	if s.TasksPerNode == 0 {
		s.TasksPerNode = 1
	}
}

// Validate checks s against the rules of the RunSpec message and lim. It
// returns nil or a *ValidationError listing every violation found, in field
// order (map entries in key order), not just the first one.
func Validate(s Spec, lim Limits) error {
	var vs violations

	validateName(&vs, s.JobName)
	validateRange(&vs, "spec.nodes", s.Nodes, 1, lim.MaxNodes, "")
	validateRange(&vs, "spec.tasks_per_node", s.TasksPerNode, 1, lim.MaxTasksPerNode, "")
	validateRange(&vs, "spec.gpus_per_node", s.GPUsPerNode, 0, lim.MaxGPUsPerNode, " (0 = no GPUs)")
	validateRange(&vs, "spec.cpus_per_task", s.CPUsPerTask, 0, lim.MaxCPUsPerTask, " (0 = Slurm's default)")
	validateTimeLimit(&vs, s.TimeLimit, lim.MaxTimeLimit)
	validatePartition(&vs, s.Partition)
	validateCommand(&vs, s.Argv, s.Script, lim)
	validatePath(&vs, "spec.working_directory", s.WorkingDirectory, "directory")
	validateEnvironment(&vs, s.Environment, lim.MaxEnvironmentBytes)
	validatePath(&vs, "spec.output_directory", s.OutputDirectory, "directory")
	validateDependsOn(&vs, s.DependsOn)
	validateLabels(&vs, s.Labels)
	validatePath(&vs, "spec.results_path", s.ResultsPath, "file")
	validateRetry(&vs, s.Retry)

	return vs.err()
}

// ValidateRequestID checks an idempotency key: 1-64 characters of
// [A-Za-z0-9._-]. (The API's empty request_id, "make one for me", is the
// caller's business and must not reach this function.)
func ValidateRequestID(id string) error {
	var vs violations
	const allowed = "1-64 characters of A-Z a-z 0-9 . _ -"
	switch {
	case id == "":
		vs.add("request_id", "must be %s; got an empty string", allowed)
	case len(id) > maxRequestIDLen:
		vs.add("request_id", "must be %s; got %d characters", allowed, len(id))
	default:
		if i := indexNotIn(id, isNameChar); i >= 0 {
			vs.add("request_id", "must be %s; got %s at byte %d", allowed, describeByteAt(id, i), i)
		}
	}
	return vs.err()
}

func validateName(vs *violations, name string) {
	const field = "spec.job_name"
	const allowed = "must be 1-64 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit"
	switch {
	case name == "":
		vs.add(field, "is required; %s", allowed)
	case len(name) > maxNameLen:
		vs.add(field, "%s; got %d characters", allowed, len(name))
	case !isAlnum(name[0]):
		vs.add(field, "%s; got %s first", allowed, describeByteAt(name, 0))
	default:
		if i := indexNotIn(name, isNameChar); i >= 0 {
			vs.add(field, "%s; got %s at byte %d", allowed, describeByteAt(name, i), i)
		}
	}
}

func validateRange(vs *violations, field string, v, lo, hi int, note string) {
	if v < lo || v > hi {
		vs.add(field, "must be %d-%d%s; got %d", lo, hi, note, v)
	}
}

func validateTimeLimit(vs *violations, d, max time.Duration) {
	const field = "spec.time_limit"
	switch {
	case d <= 0:
		vs.add(field, "is required: a positive number of whole seconds, at most %s; got %s", max, d)
	case d%time.Second != 0:
		vs.add(field, "must be whole seconds (Slurm has no finer resolution); got %s", d)
	case d > max:
		vs.add(field, "must be at most %s; got %s", max, d)
	}
}

func validatePartition(vs *violations, p string) {
	const field = "spec.partition"
	const allowed = "must be empty (the cluster's default partition) or 1-64 characters of A-Z a-z 0-9 _ -"
	if p == "" {
		return
	}
	if len(p) > maxPartitionLen {
		vs.add(field, "%s; got %d characters", allowed, len(p))
		return
	}
	if i := indexNotIn(p, isPartitionChar); i >= 0 {
		vs.add(field, "%s; got %s at byte %d", allowed, describeByteAt(p, i), i)
	}
}

func validateCommand(vs *violations, argv []string, script string, lim Limits) {
	hasArgv, hasScript := len(argv) > 0, script != ""
	switch {
	case hasArgv && hasScript:
		vs.add("spec.argv", "exactly one of argv and script must be set; got both (%d argv elements and a %d-byte script)", len(argv), len(script))
	case !hasArgv && !hasScript:
		vs.add("spec.argv", "exactly one of argv and script must be set; got neither")
	}
	if hasArgv {
		validateArgv(vs, argv, lim)
	}
	if hasScript {
		validateScript(vs, script, lim.MaxScriptBytes)
	}
}

func validateArgv(vs *violations, argv []string, lim Limits) {
	if len(argv) > lim.MaxArgs {
		vs.add("spec.argv", "must have at most %d elements; got %d", lim.MaxArgs, len(argv))
	}
	// The size of the command line as written into the batch script: each
	// element single-quoted, each ' in it as '\'', separated by spaces.
	total := 0
	for i, a := range argv {
		total += len(a) + 3 + 3*strings.Count(a, "'")
		field := "spec.argv[" + strconv.Itoa(i) + "]"
		switch {
		case a == "":
			vs.add(field, "must not be empty (every element is passed to the program as one argument)")
		case a == ":":
			// srun takes a lone ":" anywhere on its command line, even
			// after the program, as the separator of heterogeneous job
			// components; the program would never see it.
			vs.add(field, `must not be a lone ":" (srun reads it as its heterogeneous-job separator, even among the program's arguments); use script to pass one`)
		case strings.IndexByte(a, 0) >= 0:
			vs.add(field, "must not contain NUL bytes (a program argument cannot carry one); got one at byte %d", strings.IndexByte(a, 0))
		case strings.Contains(a, "\r\n"):
			vs.add(field, `must not contain a CR LF pair ("\r\n": sbatch refuses batch scripts with DOS line breaks, and the argument is written into the script); got one at byte %d`, strings.Index(a, "\r\n"))
		case len(a) > maxArgBytes:
			vs.add(field, "must be at most %d bytes (Linux's limit for one program argument); got %d", maxArgBytes, len(a))
		}
	}
	if total > lim.MaxScriptBytes {
		vs.add("spec.argv", "must take at most %d bytes once written, quoted, into the batch script (each element counts its length plus 3, plus 3 per single quote in it); got %d", lim.MaxScriptBytes, total)
	}
}

func validateScript(vs *violations, script string, max int) {
	const field = "spec.script"
	if len(script) > max {
		vs.add(field, "must be at most %d bytes; got %d", max, len(script))
	}
	if strings.TrimSpace(script) == "" {
		vs.add(field, "must contain a command, not only white space")
	}
	if i := strings.IndexByte(script, 0); i >= 0 {
		vs.add(field, "must not contain NUL bytes (Slurm refuses such scripts); got one at byte %d", i)
	}
	if i := strings.Index(script, "\r\n"); i >= 0 {
		vs.add(field, `must use Unix line breaks ("\n"), not DOS ones ("\r\n", which sbatch refuses); got one at byte %d`, i)
	}
}

// validatePath checks an optional absolute path. kind is "directory" or
// "file".
func validatePath(vs *violations, field, p, kind string) {
	if p == "" {
		return
	}
	const chars = "A-Z a-z 0-9 . _ / + - @"
	switch {
	case len(p) > maxPathLen:
		vs.add(field, "must be at most %d bytes; got %d", maxPathLen, len(p))
	case !strings.HasPrefix(p, "/"):
		vs.add(field, "must be an absolute path (starting with /); got %s", quote(p))
	case hasDotDot(p):
		vs.add(field, `must not contain a ".." element; got %s`, quote(p))
	case filepath.Clean(p) != p:
		vs.add(field, "must be a clean path (no empty or . elements, no trailing /), here %s; got %s", quote(filepath.Clean(p)), quote(p))
	case indexNotIn(p, isPathChar) >= 0:
		i := indexNotIn(p, isPathChar)
		vs.add(field, "may contain only %s (no spaces, no Slurm %% patterns); got %s at byte %d", chars, describeByteAt(p, i), i)
	case kind == "file" && p == "/":
		vs.add(field, `must name a file, not "/"`)
	}
}

func hasDotDot(p string) bool {
	for _, e := range strings.Split(p, "/") {
		if e == ".." {
			return true
		}
	}
	return false
}

func validateEnvironment(vs *violations, env map[string]string, max int) {
	total := 0
	for _, k := range sortedKeys(env) {
		v := env[k]
		total += len(k) + len(v) + 2
		field := "spec.environment[" + strconv.Quote(k) + "]"
		if msg := envKeyProblem(k); msg != "" {
			vs.add(field, "%s", msg)
		}
		if i := strings.IndexByte(v, 0); i >= 0 {
			vs.add(field, "value must not contain NUL bytes (an environment variable cannot carry one); got one at byte %d", i)
		}
	}
	if total > max {
		vs.add("spec.environment", `must total at most %d bytes (counting each variable as len(key)+len(value)+2); got %d`, max, total)
	}
}

func envKeyProblem(k string) string {
	const allowed = "key must match [A-Za-z_][A-Za-z0-9_]*"
	switch {
	case k == "":
		return allowed + "; got an empty key"
	case isDigit(k[0]):
		return allowed + "; got a digit first"
	}
	if i := indexNotIn(k, isEnvChar); i >= 0 {
		return fmt.Sprintf("%s; got %s at byte %d", allowed, describeByteAt(k, i), i)
	}
	for _, p := range reservedEnvPrefixes {
		if strings.HasPrefix(k, p) {
			return "key must not start with " + strings.Join(reservedEnvPrefixes, ", ") + " (reserved for Slurm and sopilot)"
		}
	}
	return ""
}

// Counts of labels and dependencies: generous, but bounded so one request
// cannot make the record (or Slurm's dependency string) arbitrarily large.
const (
	maxLabels       = 64
	maxDependencies = 64
)

func validateDependsOn(vs *violations, deps []string) {
	if len(deps) > maxDependencies {
		vs.add("spec.depends_on", "must list at most %d runs; got %d", maxDependencies, len(deps))
		return
	}
	seen := make(map[string]int, len(deps))
	for i, d := range deps {
		field := "spec.depends_on[" + strconv.Itoa(i) + "]"
		if !isRunID(d) {
			vs.add(field, `must be a run id ("r-" followed by 1-40 characters of a-z 0-9); got %s`, quote(d))
			continue
		}
		if j, ok := seen[d]; ok {
			vs.add(field, "must not repeat a run id; %s is also spec.depends_on[%d]", quote(d), j)
			continue
		}
		seen[d] = i
	}
}

// isRunID reports whether id has the form of a run id: "r-" followed by
// 1-40 characters of [a-z0-9].
func isRunID(id string) bool {
	rest, ok := strings.CutPrefix(id, "r-")
	if !ok || rest == "" || len(rest) > maxRunIDChars {
		return false
	}
	return indexNotIn(rest, func(c byte) bool { return isDigit(c) || ('a' <= c && c <= 'z') }) < 0
}

func validateLabels(vs *violations, labels map[string]string) {
	if len(labels) > maxLabels {
		vs.add("spec.labels", "must have at most %d labels; got %d", maxLabels, len(labels))
		return
	}
	for _, k := range sortedKeys(labels) {
		v := labels[k]
		field := "spec.labels[" + strconv.Quote(k) + "]"
		const allowed = "key must be 1-63 characters of a-z 0-9 _ . - /"
		switch {
		case k == "":
			vs.add(field, "%s; got an empty key", allowed)
		case len(k) > maxLabelKeyLen:
			vs.add(field, "%s; got %d characters", allowed, len(k))
		default:
			if i := indexNotIn(k, isLabelKeyChar); i >= 0 {
				vs.add(field, "%s; got %s at byte %d", allowed, describeByteAt(k, i), i)
			}
		}
		switch {
		case !utf8.ValidString(v):
			vs.add(field, "value must be valid UTF-8 text of at most %d characters; got invalid UTF-8", maxLabelValueLen)
		case utf8.RuneCountInString(v) > maxLabelValueLen:
			vs.add(field, "value must be at most %d characters; got %d", maxLabelValueLen, utf8.RuneCountInString(v))
		default:
			if i := indexLineBreaking(v); i >= 0 {
				r, _ := utf8.DecodeRuneInString(v[i:])
				vs.add(field, "value must be one line of printable text, without control characters (NUL, CR, LF, tab, DEL, C1) or line separators; got %s (U+%04X) at byte %d", strconv.QuoteRune(r), r, i)
			}
		}
	}
}

// indexLineBreaking returns the byte index of the first rune of valid
// UTF-8 s that has no place in one line of text: a control character
// (Unicode category Cc: C0 including NUL, tab, CR and LF, DEL, C1) or a
// line or paragraph separator (U+2028, U+2029); -1 if there is none.
// Label values are shown in tables, logs and metric labels, where such
// characters forge lines or are cut by C code (NUL), and argv and the
// environment refuse NUL already.
func indexLineBreaking(s string) int {
	for i, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return i
		}
	}
	return -1
}

// Character classes.

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isAlnum(c byte) bool {
	return isDigit(c) || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

func isNameChar(c byte) bool      { return isAlnum(c) || c == '.' || c == '_' || c == '-' }
func isPartitionChar(c byte) bool { return isAlnum(c) || c == '_' || c == '-' }
func isEnvChar(c byte) bool       { return isAlnum(c) || c == '_' }

func isPathChar(c byte) bool {
	return isAlnum(c) || c == '.' || c == '_' || c == '/' || c == '+' || c == '-' || c == '@'
}

func isLabelKeyChar(c byte) bool {
	return isDigit(c) || ('a' <= c && c <= 'z') || c == '_' || c == '.' || c == '-' || c == '/'
}

// indexNotIn returns the index of the first byte of s for which ok is
// false, or -1.
func indexNotIn(s string, ok func(byte) bool) int {
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return i
		}
	}
	return -1
}

// describeByteAt names the character at s[i] for an error message: the
// whole rune when it is valid UTF-8, else the byte.
func describeByteAt(s string, i int) string {
	r, size := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && size <= 1 {
		return fmt.Sprintf("byte 0x%02x", s[i])
	}
	return strconv.QuoteRune(r)
}

// quote quotes s for a description, shortened to maxQuoted bytes.
func quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + fmt.Sprintf("... (%d bytes)", len(s))
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
