package agent

import (
	"strconv"
	"sync"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sopilot/sopilot/internal/agent/gpu"
	"github.com/sopilot/sopilot/internal/agent/ib"
	"github.com/sopilot/sopilot/pkg/agentpb"
)

// Metrics exports the node's latest telemetry at scrape time: the sampling
// loop only swaps slices, so a 1 Hz agent pays nothing per metric between
// scrapes. Labels are per GPU (gpu index) and per IB port (device, port);
// nothing is labelled by job or run, so series never churn.
type Metrics struct {
	a *Agent

	mu    sync.Mutex
	gpus  []gpu.Sample
	ports []ib.Sample

	healthEvents     *prometheus.CounterVec
	sampleErrors     prometheus.Counter
	progressRejected prometheus.Counter
}

var (
	gpuLabels = []string{"gpu"}
	ibLabels  = []string{"device", "port"}

	dInfo      = prometheus.NewDesc("sopilot_gpu_info", "GPU identity (value 1); simulated=\"true\" when NVML is the simulated backend.", []string{"gpu", "uuid", "model", "simulated"}, nil)
	dUtil      = prometheus.NewDesc("sopilot_gpu_utilization_percent", "SM utilisation.", gpuLabels, nil)
	dMemUtil   = prometheus.NewDesc("sopilot_gpu_memory_utilization_percent", "Memory controller utilisation.", gpuLabels, nil)
	dMemUsed   = prometheus.NewDesc("sopilot_gpu_memory_used_bytes", "GPU memory in use.", gpuLabels, nil)
	dMemTotal  = prometheus.NewDesc("sopilot_gpu_memory_total_bytes", "GPU memory size.", gpuLabels, nil)
	dTemp      = prometheus.NewDesc("sopilot_gpu_temperature_celsius", "GPU die temperature.", gpuLabels, nil)
	dMemTemp   = prometheus.NewDesc("sopilot_gpu_memory_temperature_celsius", "HBM temperature.", gpuLabels, nil)
	dPower     = prometheus.NewDesc("sopilot_gpu_power_watts", "Power draw.", gpuLabels, nil)
	dPowerLim  = prometheus.NewDesc("sopilot_gpu_power_limit_watts", "Enforced power limit.", gpuLabels, nil)
	dEnergy    = prometheus.NewDesc("sopilot_gpu_energy_joules_total", "Energy since the driver loaded.", gpuLabels, nil)
	dSMClock   = prometheus.NewDesc("sopilot_gpu_sm_clock_hertz", "SM clock.", gpuLabels, nil)
	dThrottle  = prometheus.NewDesc("sopilot_gpu_clock_event_active", "1 while the NVML clock event (throttle) reason holds, else 0; one series per reason.", []string{"gpu", "reason"}, nil)
	dECC       = prometheus.NewDesc("sopilot_gpu_ecc_errors_total", "ECC errors by type (corrected, uncorrected) and counter (volatile: since the driver loaded; aggregate: the GPU's lifetime).", []string{"gpu", "type", "counter"}, nil)
	dRemap     = prometheus.NewDesc("sopilot_gpu_row_remap_failure", "1 when row remapping failed (the GPU needs service).", gpuLabels, nil)
	dPCIe      = prometheus.NewDesc("sopilot_gpu_pcie_replay_total", "PCIe replay counter.", gpuLabels, nil)
	dNVLink    = prometheus.NewDesc("sopilot_gpu_nvlink_errors_total", "NVLink CRC, replay and recovery errors, all links.", gpuLabels, nil)
	dProcs     = prometheus.NewDesc("sopilot_gpu_processes", "Compute processes on the GPU.", gpuLabels, nil)
	dIBUp      = prometheus.NewDesc("sopilot_ib_port_up", "1 when the port is ACTIVE and LinkUp.", ibLabels, nil)
	dIBRate    = prometheus.NewDesc("sopilot_ib_port_rate_bytes_per_second", "Link rate (the kernel's Gb/s in bytes per second).", ibLabels, nil)
	dIBErrors  = prometheus.NewDesc("sopilot_ib_port_errors_total", "Port error counters by the kernel's counter name (a fixed set; they saturate at their InfiniBand widths rather than wrap).", []string{"device", "port", "counter"}, nil)
	dIBRcv     = prometheus.NewDesc("sopilot_ib_port_receive_bytes_total", "Data received (the kernel's port_rcv_data, which counts 4-octet words, times 4).", ibLabels, nil)
	dIBXmit    = prometheus.NewDesc("sopilot_ib_port_transmit_bytes_total", "Data transmitted (the kernel's port_xmit_data, which counts 4-octet words, times 4).", ibLabels, nil)
	dBuffered  = prometheus.NewDesc("sopilot_agent_buffered_batches", "Batches waiting for the controller's ack.", nil, nil)
	dDropped   = prometheus.NewDesc("sopilot_agent_dropped_samples_total", "Telemetry samples dropped because the buffer was full.", nil, nil)
	dDroppedEv = prometheus.NewDesc("sopilot_agent_dropped_health_events_total", "Health events dropped (only past the event bound).", nil, nil)
	dConnected = prometheus.NewDesc("sopilot_agent_connected", "1 while the stream to the controller is up.", nil, nil)
	dSessions  = prometheus.NewDesc("sopilot_agent_connections_total", "Streams established with the controller.", nil, nil)
	dSimulated = prometheus.NewDesc("sopilot_agent_simulated", "1 when GPU (nvml) or InfiniBand (ib) telemetry is simulated.", []string{"source"}, nil)
)

// ibErrorCounters are the port error counters exported (a fixed set:
// bounded series).
var ibErrorCounters = []string{"symbol_error", "link_downed", "link_error_recovery", "port_rcv_errors", "local_link_integrity_errors",
	"excessive_buffer_overrun_errors", "port_xmit_discards"}

// ibWordBytes is the size of the unit port_rcv_data and port_xmit_data
// count in (InfiniBand PortCounters: 4-octet words).
const ibWordBytes = 4

// clockEventReasons name the bits of NVML's clock event (throttle) reasons
// mask, exported one series each so that a query can select a reason
// (sopilot_gpu_clock_event_active{reason="hw_thermal_slowdown"} == 1).
var clockEventReasons = []struct {
	name string
	bit  uint64
}{
	{"gpu_idle", nvml.ClocksEventReasonGpuIdle},
	{"applications_clocks_setting", nvml.ClocksEventReasonApplicationsClocksSetting},
	{"sw_power_cap", nvml.ClocksEventReasonSwPowerCap},
	{"hw_slowdown", nvml.ClocksThrottleReasonHwSlowdown},
	{"sync_boost", nvml.ClocksEventReasonSyncBoost},
	{"sw_thermal_slowdown", nvml.ClocksEventReasonSwThermalSlowdown},
	{"hw_thermal_slowdown", nvml.ClocksThrottleReasonHwThermalSlowdown},
	{"hw_power_brake_slowdown", nvml.ClocksThrottleReasonHwPowerBrakeSlowdown},
	{"display_clock_setting", nvml.ClocksEventReasonDisplayClockSetting},
}

func newMetrics(a *Agent) *Metrics {
	return &Metrics{
		a: a,
		healthEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sopilot_gpu_health_events_total", Help: "GPU health events by kind (xid, gpu_lost, ecc_uncorrected) and component.",
		}, []string{"kind", "component"}),
		sampleErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sopilot_agent_sample_errors_total", Help: "GPU samples NVML did not complete in time.",
		}),
		progressRejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sopilot_agent_progress_lines_rejected_total", Help: "Progress-file lines that did not follow the format.",
		}),
	}
}

func (m *Metrics) observe(gs []gpu.Sample, ps []ib.Sample, evs []*agentpb.HealthEvent) {
	if gs != nil || ps != nil {
		m.mu.Lock()
		m.gpus, m.ports = gs, ps
		m.mu.Unlock()
	}
	for _, e := range evs {
		m.healthEvents.WithLabelValues(e.GetKind(), e.GetComponent()).Inc()
	}
}

// allDescs are the descriptors of the metrics built at scrape time.
var allDescs = []*prometheus.Desc{dInfo, dUtil, dMemUtil, dMemUsed, dMemTotal, dTemp, dMemTemp, dPower, dPowerLim, dEnergy,
	dSMClock, dThrottle, dECC, dRemap, dPCIe, dNVLink, dProcs, dIBUp, dIBRate, dIBErrors, dIBRcv, dIBXmit, dBuffered, dDropped, dDroppedEv,
	dConnected, dSessions, dSimulated}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.healthEvents.Describe(ch)
	m.sampleErrors.Describe(ch)
	m.progressRejected.Describe(ch)
	for _, d := range allDescs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.healthEvents.Collect(ch)
	m.sampleErrors.Collect(ch)
	m.progressRejected.Collect(ch)
	m.mu.Lock()
	gs, ps := m.gpus, m.ports
	m.mu.Unlock()
	a := m.a
	sim := strconv.FormatBool(a.inv.Simulated)
	for _, g := range a.inv.GPUs {
		ch <- prometheus.MustNewConstMetric(dInfo, prometheus.GaugeValue, 1, strconv.Itoa(g.Index), g.UUID, g.Model, sim)
		ch <- prometheus.MustNewConstMetric(dMemTotal, prometheus.GaugeValue, float64(g.MemoryTotalBytes), strconv.Itoa(g.Index))
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	for _, s := range gs {
		i := strconv.Itoa(s.Index)
		if s.SMUtilizationPercent != nil {
			gauge(dUtil, *s.SMUtilizationPercent, i)
		}
		if s.MemoryUtilizationPercent != nil {
			gauge(dMemUtil, *s.MemoryUtilizationPercent, i)
		}
		if s.MemoryUsedBytes != nil {
			gauge(dMemUsed, float64(*s.MemoryUsedBytes), i)
		}
		if s.TemperatureCelsius != nil {
			gauge(dTemp, *s.TemperatureCelsius, i)
		}
		if s.MemoryTemperatureCelsius != nil {
			gauge(dMemTemp, *s.MemoryTemperatureCelsius, i)
		}
		if s.PowerMilliwatts != nil {
			gauge(dPower, float64(*s.PowerMilliwatts)/1000, i)
		}
		if s.PowerLimitMilliwatts != nil {
			gauge(dPowerLim, float64(*s.PowerLimitMilliwatts)/1000, i)
		}
		if s.EnergyMillijoules != nil {
			counter(dEnergy, float64(*s.EnergyMillijoules)/1000, i)
		}
		if s.SMClockMHz != nil {
			gauge(dSMClock, float64(*s.SMClockMHz)*1e6, i)
		}
		if s.ThrottleReasons != nil {
			for _, r := range clockEventReasons {
				v := 0.0
				if *s.ThrottleReasons&r.bit != 0 {
					v = 1
				}
				gauge(dThrottle, v, i, r.name)
			}
		}
		for _, e := range []struct {
			v         *uint64
			typ, kind string
		}{
			{s.ECCVolatileCorrected, "corrected", "volatile"}, {s.ECCVolatileUncorrected, "uncorrected", "volatile"},
			{s.ECCAggregateCorrected, "corrected", "aggregate"}, {s.ECCAggregateUncorrected, "uncorrected", "aggregate"},
		} {
			if e.v != nil {
				counter(dECC, float64(*e.v), i, e.typ, e.kind)
			}
		}
		if s.RowRemapFailure != nil {
			v := 0.0
			if *s.RowRemapFailure {
				v = 1
			}
			gauge(dRemap, v, i)
		}
		if s.PCIeReplayCount != nil {
			counter(dPCIe, float64(*s.PCIeReplayCount), i)
		}
		if s.NVLinkErrorCount != nil {
			counter(dNVLink, float64(*s.NVLinkErrorCount), i)
		}
		if s.Processes != nil {
			gauge(dProcs, float64(len(s.Processes)), i)
		}
	}
	for _, p := range ps {
		port := strconv.Itoa(p.Port)
		up := 0.0
		if p.State == "ACTIVE" && (p.PhysState == "" || p.PhysState == "LinkUp") {
			up = 1
		}
		gauge(dIBUp, up, p.Device, port)
		gauge(dIBRate, float64(p.RateMbps)*1e6/8, p.Device, port)
		for _, c := range ibErrorCounters {
			if v, ok := p.Counters[c]; ok {
				counter(dIBErrors, float64(v), p.Device, port, c)
			}
		}
		if v, ok := p.Counters[ib.CounterPortRcvData]; ok {
			counter(dIBRcv, float64(v)*ibWordBytes, p.Device, port)
		}
		if v, ok := p.Counters[ib.CounterPortXmitData]; ok {
			counter(dIBXmit, float64(v)*ibWordBytes, p.Device, port)
		}
	}
	st := a.buf.Stats()
	gauge(dBuffered, float64(st.Buffered))
	counter(dDropped, float64(st.DroppedSamples))
	counter(dDroppedEv, float64(st.DroppedHealthEvents))
	connected := 0.0
	if a.client.Connected() {
		connected = 1
	}
	gauge(dConnected, connected)
	counter(dSessions, float64(a.client.Sessions()))
	simGPU, simIB := 0.0, 0.0
	if a.cfg.SimulatedGPUs {
		simGPU = 1
	}
	if a.cfg.SimulatedIB {
		simIB = 1
	}
	gauge(dSimulated, simGPU, "nvml")
	gauge(dSimulated, simIB, "ib")
}
