// Package nvmlsim is a simulated NVML library for machines without NVIDIA
// GPUs. A Sim implements go-nvml's nvml.Interface, so the node agent's real
// GPU collector (internal/agent/gpu) runs unchanged on top of it; the agent
// uses it with --nvml=sim for demos and benchmarks.
//
// # Labelling
//
// Nothing a Sim reports can be mistaken for real hardware: the model is
// "NVIDIA H200 (simulated)" by default, the driver version is "570.00-sim",
// the NVML version "12.570.00-sim", every UUID starts with "GPU-51m0" and
// ends in the GPU index, serial numbers start with "SIM", PCI bus ids sit
// in domain 5151, and every response of the admin Handler carries
// "X-Sopilot-Simulated: true". Callers should also set
// gpu.Inventory.Simulated.
//
// # Telemetry
//
// Each GPU is idle (0 % utilisation, about 0.5 GiB used, 70–90 W, 30–36 °C,
// idle clocks) until SetAllocation gives it processes; it is then busy
// (SM 85–99 %, memory 40–60 %, 60–75 % of memory used and split between the
// processes, 550–680 W, 60–75 °C, 1980 MHz). Values follow the clock given
// in Options.Now through a first-order lag with seeded noise, so they move
// smoothly, and the energy counter integrates power. ECC, PCIe replay and
// NVLink error counters start at zero.
//
// # Faults
//
// Inject adds a Fault (also from the command line through ParseFault, or
// over HTTP through Handler): an XID event, uncorrected ECC errors, a row
// remap failure, thermal or power-brake throttling, or a lost GPU. Clear
// undoes a GPU's faults except for counters, which stay risen as they do on
// hardware.
//
// # Coverage
//
// The methods the collector calls are simulated, with a few more of the
// same families (handles by UUID, PCI bus id and serial; max clocks;
// performance state; ECC mode; graphics and MPS processes). Every other
// method of nvml.Interface, nvml.Device and nvml.EventSet returns
// nvml.ERROR_NOT_SUPPORTED (ERROR_GPU_IS_LOST on a lost GPU,
// ERROR_UNINITIALIZED before Init) instead of panicking; the library-level
// forms of device methods (lib.DeviceGetUUID(d) and so on) call the
// device's method, as the real library does.
package nvmlsim
