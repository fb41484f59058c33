package auth

import (
	"strings"
	"testing"
	"time"
)

// FuzzTokenExpiry: the claims of any bearer token a caller sends are read
// before the API server has judged it; no input may panic, and an expiry
// is only ever taken from a three-part token.
func FuzzTokenExpiry(f *testing.F) {
	f.Add("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjE4MDAwMDAwMDB9.c2ln")
	f.Add("eyJhbGciOiJub25lIn0.eyJleHAiOiIxODAwMDAwMDAwIn0.")
	f.Add("a.b.c")
	f.Add("not-a-jwt")
	f.Add("")
	f.Fuzz(func(t *testing.T, token string) {
		exp, ok := tokenExpiry(token)
		if ok && strings.Count(token, ".") != 2 {
			t.Fatalf("expiry %v from %q, which is not a JWT", exp, token)
		}
	})
}

func TestTokenExpiry(t *testing.T) {
	// {"alg":"HS256","typ":"JWT"} . {"exp":1800000000}
	exp, ok := tokenExpiry("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjE4MDAwMDAwMDB9.c2ln")
	if !ok || !exp.Equal(time.Unix(1_800_000_000, 0)) {
		t.Fatalf("tokenExpiry = %v, %v", exp, ok)
	}
	if _, ok := tokenExpiry("opaque-static-token"); ok {
		t.Fatal("an opaque token has an expiry")
	}
}
