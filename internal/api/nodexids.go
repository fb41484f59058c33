package api

import (
	"context"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/sopilot/sopilot/internal/store"
	"github.com/sopilot/sopilot/pkg/apipb"
)

// maxOpenIncidents bounds the open incidents read for one answer (one
// page of the store).
const maxOpenIncidents = 1000

// openIncidents are node's open incidents (every node's when node is
// empty), newest first. Without node operations there are none.
func (s *NodeServer) openIncidents(ctx context.Context, node string) ([]*store.Incident, error) {
	if s.ops == nil {
		return nil, nil
	}
	incs, _, err := s.ops.Incidents(ctx, store.IncidentQuery{Node: node, OpenOnly: true, PageSize: maxOpenIncidents})
	return incs, err
}

// xidEvidence is the health rules' evidence line, "xid 79 (drain) on gpu3".
var xidEvidence = regexp.MustCompile(`^xid (\d+)\b`)

// openXIDs are the XID codes of open incidents, by node and GPU index.
// The nodes still answer when the incidents cannot be read: the XIDs are
// then missing, and the failure is logged.
func (s *NodeServer) openXIDs(ctx context.Context, node string) map[string]map[int32][]int32 {
	incs, err := s.openIncidents(ctx, node)
	if err != nil {
		s.log.Warn("read open incidents for the nodes' GPUs", "node", node, "err", err)
		return nil
	}
	out := map[string]map[int32][]int32{}
	slices.Reverse(incs) // oldest first
	for _, inc := range incs {
		idx, ok := gpuIndex(inc.Component)
		if !ok || !strings.HasPrefix(inc.Rule, "xid") {
			continue
		}
		m := xidEvidence.FindStringSubmatch(inc.Evidence)
		if m == nil {
			continue
		}
		code, err := strconv.ParseInt(m[1], 10, 32)
		if err != nil {
			continue
		}
		if out[inc.Node] == nil {
			out[inc.Node] = map[int32][]int32{}
		}
		if !slices.Contains(out[inc.Node][idx], int32(code)) {
			out[inc.Node][idx] = append(out[inc.Node][idx], int32(code))
		}
	}
	return out
}

// gpuIndex reads an incident component "gpu3".
func gpuIndex(component string) (int32, bool) {
	rest, ok := strings.CutPrefix(component, "gpu")
	if !ok {
		return 0, false
	}
	i, err := strconv.ParseInt(rest, 10, 32)
	return int32(i), err == nil && i >= 0
}

// addXIDs sets each GPU's open XIDs.
func addXIDs(n *apipb.Node, byGPU map[int32][]int32) {
	for _, g := range n.GetGpus() {
		g.OpenXids = byGPU[g.GetIndex()]
	}
}
