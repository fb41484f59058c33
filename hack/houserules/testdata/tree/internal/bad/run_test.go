package bad

import "os/exec"

var _ = exec.Command
