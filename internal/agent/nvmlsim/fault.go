package nvmlsim

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// Fault kinds.
const (
	// KindXID delivers an XID critical error event with EventData = Code
	// through every event set registered for XIDs on the GPU. XID 48 (a
	// double-bit ECC error) also counts one uncorrected ECC error and
	// delivers a double-bit ECC event, as the hardware does.
	KindXID = "xid"
	// KindECC raises the volatile and aggregate uncorrected ECC counters by
	// Code (default 1) and delivers a double-bit ECC event.
	KindECC = "ecc"
	// KindRowRemapFailure makes GetRemappedRows report a pending, failed
	// remap.
	KindRowRemapFailure = "row_remap_failure"
	// KindThermal drives the GPU to about 92 °C with the hardware and
	// software thermal slowdown reasons set.
	KindThermal = "thermal"
	// KindPower sets the hardware power brake reason.
	KindPower = "power"
	// KindGPULost makes every call on the GPU fail with ERROR_GPU_IS_LOST.
	KindGPULost = "gpu_lost"
)

// Kinds lists the fault kinds Inject accepts.
var Kinds = []string{KindXID, KindECC, KindRowRemapFailure, KindThermal, KindPower, KindGPULost}

// Limits on Fault.Code.
const (
	maxXID      = 1<<32 - 1 // NVML reports XIDs as unsigned 32-bit values in practice
	maxECCCount = 1 << 20
)

// ErrInvalidFault is wrapped by every error about a malformed fault.
var ErrInvalidFault = errors.New("invalid fault")

// Fault is an injected hardware fault on one GPU.
type Fault struct {
	// GPU is the GPU index.
	GPU int `json:"gpu"`
	// Kind is one of Kinds.
	Kind string `json:"kind"`
	// Code is the XID for "xid" and the error count for "ecc" (default 1);
	// other kinds take none.
	Code int64 `json:"code,omitempty"`
}

// String is the fault in ParseFault's syntax.
func (f Fault) String() string {
	if f.Code != 0 {
		return fmt.Sprintf("%s:%d@gpu%d", f.Kind, f.Code, f.GPU)
	}
	return fmt.Sprintf("%s@gpu%d", f.Kind, f.GPU)
}

func faultErr(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidFault, field, fmt.Sprintf(format, args...))
}

// normalize checks f's kind and code (and GPU against gpus when gpus >= 0)
// and fills the ECC count default.
func normalize(f Fault, gpus int) (Fault, error) {
	if f.GPU < 0 || (gpus >= 0 && f.GPU >= gpus) {
		if gpus >= 0 {
			return f, faultErr("gpu", "%d is out of range [0, %d)", f.GPU, gpus)
		}
		return f, faultErr("gpu", "%d is negative", f.GPU)
	}
	switch f.Kind {
	case KindXID:
		if f.Code < 1 || f.Code > maxXID {
			return f, faultErr("code", "xid needs an XID in [1, %d], got %d", int64(maxXID), f.Code)
		}
	case KindECC:
		if f.Code == 0 {
			f.Code = 1
		}
		if f.Code < 1 || f.Code > maxECCCount {
			return f, faultErr("code", "ecc count must be in [1, %d], got %d", maxECCCount, f.Code)
		}
	case KindRowRemapFailure, KindThermal, KindPower, KindGPULost:
		if f.Code != 0 {
			return f, faultErr("code", "%s takes no code, got %d", f.Kind, f.Code)
		}
	default:
		return f, faultErr("kind", "unknown kind %q (want one of %s)", f.Kind, strings.Join(Kinds, ", "))
	}
	return f, nil
}

// ParseFault parses "kind[:code]@gpuN", e.g. "xid:79@gpu3", "gpu_lost@gpu5",
// "ecc:2@gpu0", "thermal@gpu1". The GPU index is not checked against a
// GPU count; Inject does that.
func ParseFault(s string) (Fault, error) {
	spec, gpuPart, found := strings.Cut(strings.TrimSpace(s), "@")
	if !found {
		return Fault{}, faultErr("gpu", "%q has no \"@gpuN\" (want kind[:code]@gpuN)", s)
	}
	idx, ok := strings.CutPrefix(gpuPart, "gpu")
	if !ok {
		return Fault{}, faultErr("gpu", "%q does not start with \"gpu\" (want kind[:code]@gpuN)", gpuPart)
	}
	gpu, err := parseDigits(idx, 31)
	if err != nil {
		return Fault{}, faultErr("gpu", "index %q: %v", idx, err)
	}
	kind, code, hasCode := strings.Cut(spec, ":")
	f := Fault{GPU: int(gpu), Kind: kind}
	if hasCode {
		c, err := parseDigits(code, 63)
		if err != nil {
			return Fault{}, faultErr("code", "%q: %v", code, err)
		}
		if c == 0 {
			return Fault{}, faultErr("code", "must not be 0")
		}
		f.Code = c
	}
	return normalize(f, -1)
}

// parseDigits parses a non-empty string of ASCII digits that fits in bits
// bits, unsigned.
func parseDigits(s string, bits int) (int64, error) {
	if s == "" {
		return 0, errors.New("empty")
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("not a decimal number")
		}
	}
	v, err := strconv.ParseInt(s, 10, bits+1)
	if err != nil {
		return 0, errors.New("too large")
	}
	return v, nil
}

// Inject applies f. A fault of a kind the GPU already has replaces it; an
// xid or ecc fault delivers its event (and raises the counters) again.
func (s *Sim) Inject(f Fault) error {
	f, err := normalize(f, len(s.devices))
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.gpus[f.GPU]
	s.advance(g, s.opts.Now()) // the old state holds up to now
	switch f.Kind {
	case KindXID:
		s.postEvent(f.GPU, nvml.EventTypeXidCriticalError, uint64(f.Code))
		if f.Code == xidDBE {
			s.uncorrectedECC(g, 1)
		}
	case KindECC:
		s.uncorrectedECC(g, uint64(f.Code))
	}
	g.faults[f.Kind] = f
	return nil
}

// xidDBE is the XID the driver logs for a double-bit ECC error.
const xidDBE = 48

// uncorrectedECC counts n uncorrected ECC errors on g and sends the
// double-bit ECC event. s.mu must be held.
func (s *Sim) uncorrectedECC(g *gpuState, n uint64) {
	g.eccVolUnc += n
	g.eccAggUnc += n
	s.postEvent(g.index, nvml.EventTypeDoubleBitEccError, 0)
}

// Clear removes every fault on GPU gpu: a lost GPU answers again, the
// temperature falls and the throttle reasons clear. ECC counters keep the
// errors they counted, as on real hardware. An index out of range does
// nothing.
func (s *Sim) Clear(gpu int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if gpu < 0 || gpu >= len(s.gpus) {
		return
	}
	g := s.gpus[gpu]
	s.advance(g, s.opts.Now())
	clear(g.faults)
}

// ClearAll removes every fault on every GPU.
func (s *Sim) ClearAll() {
	for i := range s.devices {
		s.Clear(i)
	}
}
