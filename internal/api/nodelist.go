package api

// nodelist.go: ListNodes' pages (AIP-158) and filter. A page token is the
// last name of the previous page with a hash of the filter that made it,
// so that a page starts after that name however many nodes came or went
// meanwhile, and a token reused with another filter is refused.

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sopilot/sopilot/internal/fleet"
	"github.com/sopilot/sopilot/internal/run"
)

const (
	// defaultNodePageSize is a page when the request names no size.
	defaultNodePageSize = 500
	// maxNodePageSize bounds a page: 1,000 nodes with 8 GPUs and 8 IB
	// ports each in NODE_VIEW_FULL is about 2 MB, half of gRPC's default
	// 4 MiB message limit (TestLargestNodePageFitsTheMessageLimit).
	maxNodePageSize = 1000
)

// errBadFilter: a ListNodes filter that does not parse.
var errBadFilter = errors.New("bad filter")

// nodeFilter is a parsed ListNodes filter: each set field must match.
type nodeFilter struct {
	verdicts, states, machines, names map[string]bool
	unmapped                          *bool
}

var filterVerdicts = []string{"HEALTHY", "DEGRADED", "UNHEALTHY", "UNKNOWN"}

// parseNodeFilter parses `FIELD=VALUE[,VALUE...]` terms separated by
// spaces (see ListNodesRequest.filter). Errors wrap errBadFilter and
// name the filter's field.
func parseNodeFilter(s string) (nodeFilter, error) {
	var f nodeFilter
	seen := map[string]bool{}
	for _, term := range strings.Fields(s) {
		field, value, ok := strings.Cut(term, "=")
		if !ok || field == "" {
			return f, fmt.Errorf("%w: %q is not FIELD=VALUE (fields: verdict, slurm_state, machine, unmapped, name)", errBadFilter, term)
		}
		if seen[field] {
			return f, fmt.Errorf("%w: %s: given twice (list its values once, comma-separated)", errBadFilter, field)
		}
		seen[field] = true
		values := strings.Split(value, ",")
		set := map[string]bool{}
		for _, v := range values {
			if v == "" {
				return f, fmt.Errorf("%w: %s: empty value in %q", errBadFilter, field, term)
			}
			switch field {
			case "verdict":
				v = strings.ToUpper(strings.TrimPrefix(strings.ToUpper(v), "HEALTH_VERDICT_"))
				if !slices.Contains(filterVerdicts, v) {
					return f, fmt.Errorf("%w: verdict: %q is not one of %s", errBadFilter, v, strings.Join(filterVerdicts, ", "))
				}
			case "slurm_state":
				v = strings.ToUpper(v)
				if strings.IndexFunc(v, func(r rune) bool { return (r < 'A' || r > 'Z') && r != '_' }) >= 0 {
					return f, fmt.Errorf("%w: slurm_state: %q is not a Slurm state or flag (letters and '_', e.g. IDLE, DRAIN)", errBadFilter, v)
				}
			case "machine", "name":
				if !fleet.ValidNodeName(v) {
					return f, fmt.Errorf("%w: %s: %q is not a name", errBadFilter, field, v)
				}
			case "unmapped":
				if len(values) != 1 || (v != "true" && v != "false") {
					return f, fmt.Errorf("%w: unmapped: %q is not true or false", errBadFilter, value)
				}
			default:
				return f, fmt.Errorf("%w: %q is not a field to filter on (fields: verdict, slurm_state, machine, unmapped, name)", errBadFilter, field)
			}
			set[v] = true
		}
		switch field {
		case "verdict":
			f.verdicts = set
		case "slurm_state":
			f.states = set
		case "machine":
			f.machines = set
		case "name":
			f.names = set
		case "unmapped":
			b := value == "true"
			f.unmapped = &b
		}
	}
	return f, nil
}

// match reports whether the node passes every term. v needs no
// telemetry: fleet.Index's views do.
func (f nodeFilter) match(v fleet.NodeView) bool {
	if f.verdicts != nil && !f.verdicts[v.Verdict.Verdict] {
		return false
	}
	if f.machines != nil && !f.machines[v.Machine] {
		return false
	}
	if f.names != nil && !f.names[v.Name] {
		return false
	}
	if f.unmapped != nil && *f.unmapped != v.Unmapped {
		return false
	}
	if f.states != nil {
		if v.Slurm == nil {
			return false
		}
		hit := f.states[v.Slurm.State]
		for _, fl := range v.Slurm.Flags {
			hit = hit || f.states[fl]
		}
		if !hit {
			return false
		}
	}
	return true
}

// filterViolation is the BadRequest for a filter that does not parse.
func filterViolation(err error) error {
	return badRequest("filter: "+err.Error(), run.FieldViolation{Field: "filter", Description: err.Error()})
}

// pageTokenVersion leads every token, so that a later format can refuse
// this one clearly.
const pageTokenVersion = 1

// filterHash identifies a filter in a page token: its text with spaces
// normalised.
func filterHash(filter string) [8]byte {
	sum := sha256.Sum256([]byte(strings.Join(strings.Fields(filter), " ")))
	return [8]byte(sum[:8])
}

// nodePageToken is the token of the page after the node named last.
func nodePageToken(filter, last string) string {
	h := filterHash(filter)
	b := append([]byte{pageTokenVersion}, h[:]...)
	return base64.RawURLEncoding.EncodeToString(append(b, last...))
}

// parseNodePageToken returns the last name of the previous page; an
// error (a BadRequest on page_token) for a token this server did not make
// or made for another filter.
func parseNodePageToken(token, filter string) (string, error) {
	if token == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) < 10 || b[0] != pageTokenVersion {
		return "", badRequest("page_token is not a token from ListNodes", run.FieldViolation{Field: "page_token", Description: "pass next_page_token of the previous page unchanged"})
	}
	if h := filterHash(filter); string(b[1:9]) != string(h[:]) {
		return "", badRequest("page_token was made for another filter", run.FieldViolation{Field: "page_token", Description: "a page token is valid only with the filter of the page that returned it; start again without page_token"})
	}
	return string(b[9:]), nil
}
