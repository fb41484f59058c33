package auth

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	tokA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	tokB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func TestParseTokenFile(t *testing.T) {
	data := "# comment\n\n  " + tokA + " , alice , Admin \n" + tokB + ",ci-bot,submitter\n   # indented comment\n"
	got, err := ParseTokenFile([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	want := []TokenEntry{
		{Digest: sha256.Sum256([]byte(tokA)), Name: "alice", Role: RoleAdmin, Line: 3},
		{Digest: sha256.Sum256([]byte(tokB)), Name: "ci-bot", Role: RoleSubmitter, Line: 4},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestParseTokenFileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, data, want string
	}{
		{"two fields", "# c\n" + tokA + ",alice\n", "line 2: want 3 comma-separated fields token,name,role, got 2"},
		{"four fields", tokA + ",alice,admin,extra\n", "line 1: want 3 comma-separated fields token,name,role, got 4"},
		{"weak token", "\n\nshort-secret,alice,admin\n", "line 3: field token: too short (12 characters, need at least 32)"},
		{"space in token", "aaaaaaaaaaaaaaaa aaaaaaaaaaaaaaaaaaaa,alice,admin\n", "line 1: field token: character 17 is not printable ASCII (or is a space)"},
		{"empty name", tokA + ", ,admin\n", "line 1: field name: empty"},
		{"bad name", tokA + ",al ice,admin\n", `line 1: field name: "al ice" contains a character`},
		{"unknown role", tokA + ",alice,root\n", `line 1: field role: unknown role "root" (want viewer, submitter, operator or admin)`},
		{"empty role", tokA + ",alice,\n", `line 1: field role: unknown role ""`},
		{"token in the role column", tokA + ",alice," + tokB + "\n", "line 1: field role: unknown role (a 36-character value, not shown)"},
		{"token in the name column", tokA + "," + tokB + "!,admin\n", "line 1: field name: (a 37-character value, not shown) contains"},
		{"duplicate token", tokA + ",alice,admin\n" + tokB + ",bob,viewer\n" + tokA + ",mallory,viewer\n", "line 3: field token: same token as line 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseTokenFile([]byte(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
			for _, tok := range []string{tokA, tokB, "short-secret"} {
				if strings.Contains(err.Error(), tok) {
					t.Errorf("error reveals a token: %v", err)
				}
			}
		})
	}
}

func FuzzParseTokenFile(f *testing.F) {
	f.Add([]byte("# c\n" + tokA + ",alice,admin\n"))
	f.Add([]byte(tokA + ",alice,admin\n" + tokA + ",bob,viewer\n"))
	f.Add([]byte("x,y\n"))
	f.Add([]byte(tokB + ",b,VIEWER\r\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := ParseTokenFile(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "line ") {
				t.Fatalf("error does not name the line: %v", err)
			}
			// No field long enough to be a token appears, whatever its
			// column (a token pasted into the wrong one).
			for _, line := range strings.Split(string(data), "\n") {
				for _, field := range strings.Split(line, ",") {
					field = strings.TrimSpace(field)
					if len(field) >= MinTokenLength && strings.Contains(err.Error(), field) {
						t.Fatalf("error reveals field %q: %v", field, err)
					}
				}
			}
			return
		}
		seen := map[[32]byte]bool{}
		for _, e := range entries {
			if e.Name == "" || !e.Role.Includes(RoleViewer) || e.Line < 1 {
				t.Fatalf("bad entry %+v", e)
			}
			if seen[e.Digest] {
				t.Fatalf("duplicate digest in %+v", entries)
			}
			seen[e.Digest] = true
		}
	})
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestTokenFileReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	write := func(s string) {
		t.Helper()
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write(tokA + ",alice,admin\n" + tokB + ",bob,viewer\n")
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	f, err := NewTokenFile(path, TokenFileOptions{CheckInterval: 2 * time.Second, Now: clock.now, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	id, ok := f.Authenticate(tokB)
	if !ok || id != (Identity{Name: "bob", Kind: KindUser, Role: RoleViewer, Source: "token-file"}) {
		t.Fatalf("Authenticate(bob) = %+v, %v", id, ok)
	}
	if _, ok := f.Authenticate(tokA + "x"); ok {
		t.Fatal("a longer token was accepted")
	}

	// Remove bob, promote alice's token to viewer.
	write(tokA + ",alice,viewer\n")
	clock.advance(time.Second)
	if _, ok := f.Authenticate(tokB); !ok {
		t.Fatal("the file was re-read before the check interval passed")
	}
	clock.advance(1500 * time.Millisecond)
	if _, ok := f.Authenticate(tokB); ok {
		t.Fatal("a token removed from the file still works")
	}
	if id, _ := f.Authenticate(tokA); id.Role != RoleViewer {
		t.Fatalf("alice's role after reload = %v, want viewer", id.Role)
	}

	// A broken file keeps the previous tokens.
	write(tokA + ",alice,viewer\nbroken line\n")
	clock.advance(3 * time.Second)
	if id, ok := f.Authenticate(tokA); !ok || id.Role != RoleViewer {
		t.Fatalf("after a broken reload Authenticate(alice) = %+v, %v; want the previous viewer", id, ok)
	}
	// Fixed again: the fix is picked up.
	write(tokB + ",bob,operator\n")
	clock.advance(3 * time.Second)
	if id, ok := f.Authenticate(tokB); !ok || id.Role != RoleOperator {
		t.Fatalf("Authenticate(bob) after fix = %+v, %v", id, ok)
	}
	if _, ok := f.Authenticate(tokA); ok {
		t.Fatal("alice's removed token still works")
	}
}

func TestNewTokenFileErrors(t *testing.T) {
	if _, err := NewTokenFile(filepath.Join(t.TempDir(), "missing"), TokenFileOptions{}); err == nil || !strings.Contains(err.Error(), "token file") {
		t.Errorf("missing file: err = %v", err)
	}
	path := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte("weak,alice,admin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := NewTokenFile(path, TokenFileOptions{})
	if err == nil || !strings.Contains(err.Error(), "line 1: field token: too short") || strings.Contains(err.Error(), "weak,") {
		t.Errorf("weak token: err = %v", err)
	}
}

func TestRoles(t *testing.T) {
	order := []Role{RoleNone, RoleViewer, RoleSubmitter, RoleOperator, RoleAdmin}
	for i, r := range order {
		for j, need := range order {
			if got, want := r.Includes(need), i >= j; got != want {
				t.Errorf("%v.Includes(%v) = %v, want %v", r, need, got, want)
			}
		}
		if i > 0 {
			if p, err := ParseRole(strings.ToUpper(r.String())); err != nil || p != r {
				t.Errorf("ParseRole(%q) = %v, %v", r.String(), p, err)
			}
		}
	}
	if _, err := ParseRole("none"); err == nil {
		t.Error(`ParseRole("none") succeeded`)
	}
	if Role(9).String() != "Role(9)" || Role(9).Includes(RoleViewer) {
		t.Error("out-of-range role")
	}
}

func FuzzBearerToken(f *testing.F) {
	f.Add("Bearer " + tokA)
	f.Add("bearer  x ")
	f.Add("Basic dXNlcjpwYXNz")
	f.Add("Bearer")
	f.Fuzz(func(t *testing.T, v string) {
		tok, ok := bearerToken(v)
		if !ok {
			if tok != "" {
				t.Fatalf("bearerToken(%q) = %q, false", v, tok)
			}
			return
		}
		if tok == "" || tok != strings.TrimSpace(tok) || !strings.Contains(v, tok) {
			t.Fatalf("bearerToken(%q) = %q", v, tok)
		}
		if scheme, _, _ := strings.Cut(strings.TrimSpace(v), " "); !strings.EqualFold(scheme, "bearer") {
			t.Fatalf("bearerToken(%q) accepted scheme %q", v, scheme)
		}
	})
}
