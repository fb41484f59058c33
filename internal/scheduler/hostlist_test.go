package scheduler

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestExpandHostlist(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"node1", []string{"node1"}},
		{"worker-[0-1]", []string{"worker-0", "worker-1"}},
		{"worker-[0,2-3],login-0", []string{"worker-0", "worker-2", "worker-3", "login-0"}},
		{"gpu[01-03]", []string{"gpu01", "gpu02", "gpu03"}},
		{"gpu[08-11]", []string{"gpu08", "gpu09", "gpu10", "gpu11"}},
		{"n[8-10]", []string{"n8", "n9", "n10"}},
		{"n[1-010]", []string{"n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8", "n9", "n10"}},
		{"n[007]", []string{"n007"}},
		{"n[0]", []string{"n0"}},
		{"[1-2]", []string{"1", "2"}},
		{"rack[1-2]-node[1-2]", []string{"rack1-node1", "rack1-node2", "rack2-node1", "rack2-node2"}},
		{"a[1,3]b[01-02]c[5]d", []string{"a1b01c5d", "a1b02c5d", "a3b01c5d", "a3b02c5d"}},
		{"node[1-2]-ib", []string{"node1-ib", "node2-ib"}},
		{"a,b,c", []string{"a", "b", "c"}},
		{"a[1-2],b[3-4],c", []string{"a1", "a2", "b3", "b4", "c"}},
		{"a,,b,", []string{"a", "b"}},
		{",a", []string{"a"}},
		{"a b\tc\nd", []string{"a", "b", "c", "d"}},
		{"dup,dup", []string{"dup", "dup"}},
		{"x[3-3]", []string{"x3"}},
		{"big[99999-100001]", []string{"big99999", "big100000", "big100001"}},
		{"n[000000000000000001-000000000000000002]", []string{"n000000000000000001", "n000000000000000002"}},
	} {
		got, err := ExpandHostlist(tt.in)
		if err != nil {
			t.Errorf("ExpandHostlist(%q): %v", tt.in, err)
			continue
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("ExpandHostlist(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestExpandHostlistErrors(t *testing.T) {
	for _, in := range []string{
		"n[",
		"n[1-2",
		"n]",
		"n[1-2]]",
		"n[[1-2]]",
		"n[]",
		"n[a]",
		"n[1-]",
		"n[-1]",
		"n[1--2]",
		"n[2-1]",
		"n[1-2-3]",
		"n[1,,2]",
		"n[1,]",
		"n[ 1]",
		"n[+1]",
		"n[0x1]",
		"n[1-2]x[",
		"n[1234567890123456789]",
		"n[0-100000]",                   // 100,001 names
		"a[0-50000],b[0-50000]",         // 100,002 names
		"a[0-999]b[0-999]",              // 1,000,000 names, refused before any is built
		"a[0-99999]b[0-99999]c[0-9999]", // no overflow in the count
		"n[0-999999999999999999]",
	} {
		got, err := ExpandHostlist(in)
		if err == nil {
			t.Errorf("ExpandHostlist(%q) = %d names, want an error", in, len(got))
		}
	}
}

func TestExpandHostlistCap(t *testing.T) {
	got, err := ExpandHostlist("n[1-100000]")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != MaxHostlistNames || got[0] != "n1" || got[len(got)-1] != "n100000" {
		t.Fatalf("got %d names, %q ... %q", len(got), got[0], got[len(got)-1])
	}
	got, err = ExpandHostlist("a[1-50000],b[1-50000]")
	if err != nil || len(got) != MaxHostlistNames {
		t.Fatalf("got %d names, %v", len(got), err)
	}
	// The byte cap: 100,000 names of 200 bytes would be 20 MB.
	if _, err := ExpandHostlist(strings.Repeat("x", 200) + "[1-100000]"); err == nil {
		t.Fatal("want an error for 20 MB of names")
	}
}

func FuzzExpandHostlist(f *testing.F) {
	for _, s := range []string{
		"", "node1", "worker-[0-1]", "worker-[0,2-3],login-0", "gpu[01-03]",
		"rack[1-2]-node[1-2]", "node[1-2]-ib", "a,,b", "n[", "n]", "n[[1]]",
		"n[0-100000]", "a[0-999]b[0-999]", "n[9-10],m[08-10]",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		names, err := ExpandHostlist(s)
		if err != nil {
			if names != nil {
				t.Fatalf("names and an error: %v", err)
			}
			return
		}
		if len(names) > MaxHostlistNames {
			t.Fatalf("%d names, over the cap", len(names))
		}
		if s == "" && names != nil {
			t.Fatalf("%q expanded to %q, want nil", s, names)
		}
		size := 0
		for _, n := range names {
			size += len(n)
			if n == "" || strings.ContainsAny(n, "[], \t\n") {
				t.Fatalf("%q expanded to bad name %q", s, n)
			}
		}
		if size > maxHostlistBytes {
			t.Fatalf("%d bytes of names, over the cap", size)
		}
		// Without brackets, the names are the separated words.
		if !strings.ContainsAny(s, "[]") {
			want := strings.FieldsFunc(s, func(r rune) bool { return r < 0x80 && isHostlistSep(byte(r)) })
			if !slices.Equal(names, want) && !(len(want) == 0 && names == nil) {
				t.Fatalf("%q expanded to %q, want %q", s, names, want)
			}
		}
		// Re-expanding a name is the name itself (names have no brackets).
		if len(names) > 0 {
			again, err := ExpandHostlist(names[0])
			if err != nil || len(again) != 1 || again[0] != names[0] {
				t.Fatalf("re-expanding %q: %q, %v", names[0], again, err)
			}
		}
	})
}

func BenchmarkExpandHostlist(b *testing.B) {
	for _, s := range []string{"worker-[0-1]", "gpu[0001-4096]", "rack[1-32]-node[01-64]"} {
		b.Run(fmt.Sprint(len(s)), func(b *testing.B) {
			for b.Loop() {
				if _, err := ExpandHostlist(s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
