package monitor_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine the monitor starts is stopped with its Run.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
