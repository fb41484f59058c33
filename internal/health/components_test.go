package health

import (
	"errors"
	"strings"
	"testing"
)

func TestEventComponents(t *testing.T) {
	vocab := EventComponents{MaxGPUs: 8, IBPort: func(dev string, port int) bool { return dev == "mlx5_0" && port == 1 }}
	tests := []struct {
		in, want string
		err      string
	}{
		{in: "gpu", want: "gpu"},
		{in: "node", want: "node"},
		{in: "gpu0", want: "gpu0"},
		{in: "gpu7", want: "gpu7"},
		{in: "ib:mlx5_0/1", want: "ib:mlx5_0/1"},
		{in: "gpu8", err: "GPU index at most 7"},
		{in: "gpu07", err: "is not gpu<N>"},
		{in: "gpu-1", err: "is not gpu<N>"},
		{in: "gpu+1", err: "is not gpu<N>"},
		{in: "gpux", err: "is not gpu<N>"},
		{in: "ib:mlx5_0/2", err: "not a port of the node's inventory"},
		{in: "ib:mlx5_0/01", err: "is not ib:<device>/<port>"},
		{in: "ib:/1", err: "is not ib:<device>/<port>"},
		{in: "agent", err: "want gpu, gpu<N>"},
		{in: "", err: "want gpu, gpu<N>"},
		{in: strings.Repeat("x", 1000), err: "…"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := vocab.Canonical(tt.in)
			if tt.err != "" {
				if !errors.Is(err, ErrComponent) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Canonical(%q) = %q, %v; want ErrComponent saying %q", tt.in, got, err, tt.err)
				}
				if len(err.Error()) > 200 {
					t.Errorf("error of %d bytes: the name is not clipped", len(err.Error()))
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Canonical(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
	if a, _ := vocab.Canonical("gpu3"); a != GPUComponent(3) {
		t.Errorf("gpu3 not canonical")
	}
}

// FuzzEventComponents: whatever an agent sends, an accepted name is one of
// a bounded set, canonical, and accepted again unchanged.
func FuzzEventComponents(f *testing.F) {
	for _, s := range []string{"gpu", "gpu3", "gpu63", "gpu64", "ib:mlx5_0/1", "node", "gpu00", "ib:a/b/1"} {
		f.Add(s)
	}
	vocab := EventComponents{MaxGPUs: 64, IBPort: func(dev string, port int) bool { return dev == "mlx5_0" && port == 1 }}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := vocab.Canonical(s)
		if err != nil {
			if !errors.Is(err, ErrComponent) {
				t.Fatalf("error %v does not wrap ErrComponent", err)
			}
			return
		}
		if got != s {
			t.Fatalf("Canonical(%q) = %q: accepted names are already canonical", s, got)
		}
		ok := got == "gpu" || got == "node" || got == "ib:mlx5_0/1"
		for i := range 64 {
			ok = ok || got == GPUComponent(i)
		}
		if !ok {
			t.Fatalf("Canonical(%q) accepted a name outside the bounded set", s)
		}
	})
}
