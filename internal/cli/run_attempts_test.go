package cli

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sopilot/sopilot/pkg/apipb"
)

func TestPrintAttempts(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	ts := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(t0.Add(d)) }
	r := &apipb.Run{
		Id: "r-1", State: apipb.RunState_RUN_STATE_COMPLETED,
		Attempts: []*apipb.RunAttempt{
			{Number: 1, SlurmJobId: "41", NodeList: "worker-1", State: apipb.RunState_RUN_STATE_CANCELLED,
				StartTime: ts(0), EndTime: ts(50 * time.Second), Cause: apipb.RetryCause_RETRY_CAUSE_HARDWARE,
				FaultyNodes: []string{"worker-1"}, IncidentId: "inc-7", CheckpointStep: 120, CheckpointPath: "/shared/ckpt/step-120.pt"},
			{Number: 2, SlurmJobId: "42", NodeList: "worker-0", State: apipb.RunState_RUN_STATE_COMPLETED,
				StartTime: ts(52 * time.Second), EndTime: ts(150 * time.Second)},
		},
		Goodput: &apipb.RunGoodput{GpuHoursUsed: 0.327, GpuHoursKept: 0.3, LostGpuHoursByCause: map[string]float64{"HARDWARE": 0.027}},
	}
	var b strings.Builder
	printAttempts(&b, r)
	golden(t, "run_attempts.golden", b.String())

	// A run with one attempt and no policy: the API lists no attempts, nothing is printed.
	b.Reset()
	printAttempts(&b, &apipb.Run{Id: "r-2"})
	if b.Len() != 0 {
		t.Errorf("no attempts printed %q", b.String())
	}
}
