package slurmrest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sopilot/sopilot/internal/scheduler"
	"github.com/sopilot/sopilot/internal/scheduler/slurmjson"
)

var _ scheduler.NodeBackend = (*Backend)(nil)

// Slurm's answers to RESUME of a node that is neither drained nor down:
// ESLURM_INVALID_NODE_STATE "Invalid node state specified" up to 24.11,
// "Invalid node state transition" (2180) on 26.05.
const (
	errnoInvalidNodeState      = 2028
	errnoInvalidNodeTransition = 2180
)

// nodeUpdateMinMinor is the first API version with POST
// /slurm/{version}/node/{name}: slurmrestd's v0.0.38 plugin (Slurm 21.08 to
// 23.02) only reads nodes, as its served OpenAPI document shows and as a
// 22.05 slurmrestd confirms (HTTP 405 "Requested REST method is not defined
// at URL"). The data_parser plugins of Slurm 23.11 and later accept it.
const nodeUpdateMinMinor = 40

// Nodes implements scheduler.NodeBackend with GET /slurm/{version}/nodes
// (slurmctld: REQUEST_NODE_INFO, then REQUEST_PARTITION_INFO to fill in the
// partitions).
func (b *Backend) Nodes(ctx context.Context) ([]scheduler.NodeStatus, error) {
	resp, err := b.do(ctx, http.MethodGet, "nodes", nil)
	if err != nil {
		return nil, fmt.Errorf("slurmrest: nodes: %w", err)
	}
	nodes, err := ParseNodes(resp.body)
	if err != nil {
		return nil, fmt.Errorf("slurmrest: nodes: GET /slurm/%s/nodes: %w", b.APIVersion(), err)
	}
	return nodes, nil
}

// Drain implements scheduler.NodeBackend with POST
// /slurm/{version}/node/{node} and body {"state":["DRAIN"],"reason":reason}.
// API versions before v0.0.40 have no such endpoint: the error then wraps
// scheduler.ErrNodeUnsupported.
func (b *Backend) Drain(ctx context.Context, node, reason string) error {
	if err := scheduler.CheckNodeName(node); err != nil {
		return fmt.Errorf("slurmrest: drain: %w", err)
	}
	if err := scheduler.CheckNodeReason(reason); err != nil {
		return fmt.Errorf("slurmrest: drain node %s: %w", node, err)
	}
	if err := b.checkNodeUpdate(ctx); err != nil {
		return fmt.Errorf("slurmrest: drain node %s: %w", node, err)
	}
	body, err := json.Marshal(nodeUpdate{State: []string{"DRAIN"}, Reason: reason})
	if err != nil {
		return fmt.Errorf("slurmrest: drain node %s: %w", node, err)
	}
	if _, err := b.do(ctx, http.MethodPost, "node/"+url.PathEscape(node), body); err != nil {
		return fmt.Errorf("slurmrest: drain node %s: %w", node, err)
	}
	b.logger.Info("slurmrest: drained node", "node", node, "reason", reason)
	return nil
}

// Resume implements scheduler.NodeBackend with POST
// /slurm/{version}/node/{node} and body {"state":["RESUME"]}. A node with
// nothing to resume (Slurm answers ESLURM_INVALID_NODE_STATE, "Invalid node
// state specified") is not an error. API versions before v0.0.40 have no
// such endpoint: the error then wraps scheduler.ErrNodeUnsupported.
func (b *Backend) Resume(ctx context.Context, node string) error {
	if err := scheduler.CheckNodeName(node); err != nil {
		return fmt.Errorf("slurmrest: resume: %w", err)
	}
	if err := b.checkNodeUpdate(ctx); err != nil {
		return fmt.Errorf("slurmrest: resume node %s: %w", node, err)
	}
	body, err := json.Marshal(nodeUpdate{State: []string{"RESUME"}})
	if err != nil {
		return fmt.Errorf("slurmrest: resume node %s: %w", node, err)
	}
	_, err = b.do(ctx, http.MethodPost, "node/"+url.PathEscape(node), body)
	var apiErr *APIError
	if err != nil && errors.As(err, &apiErr) && (apiErr.Has(errnoInvalidNodeState) || apiErr.Has(errnoInvalidNodeTransition)) {
		b.logger.Debug("slurmrest: resume of a node that is neither drained nor down", "node", node, "err", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("slurmrest: resume node %s: %w", node, err)
	}
	b.logger.Info("slurmrest: resumed node", "node", node)
	return nil
}

// nodeUpdate is the update_node_msg body of POST /slurm/{version}/node/{name}
// (data_parser v0.0.40 to v0.0.44: "state" is a NODE_STATES flag array).
type nodeUpdate struct {
	State  []string `json:"state"`
	Reason string   `json:"reason,omitempty"`
}

// checkNodeUpdate says whether this API version can change nodes.
func (b *Backend) checkNodeUpdate(ctx context.Context) error {
	v, err := b.apiVersion(ctx)
	if err != nil {
		return err
	}
	if v.minor >= nodeUpdateMinMinor {
		return nil
	}
	return fmt.Errorf("%w: slurmrestd API %s cannot change nodes (POST /slurm/{version}/node/{name} needs v0.0.40 or later, Slurm 23.11+); use the cli backend (scontrol update) instead",
		scheduler.ErrNodeUnsupported, v.name)
}

// nodeBaseStates are Slurm's base node states (node_state_base_string);
// everything else in a state array is a flag.
var nodeBaseStates = map[string]bool{
	"UNKNOWN": true, "DOWN": true, "IDLE": true, "ALLOCATED": true,
	"ERROR": true, "MIXED": true, "FUTURE": true, "END": true,
}

// ParseNodes reads a node listing of slurmrestd (GET /slurm/{version}/nodes
// and /node/{name}), of `scontrol --json show nodes` (Slurm 23.02 and
// later) or of `sinfo --json`, in every shape these have used:
//
//   - openapi/v0.0.38 (Slurm 21.08 to 23.02, slurmrestd and sinfo): a
//     "nodes" array; "state" is the base state in lower case ("idle",
//     "mixed"), "state_flags" the flags ("DRAIN", "NOT_RESPONDING"),
//     "reason_changed_at" Unix seconds (0 when unset),
//     "reason_set_by_user" a user name or null;
//   - data_parser v0.0.39 to v0.0.45 (slurmrestd and scontrol of Slurm
//     23.02 and later): a "nodes" array; "state" is an array, base state
//     first then flags (["IDLE","DRAIN"]), and "reason_changed_at" a
//     {"set","infinite","number"} structure;
//   - sinfo --json of Slurm 23.11 and later: a "sinfo" array with one
//     entry per group of nodes sinfo would print on one line (same state,
//     reason, GRES, ...): "node.state" (an array as above),
//     "nodes.nodes" (the names), "reason.description", "reason.time",
//     "reason.user" (24.11; 26.05 no longer has it) and "gres.total"
//     ("gpu:8", per node).
//
// A reason is reported only for a node it explains (down, drained, failing,
// rebooting, powering down; see dropStaleReason). "gres" ("gpu:8",
// "gpu:h100:8(S:0-1)", ...) gives the GPU count. "instance_id" (data_parser
// v0.0.40 and later, from Slurm 23.11: the slurmd's --instance-id, on
// Soperator the worker pod's Kubernetes node name) gives InstanceID; sinfo's
// groups and v0.0.38 have none. A field
// of an unexpected type reads as its zero value, and a node without a
// usable name is skipped; only a document with neither a "nodes" nor a
// "sinfo" array is an error. Nodes are returned in the document's order.
func ParseNodes(data []byte) ([]scheduler.NodeStatus, error) {
	var doc struct {
		Nodes *[]json.RawMessage `json:"nodes"`
		Sinfo *[]json.RawMessage `json:"sinfo"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("node listing is not a JSON object: %w", err)
	}
	if doc.Nodes == nil && doc.Sinfo != nil {
		return parseSinfoGroups(*doc.Sinfo), nil
	}
	if doc.Nodes == nil {
		return nil, errors.New(`node listing has neither a "nodes" nor a "sinfo" array`)
	}
	out := make([]scheduler.NodeStatus, 0, len(*doc.Nodes))
	for _, raw := range *doc.Nodes {
		var f map[string]json.RawMessage
		if json.Unmarshal(raw, &f) != nil || f == nil {
			continue
		}
		n := scheduler.NodeStatus{Name: slurmjson.String(f["name"])}
		if scheduler.CheckNodeName(n.Name) != nil {
			continue
		}
		n.State, n.Flags = nodeState(f["state"], f["state_flags"])
		n.Reason = slurmjson.String(f["reason"])
		n.ReasonUser = slurmjson.String(f["reason_set_by_user"])
		n.ReasonTime = reasonTime(f["reason_changed_at"])
		n.GPUs = GRESGPUs(slurmjson.String(f["gres"]))
		n.InstanceID = scheduler.CleanInstanceID(slurmjson.String(f["instance_id"]))
		out = append(out, dropStaleReason(n))
	}
	return out, nil
}

// reasonStates are the base states and flags a node's reason explains.
var reasonStates = map[string]bool{
	"DOWN": true, "ERROR": true, "DRAIN": true, "FAIL": true, "MAINTENANCE": true,
	"REBOOT_REQUESTED": true, "REBOOT_ISSUED": true, "POWER_DOWN": true, "POWERING_DOWN": true, "POWERED_DOWN": true,
}

// dropStaleReason clears the reason of a node that is neither down nor
// drained (nor failing, rebooting or powering down): Slurm 22.05 and 26.05
// clear or refuse such a reason, while 24.11 keeps a drain reason after
// RESUME and stores a reason given to an idle node. Sinfo -R does not show
// those either; reporting them would make a resumed node look different on
// 24.11 than on the other versions.
func dropStaleReason(n scheduler.NodeStatus) scheduler.NodeStatus {
	if reasonStates[n.State] || slices.ContainsFunc(n.Flags, func(f string) bool { return reasonStates[f] }) {
		return n
	}
	n.Reason, n.ReasonUser, n.ReasonTime = "", "", time.Time{}
	return n
}

// reasonTime reads a reason's Unix time; 0, unset and NO_VAL are no time.
func reasonTime(raw json.RawMessage) time.Time {
	if t, ok := slurmjson.Int(raw); ok && t > 0 && t < slurmjson.NoVal {
		return time.Unix(t, 0).UTC()
	}
	return time.Time{}
}

// maxSinfoGroupNodes bounds the nodes one sinfo group may expand to, so
// that a hostlist range in hostile input cannot exhaust memory.
const maxSinfoGroupNodes = 1 << 16

// parseSinfoGroups reads the "sinfo" array of sinfo --json (Slurm 23.11+):
// each group gives its values to every node it names. A node named by
// several groups (it is in several partitions) is reported once, from its
// first group.
func parseSinfoGroups(groups []json.RawMessage) []scheduler.NodeStatus {
	var out []scheduler.NodeStatus
	seen := map[string]bool{}
	for _, raw := range groups {
		var g struct {
			Node struct {
				State json.RawMessage `json:"state"`
			} `json:"node"`
			Nodes struct {
				Nodes json.RawMessage `json:"nodes"`
			} `json:"nodes"`
			Reason struct {
				Description json.RawMessage `json:"description"`
				Time        json.RawMessage `json:"time"`
				User        json.RawMessage `json:"user"`
			} `json:"reason"`
			Gres struct {
				Total json.RawMessage `json:"total"`
			} `json:"gres"`
		}
		if json.Unmarshal(raw, &g) != nil {
			continue
		}
		state, flags := nodeState(g.Node.State, nil)
		reason := slurmjson.String(g.Reason.Description)
		user := slurmjson.String(g.Reason.User)
		when := reasonTime(g.Reason.Time)
		gpus := GRESGPUs(slurmjson.String(g.Gres.Total))
		for _, name := range sinfoGroupNames(g.Nodes.Nodes) {
			if seen[name] || scheduler.CheckNodeName(name) != nil {
				continue
			}
			seen[name] = true
			out = append(out, dropStaleReason(scheduler.NodeStatus{
				Name: name, State: state, Flags: slices.Clone(flags),
				Reason: reason, ReasonUser: user, ReasonTime: when, GPUs: gpus,
			}))
		}
	}
	if out == nil {
		out = []scheduler.NodeStatus{}
	}
	return out
}

// sinfoGroupNames reads "nodes.nodes": an array of names, each of which
// may also be a hostlist expression ("worker-[0-3]"), expanded here.
func sinfoGroupNames(raw json.RawMessage) []string {
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) != nil {
		return nil
	}
	var out []string
	for _, r := range list {
		s := slurmjson.String(r)
		if !strings.ContainsAny(s, "[,") {
			out = append(out, s)
			continue
		}
		names, err := scheduler.ExpandHostlist(s)
		if err != nil || len(out)+len(names) > maxSinfoGroupNodes {
			continue
		}
		out = append(out, names...)
	}
	return out
}

// nodeState reads the base state and flags from "state" (a string or an
// array) and "state_flags" (v0.0.38). Names are upper-cased, empty and
// repeated ones dropped; a state without a base state reads as UNKNOWN.
func nodeState(state, flags json.RawMessage) (string, []string) {
	var names []string
	var list []json.RawMessage
	if json.Unmarshal(state, &list) == nil {
		for _, r := range list {
			names = append(names, slurmjson.String(r))
		}
	} else {
		names = append(names, slurmjson.String(state))
	}
	list = nil
	if json.Unmarshal(flags, &list) == nil {
		for _, r := range list {
			names = append(names, slurmjson.String(r))
		}
	}
	base := ""
	var out []string
	for _, s := range names {
		s = strings.ToUpper(strings.TrimSpace(s))
		switch {
		case s == "":
		case base == "" && nodeBaseStates[s]:
			base = s
		case !containsString(out, s):
			out = append(out, s)
		}
	}
	if base == "" {
		base = "UNKNOWN"
	}
	return base, out
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// GRESGPUs returns the number of GPUs in a node's GRES string, as Slurm
// prints it ("gpu:8", "gpu:h100:8(S:0-1)", "gpu:a100:2,gpu:h100:2",
// "gpu:8,shard:32"): the sum of the counts of the "gpu" entries. An entry
// without a count is one GPU; "(null)", "N/A" and anything unreadable count
// nothing.
func GRESGPUs(gres string) int {
	total := 0
	for _, entry := range splitTopLevel(gres) {
		if i := strings.IndexByte(entry, '('); i >= 0 {
			entry = entry[:i]
		}
		parts := strings.Split(strings.TrimSpace(entry), ":")
		if parts[0] != "gpu" {
			continue
		}
		count := 1
		if len(parts) > 1 {
			last := parts[len(parts)-1]
			if n, err := strconv.Atoi(last); err == nil {
				if n < 0 || n > 1<<20 {
					continue
				}
				count = n
			} else if len(parts) > 2 || allDigits(last) {
				continue // "gpu:type:garbage", or a count out of range
			}
		}
		if total+count > 1<<20 {
			return total
		}
		total += count
	}
	return total
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// splitTopLevel splits s at the commas outside parentheses.
func splitTopLevel(s string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			if depth > 0 {
				depth--
			}
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}
