package progress

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode"
)

func f64(v float64) *float64 { return &v }

func TestParseValid(t *testing.T) {
	ts := time.Date(2026, 11, 29, 11, 30, 0, 500_000_000, time.UTC)
	for _, tc := range []struct {
		line string
		want Update
	}{
		{`{"step":0}`, Update{}},
		{`{"step": 12, "total_steps": 100}`, Update{Step: 12, TotalSteps: 100}},
		{`{"step":100,"total_steps":100}`, Update{Step: 100, TotalSteps: 100}},
		{"  {\"step\":3}\r", Update{Step: 3}},
		{`{"step":12.0,"total_steps":1e3}`, Update{Step: 12, TotalSteps: 1000}},
		{`{"step":5,"loss":-0.25,"samples_per_second":1234.5}`,
			Update{Step: 5, Loss: f64(-0.25), SamplesPerSecond: f64(1234.5)}},
		{`{"step":1,"samples_per_second":0}`, Update{Step: 1, SamplesPerSecond: f64(0)}},
		{`{"step":1,"time":"2026-11-29T11:30:00.5Z"}`, Update{Step: 1, Time: ts}},
		{`{"step":1,"time":"2026-11-29T12:30:00.5+01:00"}`, Update{Step: 1, Time: ts}},
		{`{"step":1,"time":1795951800.5}`, Update{Step: 1, Time: ts}},
		{`{"step":1,"time":1795951800.5000000019}`, Update{Step: 1, Time: ts.Add(1)}},
		{`{"step":1,"time":1.7959518005e9}`, Update{Step: 1, Time: ts}},
		{`{"step":1,"time":0}`, Update{Step: 1, Time: time.Unix(0, 0).UTC()}},
		{`{"step":1,"time":null,"loss":null,"total_steps":null,"samples_per_second":null,"metrics":null}`, Update{Step: 1}},
		{`{"step":1,"metrics":{"lr":0.003,"epoch":2}}`,
			Update{Step: 1, Metrics: map[string]float64{"lr": 0.003, "epoch": 2}}},
		// Numeric top-level keys are metrics; other types are ignored.
		{`{"step":1,"lr":1e-4,"epoch":3,"note":"warmup","done":false,"cfg":{"a":[1,NaN,{"b":null}]},"tags":[],"x":null}`,
			Update{Step: 1, Metrics: map[string]float64{"lr": 1e-4, "epoch": 3}}},
		// The metrics object wins over a top-level key of the same name.
		{`{"step":1,"lr":1,"metrics":{"lr":2,"grad_norm":0.5}}`,
			Update{Step: 1, Metrics: map[string]float64{"lr": 2, "grad_norm": 0.5}}},
		// Escaped keys are decoded.
		{`{"st\u0065p":7,"val\/acc":0.5}`, Update{Step: 7, Metrics: map[string]float64{"val/acc": 0.5}}},
		// A later duplicate wins, as with encoding/json.
		{`{"step":1,"step":2}`, Update{Step: 2}},
		// A checkpoint line: the checkpoint saved after this step.
		{`{"step":200,"checkpoint":"/ckpt/run-1/step-200.pt"}`, Update{Step: 200, Checkpoint: "/ckpt/run-1/step-200.pt"}},
		{`{"step":200,"loss":0.5,"checkpoint":"/ckpt/\u00e9t\u00e9 1.pt"}`, Update{Step: 200, Loss: f64(0.5), Checkpoint: "/ckpt/été 1.pt"}},
		{`{"step":1,"checkpoint":null}`, Update{Step: 1}},
	} {
		t.Run(tc.line, func(t *testing.T) {
			got, err := Parse([]byte(tc.line))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Parse = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	many := make([]string, 0, MaxMetrics+1)
	for i := 0; i <= MaxMetrics; i++ {
		many = append(many, fmt.Sprintf(`"m%d":%d`, i, i))
	}
	half := len(many) / 2
	for _, tc := range []struct {
		line, field, reason string
	}{
		{``, "", "empty line"},
		{`   `, "", "empty line"},
		{`[1]`, "", "not a JSON object"},
		{`step=1`, "", "not a JSON object"},
		{`{}`, "step", "required"},
		{`{"loss":1}`, "step", "required"},
		{`{"step":null}`, "step", "required"},
		{`{"step":-1}`, "step", "must be >= 0"},
		{`{"step":-1.0}`, "step", "must be >= 0"},
		{`{"step":1.5}`, "step", "must be an integer"},
		{`{"step":1e300}`, "step", "must be an integer"},
		{`{"step":"3"}`, "step", "must be an integer, got a string"},
		{`{"step":NaN}`, "step", "finite"},
		{`{"step":5,"total_steps":4}`, "step", "greater than total_steps 4"},
		{`{"step":1,"total_steps":-4}`, "total_steps", ">= 0"},
		{`{"step":1,"loss":NaN}`, "loss", "finite number, got NaN"},
		{`{"step":1,"loss":Infinity}`, "loss", "finite number, got Infinity"},
		{`{"step":1,"loss":-Infinity}`, "loss", "finite number, got -Infinity"},
		{`{"step":1,"loss":1e400}`, "loss", "finite number, got 1e400"},
		{`{"step":1,"loss":"0.5"}`, "loss", "must be a number, got a string"},
		{`{"step":1,"samples_per_second":-2}`, "samples_per_second", ">= 0"},
		{`{"step":1,"time":"yesterday"}`, "time", "not an RFC 3339 time"},
		{`{"step":1,"time":-5}`, "time", "out of range"},
		{`{"step":1,"time":true}`, "time", "RFC 3339 string or unix seconds"},
		{`{"step":1,"metrics":[1]}`, "metrics", "must be an object, got an array"},
		{`{"step":1,"metrics":{"lr":"high"}}`, "metrics.lr", "must be a number, got a string"},
		{`{"step":1,"metrics":{"lr":NaN}}`, "metrics.lr", "finite"},
		{`{"step":1,"metrics":{"":1}}`, "metrics.", "non-empty name"},
		{`{"step":1,"grad_norm":NaN}`, "grad_norm", "finite"},
		{`{"step":1,"":3}`, "", "non-empty name"},
		{`{"step":1,` + strings.Join(many, ",") + `}`, "metrics", "more than the limit of 64"},
		{`{"step":1,"metrics":{` + strings.Join(many, ",") + `}}`, "metrics", "more than the limit of 64"},
		{`{"step":1,` + strings.Join(many[:half], ",") + `,"metrics":{` + strings.Join(many[half:], ",") + `}}`, "metrics", "more than the limit of 64"},
		{`{"step":1`, "step", "got the end of the line"},
		{`{"step":1,}`, "", "expected a string key"},
		{`{"step":1} {"step":2}`, "", "unexpected data after the object"},
		{`{"step":01}`, "step", "expected ',' or '}'"},
		{`{"step":1,"cfg":{"a":tru}}`, "cfg", "invalid literal"},
		{`{"step":1,"cfg":"a` + "\x01" + `"}`, "cfg", "control character"},
		{`{"step":1,"cfg":"\x"}`, "cfg", "invalid escape"},
		{`{"step":1,"cfg":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}`, "cfg", "nested more than"},
		{`{"step":1,"pad":"` + strings.Repeat("x", MaxLineBytes) + `"}`, "", "longer than the limit"},
		{`{"checkpoint":"/ckpt/a.pt"}`, "step", "required"},
		{`{"step":1,"checkpoint":""}`, "checkpoint", "must not be empty"},
		{`{"step":1,"checkpoint":7}`, "checkpoint", "must be a path string, got a number"},
		{`{"step":1,"checkpoint":{"path":"/a"}}`, "checkpoint", "must be a path string, got an object"},
		{`{"step":1,"checkpoint":"/a\nb"}`, "checkpoint", "control characters"},
		{`{"step":1,"checkpoint":"/a\u0000b"}`, "checkpoint", "control characters"},
		{`{"step":1,"checkpoint":"/` + strings.Repeat("x", MaxCheckpointPathBytes) + `"}`, "checkpoint", "longer than the limit of 4096"},
	} {
		name := tc.line
		if len(name) > 60 {
			name = name[:60]
		}
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(tc.line))
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Parse error = %v, want a *FieldError", err)
			}
			if fe.Field != tc.field || !strings.Contains(fe.Reason, tc.reason) {
				t.Errorf("Parse error = field %q reason %q, want field %q reason containing %q", fe.Field, fe.Reason, tc.field, tc.reason)
			}
			if tc.field != "" && !strings.Contains(err.Error(), `field "`+tc.field+`"`) {
				t.Errorf("error %q does not name the field %q", err, tc.field)
			}
		})
	}
}

func TestParseExactlyMaxMetrics(t *testing.T) {
	m := map[string]float64{}
	for i := 0; i < MaxMetrics; i++ {
		m[fmt.Sprintf("m%d", i)] = float64(i)
	}
	line, _ := json.Marshal(map[string]any{"step": 1, "metrics": m})
	u, err := Parse(line)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(u.Metrics, m) {
		t.Errorf("metrics = %v, want %v", u.Metrics, m)
	}
}

func TestLatestCheckpoint(t *testing.T) {
	if _, ok := LatestCheckpoint([]Update{{Step: 1}, {Step: 2}}); ok {
		t.Error("LatestCheckpoint reported a checkpoint where no line has one")
	}
	// A plain progress line after the checkpoint line does not hide it.
	u, ok := LatestCheckpoint([]Update{{Step: 10, Checkpoint: "/c/10"}, {Step: 20, Checkpoint: "/c/20"}, {Step: 21}})
	if !ok || u.Step != 20 || u.Checkpoint != "/c/20" {
		t.Errorf("LatestCheckpoint = %+v, %v; want step 20 at /c/20", u, ok)
	}
}

func TestLatest(t *testing.T) {
	if _, ok := Latest(nil); ok {
		t.Error("Latest(nil) reported an update")
	}
	u, ok := Latest([]Update{{Step: 1}, {Step: 2}})
	if !ok || u.Step != 2 {
		t.Errorf("Latest = %+v, %v; want step 2", u, ok)
	}
}

// FuzzParse checks that Parse never panics, that what it accepts satisfies
// the documented rules, and that it agrees with encoding/json about which
// lines are JSON.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"step":1}`,
		`{"step":3,"total_steps":10,"loss":0.5,"samples_per_second":100,"time":"2026-11-29T11:30:00Z","metrics":{"lr":0.001}}`,
		`{"step":1,"time":1795995000.25,"epoch":2,"note":"x","cfg":{"a":[1,2,{"b":null}]}}`,
		`{"step":1,"loss":NaN}`,
		`{"step":1.0e1,"total_steps":1E1}`,
		`{"st\u0065p":7}`,
		`{"step":-0}`,
		`{"step":200,"checkpoint":"/ckpt/step-200.pt"}`,
		`{"step":1,"checkpoint":"/a\u0000b"}`,
		`not json`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		u, err := Parse(line)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FieldError", err)
			}
			return
		}
		if u.Step < 0 || u.TotalSteps < 0 {
			t.Fatalf("negative step in %+v", u)
		}
		if u.TotalSteps > 0 && u.Step > u.TotalSteps {
			t.Fatalf("step > total_steps in %+v", u)
		}
		finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
		if u.Loss != nil && !finite(*u.Loss) {
			t.Fatalf("non-finite loss in %+v", u)
		}
		if u.SamplesPerSecond != nil && (!finite(*u.SamplesPerSecond) || *u.SamplesPerSecond < 0) {
			t.Fatalf("bad samples_per_second in %+v", u)
		}
		if len(u.Metrics) > MaxMetrics {
			t.Fatalf("%d metrics", len(u.Metrics))
		}
		for k, v := range u.Metrics {
			if k == "" || !finite(v) {
				t.Fatalf("bad metric %q=%v", k, v)
			}
		}
		if len(u.Checkpoint) > MaxCheckpointPathBytes || strings.ContainsFunc(u.Checkpoint, unicode.IsControl) {
			t.Fatalf("bad checkpoint path %q", u.Checkpoint)
		}
		// An accepted line is JSON, except that NaN/Infinity may appear in
		// ignored values.
		if !json.Valid(line) && !strings.Contains(string(line), "NaN") && !strings.Contains(string(line), "Infinity") {
			t.Fatalf("accepted a line encoding/json rejects: %q", line)
		}
		if json.Valid(line) {
			var m map[string]any
			if err := json.Unmarshal(line, &m); err != nil {
				t.Fatalf("accepted a non-object: %q", line)
			}
		}
	})
}
