package attrib

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// DefaultGPUJobDir is where Soperator's prolog writes its GPU→job files on
// the host (dcgm_job_map_dir in its Terraform, hpcJobMapDir in its Helm
// values), the directory its own DCGM exporter reads.
const DefaultGPUJobDir = "/var/run/nebius/slurm"

// maxGPUIndex bounds the GPU indices a mapping directory may name; NVML
// numbers a node's GPUs from 0, and no node has this many.
const maxGPUIndex = 63

// maxJobFile bounds how much of one file is read: a job id is at most ten
// digits.
const maxJobFile = 64

// ParseJobFile parses one of Soperator's GPU→job files and returns the job
// id in it, normalised like ParseCgroup's. The prolog writes the file with
// printf "%s" "${SLURM_JOB_ID:-0}": the bare decimal id with no newline,
// or "0" when the prolog had no job id. Whitespace around the id is
// tolerated (a hand-written file may end in a newline). ok is false for
// "0", an empty file and anything that is not a job id.
func ParseJobFile(data []byte) (id string, ok bool) {
	return jobID(string(bytes.TrimSpace(data)))
}

// GPUJobs reads Soperator's GPU→job files: one file per GPU, named by the
// GPU's index, holding the id of the job that the prolog gave that GPU.
//
// Soperator's prolog writes <dir>/<index> for each GPU in the job's
// CUDA_VISIBLE_DEVICES (1.20.x) or SLURM_JOB_GPUS (1.21 and later), and
// its epilog removes them again, but only from 1.21.0 on: the 1.20.x
// epilog removes the wrong path, so there a file outlives its job until
// the next job on that GPU overwrites it. The directory is under /var/run,
// a tmpfs that a reboot empties. A file therefore says which job last
// held the GPU, not that a job holds it now; the agent believes it only
// for a GPU that runs processes (see the agent's sample).
//
// The file names are the Slurm GPU indices, which Soperator's DCGM
// exporter takes for NVML indices too (with gres.conf AutoDetect=nvml,
// which Soperator configures, Slurm orders GPUs as NVML does).
type GPUJobs struct {
	dir string
}

// NewGPUJobs returns a reader of the files in dir.
func NewGPUJobs(dir string) *GPUJobs { return &GPUJobs{dir: dir} }

// Dir is the directory read.
func (g *GPUJobs) Dir() string { return g.dir }

// Read returns the job of every GPU that has a valid file: GPU index →
// job id. Names that are not GPU indices, files that do not hold a job id
// and files that vanish while being read (an epilog removing them) are
// left out. A directory that does not exist yet (the prolog creates it at
// the first GPU job) yields an empty map and no error; any other failure
// to list it is returned, wrapped.
func (g *GPUJobs) Read() (map[int]string, error) {
	entries, err := os.ReadDir(g.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return map[int]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("attrib: gpu job dir: %w", err)
	}
	out := make(map[int]string, len(entries))
	for _, e := range entries {
		idx, ok := gpuIndex(e.Name())
		if !ok || e.IsDir() {
			continue
		}
		data, err := readSmall(filepath.Join(g.dir, e.Name()), maxJobFile)
		if err != nil {
			continue
		}
		if job, ok := ParseJobFile(data); ok {
			out[idx] = job
		}
	}
	return out, nil
}

// gpuIndex accepts the decimal names the prolog writes: "0" to "63", no
// sign, no leading zeros.
func gpuIndex(name string) (int, bool) {
	if name == "" || len(name) > 2 || (len(name) > 1 && name[0] == '0') {
		return 0, false
	}
	n, err := strconv.Atoi(name)
	if err != nil || n < 0 || n > maxGPUIndex {
		return 0, false
	}
	return n, true
}

func readSmall(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}
