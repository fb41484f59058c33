package scheduler

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// plainBackend submits and records the order of events; it is no
// GatedSubmitter.
type plainBackend struct {
	Backend // nil: only Submit is called
	events  *[]string
}

func (b plainBackend) Submit(context.Context, JobSpec) (string, error) {
	*b.events = append(*b.events, "submit")
	return "7", nil
}

// gatedBackend is a GatedSubmitter.
type gatedBackend struct{ plainBackend }

func (b gatedBackend) SubmitGated(ctx context.Context, job JobSpec, gate func() error) (string, error) {
	*b.events = append(*b.events, "start")
	if err := gate(); err != nil {
		return "", err
	}
	return b.Submit(ctx, job)
}

func TestSubmitAfter(t *testing.T) {
	refused := errors.New("not recorded")
	for _, tt := range []struct {
		name    string
		gated   bool
		gateErr error
		want    string // the events, in order
	}{
		{"plain, gate opens", false, nil, "gate submit"},
		{"plain, gate refuses", false, refused, "gate"},
		{"gated, gate opens", true, nil, "start gate submit"},
		{"gated, gate refuses", true, refused, "start gate"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var events []string
			var b Backend = plainBackend{events: &events}
			if tt.gated {
				b = gatedBackend{plainBackend{events: &events}}
			}
			id, err := SubmitAfter(context.Background(), b, JobSpec{}, func() error {
				events = append(events, "gate")
				return tt.gateErr
			})
			if got := strings.Join(events, " "); got != tt.want {
				t.Errorf("events %q, want %q", got, tt.want)
			}
			if tt.gateErr != nil && (id != "" || !errors.Is(err, tt.gateErr)) {
				t.Errorf("SubmitAfter = %q, %v; want no id and the gate's error", id, err)
			}
			if tt.gateErr == nil && (id != "7" || err != nil) {
				t.Errorf("SubmitAfter = %q, %v; want 7", id, err)
			}
		})
	}
}
