package api

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sopilot/sopilot/internal/auth"
	"github.com/sopilot/sopilot/internal/fleet"
	"github.com/sopilot/sopilot/internal/monitor"
	"github.com/sopilot/sopilot/internal/remediation"
	"github.com/sopilot/sopilot/internal/run"
	"github.com/sopilot/sopilot/internal/store"
	"github.com/sopilot/sopilot/pkg/apipb"
)

// NodeOps are NodeService's operations: drains, checks and incidents.
type NodeOps interface {
	Drain(ctx context.Context, node, reason, who string) (remediation.Decision, error)
	Undrain(ctx context.Context, node string, skipVerification bool, who string) (remediation.Decision, error)
	Check(ctx context.Context, node, check string) (monitor.CheckResult, error)
	Incidents(ctx context.Context, q store.IncidentQuery) ([]*store.Incident, string, error)
}

var _ NodeOps = (*monitor.Monitor)(nil)

func (s *NodeServer) opsReady() error {
	if err := s.ready(); err != nil {
		return err
	}
	if s.ops == nil {
		return status.Error(codes.Unimplemented, "this controller does not run node operations")
	}
	return nil
}

// caller names who asked, for Slurm's drain reason and the incident
// record: the authenticated identity's name (the token file's name
// column, the Kubernetes user, or "insecure" on an insecure controller).
// A call without an identity reached the handler around the
// authorization interceptors, a wiring bug: it is refused.
func caller(ctx context.Context) (string, error) {
	id, ok := auth.FromContext(ctx)
	if !ok || id.Name == "" {
		return "", status.Error(codes.Unauthenticated, "no authenticated caller to record the node operation against")
	}
	return id.Name, nil
}

func (s *NodeServer) nodeOrName(name string) *apipb.Node {
	if v, ok := s.nodes.Snapshot(name); ok {
		return NodeToProto(v)
	}
	return &apipb.Node{Name: name}
}

// DrainNode drains a node in Slurm with the operator's reason.
func (s *NodeServer) DrainNode(ctx context.Context, req *apipb.DrainNodeRequest) (*apipb.DrainNodeResponse, error) {
	if err := s.opsReady(); err != nil {
		return nil, err
	}
	var vs []run.FieldViolation
	if err := requireNodeName(req.GetName()); err != nil {
		return nil, err
	}
	r := strings.TrimSpace(req.GetReason())
	switch {
	case r == "":
		vs = append(vs, run.FieldViolation{Field: "reason", Description: "required: why the node is drained, shown in Slurm after sopilot's prefix"})
	case len(r) > 100 || strings.ContainsAny(r, "\n\r\t"):
		vs = append(vs, run.FieldViolation{Field: "reason", Description: "at most 100 characters on one line"})
	}
	if len(vs) > 0 {
		return nil, badRequest(violationText(vs), vs...)
	}
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := s.ops.Drain(ctx, req.GetName(), r, who); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	s.refresh(ctx, req.GetName())
	return &apipb.DrainNodeResponse{Node: s.nodeOrName(req.GetName())}, nil
}

// refresh reads Slurm's node states after an operation changed one. The
// operation is done either way: a failed read only leaves the previous
// state shown until the next periodic read.
func (s *NodeServer) refresh(ctx context.Context, node string) {
	if s.RefreshSlurm == nil {
		return
	}
	if err := s.RefreshSlurm(ctx); err != nil {
		s.log.Warn("read slurm node states after a node operation", "node", node, "err", err)
	}
}

// hardwareIncidents are node's open incidents whose evidence is
// hardware-class (remediation.HandoffRule: an XID that needs a drain, a
// lost GPU, a failed row remap, a down InfiniBand port), oldest first.
func (s *NodeServer) hardwareIncidents(ctx context.Context, node string) ([]*store.Incident, error) {
	incs, err := s.openIncidents(ctx, node)
	if err != nil {
		return nil, err
	}
	var hw []*store.Incident
	for i := len(incs) - 1; i >= 0; i-- {
		if remediation.HandoffRule(incs[i].Rule) {
			hw = append(hw, incs[i])
		}
	}
	return hw, nil
}

// incidentList is "01J...: xid 79 (drain) on gpu3; ..." for messages.
func incidentList(incs []*store.Incident) string {
	parts := make([]string, len(incs))
	for i, inc := range incs {
		parts[i] = fmt.Sprintf("%s (%s)", inc.ID, inc.Summary)
	}
	return strings.Join(parts, "; ")
}

// UndrainNode resumes a node sopilot drained.
func (s *NodeServer) UndrainNode(ctx context.Context, req *apipb.UndrainNodeRequest) (*apipb.UndrainNodeResponse, error) {
	if err := s.opsReady(); err != nil {
		return nil, err
	}
	if err := requireNodeName(req.GetName()); err != nil {
		return nil, err
	}
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	hw, err := s.hardwareIncidents(ctx, req.GetName())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	if len(hw) > 0 && !req.GetForce() {
		return nil, status.Errorf(codes.FailedPrecondition,
			"node %s has %d open hardware incident(s): %s; the fault may still be there: fix or replace the machine, or set force to resume anyway",
			req.GetName(), len(hw), incidentList(hw))
	}
	if _, err := s.ops.Undrain(ctx, req.GetName(), req.GetSkipVerification(), who); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	if len(hw) > 0 {
		s.log.Warn("node undrained with open hardware incidents (force)", "node", req.GetName(), "by", who, "incidents", incidentList(hw))
	}
	s.refresh(ctx, req.GetName())
	out := &apipb.UndrainNodeResponse{Node: s.nodeOrName(req.GetName())}
	for _, inc := range hw {
		out.OverriddenIncidents = append(out.OverriddenIncidents, IncidentToProto(inc))
	}
	return out, nil
}

// RunNodeCheck runs an active check on a node through its agent.
func (s *NodeServer) RunNodeCheck(ctx context.Context, req *apipb.RunNodeCheckRequest) (*apipb.RunNodeCheckResponse, error) {
	if err := s.opsReady(); err != nil {
		return nil, err
	}
	if err := requireNodeName(req.GetName()); err != nil {
		return nil, err
	}
	if c := req.GetCheck(); c != "" && c != "nccl" {
		return nil, badRequest(fmt.Sprintf("unknown check %q", c), run.FieldViolation{Field: "check", Description: `"nccl" (the default) is the only check`})
	}
	r, err := s.ops.Check(ctx, req.GetName(), req.GetCheck())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return &apipb.RunNodeCheckResponse{Passed: r.Passed, Summary: r.Summary, BusBandwidthGbps: r.BusBWGBps}, nil
}

var severities = map[string]apipb.HealthVerdict{
	"DEGRADED":  apipb.HealthVerdict_HEALTH_VERDICT_DEGRADED,
	"UNHEALTHY": apipb.HealthVerdict_HEALTH_VERDICT_UNHEALTHY,
	"HEALTHY":   apipb.HealthVerdict_HEALTH_VERDICT_HEALTHY,
}

// IncidentToProto converts a stored incident.
func IncidentToProto(i *store.Incident) *apipb.Incident {
	return &apipb.Incident{
		Id: i.ID, Node: i.Node, Component: i.Component, Summary: i.Summary, Severity: severities[i.Severity],
		Count: i.Count, FirstSeenTime: ts(i.FirstSeen), LastSeenTime: ts(i.LastSeen), ResolveTime: ts(i.ResolveTime),
		Action: i.Action, RunIds: i.RunIDs,
	}
}

// ListIncidents lists incidents per node or per run, newest first.
func (s *NodeServer) ListIncidents(ctx context.Context, req *apipb.ListIncidentsRequest) (*apipb.ListIncidentsResponse, error) {
	if err := s.opsReady(); err != nil {
		return nil, err
	}
	var vs []run.FieldViolation
	if req.GetNode() != "" && !fleet.ValidNodeName(req.GetNode()) {
		vs = append(vs, run.FieldViolation{Field: "node", Description: "a Slurm node name"})
	}
	if req.GetNode() != "" && req.GetRunId() != "" {
		vs = append(vs, run.FieldViolation{Field: "run_id", Description: "filter by node or by run, not both"})
	}
	if req.GetPageSize() < 0 || req.GetPageSize() > 1000 {
		vs = append(vs, run.FieldViolation{Field: "page_size", Description: "0 (default 100) to 1000"})
	}
	if len(req.GetPageToken()) > 64 {
		vs = append(vs, run.FieldViolation{Field: "page_token", Description: "a next_page_token from a previous response"})
	}
	if len(vs) > 0 {
		return nil, badRequest(violationText(vs), vs...)
	}
	incs, next, err := s.ops.Incidents(ctx, store.IncidentQuery{Node: req.GetNode(), RunID: req.GetRunId(), PageSize: int(req.GetPageSize()), After: req.GetPageToken()})
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	if req.GetNode() != "" && req.GetPageToken() == "" && len(incs) == 0 {
		// A node with incidents on record is listed even after it left
		// Slurm; one with none that nobody knows is a typo, not a
		// healthy node.
		if _, known := s.nodes.Snapshot(req.GetNode()); !known {
			return nil, nodeNotFound(req.GetNode())
		}
	}
	out := &apipb.ListIncidentsResponse{NextPageToken: next}
	for _, i := range incs {
		out.Incidents = append(out.Incidents, IncidentToProto(i))
	}
	return out, nil
}

// violationText is "field: description; ..." for an error message.
func violationText(vs []run.FieldViolation) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = v.Field + ": " + v.Description
	}
	return strings.Join(parts, "; ")
}
