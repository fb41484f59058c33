package scheduler

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckNodeName(t *testing.T) {
	for _, ok := range []string{"worker-1", "gpu001", "n.example.com", "a_b", "0node", strings.Repeat("a", 253)} {
		if err := CheckNodeName(ok); err != nil {
			t.Errorf("CheckNodeName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "worker-[0-1]", "a,b", "a b", "-a", ".a", "a=b", "a/b", "a\n", "é", strings.Repeat("a", 254)} {
		err := CheckNodeName(bad)
		if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "node name") {
			t.Errorf("CheckNodeName(%q) = %v, want ErrRejected naming the node name", bad, err)
		}
	}
}

func TestCheckNodeReason(t *testing.T) {
	for _, ok := range []string{"x", `[sopilot] a=b c]d [x@y] "q" 'single'  two  spaces`, "GPU 3 ist defekt: größer", strings.Repeat("r", MaxNodeReasonLen)} {
		if err := CheckNodeReason(ok); err != nil {
			t.Errorf("CheckNodeReason(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", " ", " x", "x ", "a\nb", "a\rb", "a\tb", "a\x00b", "a\x7fb", "a\u0085b", "a\u2028b", "\xff", strings.Repeat("r", MaxNodeReasonLen+1)} {
		err := CheckNodeReason(bad)
		if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "node reason") {
			t.Errorf("CheckNodeReason(%q) = %v, want ErrRejected naming the node reason", bad, err)
		}
	}
}
