package ib

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
)

// SimulatedHeader is set on every response of SimTree.Handler.
const SimulatedHeader = "X-Sopilot-Simulated"

// maxFaultBody bounds a POST /ib/faults body.
const maxFaultBody = 4 << 10

// SimPort is one port as SimTree.Handler reports it.
type SimPort struct {
	Device    string   `json:"device"`
	Port      int      `json:"port"`
	State     string   `json:"state"`
	PhysState string   `json:"phys_state"`
	RateGbps  int64    `json:"rate_gbps"`
	LinkLayer string   `json:"link_layer"`
	Faults    []string `json:"faults"`
}

// SimStatus is the body of GET /ib.
type SimStatus struct {
	Simulated bool      `json:"simulated"`
	Ports     []SimPort `json:"ports"`
	Faults    []Fault   `json:"faults"`
}

// Status reports the ports and the active faults.
func (t *SimTree) Status() SimStatus {
	t.mu.Lock()
	st := SimStatus{Simulated: true, Ports: make([]SimPort, 0, len(t.ports)), Faults: []Fault{}}
	for _, p := range t.ports {
		sp := SimPort{Device: p.device, Port: p.port, State: "ACTIVE", PhysState: "LinkUp", RateGbps: 400,
			LinkLayer: LinkLayerInfiniBand, Faults: []string{}}
		if p.down {
			sp.State, sp.PhysState, sp.RateGbps = "DOWN", "Disabled", 10
		}
		for k := range p.faults {
			sp.Faults = append(sp.Faults, k)
			st.Faults = append(st.Faults, Fault{Device: p.device, Port: p.port, Kind: k})
		}
		st.Ports = append(st.Ports, sp)
	}
	t.mu.Unlock()
	for i := range st.Ports {
		sort.Strings(st.Ports[i].Faults)
	}
	sortFaults(st.Faults)
	return st
}

// Handler serves the simulation's control API:
//
//	GET    /ib                              ports and faults (SimStatus)
//	POST   /ib/faults                       {"device":"mlx5_0","port":1,"kind":"port_down"} → 201 and the Fault
//	DELETE /ib/faults?device=mlx5_0&port=1  clear one port's faults → 204
//	DELETE /ib/faults                       clear every fault → 204
//
// Bad input is a 400 with {"error": "..."} naming the field. Every response
// carries X-Sopilot-Simulated: true.
func (t *SimTree) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ib", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, t.Status())
	})
	mux.HandleFunc("POST /ib/faults", func(w http.ResponseWriter, r *http.Request) {
		var f Fault
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxFaultBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("body: %w", err))
			return
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			writeError(w, http.StatusBadRequest, errors.New("body: want a single JSON object"))
			return
		}
		if f.Kind == "" {
			writeError(w, http.StatusBadRequest, errors.New("kind: must not be empty"))
			return
		}
		if err := t.Inject(f.Device, f.Port, f.Kind); err != nil {
			writeError(w, statusFor(err), err)
			return
		}
		writeJSON(w, http.StatusCreated, f)
	})
	mux.HandleFunc("DELETE /ib/faults", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		dev, portStr := q.Get("device"), q.Get("port")
		var err error
		switch {
		case !q.Has("device") && !q.Has("port"):
			err = t.ClearAll()
		case dev == "":
			writeError(w, http.StatusBadRequest, errors.New("device: required with port"))
			return
		case portStr == "":
			writeError(w, http.StatusBadRequest, errors.New("port: required with device"))
			return
		default:
			port, perr := strconv.Atoi(portStr)
			if perr != nil {
				writeError(w, http.StatusBadRequest, fmt.Errorf("port: not a number: %q", portStr))
				return
			}
			err = t.Clear(dev, port)
		}
		if err != nil {
			writeError(w, statusFor(err), err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(SimulatedHeader, "true")
		mux.ServeHTTP(w, r)
	})
}

// statusFor maps SimTree errors: field errors are the client's, write
// failures the server's.
func statusFor(err error) int {
	var ie *InputError
	if errors.As(err, &ie) {
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}
