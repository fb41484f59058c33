package health

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The component vocabulary. Incidents are keyed by (node, component, rule),
// so the set of names an agent may use bounds how many incidents one node
// can open: a name outside it is refused at the controller's edge, never
// turned into an incident.
//
//	gpu          a GPU event the agent could not attribute to a device
//	gpu<N>       GPU N, 0 ≤ N < the controller's per-node GPU limit
//	ib:<dev>/<p> an InfiniBand port of the node's inventory
//	node         the node as a whole (GPU count against the inventory)
//	agent        the node's agent (silence); the controller's own
//
// The monitor's own rules add "nccl" and "run:<id>"; agents never send them.
const (
	ComponentGPUUnattributed = "gpu"
	ComponentNode            = "node"
	ComponentAgent           = "agent"
)

// ErrComponent: a component name outside the vocabulary.
var ErrComponent = errors.New("component not in the vocabulary")

// gpuNames are the canonical names of the first GPUs, shared so that
// events kept as evidence do not each hold a copy.
var gpuNames = func() [128]string {
	var a [128]string
	for i := range a {
		a[i] = "gpu" + strconv.Itoa(i)
	}
	return a
}()

// GPUComponent is GPU i's component name.
func GPUComponent(i int) string {
	if i >= 0 && i < len(gpuNames) {
		return gpuNames[i]
	}
	return "gpu" + strconv.Itoa(i)
}

// EventComponents is what an agent's health events may name on one node.
type EventComponents struct {
	// MaxGPUs: gpuN is accepted for 0 ≤ N < MaxGPUs.
	MaxGPUs int
	// IBPort reports whether the node's inventory has the port; nil: none.
	IBPort func(device string, port int) bool
}

// Canonical checks an event's component and returns its canonical name
// (the shared string for gpuN), or an error wrapping ErrComponent that
// says what is accepted.
func (c EventComponents) Canonical(s string) (string, error) {
	switch {
	case s == ComponentGPUUnattributed || s == ComponentNode:
		return s, nil
	case strings.HasPrefix(s, "gpu"):
		digits := s[3:]
		i, err := strconv.Atoi(digits)
		if err != nil || i < 0 || digits != strconv.Itoa(i) {
			return "", fmt.Errorf("%w: %q is not gpu<N>", ErrComponent, clip(s))
		}
		if i >= c.MaxGPUs {
			return "", fmt.Errorf("%w: %q: GPU index at most %d", ErrComponent, s, c.MaxGPUs-1)
		}
		return GPUComponent(i), nil
	case strings.HasPrefix(s, "ib:"):
		dev, port, ok := strings.Cut(s[3:], "/")
		p, err := strconv.Atoi(port)
		if !ok || err != nil || dev == "" || port != strconv.Itoa(p) {
			return "", fmt.Errorf("%w: %q is not ib:<device>/<port>", ErrComponent, clip(s))
		}
		if c.IBPort == nil || !c.IBPort(dev, p) {
			return "", fmt.Errorf("%w: %q is not a port of the node's inventory", ErrComponent, clip(s))
		}
		return s, nil
	}
	return "", fmt.Errorf("%w: %q (want gpu, gpu<N>, ib:<device>/<port> or node)", ErrComponent, clip(s))
}

// clip keeps error messages short whatever was sent.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
