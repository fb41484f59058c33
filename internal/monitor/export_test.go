package monitor

import "context"

// Tick runs one pass of the monitor over every node, as Run does each
// second.
func (m *Monitor) Tick(ctx context.Context) { m.tick(ctx) }
