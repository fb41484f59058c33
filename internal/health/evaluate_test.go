package health

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/telemetry"
)

var now = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func p[T any](v T) *T { return &v }

func ago(d time.Duration) time.Time { return now.Add(-d) }

func h100(t *testing.T) Thresholds {
	t.Helper()
	th, err := DefaultThresholds("h100")
	if err != nil {
		t.Fatal(err)
	}
	return th
}

func healthyNode() Evidence {
	return Evidence{Node: "n1", LastReport: ago(5 * time.Second), ExpectedGPUs: 8, ObservedGPUs: 8}
}

func xid(gpuIdx int, code int64, job string) Event {
	return Event{HealthEvent: telemetry.HealthEvent{Time: ago(time.Minute), Component: fmt.Sprintf("gpu%d", gpuIdx), Kind: telemetry.KindXID, Code: code}, JobID: job}
}

func sample(idx int, at time.Duration, f func(*telemetry.GPUSample)) telemetry.GPUSample {
	s := telemetry.GPUSample{Time: ago(at), Index: idx}
	if f != nil {
		f(&s)
	}
	return s
}

func port(at time.Duration, state string, c telemetry.IBCounters) telemetry.IBPortSample {
	phys := "LinkUp"
	if state != "ACTIVE" {
		phys = "Polling"
	}
	return telemetry.IBPortSample{Time: ago(at), Device: "mlx5_0", Port: 1, State: state, PhysState: phys, Counters: c}
}

// finding is what a test expects of one Finding.
type finding struct {
	comp, rule string
	verdict    Verdict
	action     Action
}

func TestEvaluate(t *testing.T) {
	ib := "ib:mlx5_0/1"
	cases := []struct {
		name    string
		mod     func(*Evidence, *Thresholds)
		verdict Verdict
		action  Action
		want    []finding
		reason  string // substring of the first finding's reason
	}{
		{name: "healthy node", mod: func(*Evidence, *Thresholds) {}, verdict: Healthy, action: ActionNone},
		{
			name: "silent agent is unknown, never unhealthy",
			mod: func(e *Evidence, _ *Thresholds) {
				e.LastReport = ago(10 * time.Minute)
				e.ObservedGPUs = 0
				e.Events = []Event{xid(3, 79, "")}
			},
			verdict: Unknown, action: ActionNone,
			want:   []finding{{"agent", "agent_silent", Unknown, ActionNone}},
			reason: "silent for 10m0s",
		},
		{
			name:    "agent that never reported is unknown",
			mod:     func(e *Evidence, _ *Thresholds) { e.LastReport = time.Time{} },
			verdict: Unknown, action: ActionNone,
			want:   []finding{{"agent", "agent_silent", Unknown, ActionNone}},
			reason: "never reported",
		},
		{
			name:    "report just inside the silence limit",
			mod:     func(e *Evidence, _ *Thresholds) { e.LastReport = ago(60 * time.Second) },
			verdict: Healthy, action: ActionNone,
		},
		{
			name:    "gpu count lower than inventory",
			mod:     func(e *Evidence, _ *Thresholds) { e.ObservedGPUs = 7 },
			verdict: Unhealthy, action: ActionDrainNow,
			want:   []finding{{"node", "gpu_count", Unhealthy, ActionDrainNow}},
			reason: "7 GPUs visible, inventory expects 8",
		},
		{
			name:    "more gpus than inventory is fine",
			mod:     func(e *Evidence, _ *Thresholds) { e.ObservedGPUs = 9 },
			verdict: Healthy, action: ActionNone,
		},
		{
			name:    "xid 79 drain-worthy",
			mod:     func(e *Evidence, _ *Thresholds) { e.Events = []Event{xid(3, 79, "j1")} },
			verdict: Unhealthy, action: ActionDrainNow,
			want:   []finding{{"gpu3", "xid_drain", Unhealthy, ActionDrainNow}},
			reason: "xid 79 (drain) on gpu3",
		},
		{
			name: "every drain-worthy xid",
			mod: func(e *Evidence, _ *Thresholds) {
				for i, c := range []int64{48, 64, 74, 79, 95, 119, 120} {
					e.Events = append(e.Events, xid(i, c, ""))
				}
			},
			verdict: Unhealthy, action: ActionDrainNow,
			want: []finding{
				{"gpu0", "xid_drain", Unhealthy, ActionDrainNow}, {"gpu1", "xid_drain", Unhealthy, ActionDrainNow},
				{"gpu2", "xid_drain", Unhealthy, ActionDrainNow}, {"gpu3", "xid_drain", Unhealthy, ActionDrainNow},
				{"gpu4", "xid_drain", Unhealthy, ActionDrainNow}, {"gpu5", "xid_drain", Unhealthy, ActionDrainNow},
				{"gpu6", "xid_drain", Unhealthy, ActionDrainNow},
			},
		},
		{
			name: "reset-when-idle xids 63, 92, 94",
			mod: func(e *Evidence, _ *Thresholds) {
				e.Events = []Event{xid(0, 63, ""), xid(1, 92, ""), xid(2, 94, "")}
			},
			verdict: Degraded, action: ActionResetWhenIdle,
			want: []finding{
				{"gpu0", "xid_reset_when_idle", Degraded, ActionResetWhenIdle},
				{"gpu1", "xid_reset_when_idle", Degraded, ActionResetWhenIdle},
				{"gpu2", "xid_reset_when_idle", Degraded, ActionResetWhenIdle},
			},
		},
		{
			name: "application xids on one job are recorded against the run",
			mod: func(e *Evidence, _ *Thresholds) {
				for i, c := range []int64{13, 31, 43, 45, 68} {
					e.Events = append(e.Events, xid(i, c, "j1"), xid(i, c, "j1"))
				}
			},
			verdict: Healthy, action: ActionRecordAgainstRun,
			want: []finding{
				{"gpu0", "xid_application", Healthy, ActionRecordAgainstRun},
				{"gpu1", "xid_application", Healthy, ActionRecordAgainstRun},
				{"gpu2", "xid_application", Healthy, ActionRecordAgainstRun},
				{"gpu3", "xid_application", Healthy, ActionRecordAgainstRun},
				{"gpu4", "xid_application", Healthy, ActionRecordAgainstRun},
			},
			reason: "xid 13 (application) on gpu0 x2",
		},
		{
			name: "application xid repeating across jobs drains after the job",
			mod: func(e *Evidence, _ *Thresholds) {
				e.Events = []Event{xid(2, 13, "j1"), xid(2, 13, "j2")}
			},
			verdict: Unhealthy, action: ActionDrainAfterJob,
			want:   []finding{{"gpu2", "xid_application_repeated", Unhealthy, ActionDrainAfterJob}},
			reason: "across 2 jobs (j1,j2)",
		},
		{
			name: "application xid across jobs but under a raised threshold",
			mod: func(e *Evidence, th *Thresholds) {
				th.ApplicationXIDJobs = 3
				e.Events = []Event{xid(2, 13, "j1"), xid(2, 13, "j2")}
			},
			verdict: Healthy, action: ActionRecordAgainstRun,
			want: []finding{{"gpu2", "xid_application", Healthy, ActionRecordAgainstRun}},
		},
		{
			name:    "unclassified xid is degraded and recorded",
			mod:     func(e *Evidence, _ *Thresholds) { e.Events = []Event{xid(1, 999, "j1")} },
			verdict: Degraded, action: ActionRecordAgainstRun,
			want: []finding{{"gpu1", "xid_unknown", Degraded, ActionRecordAgainstRun}},
		},
		{
			name: "xid storm is one finding",
			mod: func(e *Evidence, _ *Thresholds) {
				for range 5000 {
					e.Events = append(e.Events, xid(3, 79, "j1"))
				}
			},
			verdict: Unhealthy, action: ActionDrainNow,
			want:   []finding{{"gpu3", "xid_drain", Unhealthy, ActionDrainNow}},
			reason: "x5000",
		},
		{
			name: "gpu lost",
			mod: func(e *Evidence, _ *Thresholds) {
				e.Events = []Event{{HealthEvent: telemetry.HealthEvent{Component: "gpu5", Kind: telemetry.KindGPULost}}}
			},
			verdict: Unhealthy, action: ActionDrainNow,
			want: []finding{{"gpu5", "gpu_lost", Unhealthy, ActionDrainNow}},
		},
		{
			name: "ecc uncorrected event",
			mod: func(e *Evidence, _ *Thresholds) {
				e.Events = []Event{{HealthEvent: telemetry.HealthEvent{Component: "gpu2", Kind: telemetry.KindECCUncorrected}}}
			},
			verdict: Unhealthy, action: ActionDrainAfterJob,
			want: []finding{{"gpu2", "ecc_uncorrected_event", Unhealthy, ActionDrainAfterJob}},
		},
		{
			name: "row remap pending drains after the job",
			mod: func(e *Evidence, _ *Thresholds) {
				e.GPUSamples = []telemetry.GPUSample{sample(4, 0, func(s *telemetry.GPUSample) { s.RowRemapPending = p(true); s.RowRemapFailure = p(false) })}
			},
			verdict: Unhealthy, action: ActionDrainAfterJob,
			want: []finding{{"gpu4", "row_remap_pending", Unhealthy, ActionDrainAfterJob}},
		},
		{
			name: "row remap failure drains now",
			mod: func(e *Evidence, _ *Thresholds) {
				e.GPUSamples = []telemetry.GPUSample{sample(4, 0, func(s *telemetry.GPUSample) { s.RowRemapPending = p(true); s.RowRemapFailure = p(true) })}
			},
			verdict: Unhealthy, action: ActionDrainNow,
			want: []finding{{"gpu4", "row_remap_failure", Unhealthy, ActionDrainNow}},
		},
		{
			name: "row remap cleared in the latest sample",
			mod: func(e *Evidence, _ *Thresholds) {
				e.GPUSamples = []telemetry.GPUSample{
					sample(4, 0, func(s *telemetry.GPUSample) { s.RowRemapPending = p(false) }),
					sample(4, time.Minute, func(s *telemetry.GPUSample) { s.RowRemapPending = p(true) }),
				}
			},
			verdict: Healthy, action: ActionNone,
		},
		{
			name: "one volatile uncorrected ecc error",
			mod: func(e *Evidence, _ *Thresholds) {
				e.GPUSamples = []telemetry.GPUSample{sample(0, 0, func(s *telemetry.GPUSample) { s.ECCVolatileUncorrected = p(uint64(1)) })}
			},
			verdict: Unhealthy, action: ActionDrainAfterJob,
			want: []finding{{"gpu0", "ecc_uncorrected", Unhealthy, ActionDrainAfterJob}},
		},
		{
			name: "zero uncorrected ecc",
			mod: func(e *Evidence, _ *Thresholds) {
				e.GPUSamples = []telemetry.GPUSample{sample(0, 0, func(s *telemetry.GPUSample) { s.ECCVolatileUncorrected = p(uint64(0)) })}
			},
			verdict: Healthy, action: ActionNone,
		},
		{
			name: "corrected ecc above the hourly rate",
			mod: func(e *Evidence, th *Thresholds) {
				th.ECCCorrectedPerHour = 100
				e.GPUSamples = []telemetry.GPUSample{
					sample(1, 50*time.Minute, func(s *telemetry.GPUSample) { s.ECCVolatileCorrected = p(uint64(1000)) }),
					sample(1, 0, func(s *telemetry.GPUSample) { s.ECCVolatileCorrected = p(uint64(1101)) }),
				}
			},
			verdict: Degraded, action: ActionNone,
			want:   []finding{{"gpu1", "ecc_corrected_rate", Degraded, ActionNone}},
			reason: "101 corrected ECC errors in the last hour (limit 100)",
		},
		{
			name: "corrected ecc at the hourly rate",
			mod: func(e *Evidence, th *Thresholds) {
				th.ECCCorrectedPerHour = 100
				e.GPUSamples = []telemetry.GPUSample{
					sample(1, 50*time.Minute, func(s *telemetry.GPUSample) { s.ECCVolatileCorrected = p(uint64(1000)) }),
					sample(1, 0, func(s *telemetry.GPUSample) { s.ECCVolatileCorrected = p(uint64(1100)) }),
				}
			},
			verdict: Healthy, action: ActionNone,
		},
		{
			name: "corrected ecc older than an hour is not counted",
			mod: func(e *Evidence, th *Thresholds) {
				th.ECCCorrectedPerHour = 100
				e.GPUSamples = []telemetry.GPUSample{
					sample(1, 3*time.Hour, func(s *telemetry.GPUSample) { s.ECCVolatileCorrected = p(uint64(0)) }),
					sample(1, 2*time.Hour, func(s *telemetry.GPUSample) { s.ECCVolatileCorrected = p(uint64(5000)) }),
					sample(1, 0, func(s *telemetry.GPUSample) { s.ECCVolatileCorrected = p(uint64(5010)) }),
				}
			},
			verdict: Healthy, action: ActionNone,
		},
		{
			name: "thermal throttling",
			mod: func(e *Evidence, _ *Thresholds) {
				e.GPUSamples = []telemetry.GPUSample{sample(6, 0, func(s *telemetry.GPUSample) { s.ThrottleReasons = p(uint64(0x40)) })}
			},
			verdict: Degraded, action: ActionNone,
			want: []finding{{"gpu6", "thermal_throttle", Degraded, ActionNone}},
		},
		{
			name: "power brake throttling",
			mod: func(e *Evidence, _ *Thresholds) {
				e.GPUSamples = []telemetry.GPUSample{sample(6, 0, func(s *telemetry.GPUSample) { s.ThrottleReasons = p(uint64(0x80)) })}
			},
			verdict: Degraded, action: ActionNone,
			want: []finding{{"gpu6", "power_throttle", Degraded, ActionNone}},
		},
		{
			name: "software power cap and idle are normal",
			mod: func(e *Evidence, _ *Thresholds) {
				e.GPUSamples = []telemetry.GPUSample{sample(6, 0, func(s *telemetry.GPUSample) { s.ThrottleReasons = p(uint64(0x1 | 0x4)) })}
			},
			verdict: Healthy, action: ActionNone,
		},
		{
			name: "throttling rules switched off",
			mod: func(e *Evidence, th *Thresholds) {
				th.ThermalThrottleDegraded, th.PowerThrottleDegraded = false, false
				e.GPUSamples = []telemetry.GPUSample{sample(6, 0, func(s *telemetry.GPUSample) { s.ThrottleReasons = p(uint64(0xc0)) })}
			},
			verdict: Healthy, action: ActionNone,
		},
		{
			name: "pcie replay rate",
			mod: func(e *Evidence, th *Thresholds) {
				e.GPUSamples = []telemetry.GPUSample{
					sample(2, 30*time.Minute, func(s *telemetry.GPUSample) { s.PCIeReplayCount = p(uint64(10)) }),
					sample(2, 0, func(s *telemetry.GPUSample) { s.PCIeReplayCount = p(uint64(10 + th.PCIeReplayPerHour + 1)) }),
				}
			},
			verdict: Degraded, action: ActionNone,
			want: []finding{{"gpu2", "pcie_replay_rate", Degraded, ActionNone}},
		},
		{
			name: "nvlink error rate, counter reset counts from zero",
			mod: func(e *Evidence, th *Thresholds) {
				th.NVLinkErrorsPerHour = 50
				e.GPUSamples = []telemetry.GPUSample{
					sample(7, 40*time.Minute, func(s *telemetry.GPUSample) { s.NVLinkErrorCount = p(uint64(1000)) }),
					sample(7, 20*time.Minute, func(s *telemetry.GPUSample) { s.NVLinkErrorCount = p(uint64(1030)) }),
					sample(7, 0, func(s *telemetry.GPUSample) { s.NVLinkErrorCount = p(uint64(25)) }),
				}
			},
			verdict: Degraded, action: ActionNone,
			want:   []finding{{"gpu7", "nvlink_error_rate", Degraded, ActionNone}},
			reason: "55 NVLink errors",
		},
		{
			name: "driver recovery action gpu_reset",
			mod: func(e *Evidence, _ *Thresholds) {
				e.GPUSamples = []telemetry.GPUSample{sample(0, 0, func(s *telemetry.GPUSample) { s.RecoveryAction = p(telemetry.RecoveryGPUReset) })}
			},
			verdict: Degraded, action: ActionResetWhenIdle,
			want: []finding{{"gpu0", "recovery_action", Degraded, ActionResetWhenIdle}},
		},
		{
			name: "driver recovery action node_reboot",
			mod: func(e *Evidence, _ *Thresholds) {
				e.GPUSamples = []telemetry.GPUSample{sample(0, 0, func(s *telemetry.GPUSample) { s.RecoveryAction = p(telemetry.RecoveryNodeReboot) })}
			},
			verdict: Unhealthy, action: ActionDrainAfterJob,
			want: []finding{{"gpu0", "recovery_action", Unhealthy, ActionDrainAfterJob}},
		},
		{
			name: "ib link_downed increase is fatal",
			mod: func(e *Evidence, _ *Thresholds) {
				e.IBPorts = []telemetry.IBPortSample{port(time.Minute, "ACTIVE", telemetry.IBCounters{LinkDowned: 3}), port(0, "ACTIVE", telemetry.IBCounters{LinkDowned: 4})}
			},
			verdict: Unhealthy, action: ActionDrainAfterJob,
			want: []finding{{ib, "ib_link_downed", Unhealthy, ActionDrainAfterJob}},
		},
		{
			name: "ib excessive buffer overrun increase is fatal",
			mod: func(e *Evidence, _ *Thresholds) {
				e.IBPorts = []telemetry.IBPortSample{port(time.Minute, "ACTIVE", telemetry.IBCounters{}), port(0, "ACTIVE", telemetry.IBCounters{ExcessiveBufferOverrunErrors: 1})}
			},
			verdict: Unhealthy, action: ActionDrainAfterJob,
			want: []finding{{ib, "ib_excessive_buffer_overrun", Unhealthy, ActionDrainAfterJob}},
		},
		{
			name: "ib local link integrity increase is fatal",
			mod: func(e *Evidence, _ *Thresholds) {
				e.IBPorts = []telemetry.IBPortSample{port(time.Minute, "ACTIVE", telemetry.IBCounters{}), port(0, "ACTIVE", telemetry.IBCounters{LocalLinkIntegrityErrors: 1})}
			},
			verdict: Unhealthy, action: ActionDrainAfterJob,
			want: []finding{{ib, "ib_local_link_integrity", Unhealthy, ActionDrainAfterJob}},
		},
		{
			name: "ib fatal counters high but steady",
			mod: func(e *Evidence, _ *Thresholds) {
				c := telemetry.IBCounters{LinkDowned: 7, ExcessiveBufferOverrunErrors: 9, LocalLinkIntegrityErrors: 2, SymbolError: 500, PortRcvErrors: 40}
				e.IBPorts = []telemetry.IBPortSample{port(time.Minute, "ACTIVE", c), port(0, "ACTIVE", c)}
			},
			verdict: Healthy, action: ActionNone,
		},
		{
			name: "ib symbol errors above 120 in the hour are fatal",
			mod: func(e *Evidence, _ *Thresholds) {
				e.IBPorts = []telemetry.IBPortSample{
					port(50*time.Minute, "ACTIVE", telemetry.IBCounters{SymbolError: 0}),
					port(25*time.Minute, "ACTIVE", telemetry.IBCounters{SymbolError: 60}),
					port(0, "ACTIVE", telemetry.IBCounters{SymbolError: 121}),
				}
			},
			verdict: Unhealthy, action: ActionDrainAfterJob,
			want:   []finding{{ib, "ib_symbol_error_fatal", Unhealthy, ActionDrainAfterJob}},
			reason: "121 symbol errors in the last hour",
		},
		{
			name: "ib symbol errors at 120 in the hour are healthy",
			mod: func(e *Evidence, _ *Thresholds) {
				e.IBPorts = []telemetry.IBPortSample{port(50*time.Minute, "ACTIVE", telemetry.IBCounters{}), port(0, "ACTIVE", telemetry.IBCounters{SymbolError: 120})}
			},
			verdict: Healthy, action: ActionNone,
		},
		{
			name: "ib symbol error burst above 10/s is degraded",
			mod: func(e *Evidence, th *Thresholds) {
				th.IBSymbolErrorsPerHourFatal = 1000
				e.IBPorts = []telemetry.IBPortSample{port(2*time.Second, "ACTIVE", telemetry.IBCounters{}), port(0, "ACTIVE", telemetry.IBCounters{SymbolError: 21})}
			},
			verdict: Degraded, action: ActionNone,
			want:   []finding{{ib, "ib_symbol_error_rate", Degraded, ActionNone}},
			reason: "10.5/s",
		},
		{
			name: "ib symbol error burst at 10/s is healthy",
			mod: func(e *Evidence, th *Thresholds) {
				th.IBSymbolErrorsPerHourFatal = 1000
				e.IBPorts = []telemetry.IBPortSample{port(2*time.Second, "ACTIVE", telemetry.IBCounters{}), port(0, "ACTIVE", telemetry.IBCounters{SymbolError: 20})}
			},
			verdict: Healthy, action: ActionNone,
		},
		{
			name: "ib port_rcv_errors above 10/s is degraded",
			mod: func(e *Evidence, _ *Thresholds) {
				e.IBPorts = []telemetry.IBPortSample{port(time.Second, "ACTIVE", telemetry.IBCounters{PortRcvErrors: 5}), port(0, "ACTIVE", telemetry.IBCounters{PortRcvErrors: 16})}
			},
			verdict: Degraded, action: ActionNone,
			want: []finding{{ib, "ib_port_rcv_error_rate", Degraded, ActionNone}},
		},
		{
			name: "ib port_rcv_errors spread out is healthy",
			mod: func(e *Evidence, _ *Thresholds) {
				e.IBPorts = []telemetry.IBPortSample{port(time.Minute, "ACTIVE", telemetry.IBCounters{}), port(0, "ACTIVE", telemetry.IBCounters{PortRcvErrors: 500})}
			},
			verdict: Healthy, action: ActionNone,
		},
		{
			name: "ib port down now",
			mod: func(e *Evidence, _ *Thresholds) {
				e.IBPorts = []telemetry.IBPortSample{port(10*time.Second, "ACTIVE", telemetry.IBCounters{}), port(0, "DOWN", telemetry.IBCounters{})}
			},
			verdict: Unhealthy, action: ActionDrainAfterJob,
			want: []finding{{ib, "ib_link_down", Unhealthy, ActionDrainAfterJob}},
		},
		{
			name: "many short flaps under the downtime limit are healthy",
			mod: func(e *Evidence, _ *Thresholds) {
				// 20 flaps of 5 s each: 100 s down in the hour, limit 5 m.
				for i := range 20 {
					at := time.Duration(50-2*i) * time.Minute
					e.IBPorts = append(e.IBPorts, port(at, "DOWN", telemetry.IBCounters{}), port(at-5*time.Second, "ACTIVE", telemetry.IBCounters{}))
				}
			},
			verdict: Healthy, action: ActionNone,
		},
		{
			name: "one long flap over the downtime limit is unhealthy",
			mod: func(e *Evidence, _ *Thresholds) {
				e.IBPorts = []telemetry.IBPortSample{
					port(30*time.Minute, "ACTIVE", telemetry.IBCounters{}),
					port(20*time.Minute, "INIT", telemetry.IBCounters{}),
					port(14*time.Minute, "ACTIVE", telemetry.IBCounters{}),
					port(0, "ACTIVE", telemetry.IBCounters{}),
				}
			},
			verdict: Unhealthy, action: ActionDrainAfterJob,
			want:   []finding{{ib, "ib_downtime", Unhealthy, ActionDrainAfterJob}},
			reason: "down 6m0s in the last hour",
		},
		{
			name: "downtime before the last hour is not counted",
			mod: func(e *Evidence, _ *Thresholds) {
				e.IBPorts = []telemetry.IBPortSample{
					port(3*time.Hour, "DOWN", telemetry.IBCounters{}),
					port(61*time.Minute, "ACTIVE", telemetry.IBCounters{}),
					port(0, "ACTIVE", telemetry.IBCounters{}),
				}
			},
			verdict: Healthy, action: ActionNone,
		},
		{
			name: "worst component wins",
			mod: func(e *Evidence, _ *Thresholds) {
				e.Events = []Event{xid(0, 13, "j1"), xid(1, 63, "")}
				e.GPUSamples = []telemetry.GPUSample{sample(2, 0, func(s *telemetry.GPUSample) { s.RowRemapPending = p(true) })}
				e.IBPorts = []telemetry.IBPortSample{port(time.Second, "ACTIVE", telemetry.IBCounters{PortRcvErrors: 0}), port(0, "ACTIVE", telemetry.IBCounters{PortRcvErrors: 50})}
			},
			verdict: Unhealthy, action: ActionDrainAfterJob,
			want: []finding{
				{"gpu2", "row_remap_pending", Unhealthy, ActionDrainAfterJob},
				{"gpu1", "xid_reset_when_idle", Degraded, ActionResetWhenIdle},
				{ib, "ib_port_rcv_error_rate", Degraded, ActionNone},
				{"gpu0", "xid_application", Healthy, ActionRecordAgainstRun},
			},
		},
		{
			name: "degraded plus record-against-run",
			mod: func(e *Evidence, _ *Thresholds) {
				e.Events = []Event{xid(0, 13, "j1")}
				e.GPUSamples = []telemetry.GPUSample{sample(2, 0, func(s *telemetry.GPUSample) { s.ThrottleReasons = p(uint64(0x20)) })}
			},
			verdict: Degraded, action: ActionRecordAgainstRun,
			want: []finding{
				{"gpu2", "thermal_throttle", Degraded, ActionNone},
				{"gpu0", "xid_application", Healthy, ActionRecordAgainstRun},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev, th := healthyNode(), h100(t)
			tc.mod(&ev, &th)
			if err := th.Validate(); err != nil {
				t.Fatalf("test thresholds invalid: %v", err)
			}
			r := Evaluate(now, ev, th)
			if r.Verdict != tc.verdict || r.Action != tc.action {
				t.Errorf("verdict %v/%v, want %v/%v; findings %+v", r.Verdict, r.Action, tc.verdict, tc.action, r.Findings)
			}
			if len(r.Findings) != len(tc.want) {
				t.Fatalf("%d findings, want %d: %+v", len(r.Findings), len(tc.want), r.Findings)
			}
			for i, w := range tc.want {
				f := r.Findings[i]
				if f.Component != w.comp || f.Rule != w.rule || f.Verdict != w.verdict || f.Action != w.action {
					t.Errorf("finding %d = %s %s %v %v, want %s %s %v %v", i, f.Component, f.Rule, f.Verdict, f.Action, w.comp, w.rule, w.verdict, w.action)
				}
				if f.Reason == "" {
					t.Errorf("finding %d has no reason", i)
				}
			}
			if tc.reason != "" && !strings.Contains(r.Findings[0].Reason, tc.reason) {
				t.Errorf("reason %q does not contain %q", r.Findings[0].Reason, tc.reason)
			}
		})
	}
}

func TestVerdictAndActionStrings(t *testing.T) {
	for v, want := range map[Verdict]string{Healthy: "HEALTHY", Degraded: "DEGRADED", Unknown: "UNKNOWN", Unhealthy: "UNHEALTHY", Verdict(9): "INVALID"} {
		if v.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(v), v.String(), want)
		}
	}
	for a, want := range map[Action]string{ActionNone: "none", ActionRecordAgainstRun: "record_against_run", ActionResetWhenIdle: "reset_when_idle",
		ActionDrainAfterJob: "drain_after_job", ActionDrainNow: "drain_now", Action(9): "invalid"} {
		if a.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(a), a.String(), want)
		}
	}
	if !(Healthy < Degraded && Degraded < Unknown && Unknown < Unhealthy) {
		t.Error("verdict order")
	}
}

// Evaluate reads samples in any order, judges them as if sorted by
// component and time, and never reorders the caller's slices (the
// monitor hands over its evidence sorted, and then nothing is copied).
func TestEvaluateOrderIndependentAndReadOnly(t *testing.T) {
	th := h100(t)
	e := healthyNode()
	// GPU 2's newest sample reports a hardware slowdown, its older ones
	// none (judged by the newest, so time order matters); GPU 0 is fine.
	// Port 1 of mlx5_0 counts buffer overruns (any increase is a finding,
	// so order matters again), port 1 of mlx5_1 is quiet.
	for _, gpu := range []int{0, 2} {
		for i := range 6 {
			reasons := uint64(0)
			if gpu == 2 && i == 5 {
				reasons = 0x40
			}
			e.GPUSamples = append(e.GPUSamples, sample(gpu, time.Duration(5-i)*time.Minute, func(s *telemetry.GPUSample) { s.ThrottleReasons = p(reasons) }))
		}
	}
	for _, dev := range []string{"mlx5_0", "mlx5_1"} {
		for i := range 6 {
			c := telemetry.IBCounters{}
			if dev == "mlx5_0" {
				c.ExcessiveBufferOverrunErrors = uint64(i)
			}
			s := port(time.Duration(5-i)*time.Minute, "ACTIVE", c)
			s.Device = dev
			e.IBPorts = append(e.IBPorts, s)
		}
	}
	sorted := Evaluate(now, e, th)
	if len(sorted.Findings) != 2 {
		t.Fatalf("evidence judged with findings %v; the test needs two (gpu2, ib:mlx5_0/1)", sorted.Findings)
	}
	// Reverse both slices: the newest sample first.
	rev := e
	rev.GPUSamples, rev.IBPorts = slices.Clone(e.GPUSamples), slices.Clone(e.IBPorts)
	slices.Reverse(rev.GPUSamples)
	slices.Reverse(rev.IBPorts)
	firstGPU, firstPort := rev.GPUSamples[0], rev.IBPorts[0]
	got := Evaluate(now, rev, th)
	if fmt.Sprint(got) != fmt.Sprint(sorted) {
		t.Errorf("reversed evidence judged\n%v\nwant\n%v", got, sorted)
	}
	if rev.GPUSamples[0].Time != firstGPU.Time || rev.GPUSamples[0].Index != firstGPU.Index || rev.IBPorts[0] != firstPort {
		t.Error("Evaluate reordered the caller's samples")
	}
}
