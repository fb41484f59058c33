package stats

import (
	"errors"
	"fmt"
	"math"
)

// Sentinel errors. Every error this package returns wraps exactly one of
// them; test with errors.Is.
var (
	// ErrEmpty: an input has no values.
	ErrEmpty = errors.New("no values")
	// ErrTooFewSamples: an input has values but too few for the statistic
	// (a variance needs at least two).
	ErrTooFewSamples = errors.New("too few values")
	// ErrNonFinite: an input holds NaN or ±Inf. The error is a
	// *NonFiniteError that names the input and the index. Values are never
	// dropped silently: a caller joining two runs by sample id must decide
	// what a missing value means before calling.
	ErrNonFinite = errors.New("non-finite value")
	// ErrOverflow: the values are finite but so large that their variance
	// (or the difference of two means) overflows float64.
	ErrOverflow = errors.New("values too large for float64 arithmetic")
	// ErrLengthMismatch: paired inputs differ in length.
	ErrLengthMismatch = errors.New("paired inputs differ in length")
	// ErrDirection: the metric direction is not HigherIsBetter or
	// LowerIsBetter. There is no default: a comparison cannot say "better"
	// without it.
	ErrDirection = errors.New("metric direction not declared")
	// ErrOptions: an Options field is out of range.
	ErrOptions = errors.New("invalid options")
	// ErrInvalidRun: a GPU count or wall time for an efficiency comparison is
	// not positive.
	ErrInvalidRun = errors.New("invalid run cost")
)

// NonFiniteError reports the first NaN or ±Inf found in an input.
type NonFiniteError struct {
	Input string // "baseline", "candidate", "x", ...
	Index int
	Value float64
}

func (e *NonFiniteError) Error() string {
	return fmt.Sprintf("%s[%d] is %v: every value must be finite", e.Input, e.Index, e.Value)
}

// Unwrap makes errors.Is(err, ErrNonFinite) true.
func (e *NonFiniteError) Unwrap() error { return ErrNonFinite }

// checkFinite returns a *NonFiniteError for the first NaN or ±Inf in x, or
// an error wrapping ErrEmpty when x is empty.
func checkFinite(input string, x []float64) error {
	if len(x) == 0 {
		return fmt.Errorf("%s: %w", input, ErrEmpty)
	}
	for i, v := range x {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return &NonFiniteError{Input: input, Index: i, Value: v}
		}
	}
	return nil
}
