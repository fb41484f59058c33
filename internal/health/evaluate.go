package health

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sopilot/sopilot/internal/telemetry"
)

// NVML clocks event reason bits (nvml.ClocksEventReason*) the throttling
// rules read.
const (
	throttleSwThermal  = 0x20
	throttleHwThermal  = 0x40
	throttlePowerBrake = 0x80
	throttleHwSlowdown = 0x08

	thermalMask = throttleSwThermal | throttleHwThermal
	powerMask   = throttlePowerBrake | throttleHwSlowdown
)

// Evaluate judges one node at now. Per-hour rates count the counter increase
// during the hour before now; per-second rates are the highest rate between
// two consecutive samples in that hour. t must be valid (see Validate).
//
// An agent silent for longer than t.AgentSilence (or that never reported)
// makes the node Unknown with a single "agent" finding: old evidence is not
// judged, and silence alone never makes a node Unhealthy.
func Evaluate(now time.Time, ev Evidence, t Thresholds) Result {
	if ev.LastReport.IsZero() || now.Sub(ev.LastReport) > time.Duration(t.AgentSilence) {
		why := "agent never reported"
		if !ev.LastReport.IsZero() {
			why = fmt.Sprintf("agent silent for %s (limit %s)", now.Sub(ev.LastReport).Round(time.Second), time.Duration(t.AgentSilence))
		}
		return result([]Finding{{Component: ComponentAgent, Rule: "agent_silent", Verdict: Unknown, Action: ActionNone, Reason: why}})
	}
	var fs []Finding
	if ev.ExpectedGPUs > 0 && ev.ObservedGPUs < ev.ExpectedGPUs {
		fs = append(fs, Finding{Component: "node", Rule: "gpu_count", Verdict: Unhealthy, Action: ActionDrainNow,
			Reason: fmt.Sprintf("%d GPUs visible, inventory expects %d", ev.ObservedGPUs, ev.ExpectedGPUs)})
	}
	fs = append(fs, eventFindings(ev.Events, t)...)
	fs = append(fs, sampleFindings(now, ev.GPUSamples, t)...)
	fs = append(fs, ibFindings(now, ev.IBPorts, t)...)
	return result(fs)
}

func result(fs []Finding) Result {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if a.Verdict != b.Verdict {
			return a.Verdict > b.Verdict
		}
		if a.Action != b.Action {
			return a.Action > b.Action
		}
		if a.Component != b.Component {
			return a.Component < b.Component
		}
		return a.Rule < b.Rule
	})
	r := Result{Verdict: Healthy, Action: ActionNone, Findings: fs}
	for _, f := range fs {
		r.Verdict = max(r.Verdict, f.Verdict)
		r.Action = max(r.Action, f.Action)
	}
	return r
}

// eventFindings turns health events into one finding per (component, kind,
// code), however many times it repeats.
func eventFindings(events []Event, t Thresholds) []Finding {
	type key struct {
		comp, kind string
		code       int64
	}
	type agg struct {
		count int
		jobs  map[string]struct{}
		class XIDClass
	}
	groups := make(map[key]*agg)
	var order []key
	for _, e := range events {
		k := key{e.Component, e.Kind, e.Code}
		g, ok := groups[k]
		if !ok {
			g = &agg{jobs: make(map[string]struct{}), class: ClassifyXID(e.Code)}
			groups[k] = g
			order = append(order, k)
		}
		g.count++
		if e.JobID != "" {
			g.jobs[e.JobID] = struct{}{}
		}
	}
	var fs []Finding
	for _, k := range order {
		g := groups[k]
		times := ""
		if g.count > 1 {
			times = fmt.Sprintf(" x%d", g.count)
		}
		f := Finding{Component: k.comp, Kind: k.kind, Code: k.code}
		switch k.kind {
		case telemetry.KindXID:
			f.Reason = fmt.Sprintf("xid %d (%s) on %s%s", k.code, g.class, k.comp, times)
			switch g.class {
			case XIDDrain:
				f.Rule, f.Verdict, f.Action = "xid_drain", Unhealthy, ActionDrainNow
			case XIDResetWhenIdle:
				f.Rule, f.Verdict, f.Action = "xid_reset_when_idle", Degraded, ActionResetWhenIdle
			case XIDApplication:
				if len(g.jobs) >= t.ApplicationXIDJobs {
					f.Rule, f.Verdict, f.Action = "xid_application_repeated", Unhealthy, ActionDrainAfterJob
					f.Reason += fmt.Sprintf(" across %d jobs (%s)", len(g.jobs), jobList(g.jobs))
				} else {
					f.Rule, f.Verdict, f.Action = "xid_application", Healthy, ActionRecordAgainstRun
				}
			default:
				f.Rule, f.Verdict, f.Action = "xid_unknown", Degraded, ActionRecordAgainstRun
			}
		case telemetry.KindGPULost:
			f.Rule, f.Verdict, f.Action = "gpu_lost", Unhealthy, ActionDrainNow
			f.Reason = fmt.Sprintf("%s fell off the bus%s", k.comp, times)
		case telemetry.KindECCUncorrected:
			f.Rule, f.Verdict, f.Action = "ecc_uncorrected_event", Unhealthy, ActionDrainAfterJob
			f.Reason = fmt.Sprintf("uncorrected ECC error on %s%s", k.comp, times)
		default:
			f.Rule, f.Verdict, f.Action = "event_unknown", Degraded, ActionRecordAgainstRun
			f.Reason = fmt.Sprintf("event %q code %d on %s%s", k.kind, k.code, k.comp, times)
		}
		fs = append(fs, f)
	}
	return fs
}

func jobList(jobs map[string]struct{}) string {
	l := make([]string, 0, len(jobs))
	for j := range jobs {
		l = append(l, j)
	}
	sort.Strings(l)
	return strings.Join(l, ",")
}

// increase is the counter increase from a to b; a counter that went
// backwards was reset, and counts from zero.
func increase(a, b uint64) uint64 {
	if b >= a {
		return b - a
	}
	return b
}

// hourIncrease sums the increases between consecutive samples (sorted by
// time) whose later sample lies in (now-1h, now]. ok is false when no pair
// has both values.
func hourIncrease[S any](now time.Time, ss []S, at func(S) time.Time, val func(S) *uint64) (uint64, bool) {
	var sum uint64
	ok := false
	cutoff := now.Add(-time.Hour)
	var prev *uint64
	for _, s := range ss {
		v := val(s)
		if v == nil {
			continue
		}
		if prev != nil && at(s).After(cutoff) && !at(s).After(now) {
			sum += increase(*prev, *v)
			ok = true
		}
		prev = v
	}
	return sum, ok
}

// sortedBy returns xs in the order of cmp, stable: xs itself when it is
// already in that order (the monitor hands its evidence over grouped and
// in time order, so a pass over 10,000 nodes copies nothing), else a
// sorted copy. xs is never changed.
func sortedBy[T any](xs []T, cmp func(a, b T) int) []T {
	if slices.IsSortedFunc(xs, cmp) {
		return xs
	}
	xs = slices.Clone(xs)
	slices.SortStableFunc(xs, cmp)
	return xs
}

func sampleFindings(now time.Time, samples []telemetry.GPUSample, t Thresholds) []Finding {
	samples = sortedBy(samples, func(a, b telemetry.GPUSample) int {
		return cmp.Or(cmp.Compare(a.Index, b.Index), a.Time.Compare(b.Time))
	})
	var fs []Finding
	for len(samples) > 0 {
		n := 1
		for n < len(samples) && samples[n].Index == samples[0].Index {
			n++
		}
		ss, i := samples[:n], samples[0].Index
		samples = samples[n:]
		comp := fmt.Sprintf("gpu%d", i)
		last := ss[len(ss)-1]
		add := func(rule string, v Verdict, a Action, format string, args ...any) {
			fs = append(fs, Finding{Component: comp, Rule: rule, Verdict: v, Action: a, Reason: comp + ": " + fmt.Sprintf(format, args...)})
		}
		switch {
		case last.RowRemapFailure != nil && *last.RowRemapFailure:
			add("row_remap_failure", Unhealthy, ActionDrainNow, "row remapping failed")
		case last.RowRemapPending != nil && *last.RowRemapPending:
			add("row_remap_pending", Unhealthy, ActionDrainAfterJob, "row remap pending: drain after the job, reset, verify")
		}
		if v := last.ECCVolatileUncorrected; v != nil && *v > t.ECCUncorrectedMax {
			add("ecc_uncorrected", Unhealthy, ActionDrainAfterJob, "%d volatile uncorrected ECC errors (limit %d)", *v, t.ECCUncorrectedMax)
		}
		if ra := last.RecoveryAction; ra != nil {
			switch *ra {
			case telemetry.RecoveryNone, "":
			case telemetry.RecoveryGPUReset:
				add("recovery_action", Degraded, ActionResetWhenIdle, "driver asks for %s", *ra)
			default:
				add("recovery_action", Unhealthy, ActionDrainAfterJob, "driver asks for %s", *ra)
			}
		}
		if tr := last.ThrottleReasons; tr != nil {
			if t.ThermalThrottleDegraded && *tr&thermalMask != 0 {
				add("thermal_throttle", Degraded, ActionNone, "thermal throttling (reasons 0x%x)", *tr)
			}
			if t.PowerThrottleDegraded && *tr&powerMask != 0 {
				add("power_throttle", Degraded, ActionNone, "power brake / hardware slowdown (reasons 0x%x)", *tr)
			}
		}
		at := func(s telemetry.GPUSample) time.Time { return s.Time }
		rates := []struct {
			rule, what string
			val        func(telemetry.GPUSample) *uint64
			limit      float64
		}{
			{"ecc_corrected_rate", "corrected ECC errors", func(s telemetry.GPUSample) *uint64 { return s.ECCVolatileCorrected }, t.ECCCorrectedPerHour},
			{"pcie_replay_rate", "PCIe replays", func(s telemetry.GPUSample) *uint64 { return s.PCIeReplayCount }, t.PCIeReplayPerHour},
			{"nvlink_error_rate", "NVLink errors", func(s telemetry.GPUSample) *uint64 { return s.NVLinkErrorCount }, t.NVLinkErrorsPerHour},
		}
		for _, r := range rates {
			if n, ok := hourIncrease(now, ss, at, r.val); ok && float64(n) > r.limit {
				add(r.rule, Degraded, ActionNone, "%d %s in the last hour (limit %g)", n, r.what, r.limit)
			}
		}
	}
	return fs
}

func ibFindings(now time.Time, ports []telemetry.IBPortSample, t Thresholds) []Finding {
	type portKey struct {
		dev  string
		port int
	}
	ports = sortedBy(ports, func(a, b telemetry.IBPortSample) int {
		return cmp.Or(strings.Compare(a.Device, b.Device), cmp.Compare(a.Port, b.Port), a.Time.Compare(b.Time))
	})
	cutoff := now.Add(-time.Hour)
	var fs []Finding
	for len(ports) > 0 {
		n := 1
		for n < len(ports) && ports[n].Device == ports[0].Device && ports[n].Port == ports[0].Port {
			n++
		}
		ss, k := ports[:n], portKey{ports[0].Device, ports[0].Port}
		ports = ports[n:]
		comp := fmt.Sprintf("ib:%s/%d", k.dev, k.port)
		add := func(rule string, v Verdict, a Action, format string, args ...any) {
			fs = append(fs, Finding{Component: comp, Rule: rule, Verdict: v, Action: a, Reason: comp + ": " + fmt.Sprintf(format, args...)})
		}

		// Fatal counters: any increase over the evidence.
		fatal := []struct {
			rule, name string
			val        func(telemetry.IBCounters) uint64
		}{
			{"ib_link_downed", "link_downed", func(c telemetry.IBCounters) uint64 { return c.LinkDowned }},
			{"ib_excessive_buffer_overrun", "excessive_buffer_overrun_errors", func(c telemetry.IBCounters) uint64 { return c.ExcessiveBufferOverrunErrors }},
			{"ib_local_link_integrity", "local_link_integrity_errors", func(c telemetry.IBCounters) uint64 { return c.LocalLinkIntegrityErrors }},
		}
		for _, f := range fatal {
			var inc uint64
			for j := 1; j < len(ss); j++ {
				inc += increase(f.val(ss[j-1].Counters), f.val(ss[j].Counters))
			}
			if inc > 0 {
				add(f.rule, Unhealthy, ActionDrainAfterJob, "%s increased by %d", f.name, inc)
			}
		}

		// Symbol errors in the last hour; per-second rates between samples.
		var symHour uint64
		var symPeak, rcvPeak float64
		for j := 1; j < len(ss); j++ {
			a, b := ss[j-1], ss[j]
			if !b.Time.After(cutoff) || b.Time.After(now) {
				continue
			}
			sym := increase(a.Counters.SymbolError, b.Counters.SymbolError)
			symHour += sym
			if dt := b.Time.Sub(a.Time).Seconds(); dt > 0 {
				symPeak = max(symPeak, float64(sym)/dt)
				rcvPeak = max(rcvPeak, float64(increase(a.Counters.PortRcvErrors, b.Counters.PortRcvErrors))/dt)
			}
		}
		switch {
		case float64(symHour) > t.IBSymbolErrorsPerHourFatal:
			add("ib_symbol_error_fatal", Unhealthy, ActionDrainAfterJob, "%d symbol errors in the last hour (limit %g)", symHour, t.IBSymbolErrorsPerHourFatal)
		case symPeak > t.IBSymbolErrorsPerSecDegraded:
			add("ib_symbol_error_rate", Degraded, ActionNone, "symbol errors at %.1f/s (limit %g/s)", symPeak, t.IBSymbolErrorsPerSecDegraded)
		}
		if rcvPeak > t.IBPortRcvErrorsPerSecDegraded {
			add("ib_port_rcv_error_rate", Degraded, ActionNone, "port_rcv_errors at %.1f/s (limit %g/s)", rcvPeak, t.IBPortRcvErrorsPerSecDegraded)
		}

		// Link state: down now, or down too long in total over the last hour
		// (flaps are judged by downtime, not by how many there were).
		last := ss[len(ss)-1]
		var down time.Duration
		for j, s := range ss {
			if s.Up() {
				continue
			}
			end := now
			if j+1 < len(ss) {
				end = ss[j+1].Time
			}
			start := s.Time
			if start.Before(cutoff) {
				start = cutoff
			}
			if end.After(now) {
				end = now
			}
			if end.After(start) {
				down += end.Sub(start)
			}
		}
		if !last.Up() {
			add("ib_link_down", Unhealthy, ActionDrainAfterJob, "port %s/%s", last.State, last.PhysState)
		} else if down > time.Duration(t.IBDowntimePerHour) {
			add("ib_downtime", Unhealthy, ActionDrainAfterJob, "down %s in the last hour (limit %s)", down.Round(time.Second), time.Duration(t.IBDowntimePerHour))
		}
	}
	return fs
}
