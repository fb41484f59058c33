// Package ib is the node agent's view of its InfiniBand ports, read from
// Linux sysfs: <root>/class/infiniband/<device>/ports/<port>/.
//
// # What is read
//
// Inventory lists every port with its rate and link layer and the device's
// node_guid, fw_ver, node_desc and hca_type. Sample reads, per port, state
// ("4: ACTIVE" → "ACTIVE"), phys_state ("5: LinkUp" → "LinkUp"), rate
// ("400 Gb/sec (4X NDR)" → 400) and every regular file in counters/ and, as
// "hw_<name>", in hw_counters/ (except hw_counters/lifespan, a setting).
// link_layer is read when the layout is listed. Counters are the kernel's
// values, unscaled: port_rcv_data and port_xmit_data count 4-octet words.
//
// Rates are kept exact in Mb/s and rounded to the nearest Gb/s, halves up,
// for RateGbps: the only fractional rate the kernel prints is
// "2.5 Gb/sec (1X SDR)", which is 3. A down mlx5 port typically reads
// "10 Gb/sec (4X SDR)": the kernel falls back to SDR when no speed is
// active, so the rate of a port that is not ACTIVE means nothing.
//
// # Omitted versus failed
//
// A node without InfiniBand (no class/infiniband) has no ports and no
// error. A file that cannot be read or parsed is recorded in the sample's
// FieldErrors, named by its path under the port ("counters/symbol_error"),
// and the rest of the sample stands. On an InfiniBand port the five
// counters the health rules read must exist; a missing one is a FieldError.
// A counter that the driver says it cannot read (EOPNOTSUPP, or content
// "N/A (no PMA)") is omitted without an error.
//
// # Cost
//
// The layout (devices, ports, counter files) is listed on the first call,
// every RescanInterval, and after a file vanishes; in between a Sample only
// opens, reads and closes the files it knows, into one page-sized buffer,
// with prepared paths. On Linux a file read does not allocate; a Sample
// allocates its result slice and one map per port.
//
// # Simulation
//
// SimTree writes a labelled, simulated tree in the same layout (a SIMULATED
// file at its root, "(simulated)" in every node_desc) whose counters grow
// on Advance and into which faults are injected, directly or over HTTP
// through Handler. Point New at SimTree.Root to collect from it.
//
// Conversion to the wire format (agentpb) is the agent's; Sample.Telemetry
// is the sample as the controller's health rules see it.
package ib
