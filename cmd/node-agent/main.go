// Command node-agent will run on every GPU worker and stream NVML, InfiniBand
// and training-progress telemetry to the controller (AgentService.Connect).
// Until that lands it only explains itself, so deployments fail loudly
// instead of running a silent placeholder.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "node-agent: not built yet: the agent protocol is defined in proto/sopilot/agent/v1/agent.proto, the agent itself is not implemented in this version")
	os.Exit(2)
}
