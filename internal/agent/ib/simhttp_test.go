package ib

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestHandler(t *testing.T) {
	st, c := newSim(t, 2)
	h := st.Handler()
	do := func(method, target, body string) *httptest.ResponseRecorder {
		var r *http.Request
		if body != "" {
			r = httptest.NewRequest(method, target, strings.NewReader(body))
		} else {
			r = httptest.NewRequest(method, target, nil)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if got := w.Header().Get(SimulatedHeader); got != "true" {
			t.Errorf("%s %s: %s = %q", method, target, SimulatedHeader, got)
		}
		return w
	}

	steps := []struct {
		name       string
		method     string
		target     string
		body       string
		code       int
		errField   string // the field a 400 must name
		wantFaults []Fault
	}{
		{name: "inject port_down", method: "POST", target: "/ib/faults", body: `{"device":"mlx5_0","port":1,"kind":"port_down"}`, code: 201,
			wantFaults: []Fault{{"mlx5_0", 1, FaultPortDown}}},
		{name: "inject symbol_errors", method: "POST", target: "/ib/faults", body: `{"device":"mlx5_1","port":1,"kind":"symbol_errors"}`, code: 201,
			wantFaults: []Fault{{"mlx5_0", 1, FaultPortDown}, {"mlx5_1", 1, FaultSymbolErrors}}},
		{name: "unknown device", method: "POST", target: "/ib/faults", body: `{"device":"mlx5_7","port":1,"kind":"port_down"}`, code: 400, errField: "device"},
		{name: "missing device", method: "POST", target: "/ib/faults", body: `{"port":1,"kind":"port_down"}`, code: 400, errField: "device"},
		{name: "unknown port", method: "POST", target: "/ib/faults", body: `{"device":"mlx5_0","port":2,"kind":"port_down"}`, code: 400, errField: "port"},
		{name: "unknown kind", method: "POST", target: "/ib/faults", body: `{"device":"mlx5_0","port":1,"kind":"fire"}`, code: 400, errField: "kind"},
		{name: "missing kind", method: "POST", target: "/ib/faults", body: `{"device":"mlx5_0","port":1}`, code: 400, errField: "kind"},
		{name: "port as string", method: "POST", target: "/ib/faults", body: `{"device":"mlx5_0","port":"1","kind":"port_down"}`, code: 400, errField: "body"},
		{name: "unknown field", method: "POST", target: "/ib/faults", body: `{"device":"mlx5_0","port":1,"kind":"port_down","x":1}`, code: 400, errField: "body"},
		{name: "not JSON", method: "POST", target: "/ib/faults", body: `device=mlx5_0`, code: 400, errField: "body"},
		{name: "two objects", method: "POST", target: "/ib/faults", body: `{"device":"mlx5_0","port":1,"kind":"port_down"}{}`, code: 400, errField: "body"},
		{name: "too large", method: "POST", target: "/ib/faults", body: `{"device":"` + strings.Repeat("m", 5000) + `","port":1,"kind":"port_down"}`, code: 400, errField: "body"},
		{name: "delete without port", method: "DELETE", target: "/ib/faults?device=mlx5_0", code: 400, errField: "port"},
		{name: "delete without device", method: "DELETE", target: "/ib/faults?port=1", code: 400, errField: "device"},
		{name: "delete bad port", method: "DELETE", target: "/ib/faults?device=mlx5_0&port=one", code: 400, errField: "port"},
		{name: "delete unknown device", method: "DELETE", target: "/ib/faults?device=mlx5_9&port=1", code: 400, errField: "device"},
		{name: "delete one port", method: "DELETE", target: "/ib/faults?device=mlx5_0&port=1", code: 204,
			wantFaults: []Fault{{"mlx5_1", 1, FaultSymbolErrors}}},
		{name: "delete all", method: "DELETE", target: "/ib/faults", code: 204, wantFaults: []Fault{}},
		{name: "wrong method", method: "PUT", target: "/ib/faults", code: 405, wantFaults: []Fault{}},
		{name: "unknown path", method: "GET", target: "/ib/nope", code: 404, wantFaults: []Fault{}},
	}
	for _, tt := range steps {
		w := do(tt.method, tt.target, tt.body)
		if w.Code != tt.code {
			t.Fatalf("%s: %d %s, want %d", tt.name, w.Code, w.Body, tt.code)
		}
		if tt.code == 400 {
			var e map[string]string
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || !strings.HasPrefix(e["error"], tt.errField+": ") {
				t.Errorf("%s: body %s, want {\"error\": \"%s: …\"}", tt.name, w.Body, tt.errField)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("%s: Content-Type %q", tt.name, ct)
			}
			continue
		}
		if tt.code == 201 {
			var f Fault
			if err := json.Unmarshal(w.Body.Bytes(), &f); err != nil || f != tt.wantFaults[len(tt.wantFaults)-1] {
				t.Errorf("%s: body %s", tt.name, w.Body)
			}
		}
		if tt.wantFaults == nil {
			continue
		}
		g := do("GET", "/ib", "")
		var st SimStatus
		if err := json.Unmarshal(g.Body.Bytes(), &st); err != nil || g.Code != 200 {
			t.Fatalf("%s: GET /ib %d %s", tt.name, g.Code, g.Body)
		}
		if !st.Simulated || !reflect.DeepEqual(st.Faults, tt.wantFaults) || len(st.Ports) != 2 {
			t.Errorf("%s: GET /ib = %+v, want faults %v", tt.name, st, tt.wantFaults)
		}
	}

	// The HTTP faults reach the files: after a POST, the collector sees the port down.
	if w := do("POST", "/ib/faults", `{"device":"mlx5_1","port":1,"kind":"port_down"}`); w.Code != 201 {
		t.Fatal(w.Code, w.Body)
	}
	g := do("GET", "/ib", "")
	want := `{"simulated":true,"ports":[` +
		`{"device":"mlx5_0","port":1,"state":"ACTIVE","phys_state":"LinkUp","rate_gbps":400,"link_layer":"InfiniBand","faults":[]},` +
		`{"device":"mlx5_1","port":1,"state":"DOWN","phys_state":"Disabled","rate_gbps":10,"link_layer":"InfiniBand","faults":["port_down"]}],` +
		`"faults":[{"device":"mlx5_1","port":1,"kind":"port_down"}]}` + "\n"
	if g.Body.String() != want {
		t.Errorf("GET /ib =\n%s\nwant\n%s", g.Body, want)
	}
	s := mustSample(t, c, time.Now())
	if s["mlx5_1"].State != "DOWN" || s["mlx5_0"].State != "ACTIVE" {
		t.Errorf("collector sees %s and %s", s["mlx5_0"].State, s["mlx5_1"].State)
	}
}
