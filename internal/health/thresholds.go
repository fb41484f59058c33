package health

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// ThresholdsVersion is the only Thresholds.Version this package accepts.
const ThresholdsVersion = 1

// Duration is a time.Duration that reads and writes JSON as "90s", "5m".
type Duration time.Duration

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a Go duration string such as "5m".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"5m\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Thresholds configure Evaluate. Rates are per hour unless the name says
// per second. Load them with ParseThresholds or start from
// DefaultThresholds.
type Thresholds struct {
	Version  int    `json:"version"`
	Platform string `json:"platform"`

	// AgentSilence: no report for longer than this makes the node Unknown.
	AgentSilence Duration `json:"agent_silence"`

	// ECCUncorrectedMax: volatile uncorrected ECC errors above this are
	// unhealthy (0: any).
	ECCUncorrectedMax uint64 `json:"ecc_uncorrected_max"`
	// ECCCorrectedPerHour: a higher volatile corrected rate is degraded.
	ECCCorrectedPerHour float64 `json:"ecc_corrected_per_hour"`
	// ThermalThrottleDegraded / PowerThrottleDegraded: hardware thermal or
	// power-brake throttling makes the GPU degraded.
	ThermalThrottleDegraded bool `json:"thermal_throttle_degraded"`
	PowerThrottleDegraded   bool `json:"power_throttle_degraded"`
	// PCIeReplayPerHour / NVLinkErrorsPerHour: higher rates are degraded.
	PCIeReplayPerHour   float64 `json:"pcie_replay_per_hour"`
	NVLinkErrorsPerHour float64 `json:"nvlink_errors_per_hour"`
	// ApplicationXIDJobs: an application-level XID on this many distinct
	// jobs turns from record-against-run into drain-after-job.
	ApplicationXIDJobs int `json:"application_xid_jobs"`

	// IBSymbolErrorsPerHourFatal: more symbol errors in the last hour is
	// unhealthy.
	IBSymbolErrorsPerHourFatal float64 `json:"ib_symbol_errors_per_hour_fatal"`
	// IBSymbolErrorsPerSecDegraded / IBPortRcvErrorsPerSecDegraded: a higher
	// rate between two samples is degraded.
	IBSymbolErrorsPerSecDegraded  float64 `json:"ib_symbol_errors_per_sec_degraded"`
	IBPortRcvErrorsPerSecDegraded float64 `json:"ib_port_rcv_errors_per_sec_degraded"`
	// IBDowntimePerHour: a port down for longer in total during the last
	// hour is unhealthy.
	IBDowntimePerHour Duration `json:"ib_downtime_per_hour"`

	// NCCLMinBusBandwidthGBps at NCCLMessageBytes: the floor for the NCCL
	// all_reduce_perf check (not used by Evaluate).
	NCCLMinBusBandwidthGBps float64 `json:"nccl_min_busbw_gbps"`
	NCCLMessageBytes        int64   `json:"nccl_message_bytes"`
}

const gib = int64(1) << 30

// DefaultThresholds returns the defaults for a platform ("h100", "h200",
// case-insensitive; both are 8-GPU nodes).
func DefaultThresholds(platform string) (Thresholds, error) {
	t := Thresholds{
		Version:                       ThresholdsVersion,
		AgentSilence:                  Duration(60 * time.Second),
		ECCUncorrectedMax:             0,
		ECCCorrectedPerHour:           1000,
		ThermalThrottleDegraded:       true,
		PowerThrottleDegraded:         true,
		PCIeReplayPerHour:             100,
		NVLinkErrorsPerHour:           100,
		ApplicationXIDJobs:            2,
		IBSymbolErrorsPerHourFatal:    120,
		IBSymbolErrorsPerSecDegraded:  10,
		IBPortRcvErrorsPerSecDegraded: 10,
		IBDowntimePerHour:             Duration(5 * time.Minute),
		NCCLMessageBytes:              16 * gib,
	}
	switch p := strings.ToLower(platform); p {
	case "h100":
		t.Platform, t.NCCLMinBusBandwidthGBps = p, 460
	case "h200":
		t.Platform, t.NCCLMinBusBandwidthGBps = p, 431
	default:
		return Thresholds{}, fmt.Errorf("health: no default thresholds for platform %q (known: h100, h200)", platform)
	}
	return t, nil
}

// ParseThresholds reads Thresholds from JSON and validates them. Unknown
// fields and versions other than ThresholdsVersion are refused. Fields that
// are absent keep the platform's defaults when "platform" names a known
// platform.
func ParseThresholds(data []byte) (Thresholds, error) {
	var head struct {
		Version  *int   `json:"version"`
		Platform string `json:"platform"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return Thresholds{}, fmt.Errorf("health: thresholds: %w", err)
	}
	if head.Version == nil {
		return Thresholds{}, fmt.Errorf("health: thresholds: field %q is required", "version")
	}
	if *head.Version != ThresholdsVersion {
		return Thresholds{}, fmt.Errorf("health: thresholds: field %q: unknown version %d (want %d)", "version", *head.Version, ThresholdsVersion)
	}
	var t Thresholds
	if d, err := DefaultThresholds(head.Platform); err == nil {
		t = d
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return Thresholds{}, fmt.Errorf("health: thresholds: %w", err)
	}
	if err := t.Validate(); err != nil {
		return Thresholds{}, err
	}
	return t, nil
}

// Validate reports the first bad field by its JSON name.
func (t Thresholds) Validate() error {
	bad := func(field, why string) error {
		return fmt.Errorf("health: thresholds: field %q %s", field, why)
	}
	switch {
	case t.Version != ThresholdsVersion:
		return bad("version", fmt.Sprintf("is %d, want %d", t.Version, ThresholdsVersion))
	case t.AgentSilence <= 0:
		return bad("agent_silence", "must be > 0")
	case t.ECCCorrectedPerHour <= 0:
		return bad("ecc_corrected_per_hour", "must be > 0")
	case t.PCIeReplayPerHour <= 0:
		return bad("pcie_replay_per_hour", "must be > 0")
	case t.NVLinkErrorsPerHour <= 0:
		return bad("nvlink_errors_per_hour", "must be > 0")
	case t.ApplicationXIDJobs < 1:
		return bad("application_xid_jobs", "must be >= 1")
	case t.IBSymbolErrorsPerHourFatal <= 0:
		return bad("ib_symbol_errors_per_hour_fatal", "must be > 0")
	case t.IBSymbolErrorsPerSecDegraded <= 0:
		return bad("ib_symbol_errors_per_sec_degraded", "must be > 0")
	case t.IBPortRcvErrorsPerSecDegraded <= 0:
		return bad("ib_port_rcv_errors_per_sec_degraded", "must be > 0")
	case t.IBDowntimePerHour <= 0 || time.Duration(t.IBDowntimePerHour) > time.Hour:
		return bad("ib_downtime_per_hour", "must be in (0, 1h]")
	case t.NCCLMinBusBandwidthGBps < 0:
		return bad("nccl_min_busbw_gbps", "must be >= 0")
	case t.NCCLMessageBytes < 0:
		return bad("nccl_message_bytes", "must be >= 0")
	}
	return nil
}
