package nvmlsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// SimulatedHeader is set to "true" on every admin response.
const SimulatedHeader = "X-Sopilot-Simulated"

// maxBodyBytes caps an admin request body.
const maxBodyBytes = 64 << 10

// State is what GET /faults returns.
type State struct {
	// Simulated is always true.
	Simulated bool `json:"simulated"`
	// Faults are the active faults, by GPU then kind.
	Faults []Fault `json:"faults"`
	// GPUs is every GPU's allocation, by index.
	GPUs []GPUState `json:"gpus"`
}

// GPUState is one GPU in State.
type GPUState struct {
	Index int     `json:"index"`
	UUID  string  `json:"uuid"`
	PIDs  []int32 `json:"pids"` // empty when idle
}

// State returns the active faults and allocation.
func (s *Sim) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := State{Simulated: true, Faults: s.faultsLocked(), GPUs: make([]GPUState, len(s.gpus))}
	for i, g := range s.gpus {
		st.GPUs[i] = GPUState{Index: i, UUID: g.uuid, PIDs: append([]int32{}, g.pids...)}
	}
	return st
}

// Handler serves the simulation's admin API, with paths relative to where
// the caller mounts it (use http.StripPrefix):
//
//	GET    /faults          the State
//	POST   /faults          inject {"gpu":3,"kind":"xid","code":79}; 201 and the fault
//	DELETE /faults?gpu=N    clear GPU N's faults; 200 and the State
//	DELETE /faults          clear all faults; 200 and the State
//
// Bad input gets 400 and {"error": "..."} naming the field, and changes
// nothing. Every response carries X-Sopilot-Simulated: true.
func (s *Sim) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /faults", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.State())
	})
	mux.HandleFunc("POST /faults", s.postFault)
	mux.HandleFunc("DELETE /faults", s.deleteFaults)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(SimulatedHeader, "true")
		mux.ServeHTTP(w, r)
	})
}

// faultRequest is POST /faults' body; pointers tell absent from zero.
type faultRequest struct {
	GPU  *int    `json:"gpu"`
	Kind *string `json:"kind"`
	Code int64   `json:"code"`
}

func (s *Sim) postFault(w http.ResponseWriter, r *http.Request) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	var req faultRequest
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body: larger than %d bytes", maxBodyBytes))
			return
		}
		writeError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	if _, err := dec.Token(); err != io.EOF {
		writeError(w, http.StatusBadRequest, "body: more than one JSON value")
		return
	}
	switch {
	case req.GPU == nil:
		writeError(w, http.StatusBadRequest, "gpu: required")
		return
	case req.Kind == nil:
		writeError(w, http.StatusBadRequest, "kind: required")
		return
	}
	f, err := normalize(Fault{GPU: *req.GPU, Kind: *req.Kind, Code: req.Code}, len(s.devices))
	if err == nil {
		err = s.Inject(f)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, f)
}

func (s *Sim) deleteFaults(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if !q.Has("gpu") {
		s.ClearAll()
		writeJSON(w, http.StatusOK, s.State())
		return
	}
	gpu, err := strconv.Atoi(q.Get("gpu"))
	if err != nil || len(q["gpu"]) != 1 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("gpu: %q is not one GPU index", q.Get("gpu")))
		return
	}
	if gpu < 0 || gpu >= len(s.devices) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("gpu: %d is out of range [0, %d)", gpu, len(s.devices)))
		return
	}
	s.Clear(gpu)
	writeJSON(w, http.StatusOK, s.State())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
