package nvmlsim

import (
	"errors"
	"strings"
	"testing"
)

func TestParseFault(t *testing.T) {
	tests := []struct {
		in    string
		want  Fault
		field string // the field the error names; "" for success
	}{
		{in: "xid:79@gpu3", want: Fault{GPU: 3, Kind: "xid", Code: 79}},
		{in: "gpu_lost@gpu5", want: Fault{GPU: 5, Kind: "gpu_lost"}},
		{in: "ecc:2@gpu0", want: Fault{GPU: 0, Kind: "ecc", Code: 2}},
		{in: "ecc@gpu0", want: Fault{GPU: 0, Kind: "ecc", Code: 1}},
		{in: "thermal@gpu1", want: Fault{GPU: 1, Kind: "thermal"}},
		{in: "power@gpu7", want: Fault{GPU: 7, Kind: "power"}},
		{in: "row_remap_failure@gpu12", want: Fault{GPU: 12, Kind: "row_remap_failure"}},
		{in: "  xid:13@gpu0\n", want: Fault{GPU: 0, Kind: "xid", Code: 13}},
		{in: "xid:79@gpu007", want: Fault{GPU: 7, Kind: "xid", Code: 79}},
		{in: "", field: "gpu"},
		{in: "xid:79", field: "gpu"},
		{in: "xid:79@", field: "gpu"},
		{in: "xid:79@3", field: "gpu"},
		{in: "xid:79@gpu", field: "gpu"},
		{in: "xid:79@gpu-1", field: "gpu"},
		{in: "xid:79@gpu+1", field: "gpu"},
		{in: "xid:79@gpu1x", field: "gpu"},
		{in: "xid:79@gpu99999999999", field: "gpu"},
		{in: "xid:79@GPU3", field: "gpu"},
		{in: "xid@gpu3", field: "code"},
		{in: "xid:0@gpu3", field: "code"},
		{in: "xid:-79@gpu3", field: "code"},
		{in: "xid:7a@gpu3", field: "code"},
		{in: "xid:@gpu3", field: "code"},
		{in: "xid:99999999999999999999@gpu3", field: "code"},
		{in: "xid:4294967296@gpu3", field: "code"},
		{in: "thermal:1@gpu3", field: "code"},
		{in: "ecc:2000000@gpu3", field: "code"},
		{in: "XID:79@gpu3", field: "kind"},
		{in: "melt@gpu3", field: "kind"},
		{in: "@gpu3", field: "kind"},
	}
	for _, tt := range tests {
		got, err := ParseFault(tt.in)
		if tt.field == "" {
			if err != nil || got != tt.want {
				t.Errorf("ParseFault(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
			continue
		}
		if !errors.Is(err, ErrInvalidFault) || !strings.Contains(err.Error(), ": "+tt.field+": ") {
			t.Errorf("ParseFault(%q) = %+v, %v; want an error naming %q", tt.in, got, err, tt.field)
		}
	}
}

func TestFaultString(t *testing.T) {
	for _, s := range []string{"xid:79@gpu3", "gpu_lost@gpu5", "ecc:2@gpu0", "thermal@gpu1"} {
		f, err := ParseFault(s)
		if err != nil {
			t.Fatal(err)
		}
		if f.String() != s {
			t.Errorf("String() = %q, want %q", f.String(), s)
		}
	}
}

// FuzzParseFault: ParseFault never panics, accepts only valid faults, and
// a parsed fault round-trips through String.
func FuzzParseFault(f *testing.F) {
	for _, s := range []string{"xid:79@gpu3", "gpu_lost@gpu5", "ecc:2@gpu0", "ecc@gpu0", "thermal@gpu1", "power@gpu2",
		"row_remap_failure@gpu4", "xid:@gpu", "@", ":@gpu", "xid:79@gpu3@gpu4", "xid:1:2@gpu0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fault, err := ParseFault(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidFault) {
				t.Fatalf("ParseFault(%q) error %v does not wrap ErrInvalidFault", s, err)
			}
			return
		}
		if _, err := normalize(fault, fault.GPU+1); err != nil {
			t.Fatalf("ParseFault(%q) = %+v, which is invalid: %v", s, fault, err)
		}
		again, err := ParseFault(fault.String())
		if err != nil || again != fault {
			t.Fatalf("round trip of %q: %+v -> %q -> %+v, %v", s, fault, fault.String(), again, err)
		}
		sim := New(Options{GPUs: 1})
		fault.GPU = 0
		if err := sim.Inject(fault); err != nil {
			t.Fatalf("Inject(%+v) of a parsed fault: %v", fault, err)
		}
	})
}
