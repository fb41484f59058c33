package ib

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// RescanInterval is how often Sample lists the devices, ports and counter
// files again, by the times passed to Sample (a time before the last
// listing also lists again). Between listings it reads the files it found;
// a file that has gone away makes the next Sample list again, and Inventory
// always lists.
const RescanInterval = time.Minute

// pageSize bounds a sysfs attribute.
const pageSize = 4096

// Collector reads InfiniBand ports from sysfs. It is safe for concurrent
// use; calls are serialized.
type Collector struct {
	root string // <root>/class/infiniband

	mu        sync.Mutex
	buf       []byte
	ports     []*portFiles
	scanErr   error
	scannedAt time.Time // by Sample's clock
	scanned   bool
	stale     bool
}

// portFiles is what a listing found for one port, with its paths prepared.
type portFiles struct {
	device    string
	port      int
	linkLayer string
	// linkLayerErr is set when link_layer could not be read at listing time.
	linkLayerErr error

	state, physState, rate sysPath
	counters               []counterFile
	// missing are health counters absent from counters/ on an InfiniBand
	// port, as fields ("counters/symbol_error").
	missing []string
}

type counterFile struct {
	key   string // map key: "symbol_error", "hw_out_of_buffer"
	field string // "counters/symbol_error"
	path  sysPath
}

// New returns a Collector for the sysfs tree at root ("" is "/sys"); it
// reads <root>/class/infiniband. Nothing is read until the first call.
func New(root string) *Collector {
	if root == "" {
		root = "/sys"
	}
	return &Collector{root: filepath.Join(root, "class", "infiniband"), buf: make([]byte, pageSize)}
}

// Inventory lists every port, reading the layout afresh. A node without
// InfiniBand (no class/infiniband directory) has no ports and no error. The
// error reports devices or ports that could not be listed; the ports
// returned alongside it are valid.
func (c *Collector) Inventory() ([]PortInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.scan() // Sample's listing schedule (its own clock) is left as it was
	out := make([]PortInfo, 0, len(c.ports))
	devInfo := make(map[string]PortInfo)
	for _, p := range c.ports {
		d, ok := devInfo[p.device]
		if !ok {
			d = c.deviceInfo(p.device)
			devInfo[p.device] = d
		}
		pi := d
		pi.FieldErrors = append([]FieldError(nil), d.FieldErrors...)
		pi.Port = p.port
		pi.LinkLayer = p.linkLayer
		if p.linkLayerErr != nil {
			pi.FieldErrors = append(pi.FieldErrors, FieldError{Field: portField(p.port, "link_layer"), Err: p.linkLayerErr})
		}
		if b, err := readInto(p.rate, c.buf); err != nil {
			pi.FieldErrors = append(pi.FieldErrors, FieldError{Field: portField(p.port, "rate"), Err: err})
		} else if mbps, err := parseRate(b); err != nil {
			pi.FieldErrors = append(pi.FieldErrors, FieldError{Field: portField(p.port, "rate"), Err: err})
		} else {
			pi.RateMbps, pi.RateGbps = mbps, roundGbps(mbps)
		}
		out = append(out, pi)
	}
	return out, c.scanErr
}

func portField(port int, name string) string {
	return "ports/" + strconv.Itoa(port) + "/" + name
}

// deviceInfo reads the device-level attributes. node_desc and hca_type are
// optional (not every driver has them); node_guid and fw_ver are expected.
func (c *Collector) deviceInfo(dev string) PortInfo {
	pi := PortInfo{Device: dev}
	dir := filepath.Join(c.root, dev)
	for _, f := range []struct {
		name     string
		dst      *string
		optional bool
	}{
		{"node_guid", &pi.NodeGUID, false},
		{"fw_ver", &pi.FirmwareVersion, false},
		{"node_desc", &pi.NodeDesc, true},
		{"hca_type", &pi.HCAType, true},
	} {
		b, err := readInto(newSysPath(filepath.Join(dir, f.name)), c.buf)
		if err != nil {
			if f.optional && errors.Is(err, fs.ErrNotExist) {
				continue
			}
			pi.FieldErrors = append(pi.FieldErrors, FieldError{Field: f.name, Err: err})
			continue
		}
		*f.dst = string(trimSpace(b))
	}
	return pi
}

// Sample reads every port once, stamping the samples with now; now also
// paces the listing (see RescanInterval). A node without InfiniBand yields
// no samples and no error. Files that cannot be read or parsed are recorded
// in each Sample's FieldErrors; the error reports only devices or ports that
// could not be listed, and the samples returned alongside it are valid.
// Samples are in device, then port, order; the caller owns them.
func (c *Collector) Sample(now time.Time) ([]Sample, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d := now.Sub(c.scannedAt); !c.scanned || c.stale || d >= RescanInterval || d < 0 {
		c.scan()
		c.scannedAt = now
	}
	if len(c.ports) == 0 {
		return nil, c.scanErr
	}
	out := make([]Sample, len(c.ports))
	for i, p := range c.ports {
		c.samplePort(&out[i], p, now)
	}
	return out, c.scanErr
}

func (c *Collector) samplePort(s *Sample, p *portFiles, now time.Time) {
	*s = Sample{Time: now, Device: p.device, Port: p.port, LinkLayer: p.linkLayer,
		Counters: make(map[string]uint64, len(p.counters))}
	fail := func(field string, err error) {
		if errors.Is(err, fs.ErrNotExist) {
			c.stale = true
		}
		s.FieldErrors = append(s.FieldErrors, FieldError{Field: field, Err: err})
	}
	if p.linkLayerErr != nil {
		fail("link_layer", p.linkLayerErr)
	}
	if b, err := readInto(p.state, c.buf); err != nil {
		fail("state", err)
	} else if _, name, err := parseState(b); err != nil {
		fail("state", err)
	} else {
		s.State = name
	}
	if b, err := readInto(p.physState, c.buf); err != nil {
		fail("phys_state", err)
	} else if _, name, err := parseState(b); err != nil {
		fail("phys_state", err)
	} else {
		s.PhysState = name
	}
	if b, err := readInto(p.rate, c.buf); err != nil {
		fail("rate", err)
	} else if mbps, err := parseRate(b); err != nil {
		fail("rate", err)
	} else {
		s.RateMbps, s.RateGbps = mbps, roundGbps(mbps)
	}
	for i := range p.counters {
		cf := &p.counters[i]
		b, err := readInto(cf.path, c.buf)
		if err != nil {
			if errors.Is(err, syscall.EOPNOTSUPP) {
				continue // the driver cannot read this counter: omitted, not an error
			}
			fail(cf.field, err)
			continue
		}
		v, err := parseCounter(b)
		if err == errNotAvailable {
			continue
		}
		if err != nil {
			fail(cf.field, err)
			continue
		}
		s.Counters[cf.key] = v
	}
	for _, field := range p.missing {
		s.FieldErrors = append(s.FieldErrors, FieldError{Field: field, Err: fs.ErrNotExist})
	}
}

// scan lists devices, ports and counter files. Errors other than a missing
// class/infiniband directory are kept in c.scanErr.
func (c *Collector) scan() {
	c.scanned, c.stale = true, false
	c.ports = c.ports[:0]
	var errs []error
	devs, err := os.ReadDir(c.root)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("ib: list devices: %w", err))
		}
		c.scanErr = errors.Join(errs...)
		return
	}
	for _, d := range devs {
		dev := d.Name()
		if strings.HasPrefix(dev, ".") {
			continue
		}
		portsDir := filepath.Join(c.root, dev, "ports")
		ents, err := os.ReadDir(portsDir)
		if err != nil {
			errs = append(errs, fmt.Errorf("ib: list ports of %s: %w", dev, err))
			continue
		}
		for _, e := range ents {
			n, err := strconv.Atoi(e.Name())
			if err != nil || n < 0 {
				continue
			}
			p, err := c.scanPort(dev, n, filepath.Join(portsDir, e.Name()))
			if err != nil {
				errs = append(errs, err)
				continue
			}
			c.ports = append(c.ports, p)
		}
	}
	sort.Slice(c.ports, func(i, j int) bool {
		if c.ports[i].device != c.ports[j].device {
			return c.ports[i].device < c.ports[j].device
		}
		return c.ports[i].port < c.ports[j].port
	})
	c.scanErr = errors.Join(errs...)
}

// skippedHWCounters are hw_counters files that are settings, not counters.
var skippedHWCounters = map[string]bool{
	"lifespan": true, // how long the driver caches the counters, in ms
}

func (c *Collector) scanPort(dev string, port int, dir string) (*portFiles, error) {
	p := &portFiles{
		device:    dev,
		port:      port,
		state:     newSysPath(filepath.Join(dir, "state")),
		physState: newSysPath(filepath.Join(dir, "phys_state")),
		rate:      newSysPath(filepath.Join(dir, "rate")),
	}
	if b, err := readInto(newSysPath(filepath.Join(dir, "link_layer")), c.buf); err != nil {
		p.linkLayerErr = err
	} else {
		p.linkLayer = internLinkLayer(trimSpace(b))
	}
	for _, sub := range []struct{ dir, prefix string }{{"counters", ""}, {"hw_counters", "hw_"}} {
		ents, err := os.ReadDir(filepath.Join(dir, sub.dir))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("ib: list %s/%d/%s: %w", dev, port, sub.dir, err)
		}
		for _, e := range ents {
			name := e.Name()
			if !e.Type().IsRegular() || strings.HasPrefix(name, ".") {
				continue
			}
			if sub.prefix != "" && skippedHWCounters[name] {
				continue
			}
			p.counters = append(p.counters, counterFile{
				key:   sub.prefix + name,
				field: sub.dir + "/" + name,
				path:  newSysPath(filepath.Join(dir, sub.dir, name)),
			})
		}
	}
	if p.linkLayer == LinkLayerInfiniBand {
		have := make(map[string]bool, len(p.counters))
		for _, cf := range p.counters {
			have[cf.key] = true
		}
		for _, name := range healthCounters {
			if !have[name] {
				p.missing = append(p.missing, "counters/"+name)
			}
		}
	}
	return p, nil
}

func internLinkLayer(b []byte) string {
	switch string(b) {
	case LinkLayerInfiniBand:
		return LinkLayerInfiniBand
	case LinkLayerEthernet:
		return LinkLayerEthernet
	}
	return string(b)
}
