package remediation

import (
	"fmt"
	"strings"

	"github.com/sopilot/sopilot/internal/health"
)

// Handoff names who takes over a node whose evidence is hardware-class.
type Handoff string

// Hand-off modes of Config.Handoff.
const (
	// HandoffNone: sopilot drains, verifies and resumes every node itself
	// with its own "[sopilot]" reason (plain Slurm).
	HandoffNone Handoff = ""
	// HandoffSoperator: hardware-class evidence is written as Soperator's
	// "[node_problem]" reason, so that Soperator's soperatorchecks marks the
	// Kubernetes node HardwareIssuesSuspected and its node replacement flow
	// runs. The drain then belongs to Soperator.
	HandoffSoperator Handoff = "soperator"
)

// ParseHandoff reads a hand-off mode as flags spell it: "" or "none", or
// "soperator".
func ParseHandoff(s string) (Handoff, error) {
	switch s {
	case "", "none":
		return HandoffNone, nil
	case string(HandoffSoperator):
		return HandoffSoperator, nil
	}
	return HandoffNone, fmt.Errorf("remediation: handoff %q: must be \"none\" or \"soperator\"", s)
}

// HandoffReasonPrefix starts every reason of a hand-off drain.
//
// Soperator's soperatorchecks (internal/controller/soperatorchecks/
// slurm_nodes_controller.go) acts on drained nodes whose reason contains
// "[node_problem]" (1.22 and later) or "[hardware_problem]" (1.23 and
// later); both end in processSetUnhealthy, which waits until the node is
// idle, sets the Kubernetes node condition HardwareIssuesSuspected (the
// start of the node replacement) and, once the worker pod runs on a new
// Kubernetes node, resumes the Slurm node itself. For "[node_problem]" it
// first parses the reason as "[node_problem] <name>: <message>" and stops
// if <name> does not camel-case into a Kubernetes condition reason: the
// fixed word "sopilot" before the first ": " always does. "[node_problem]"
// is used because it works on more releases than "[hardware_problem]" and
// Soperator's own health checks write it ("[node_problem] <check>: ...").
const HandoffReasonPrefix = "[node_problem] sopilot:"

// IsHandoff reports whether a Slurm reason is one of sopilot's hand-off
// drains.
func IsHandoff(reason string) bool { return strings.HasPrefix(reason, HandoffReasonPrefix) }

// FormatHandoffReason builds the reason of a hand-off drain:
// "[node_problem] sopilot: <evidence> incident=<id>", one line, cut to fit
// in MaxReasonLen bytes like FormatReason (the incident id always fits).
func FormatHandoffReason(evidence, incidentID string) string {
	return FormatReason(HandoffReasonPrefix, evidence, incidentID)
}

// handoffRules are the health rules whose evidence is hardware-class: a
// fault that a GPU reset or a reboot does not cure, for which the right fix
// is another machine. XIDs are in rule xid_drain only when ClassifyXID
// says XIDDrain (48 double-bit ECC, 64 and 95 ECC page retirement or
// uncontained error, 74 NVLink, 79 fallen off the bus, 119 and 120 GSP).
// A row remap failure is the permanent form of uncorrectable memory
// errors; a lost or missing GPU and a down InfiniBand port are the
// machine's (moving the worker to another machine is what cures them for
// the cluster).
//
// Evidence that a reset or the next job can cure stays with sopilot's own
// drain, verify and resume: uncorrected ECC errors counted or reported as
// events (on H100 and H200 the row is remapped, a reset applies it; when
// that fails, row_remap_failure follows), a pending row remap, a recovery
// action the driver asks for, application XIDs repeated across jobs. So
// does evidence about performance: throttling, error rates, NCCL
// bandwidth, stalled progress.
var handoffRules = map[string]bool{
	"xid_drain":             true,
	"gpu_lost":              true,
	"gpu_count":             true,
	"row_remap_failure":     true,
	"ib_link_down":          true,
	"ib_downtime":           true,
	"ib_symbol_error_fatal": true,
}

// HandoffRule reports whether a health rule's evidence is hardware-class,
// handed to Soperator in hand-off mode.
func HandoffRule(rule string) bool { return handoffRules[rule] }

// handoffEvidence is the evidence of a result's hardware-class findings
// that ask for a drain, like evidence but over those findings only; ok is
// false when there are none.
func handoffEvidence(r health.Result) (string, bool) {
	var hw []health.Finding
	for _, f := range r.Findings {
		if f.Action >= health.ActionDrainAfterJob && HandoffRule(f.Rule) {
			hw = append(hw, f)
		}
	}
	if len(hw) == 0 {
		return "", false
	}
	return evidence(health.Result{Verdict: r.Verdict, Action: r.Action, Findings: hw}), true
}
