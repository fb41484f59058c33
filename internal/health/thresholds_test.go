package health

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestDefaultThresholds(t *testing.T) {
	for _, tc := range []struct {
		platform string
		busbw    float64
	}{
		{"h100", 460},
		{"H200", 431},
	} {
		t.Run(tc.platform, func(t *testing.T) {
			th, err := DefaultThresholds(tc.platform)
			if err != nil {
				t.Fatal(err)
			}
			if err := th.Validate(); err != nil {
				t.Fatalf("defaults invalid: %v", err)
			}
			if th.NCCLMinBusBandwidthGBps != tc.busbw {
				t.Errorf("busbw = %v, want %v", th.NCCLMinBusBandwidthGBps, tc.busbw)
			}
			if th.NCCLMessageBytes != 16<<30 {
				t.Errorf("nccl message = %d, want 16 GiB", th.NCCLMessageBytes)
			}
			if th.ECCUncorrectedMax != 0 || th.IBSymbolErrorsPerHourFatal != 120 ||
				th.IBSymbolErrorsPerSecDegraded != 10 || th.IBPortRcvErrorsPerSecDegraded != 10 {
				t.Errorf("brief thresholds wrong: %+v", th)
			}
		})
	}
	if _, err := DefaultThresholds("a100"); err == nil || !strings.Contains(err.Error(), "a100") {
		t.Errorf("unknown platform: err = %v", err)
	}
}

func TestParseThresholds(t *testing.T) {
	th, err := ParseThresholds([]byte(`{"version":1,"platform":"h200","ib_downtime_per_hour":"90s","pcie_replay_per_hour":7}`))
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(th.IBDowntimePerHour) != 90*time.Second || th.PCIeReplayPerHour != 7 {
		t.Errorf("overrides not applied: %+v", th)
	}
	if th.NCCLMinBusBandwidthGBps != 431 || th.IBSymbolErrorsPerHourFatal != 120 {
		t.Errorf("platform defaults not kept: %+v", th)
	}
}

func TestThresholdErrors(t *testing.T) {
	for _, tc := range []struct {
		name, json, field string
	}{
		{"missing version", `{"platform":"h100"}`, `"version"`},
		{"unknown version", `{"version":2,"platform":"h100"}`, `"version"`},
		{"unknown field", `{"version":1,"platform":"h100","bogus":1}`, `bogus`},
		{"bad duration", `{"version":1,"platform":"h100","agent_silence":"soon"}`, `soon`},
		{"zero silence", `{"version":1,"platform":"h100","agent_silence":"0s"}`, `"agent_silence"`},
		{"negative ecc rate", `{"version":1,"platform":"h100","ecc_corrected_per_hour":-1}`, `"ecc_corrected_per_hour"`},
		{"zero pcie", `{"version":1,"platform":"h100","pcie_replay_per_hour":0}`, `"pcie_replay_per_hour"`},
		{"zero nvlink", `{"version":1,"platform":"h100","nvlink_errors_per_hour":0}`, `"nvlink_errors_per_hour"`},
		{"zero app jobs", `{"version":1,"platform":"h100","application_xid_jobs":0}`, `"application_xid_jobs"`},
		{"zero symbol fatal", `{"version":1,"platform":"h100","ib_symbol_errors_per_hour_fatal":0}`, `"ib_symbol_errors_per_hour_fatal"`},
		{"zero symbol degraded", `{"version":1,"platform":"h100","ib_symbol_errors_per_sec_degraded":0}`, `"ib_symbol_errors_per_sec_degraded"`},
		{"zero rcv degraded", `{"version":1,"platform":"h100","ib_port_rcv_errors_per_sec_degraded":0}`, `"ib_port_rcv_errors_per_sec_degraded"`},
		{"downtime over an hour", `{"version":1,"platform":"h100","ib_downtime_per_hour":"2h"}`, `"ib_downtime_per_hour"`},
		{"negative busbw", `{"version":1,"platform":"h100","nccl_min_busbw_gbps":-5}`, `"nccl_min_busbw_gbps"`},
		{"no platform, nothing set", `{"version":1}`, `"agent_silence"`},
		{"not json", `{`, `thresholds`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseThresholds([]byte(tc.json))
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q does not name %s", err, tc.field)
			}
		})
	}
}

func TestThresholdsJSONRoundTrip(t *testing.T) {
	for _, platform := range []string{"h100", "h200"} {
		want, err := DefaultThresholds(platform)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), `"ib_downtime_per_hour":"5m0s"`) {
			t.Errorf("durations not written as strings: %s", b)
		}
		got, err := ParseThresholds(b)
		if err != nil {
			t.Fatalf("%s: %v", platform, err)
		}
		if got != want {
			t.Errorf("%s round trip: got %+v, want %+v", platform, got, want)
		}
	}
}
