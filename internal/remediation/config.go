package remediation

import (
	"fmt"
	"math"
	"time"
)

// Defaults for the zero fields of a Config.
const (
	DefaultMaxDrainShare = 0.25
	DefaultWindow        = 10 * time.Minute
	DefaultClearFor      = 2 * time.Minute
	DefaultVerifyBackoff = 10 * time.Minute
)

// Config is the engine's policy. A zero field takes its default.
type Config struct {
	// Prefix starts every reason the engine writes and marks a drain as
	// its own (default DefaultPrefix). One line, no leading or trailing
	// space, at most 32 bytes.
	Prefix string
	// DryRun computes and returns every decision but never changes Slurm
	// and never runs the verifier.
	DryRun bool
	// Handoff, when HandoffSoperator, hands nodes with hardware-class
	// evidence to Soperator's node replacement instead of draining them
	// with Prefix (see the package comment). Default HandoffNone.
	Handoff Handoff
	// MaxDrainShare is the largest share of the cluster's nodes that may
	// be drained by the engine at once before automatic drains are refused,
	// in (0, 1] (default 0.25). At least one node may always be drained.
	MaxDrainShare float64
	// MaxDrainsPerWindow is how many automatic drains may happen within
	// Window (default: 10% of the cluster's nodes, at least 1).
	MaxDrainsPerWindow int
	// Window is the period MaxDrainsPerWindow counts over (default 10 min).
	Window time.Duration
	// ClearFor is how long a drained node's verdict must have been Healthy
	// before it is verified for resuming (default 2 min).
	ClearFor time.Duration
	// VerifyBackoff is how long after a failed verification the next one
	// is tried (default 10 min).
	VerifyBackoff time.Duration
	// Metrics receives the engine's counters; nil records none.
	Metrics *Metrics
}

// withDefaults returns c with its zero fields set to the defaults and
// checks the result. Errors name the field.
func (c Config) withDefaults() (Config, error) {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.MaxDrainShare == 0 {
		c.MaxDrainShare = DefaultMaxDrainShare
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.ClearFor == 0 {
		c.ClearFor = DefaultClearFor
	}
	if c.VerifyBackoff == 0 {
		c.VerifyBackoff = DefaultVerifyBackoff
	}
	switch {
	case c.Handoff != HandoffNone && c.Handoff != HandoffSoperator:
		return c, fmt.Errorf("remediation config: Handoff %q: must be %q or %q", c.Handoff, HandoffNone, HandoffSoperator)
	case clean(c.Prefix, maxPrefixLen) != c.Prefix:
		return c, fmt.Errorf("remediation config: Prefix %q: must be one line of printable text without leading or trailing space, at most %d bytes", c.Prefix, maxPrefixLen)
	case Owned(c.Prefix, HandoffReasonPrefix):
		return c, fmt.Errorf("remediation config: Prefix %q: must not own the hand-off reason %q", c.Prefix, HandoffReasonPrefix)
	case math.IsNaN(c.MaxDrainShare) || c.MaxDrainShare <= 0 || c.MaxDrainShare > 1:
		return c, fmt.Errorf("remediation config: MaxDrainShare %v: must be in (0, 1]", c.MaxDrainShare)
	case c.MaxDrainsPerWindow < 0:
		return c, fmt.Errorf("remediation config: MaxDrainsPerWindow %d: must not be negative", c.MaxDrainsPerWindow)
	case c.Window < 0:
		return c, fmt.Errorf("remediation config: Window %s: must not be negative", c.Window)
	case c.ClearFor < 0:
		return c, fmt.Errorf("remediation config: ClearFor %s: must not be negative", c.ClearFor)
	case c.VerifyBackoff < 0:
		return c, fmt.Errorf("remediation config: VerifyBackoff %s: must not be negative", c.VerifyBackoff)
	}
	return c, nil
}

// shareCap is how many nodes the engine may hold drained at once in a
// cluster of total nodes: MaxDrainShare of them, rounded down, at least 1.
func (c Config) shareCap(total int) int {
	return max(1, int(math.Floor(c.MaxDrainShare*float64(total)+1e-9)))
}

// windowCap is how many automatic drains may happen within Window in a
// cluster of total nodes.
func (c Config) windowCap(total int) int {
	if c.MaxDrainsPerWindow > 0 {
		return c.MaxDrainsPerWindow
	}
	return max(1, total/10)
}
