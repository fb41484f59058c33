package slurmcli

import _ "os/exec"
