package ib

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Fault kinds that a SimTree can inject.
const (
	// FaultPortDown takes the port down (state DOWN, phys_state Disabled)
	// and increments link_downed.
	FaultPortDown = "port_down"
	// FaultSymbolErrors makes symbol_error grow fast on every Advance.
	FaultSymbolErrors = "symbol_errors"
	// FaultRcvErrors makes port_rcv_errors grow fast on every Advance.
	FaultRcvErrors = "rcv_errors"
)

// FaultKinds lists the kinds Inject accepts.
var FaultKinds = []string{FaultPortDown, FaultSymbolErrors, FaultRcvErrors}

// SimulatedMarker is the file at the root of a simulated tree.
const SimulatedMarker = "SIMULATED"

// Error growth under a fault, per Advance: a burst plus a rate. Either alone
// trips the health rules' defaults (10/s degraded, 120/h unhealthy).
const (
	simErrorBurst  = 500
	simErrorPerSec = 100
)

// Simulated link: 4X NDR.
const (
	simRate     = "400 Gb/sec (4X NDR)"
	simDownRate = "10 Gb/sec (4X SDR)" // what the kernel prints for a down mlx5 port
	simBytesSec = 400e9 / 8
)

// InfiniBand PortCounters widths: the error counters saturate.
var simCounterMax = map[string]uint64{
	CounterSymbolError:                  1<<16 - 1,
	CounterPortRcvErrors:                1<<16 - 1,
	CounterLinkDowned:                   1<<8 - 1,
	"link_error_recovery":               1<<8 - 1,
	CounterLocalLinkIntegrityErrors:     1<<4 - 1,
	CounterExcessiveBufferOverrunErrors: 1<<4 - 1,
	"port_xmit_wait":                    1<<32 - 1,
}

// Fault is an injected fault.
type Fault struct {
	Device string `json:"device"`
	Port   int    `json:"port"`
	Kind   string `json:"kind"`
}

// SimTree is a simulated sysfs InfiniBand tree for demos and tests: healthy
// 4X NDR ports whose data counters grow on Advance, into which faults can
// be injected. Every file is replaced atomically (written aside, then
// renamed), so a concurrent Collector never reads half a file. The tree is
// labelled: its root holds a SIMULATED file and each node_desc ends in
// "(simulated)". It is safe for concurrent use.
type SimTree struct {
	root    string
	staging string

	mu    sync.Mutex
	ports []*simPort
	rng   *rand.Rand
}

type simPort struct {
	device   string
	port     int
	dir      string
	down     bool
	faults   map[string]bool
	counters map[string]uint64
	hw       map[string]uint64
}

// NewSimTree writes a healthy tree of the given number of single-port devices
// (mlx5_0…) under dir, creating dir if needed. It refuses a dir that holds a
// class/infiniband tree without the SIMULATED marker, so that it never
// overwrites a real or foreign tree.
func NewSimTree(dir string, devices int) (*SimTree, error) {
	if devices < 1 || devices > 64 {
		return nil, fmt.Errorf("ib: sim: devices must be 1..64, got %d", devices)
	}
	if dir == "" {
		return nil, errors.New("ib: sim: dir must not be empty")
	}
	if _, err := os.Stat(filepath.Join(dir, "class", "infiniband")); err == nil {
		if _, err := os.Stat(filepath.Join(dir, SimulatedMarker)); err != nil {
			return nil, fmt.Errorf("ib: sim: %s holds an InfiniBand tree that is not simulated", dir)
		}
		if err := os.RemoveAll(filepath.Join(dir, "class", "infiniband")); err != nil {
			return nil, fmt.Errorf("ib: sim: %w", err)
		}
	}
	t := &SimTree{root: dir, staging: filepath.Join(dir, ".staging"), rng: rand.New(rand.NewPCG(1, uint64(devices)))}
	if err := os.MkdirAll(t.staging, 0o755); err != nil {
		return nil, fmt.Errorf("ib: sim: %w", err)
	}
	if err := t.writeFile(filepath.Join(dir, SimulatedMarker), "This sysfs tree is simulated by sopilot; it describes no real hardware.\n"); err != nil {
		return nil, err
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	for i := 0; i < devices; i++ {
		dev := fmt.Sprintf("mlx5_%d", i)
		devDir := filepath.Join(dir, "class", "infiniband", dev)
		for name, v := range map[string]string{
			// 02:… is a locally administered GUID: no vendor's.
			"node_guid": fmt.Sprintf("0200:5e00:0000:%04x", i),
			"fw_ver":    "28.39.1002",
			"node_desc": fmt.Sprintf("%s %s (simulated)", host, dev),
			"hca_type":  "MT4129",
			"node_type": "1: CA",
		} {
			if err := t.writeFile(filepath.Join(devDir, name), v+"\n"); err != nil {
				return nil, err
			}
		}
		p := &simPort{device: dev, port: 1, dir: filepath.Join(devDir, "ports", "1"), faults: map[string]bool{},
			counters: map[string]uint64{}, hw: map[string]uint64{}}
		for _, name := range []string{
			"VL15_dropped", CounterExcessiveBufferOverrunErrors, CounterLinkDowned, "link_error_recovery",
			CounterLocalLinkIntegrityErrors, "multicast_rcv_packets", "multicast_xmit_packets",
			"port_rcv_constraint_errors", CounterPortRcvData, CounterPortRcvErrors, "port_rcv_packets",
			"port_rcv_remote_physical_errors", "port_rcv_switch_relay_errors", "port_xmit_constraint_errors",
			CounterPortXmitData, "port_xmit_discards", "port_xmit_packets", "port_xmit_wait", CounterSymbolError,
			"unicast_rcv_packets", "unicast_xmit_packets",
		} {
			p.counters[name] = 0
		}
		for _, name := range []string{"local_ack_timeout_err", "out_of_buffer", "out_of_sequence",
			"packet_seq_err", "rnr_nak_retry_err", "rx_read_requests", "rx_write_requests"} {
			p.hw[name] = 0
		}
		for name, v := range map[string]string{"link_layer": LinkLayerInfiniBand, "lid": fmt.Sprintf("0x%x", 0x10+i), "sm_lid": "0x1"} {
			if err := t.writeFile(filepath.Join(p.dir, name), v+"\n"); err != nil {
				return nil, err
			}
		}
		if err := t.writeLink(p); err != nil {
			return nil, err
		}
		if err := t.writeCounters(p, nil); err != nil {
			return nil, err
		}
		t.ports = append(t.ports, p)
	}
	return t, nil
}

// Root is the sysfs root to pass to New.
func (t *SimTree) Root() string { return t.root }

// SimAdvanceEvery is how often a SimCollector moves the tree's counters:
// every few seconds, not every sample, since rewriting its files is most of
// what a simulated agent would otherwise spend.
const SimAdvanceEvery = 5 * time.Second

// SimCollector collects from a SimTree and moves its counters forward as
// samples are taken (Advance by the time elapsed, at most every
// SimAdvanceEvery). It is not safe for concurrent use.
type SimCollector struct {
	*Collector
	tree     *SimTree
	advanced time.Time
}

// Collector returns a collector of the tree whose counters move with time.
func (t *SimTree) Collector() *SimCollector { return &SimCollector{Collector: New(t.root), tree: t} }

// Sample advances the tree when SimAdvanceEvery has passed, then reads it
// (also when advancing failed: that error comes with the samples).
func (c *SimCollector) Sample(now time.Time) ([]Sample, error) {
	var advErr error
	if c.advanced.IsZero() {
		c.advanced = now
	} else if d := now.Sub(c.advanced); d >= SimAdvanceEvery {
		if err := c.tree.Advance(d); err != nil {
			advErr = fmt.Errorf("advance the simulated tree: %w", err)
		}
		c.advanced = now
	}
	ss, err := c.Collector.Sample(now)
	return ss, errors.Join(advErr, err)
}

// writeFile replaces path atomically.
func (t *SimTree) writeFile(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("ib: sim: %w", err)
	}
	f, err := os.CreateTemp(t.staging, "w-")
	if err != nil {
		return fmt.Errorf("ib: sim: %w", err)
	}
	_, werr := f.WriteString(content)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("ib: sim: write %s: %w", path, err)
	}
	if err := os.Chmod(f.Name(), 0o444); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("ib: sim: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("ib: sim: %w", err)
	}
	return nil
}

func (t *SimTree) writeLink(p *simPort) error {
	state, phys, rate := "4: ACTIVE", "5: LinkUp", simRate
	if p.down {
		state, phys, rate = "1: DOWN", "3: Disabled", simDownRate
	}
	for name, v := range map[string]string{"state": state, "phys_state": phys, "rate": rate} {
		if err := t.writeFile(filepath.Join(p.dir, name), v+"\n"); err != nil {
			return err
		}
	}
	return nil
}

// writeCounters writes the named counters ("hw_" prefix for hw_counters),
// or all of them when names is nil.
func (t *SimTree) writeCounters(p *simPort, names []string) error {
	if names == nil {
		for k := range p.counters {
			names = append(names, k)
		}
		for k := range p.hw {
			names = append(names, "hw_"+k)
		}
	}
	for _, k := range names {
		var path string
		var v uint64
		if hk, ok := strings.CutPrefix(k, "hw_"); ok {
			path, v = filepath.Join(p.dir, "hw_counters", hk), p.hw[hk]
		} else {
			path, v = filepath.Join(p.dir, "counters", k), p.counters[k]
		}
		if err := t.writeFile(path, strconv.FormatUint(v, 10)+"\n"); err != nil {
			return err
		}
	}
	return nil
}

// add increases counter name by n, saturating at its InfiniBand width.
func (p *simPort) add(name string, n uint64) {
	v := p.counters[name] + n
	if m, ok := simCounterMax[name]; ok && (v > m || v < n) {
		v = m
	}
	p.counters[name] = v
}

// Advance moves the simulation on by elapsed: links that are up carry 55 to
// 85% of line rate each way, and ports with error faults gain errors. A
// non-positive elapsed changes nothing.
func (t *SimTree) Advance(elapsed time.Duration) error {
	if elapsed <= 0 {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	secs := elapsed.Seconds()
	var errs []error
	for _, p := range t.ports {
		var changed []string
		if !p.down {
			for _, dir := range []string{"xmit", "rcv"} {
				bytes := simBytesSec * secs * (0.55 + 0.3*t.rng.Float64())
				pkts := uint64(bytes / 4200) // 4 KiB MTU plus headers
				p.add("port_"+dir+"_data", uint64(bytes/4))
				p.add("port_"+dir+"_packets", pkts)
				p.add("unicast_"+dir+"_packets", pkts)
				changed = append(changed, "port_"+dir+"_data", "port_"+dir+"_packets", "unicast_"+dir+"_packets")
			}
			p.add("port_xmit_wait", uint64(secs*2000*t.rng.Float64()))
			p.hw["rx_write_requests"] += uint64(secs * 250_000)
			p.hw["rx_read_requests"] += uint64(secs * 4_000)
			changed = append(changed, "port_xmit_wait", "hw_rx_write_requests", "hw_rx_read_requests")
		}
		burst := simErrorBurst + uint64(secs*simErrorPerSec)
		if p.faults[FaultSymbolErrors] {
			p.add(CounterSymbolError, burst)
			changed = append(changed, CounterSymbolError)
		}
		if p.faults[FaultRcvErrors] {
			p.add(CounterPortRcvErrors, burst)
			changed = append(changed, CounterPortRcvErrors)
		}
		if err := t.writeCounters(p, changed); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// InputError is a bad argument to a SimTree method; Field names it
// ("device", "port", "kind").
type InputError struct {
	Field string
	Msg   string
}

// Error returns "field: message".
func (e *InputError) Error() string { return e.Field + ": " + e.Msg }

func (t *SimTree) find(device string, port int) (*simPort, error) {
	if device == "" {
		return nil, &InputError{"device", "must not be empty"}
	}
	var devFound bool
	for _, p := range t.ports {
		if p.device == device {
			devFound = true
			if p.port == port {
				return p, nil
			}
		}
	}
	if !devFound {
		return nil, &InputError{"device", fmt.Sprintf("no device %q", device)}
	}
	return nil, &InputError{"port", fmt.Sprintf("%s has no port %d", device, port)}
}

// Inject starts a fault on a port. Injecting a fault the port already has
// changes nothing. Errors name the bad field ("device", "port", "kind").
func (t *SimTree) Inject(device string, port int, kind string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, err := t.find(device, port)
	if err != nil {
		return err
	}
	switch kind {
	case FaultPortDown, FaultSymbolErrors, FaultRcvErrors:
	default:
		return &InputError{"kind", fmt.Sprintf("unknown fault kind %q (known: %s, %s, %s)", kind, FaultPortDown, FaultSymbolErrors, FaultRcvErrors)}
	}
	if p.faults[kind] {
		return nil
	}
	p.faults[kind] = true
	if kind == FaultPortDown {
		p.down = true
		p.add(CounterLinkDowned, 1)
		if err := t.writeCounters(p, []string{CounterLinkDowned}); err != nil {
			return err
		}
		return t.writeLink(p)
	}
	return nil
}

// Clear removes every fault on a port and brings its link back up.
func (t *SimTree) Clear(device string, port int) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, err := t.find(device, port)
	if err != nil {
		return err
	}
	return t.clear(p)
}

// ClearAll removes every fault on every port.
func (t *SimTree) ClearAll() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var errs []error
	for _, p := range t.ports {
		errs = append(errs, t.clear(p))
	}
	return errors.Join(errs...)
}

func (t *SimTree) clear(p *simPort) error {
	clear(p.faults)
	if !p.down {
		return nil
	}
	p.down = false
	return t.writeLink(p)
}

// Faults lists the active faults in device, port, kind order.
func (t *SimTree) Faults() []Fault {
	t.mu.Lock()
	defer t.mu.Unlock()
	var fs []Fault
	for _, p := range t.ports {
		for k := range p.faults {
			fs = append(fs, Fault{Device: p.device, Port: p.port, Kind: k})
		}
	}
	sortFaults(fs)
	return fs
}

func sortFaults(fs []Fault) {
	sort.Slice(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if a.Device != b.Device {
			return a.Device < b.Device
		}
		if a.Port != b.Port {
			return a.Port < b.Port
		}
		return a.Kind < b.Kind
	})
}
