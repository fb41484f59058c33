package health

import "testing"

func TestClassifyXID(t *testing.T) {
	tests := []struct {
		xid  int64
		want XIDClass
	}{
		{13, XIDApplication}, {31, XIDApplication}, {43, XIDApplication}, {45, XIDApplication}, {68, XIDApplication},
		{48, XIDDrain}, {64, XIDDrain}, {74, XIDDrain}, {79, XIDDrain}, {95, XIDDrain}, {119, XIDDrain}, {120, XIDDrain},
		{63, XIDResetWhenIdle}, {92, XIDResetWhenIdle}, {94, XIDResetWhenIdle},
		{8, XIDUnknown}, {0, XIDUnknown}, {-1, XIDUnknown},
	}
	for _, tt := range tests {
		if got := ClassifyXID(tt.xid); got != tt.want {
			t.Errorf("ClassifyXID(%d) = %q, want %q", tt.xid, got, tt.want)
		}
	}
}
