package nvmlsim

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	type step struct {
		method, target, body string
		wantStatus           int
		wantErrField         string  // for 4xx: the field the error names
		wantFaults           []Fault // active faults after the step
	}
	xid := Fault{GPU: 3, Kind: "xid", Code: 79}
	thermal := Fault{GPU: 1, Kind: "thermal"}
	tests := []struct {
		name  string
		steps []step
	}{
		{"empty state", []step{
			{"GET", "/faults", "", 200, "", nil},
		}},
		{"inject, list, clear one, clear all", []step{
			{"POST", "/faults", `{"gpu":3,"kind":"xid","code":79}`, 201, "", []Fault{xid}},
			{"POST", "/faults", `{"gpu":1,"kind":"thermal"}`, 201, "", []Fault{thermal, xid}},
			{"GET", "/faults", "", 200, "", []Fault{thermal, xid}},
			{"DELETE", "/faults?gpu=3", "", 200, "", []Fault{thermal}},
			{"POST", "/faults", `{"gpu":3,"kind":"xid","code":79}`, 201, "", []Fault{thermal, xid}},
			{"DELETE", "/faults", "", 200, "", nil},
		}},
		{"bad input changes nothing", []step{
			{"POST", "/faults", `{"gpu":1,"kind":"thermal"}`, 201, "", []Fault{thermal}},
			{"POST", "/faults", `{"gpu":1,"kind":`, 400, "body", []Fault{thermal}},
			{"POST", "/faults", `not json`, 400, "body", []Fault{thermal}},
			{"POST", "/faults", ``, 400, "body", []Fault{thermal}},
			{"POST", "/faults", `{"gpu":1,"kind":"xid","code":79,"extra":1}`, 400, "body", []Fault{thermal}},
			{"POST", "/faults", `{"gpu":1,"kind":"xid","code":79}{}`, 400, "body", []Fault{thermal}},
			{"POST", "/faults", `{"gpu":"1","kind":"xid","code":79}`, 400, "body", []Fault{thermal}},
			{"POST", "/faults", `{"kind":"xid","code":79}`, 400, "gpu", []Fault{thermal}},
			{"POST", "/faults", `{"gpu":2}`, 400, "kind", []Fault{thermal}},
			{"POST", "/faults", `{"gpu":2,"kind":"melt"}`, 400, "kind", []Fault{thermal}},
			{"POST", "/faults", `{"gpu":8,"kind":"xid","code":79}`, 400, "gpu", []Fault{thermal}},
			{"POST", "/faults", `{"gpu":-1,"kind":"power"}`, 400, "gpu", []Fault{thermal}},
			{"POST", "/faults", `{"gpu":2,"kind":"xid"}`, 400, "code", []Fault{thermal}},
			{"POST", "/faults", `{"gpu":2,"kind":"thermal","code":3}`, 400, "code", []Fault{thermal}},
			{"POST", "/faults", `{"gpu":2,"kind":"xid","code":` + strings.Repeat("1", 70<<10) + `}`, 413, "body", []Fault{thermal}},
			{"DELETE", "/faults?gpu=x", "", 400, "gpu", []Fault{thermal}},
			{"DELETE", "/faults?gpu=", "", 400, "gpu", []Fault{thermal}},
			{"DELETE", "/faults?gpu=9", "", 400, "gpu", []Fault{thermal}},
			{"DELETE", "/faults?gpu=1&gpu=2", "", 400, "gpu", []Fault{thermal}},
			{"PUT", "/faults", `{}`, 405, "", []Fault{thermal}},
			{"GET", "/nothing", "", 404, "", []Fault{thermal}},
		}},
		{"ecc default count", []step{
			{"POST", "/faults", `{"gpu":0,"kind":"ecc"}`, 201, "", []Fault{{GPU: 0, Kind: "ecc", Code: 1}}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Options{})
			s.SetAllocation(map[int][]int32{2: {7, 8}})
			h := s.Handler()
			for _, st := range tt.steps {
				req := httptest.NewRequest(st.method, st.target, strings.NewReader(st.body))
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				what := st.method + " " + st.target + " " + truncate(st.body)
				if rec.Code != st.wantStatus {
					t.Fatalf("%s: status %d, want %d; body %s", what, rec.Code, st.wantStatus, rec.Body)
				}
				if got := rec.Header().Get("X-Sopilot-Simulated"); got != "true" {
					t.Errorf("%s: X-Sopilot-Simulated = %q", what, got)
				}
				switch {
				case st.wantErrField != "":
					var e struct{ Error string }
					if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || !strings.HasPrefix(strings.TrimPrefix(e.Error, "invalid fault: "), st.wantErrField+":") {
						t.Errorf("%s: error body %s, want an error naming %q", what, rec.Body, st.wantErrField)
					}
				case st.method == "POST":
					var f Fault
					if err := json.Unmarshal(rec.Body.Bytes(), &f); err != nil || !slices.Contains(st.wantFaults, f) {
						t.Errorf("%s: body %s, want one of the faults %v", what, rec.Body, st.wantFaults)
					}
				case rec.Code == 200:
					var state State
					if err := json.Unmarshal(rec.Body.Bytes(), &state); err != nil {
						t.Fatalf("%s: body %s: %v", what, rec.Body, err)
					}
					checkState(t, what, state, s, st.wantFaults)
				}
				if got := s.Faults(); !reflect.DeepEqual(got, nonNil(st.wantFaults)) {
					t.Errorf("%s: faults = %v, want %v", what, got, st.wantFaults)
				}
			}
		})
	}
}

func checkState(t *testing.T, what string, state State, s *Sim, want []Fault) {
	t.Helper()
	if !state.Simulated || !reflect.DeepEqual(state.Faults, nonNil(want)) || len(state.GPUs) != 8 {
		t.Errorf("%s: state = %+v, want faults %v on 8 GPUs", what, state, want)
		return
	}
	for i, g := range state.GPUs {
		wantPIDs := []int32{}
		if i == 2 {
			wantPIDs = []int32{7, 8}
		}
		if g.Index != i || g.UUID != s.gpus[i].uuid || !reflect.DeepEqual(g.PIDs, wantPIDs) {
			t.Errorf("%s: gpu %d = %+v, want pids %v", what, i, g, wantPIDs)
		}
	}
}

func nonNil(f []Fault) []Fault {
	if f == nil {
		return []Fault{}
	}
	return f
}

func truncate(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

// TestHandlerUnderPrefix: the routes work relative to where the agent
// mounts them.
func TestHandlerUnderPrefix(t *testing.T) {
	s := New(Options{})
	mux := http.NewServeMux()
	mux.Handle("/sim/", http.StripPrefix("/sim", s.Handler()))
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("POST", "/sim/faults", strings.NewReader(`{"gpu":5,"kind":"gpu_lost"}`)))
	if rec.Code != 201 || rec.Header().Get("X-Sopilot-Simulated") != "true" {
		t.Fatalf("POST /sim/faults: %d %v %s", rec.Code, rec.Header(), rec.Body)
	}
	if got := s.Faults(); len(got) != 1 || got[0] != (Fault{GPU: 5, Kind: "gpu_lost"}) {
		t.Errorf("faults = %v", got)
	}
}
