package health

// XIDClass says what an XID calls for (product brief, "Facts for the health
// side"). This is the only XID table: the agent labels its events with it
// and the rules judge by it.
type XIDClass string

// XID classes.
const (
	// XIDApplication: record against the run; drain only if it repeats
	// across jobs.
	XIDApplication XIDClass = "application"
	// XIDDrain: the node should be drained.
	XIDDrain XIDClass = "drain"
	// XIDResetWhenIdle: reset the GPU once no job runs on it.
	XIDResetWhenIdle XIDClass = "reset_when_idle"
	// XIDUnknown: an XID outside the known lists.
	XIDUnknown XIDClass = "unknown"
)

// ClassifyXID maps an XID to its class.
func ClassifyXID(xid int64) XIDClass {
	switch xid {
	case 13, 31, 43, 45, 68:
		return XIDApplication
	case 48, 64, 74, 79, 95, 119, 120:
		return XIDDrain
	case 63, 92, 94:
		return XIDResetWhenIdle
	default:
		return XIDUnknown
	}
}
