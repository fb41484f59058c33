//go:build !linux

package slurmcli

import (
	"errors"
	"os"
)

// growPipe reports no capacity where pipes cannot be sized (not Linux):
// the submission then takes the safe order, gate first.
func growPipe(*os.File, int) (int, error) {
	return 0, errors.New("pipe capacity unknown on this system")
}
