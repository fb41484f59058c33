package ib

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestParseState(t *testing.T) {
	tests := []struct {
		in      string
		id      int
		name    string
		wantErr string
	}{
		{in: "4: ACTIVE\n", id: 4, name: "ACTIVE"},
		{in: "1: DOWN\n", id: 1, name: "DOWN"},
		{in: "2: INIT\n", id: 2, name: "INIT"},
		{in: "3: ARMED", id: 3, name: "ARMED"},
		{in: "5: LinkUp\n", id: 5, name: "LinkUp"},
		{in: "3: Disabled\n", id: 3, name: "Disabled"},
		{in: "2: Polling\n", id: 2, name: "Polling"},
		{in: "7: Phy Test\n", id: 7, name: "Phy Test"},
		{in: "0: <unknown>\n", id: 0, name: "<unknown>"},
		{in: "9: NEWSTATE\n", id: 9, name: "NEWSTATE"},
		{in: "", wantErr: "want"},
		{in: "ACTIVE\n", wantErr: "want"},
		{in: "4 ACTIVE\n", wantErr: "want"},
		{in: "4:ACTIVE\n", wantErr: "want"},
		{in: "4: \n", wantErr: "want"},
		{in: ": ACTIVE\n", wantErr: "want"},
		{in: "-4: ACTIVE\n", wantErr: "want"},
		{in: "99999999999: ACTIVE\n", wantErr: "too large"},
		{in: "4: ACT\x00IVE\n", wantErr: "printable"},
	}
	for _, tt := range tests {
		id, name, err := parseState([]byte(tt.in))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseState(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || id != tt.id || name != tt.name {
			t.Errorf("parseState(%q) = %d, %q, %v; want %d, %q", tt.in, id, name, err, tt.id, tt.name)
		}
	}
}

func TestParseRate(t *testing.T) {
	tests := []struct {
		in         string
		mbps, gbps int64
		wantErr    bool
	}{
		{in: "400 Gb/sec (4X NDR)\n", mbps: 400000, gbps: 400},
		{in: "800 Gb/sec (4X XDR)\n", mbps: 800000, gbps: 800},
		{in: "200 Gb/sec (4X HDR)\n", mbps: 200000, gbps: 200},
		{in: "100 Gb/sec (4X EDR)\n", mbps: 100000, gbps: 100},
		{in: "25 Gb/sec (1X EDR)\n", mbps: 25000, gbps: 25},
		{in: "56 Gb/sec (4X FDR)\n", mbps: 56000, gbps: 56},
		{in: "10 Gb/sec (4X SDR)\n", mbps: 10000, gbps: 10},
		{in: "2.5 Gb/sec (1X SDR)\n", mbps: 2500, gbps: 3},
		{in: "10 Gb/sec (4X)\n", mbps: 10000, gbps: 10}, // kernels before SDR was named
		{in: "14.0625 Gb/sec (1X FDR)", mbps: 14062, gbps: 14},
		{in: "400 Gb/sec", mbps: 400000, gbps: 400},
		{in: "", wantErr: true},
		{in: "Gb/sec (4X NDR)", wantErr: true},
		{in: "400\n", wantErr: true},
		{in: "400 Gbps\n", wantErr: true},
		{in: "400 Gb/sec 4X NDR\n", wantErr: true},
		{in: "400 Gb/sec (4X NDR\n", wantErr: true},
		{in: "2. Gb/sec (1X SDR)\n", wantErr: true},
		{in: "-1 Gb/sec (1X SDR)\n", wantErr: true},
		{in: "99999999999 Gb/sec (4X NDR)\n", wantErr: true},
	}
	for _, tt := range tests {
		mbps, err := parseRate([]byte(tt.in))
		if tt.wantErr {
			if err == nil {
				t.Errorf("parseRate(%q) = %d, want an error", tt.in, mbps)
			}
			continue
		}
		if err != nil || mbps != tt.mbps || roundGbps(mbps) != tt.gbps {
			t.Errorf("parseRate(%q) = %d (%d Gb/s), %v; want %d (%d Gb/s)", tt.in, mbps, roundGbps(mbps), err, tt.mbps, tt.gbps)
		}
	}
}

func TestParseCounter(t *testing.T) {
	tests := []struct {
		in      string
		want    uint64
		wantErr error // nil: any error when bad is set
		bad     bool
	}{
		{in: "0\n", want: 0},
		{in: "1622486432109933\n", want: 1622486432109933},
		{in: "18446744073709551615\n", want: 1<<64 - 1},
		{in: " 5 \n", want: 5},
		{in: "N/A (no PMA)\n", wantErr: errNotAvailable, bad: true},
		{in: "18446744073709551616\n", bad: true},
		{in: "", bad: true},
		{in: "\n", bad: true},
		{in: "12x4\n", bad: true},
		{in: "-1\n", bad: true},
		{in: "0x10\n", bad: true},
		{in: "1 2\n", bad: true},
	}
	for _, tt := range tests {
		v, err := parseCounter([]byte(tt.in))
		if tt.bad {
			if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
				t.Errorf("parseCounter(%q) = %d, %v; want error %v", tt.in, v, err, tt.wantErr)
			}
			continue
		}
		if err != nil || v != tt.want {
			t.Errorf("parseCounter(%q) = %d, %v; want %d", tt.in, v, err, tt.want)
		}
	}
}

func FuzzParseState(f *testing.F) {
	for _, s := range []string{"4: ACTIVE\n", "1: DOWN\n", "5: LinkUp\n", "3: Disabled\n", "2: Polling\n", "7: Phy Test\n", "0: <unknown>\n", "4:ACTIVE", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in := string(b)
		id, name, err := parseState(b)
		if string(b) != in {
			t.Fatal("parseState modified its input")
		}
		if err != nil {
			return
		}
		if name == "" || id < 0 || strings.TrimSpace(name) != name {
			t.Fatalf("parseState(%q) = %d, %q", b, id, name)
		}
		// What was accepted prints back to something that parses the same.
		id2, name2, err := parseState([]byte(strconv.Itoa(id) + ": " + name + "\n"))
		if err != nil || id2 != id || name2 != name {
			t.Fatalf("round trip of %q: %d, %q, %v; want %d, %q", b, id2, name2, err, id, name)
		}
	})
}

func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"400 Gb/sec (4X NDR)\n", "100 Gb/sec (4X EDR)\n", "2.5 Gb/sec (1X SDR)\n", "10 Gb/sec (4X)\n", "400", "1.2345 Gb/sec"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		mbps, err := parseRate(b)
		if err != nil {
			return
		}
		if mbps < 0 || mbps > maxRateMbps+999 {
			t.Fatalf("parseRate(%q) = %d Mb/s, out of range", b, mbps)
		}
		if g := roundGbps(mbps); g*1000-500 > mbps || mbps >= g*1000+500 {
			t.Fatalf("roundGbps(%d) = %d", mbps, g)
		}
		// The kernel's own rendering of an accepted rate parses the same.
		s := strconv.FormatInt(mbps/1000, 10)
		if frac := mbps % 1000; frac != 0 {
			s += "." + strings.TrimRight(strconv.FormatInt(1000+frac, 10)[1:], "0")
		}
		if again, err := parseRate([]byte(s + " Gb/sec (4X NDR)\n")); err != nil || again != mbps {
			t.Fatalf("round trip of %q via %q: %d, %v; want %d", b, s, again, err, mbps)
		}
	})
}

func FuzzParseCounter(f *testing.F) {
	for _, s := range []string{"0\n", "1622486432109933\n", "18446744073709551615\n", "18446744073709551616\n", "N/A (no PMA)\n", "12x4\n", " 7 "} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := parseCounter(b)
		want, werr := strconv.ParseUint(strings.Trim(string(b), " \n\t\r\v\f"), 10, 64)
		if (err == nil) != (werr == nil) {
			t.Fatalf("parseCounter(%q) = %d, %v; strconv says %d, %v", b, v, err, want, werr)
		}
		if err == nil && v != want {
			t.Fatalf("parseCounter(%q) = %d, want %d", b, v, want)
		}
	})
}
