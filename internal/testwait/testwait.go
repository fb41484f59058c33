// Package testwait is how tests wait for something to become true: a
// condition polled until a deadline, never a sleep of a guessed length.
package testwait

import (
	"testing"
	"time"
)

// For polls cond until it holds, failing the test after 10 s.
func For(t testing.TB, what string, cond func() bool) {
	t.Helper()
	Within(t, 10*time.Second, what, cond)
}

// Within polls cond until it holds, failing the test after d.
func Within(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
