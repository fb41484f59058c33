package ib

import (
	"time"

	"github.com/sopilot/sopilot/internal/telemetry"
)

// Link layers as the kernel prints them in ports/<n>/link_layer.
const (
	LinkLayerInfiniBand = "InfiniBand"
	LinkLayerEthernet   = "Ethernet"
)

// Sysfs counter names (files in ports/<n>/counters/) that the health rules
// read.
const (
	CounterLinkDowned                   = "link_downed"
	CounterExcessiveBufferOverrunErrors = "excessive_buffer_overrun_errors"
	CounterLocalLinkIntegrityErrors     = "local_link_integrity_errors"
	CounterSymbolError                  = "symbol_error"
	CounterPortRcvErrors                = "port_rcv_errors"
	// CounterPortRcvData and CounterPortXmitData count 4-octet words, not
	// bytes (InfiniBand PortCounters semantics).
	CounterPortRcvData  = "port_rcv_data"
	CounterPortXmitData = "port_xmit_data"
)

// healthCounters are the counters Health reads. On an InfiniBand port, a
// missing one is a FieldError.
var healthCounters = [...]string{
	CounterLinkDowned,
	CounterExcessiveBufferOverrunErrors,
	CounterLocalLinkIntegrityErrors,
	CounterSymbolError,
	CounterPortRcvErrors,
}

// PortInfo describes one port for the agent's inventory; it maps onto
// agentpb.IbPortInfo.
type PortInfo struct {
	Device string // "mlx5_0"
	Port   int
	// RateGbps is the link rate rounded to the nearest Gb/s, halves up
	// ("2.5 Gb/sec" is 3); RateMbps is exact. Both are 0 when rate could not
	// be read.
	RateGbps int64
	RateMbps int64
	// LinkLayer is LinkLayerInfiniBand or LinkLayerEthernet (RoCE).
	LinkLayer string
	// NodeGUID ("0c42:a103:0012:3456"), FirmwareVersion ("28.39.1002"),
	// NodeDesc and HCAType are the device's; empty when not readable.
	NodeGUID        string
	FirmwareVersion string
	NodeDesc        string
	HCAType         string
	// FieldErrors lists files that exist in the layout but could not be
	// read or parsed.
	FieldErrors []FieldError
}

// Sample is one port's reading at one instant; it maps onto
// agentpb.IbSample.
type Sample struct {
	Time   time.Time
	Device string
	Port   int
	// State is the logical port state as the kernel names it ("ACTIVE",
	// "DOWN", "INIT", "ARMED"); empty when it could not be read.
	State string
	// PhysState is the physical state ("LinkUp", "Polling", "Disabled",
	// "Phy Test"); empty when it could not be read.
	PhysState string
	// RateGbps (rounded, halves up) and RateMbps (exact) as in PortInfo.
	RateGbps  int64
	RateMbps  int64
	LinkLayer string
	// Counters holds every readable counter, keyed by file name for
	// ports/<n>/counters/ ("symbol_error") and by "hw_" + file name for
	// ports/<n>/hw_counters/ ("hw_out_of_buffer"). Values are the kernel's,
	// unscaled: port_rcv_data and port_xmit_data count 4-octet words, and
	// the error counters saturate at their InfiniBand widths (symbol_error
	// at 65535, link_downed at 255) rather than wrap.
	Counters map[string]uint64
	// FieldErrors lists the files that could not be read or parsed; those
	// fields are absent and the rest of the sample stands.
	FieldErrors []FieldError
}

// FieldError is one file that could not be read or parsed. Field is the
// path relative to the port directory ("state", "counters/symbol_error")
// or, in PortInfo, to the device directory ("fw_ver").
type FieldError struct {
	Field string
	Err   error
}

// Error returns "field: cause".
func (e FieldError) Error() string { return e.Field + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e FieldError) Unwrap() error { return e.Err }

// Telemetry is the sample as the controller's health rules see it. A
// counter the sample lacks reads as 0; see HealthComplete.
func (s Sample) Telemetry() telemetry.IBPortSample {
	return telemetry.IBPortSample{
		Time:      s.Time,
		Device:    s.Device,
		Port:      s.Port,
		State:     s.State,
		PhysState: s.PhysState,
		RateGbps:  s.RateGbps,
		Counters: telemetry.IBCounters{
			LinkDowned:                   s.Counters[CounterLinkDowned],
			ExcessiveBufferOverrunErrors: s.Counters[CounterExcessiveBufferOverrunErrors],
			LocalLinkIntegrityErrors:     s.Counters[CounterLocalLinkIntegrityErrors],
			SymbolError:                  s.Counters[CounterSymbolError],
			PortRcvErrors:                s.Counters[CounterPortRcvErrors],
		},
	}
}

// HealthComplete reports whether everything Telemetry reads was read: the
// state and the five counters the rules use. Feed only complete samples to
// the rules: a missing state reads as a port that is not up, and a missing
// counter reads as 0, which the rules take for a counter reset followed by
// an increase once the real value returns.
func (s Sample) HealthComplete() bool {
	if s.State == "" {
		return false
	}
	for _, name := range healthCounters {
		if _, ok := s.Counters[name]; !ok {
			return false
		}
	}
	return true
}
