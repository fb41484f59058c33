// Package gpu owns the node agent's view of its NVIDIA GPUs through NVML:
// the inventory sent in Hello, periodic telemetry samples, and health events
// (XIDs from an NVML event set, lost GPUs).
//
// # Ownership
//
// A Collector is built from an injected nvml.Interface (the real library in
// production, go-nvml's mock servers in tests). It calls Init once and
// Shutdown on Close. Every NVML call that Inventory and Sample make runs on a
// single worker goroutine that the Collector owns and Close waits for: NVML
// handles are not hammered concurrently, and a call that never returns ties
// up one goroutine, not one per sampling tick. The only NVML call made
// elsewhere is the event set's Wait, which blocks by design and runs in the
// goroutine of RunEvents so that it never delays sampling.
//
// # Omitted versus failed
//
// Every telemetry field is optional. ERROR_NOT_SUPPORTED and ERROR_NOT_FOUND
// mean the GPU does not have that value: the field is left nil and nothing is
// reported. Any other error for one field is appended to Sample.FieldErrors
// and logged once per (GPU, field) until that field reads again; the rest of
// the sample is still collected. A GPU that answers ERROR_GPU_IS_LOST yields
// a HealthEvent of kind "gpu_lost" (once, when it is first seen lost) instead
// of a sample.
//
// # Watchdog
//
// Each call waits at most Options.CallTimeout for the worker. When a call
// overruns, the caller gets ErrCallTimeout and keeps what it had read so far,
// and the Collector is wedged: later calls fail at once with ErrWedged, so a
// sampling loop keeps its cadence, until the hung call returns, after which
// sampling resumes by itself. Close waits up to Options.CloseTimeout for a
// hung worker and then returns ErrWedged; Shutdown is not called under a
// call that is still running, but by the worker once that call returns.
package gpu
