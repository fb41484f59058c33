package cli

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const okSpec = `{"job_name": "j", "time_limit": "60s", "argv": ["true"]}`

func pipelineJSON(steps ...string) string {
	return `{"name": "seed-finetune", "steps": [` + strings.Join(steps, ",") + `]}`
}

func step(name string, after ...string) string {
	a := `[]`
	if len(after) > 0 {
		a = `["` + strings.Join(after, `","`) + `"]`
	}
	return `{"name": "` + name + `", "spec": ` + okSpec + `, "after": ` + a + `}`
}

func TestParsePipelineErrors(t *testing.T) {
	tests := []struct {
		name string
		file string
		want []string
	}{
		{"empty steps", `{"name": "p", "steps": []}`, []string{"steps: the pipeline has no steps"}},
		{"no name", `{"steps": [` + step("a") + `]}`, []string{"name: required"}},
		{"duplicate", pipelineJSON(step("a"), step("b"), step("a")),
			[]string{`steps[2] "a": name: "a" is also the name of steps[0]`}},
		{"bad name", pipelineJSON(step("Train_1")), []string{`steps[0] "Train_1": name: want 1-63 characters of a-z 0-9 -; got "T" at byte 0`}},
		{"unknown after", pipelineJSON(step("a"), step("b", "a", "sav")),
			[]string{`steps[1] "b": after[1]: "sav" is not a step of this pipeline`}},
		{"self after", pipelineJSON(step("a", "a")), []string{`steps[0] "a": after[0]: "a" is the step itself`}},
		{"twice after", pipelineJSON(step("a"), step("b", "a", "a")), []string{`steps[1] "b": after[1]: "a" is listed twice`}},
		{"cycle", pipelineJSON(step("a", "c"), step("b", "a"), step("c", "b"), step("d")),
			[]string{`steps[0] "a": after: cycle a -> b -> c -> a`}},
		{"missing spec", pipelineJSON(`{"name": "a"}`), []string{`steps[0] "a": spec: required`}},
		{"spec without command", pipelineJSON(`{"name": "a", "spec": {"time_limit": "60s"}}`), []string{`steps[0] "a": spec: no command`}},
		{"spec without time", pipelineJSON(`{"name": "a", "spec": {"argv": ["true"]}}`), []string{`steps[0] "a": spec.time_limit: required`}},
		{"bad spec", pipelineJSON(`{"name": "a", "spec": {"nodez": 1}}`), []string{`steps[0] "a": spec: line 1: nodez: not a RunSpec field`}},
		{"pipeline label", pipelineJSON(`{"name": "a", "spec": {"argv": ["true"], "time_limit": "1s", "labels": {"pipeline": "x"}}}`),
			[]string{`steps[0] "a": spec.labels["pipeline"]: set by run pipeline`}},
		{"unknown field", `{"name": "p", "stepz": []}`, []string{`unknown field "stepz"`}},
		{"all at once", pipelineJSON(step("a"), step("a", "x"), `{"name": "", "spec": `+okSpec+`}`),
			[]string{`steps[1] "a": name: "a" is also`, `steps[1] "a": after[0]: "x" is not a step`, `steps[2]: name: required`, "3 problem(s), nothing submitted"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parsePipeline([]byte(tc.file), "p.json")
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrUsage) {
				t.Errorf("not a usage error: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestPipelineOrder(t *testing.T) {
	// after may name a later step: the order follows the edges, then the file.
	p, err := parsePipeline([]byte(pipelineJSON(
		step("infer-trained", "train"), step("train", "save"), step("save"), step("infer-original", "train"), step("other"))), "p.json")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range p.order() {
		got = append(got, s.Name)
	}
	if want := "save train infer-trained infer-original other"; strings.Join(got, " ") != want {
		t.Errorf("order %v, want %s", got, want)
	}

	ids := map[string]string{"save": "r-1", "train": "r-2"}
	spec := p.stepSpec(p.Steps[0], ids)
	if d := spec.GetDependsOn(); len(d) != 1 || d[0] != "r-2" {
		t.Errorf("depends_on %v, want [r-2]", d)
	}
	if l := spec.GetLabels(); l["pipeline"] != "seed-finetune" || l["pipeline-step"] != "infer-trained" {
		t.Errorf("labels %v", l)
	}
	if p.Steps[0].Spec.GetLabels() != nil || p.Steps[0].Spec.GetDependsOn() != nil {
		t.Error("stepSpec changed the file's spec")
	}
}

func TestStepRequestID(t *testing.T) {
	if got := stepRequestID("abc", "train"); got != "abc.train" {
		t.Errorf("got %q", got)
	}
	long := strings.Repeat("x", 60)
	a, b := stepRequestID(long, "train"), stepRequestID(long, "save")
	if len(a) > 64 || a == b || a != stepRequestID(long, "train") {
		t.Errorf("long ids %q %q", a, b)
	}
	if checkRequestID("bad id") == nil || checkRequestID(strings.Repeat("x", 63)) == nil || checkRequestID("demo-1.x_y") != nil {
		t.Error("checkRequestID")
	}
}

func TestRunPipelineUsage(t *testing.T) {
	r := sopilot(t, invocation{args: []string{"run", "pipeline", "-f", "-"}, stdin: pipelineJSON(step("a", "b"), step("b", "a")),
		env: map[string]string{"SOPILOT_CONTROLLER": "127.0.0.1:1"}})
	if r.code != ExitUsage || !strings.Contains(r.stderr, "cycle") || !strings.Contains(r.stderr, "nothing submitted") {
		t.Errorf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = sopilot(t, invocation{args: []string{"run", "pipeline"}})
	if r.code != ExitUsage || !strings.Contains(r.stderr, "--file is required") {
		t.Errorf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestParsePipelineYAML(t *testing.T) {
	y := `name: seed
steps:
  - name: save
    spec: {time_limit: 60s, argv: [python3, save.py]}
  - name: train
    after: [save]
    spec:
      nodes: 2
      gpus_per_node: 8
      time_limit: 600s
      argv: [python3, train.py]
`
	p, err := parsePipeline([]byte(y), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "seed" || len(p.Steps) != 2 || p.Steps[1].Name != "train" || len(p.Steps[1].After) != 1 ||
		p.Steps[1].Spec.GetNodes() != 2 || p.Steps[1].Spec.GetGpusPerNode() != 8 || p.Steps[0].Spec.GetTimeLimit().AsDuration() != time.Minute {
		t.Errorf("parsed = %+v", p)
	}
	if _, err := parsePipeline([]byte("name: [unclosed"), "p.yaml"); err == nil || !strings.Contains(err.Error(), "neither JSON nor YAML") {
		t.Errorf("bad YAML: %v", err)
	}
}
