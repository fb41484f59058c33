package cli

// pipeline.go: `run pipeline`, a JSON file of steps (each a RunSpec, as run
// submit -f reads it) with "after" edges, submitted as one unit: Slurm
// afterok dependencies between the steps' runs, idempotent by --request-id.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/sopilot/sopilot/pkg/apipb"
)

// Labels every run of a pipeline carries.
const (
	pipelineLabel     = "pipeline"
	pipelineStepLabel = "pipeline-step"
	maxPipelineName   = 63
	maxStepName       = 63
	maxRequestIDLen   = 64
)

// pipeline is a validated pipeline file; steps are in file order.
type pipeline struct {
	Name  string
	Steps []*pipelineStep
}

type pipelineStep struct {
	Name  string
	Spec  *apipb.RunSpec
	After []string
}

type rawPipeline struct {
	Name  *string   `json:"name"`
	Steps []rawStep `json:"steps"`
}

type rawStep struct {
	Name  string          `json:"name"`
	Spec  json.RawMessage `json:"spec"`
	After []string        `json:"after"`
}

// parsePipeline reads and validates a pipeline file. It reports every
// problem it finds, each naming the step and the field, as one ErrUsage.
func parsePipeline(text []byte, file string) (*pipeline, error) {
	b, err := fileToJSON(text)
	if err != nil {
		return nil, fmt.Errorf("%w: --file %s: %w", ErrUsage, file, err)
	}
	// The same document with lines, so that a spec's problems name them.
	doc, err := parseYAMLDoc(text)
	if err != nil {
		return nil, fmt.Errorf("%w: --file %s: %w", ErrUsage, file, err)
	}
	stepNodes := mappingValue(doc, "steps")
	var raw rawPipeline
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("%w: --file %s: not a pipeline in JSON ({\"name\": ..., \"steps\": [{\"name\": ..., \"spec\": {...}, \"after\": [...]}]}): %w", ErrUsage, file, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: --file %s: more than one JSON value", ErrUsage, file)
	}
	var probs []string
	add := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	p := &pipeline{}
	switch {
	case raw.Name == nil || *raw.Name == "":
		add("name: required: the pipeline's name (label pipeline=<name> on every run)")
	default:
		p.Name = *raw.Name
		if err := checkStepName(p.Name, maxPipelineName); err != "" {
			add("name: %s", err)
		}
	}
	if len(raw.Steps) == 0 {
		add("steps: the pipeline has no steps; want at least one {\"name\": ..., \"spec\": {...}}")
	}
	index := map[string]int{}
	for i, rs := range raw.Steps {
		where := stepWhere(i, rs.Name)
		st := &pipelineStep{Name: rs.Name, After: rs.After}
		p.Steps = append(p.Steps, st)
		if err := checkStepName(rs.Name, maxStepName); err != "" {
			add("%s: name: %s", where, err)
		} else if j, dup := index[rs.Name]; dup {
			add("%s: name: %q is also the name of steps[%d]; step names must be unique", where, rs.Name, j)
		} else {
			index[rs.Name] = i
		}
		if len(bytes.TrimSpace(rs.Spec)) == 0 || string(bytes.TrimSpace(rs.Spec)) == "null" {
			add("%s: spec: required: a RunSpec as run submit -f reads it", where)
			continue
		}
		var specNode *yaml.Node
		if stepNodes != nil && stepNodes.Kind == yaml.SequenceNode && i < len(stepNodes.Content) {
			specNode = mappingValue(stepNodes.Content[i], "spec")
		}
		if specNode == nil {
			add("%s: spec: not found in the file", where)
			continue
		}
		spec, specProbs := specFromNode(specNode)
		if len(specProbs) > 0 {
			for _, p := range specProbs {
				add("%s: spec: %s", where, p)
			}
			continue
		}
		st.Spec = spec
		if len(st.Spec.GetArgv()) == 0 && st.Spec.GetScript() == "" {
			add("%s: spec: no command: give spec.argv or spec.script", where)
		}
		if st.Spec.GetTimeLimit() == nil {
			add("%s: spec.time_limit: required, e.g. 10m or 06:00:00", where)
		}
		for _, k := range []string{pipelineLabel, pipelineStepLabel} {
			if _, ok := st.Spec.GetLabels()[k]; ok {
				add("%s: spec.labels[%q]: set by run pipeline; leave it out", where, k)
			}
		}
	}
	for i, st := range p.Steps {
		where := stepWhere(i, st.Name)
		seen := map[string]bool{}
		for j, a := range st.After {
			switch _, ok := index[a]; {
			case a == st.Name:
				add("%s: after[%d]: %q is the step itself", where, j, a)
			case !ok:
				add("%s: after[%d]: %q is not a step of this pipeline", where, j, a)
			case seen[a]:
				add("%s: after[%d]: %q is listed twice", where, j, a)
			}
			seen[a] = true
		}
	}
	if len(probs) == 0 {
		for _, c := range findCycles(p) {
			add("%s: after: cycle %s", stepWhere(index[c[0]], c[0]), strings.Join(c, " -> "))
		}
	}
	if len(probs) > 0 {
		return nil, fmt.Errorf("%w: --file %s: %d problem(s), nothing submitted:\n  %s", ErrUsage, file, len(probs), strings.Join(probs, "\n  "))
	}
	return p, nil
}

func stepWhere(i int, name string) string {
	if name == "" {
		return "steps[" + strconv.Itoa(i) + "]"
	}
	return fmt.Sprintf("steps[%d] %q", i, name)
}

// checkStepName: 1-max characters of a-z 0-9 -; "" when fine.
func checkStepName(s string, max int) string {
	const allowed = "want 1-%d characters of a-z 0-9 -"
	switch {
	case s == "":
		return fmt.Sprintf("required: "+allowed, max)
	case len(s) > max:
		return fmt.Sprintf(allowed+"; got %d characters", max, len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return fmt.Sprintf(allowed+"; got %q at byte %d", max, string(rune(c)), i)
		}
	}
	return ""
}

// findCycles returns the cycles of the after graph (each once, as step names
// with the first repeated at the end), found depth-first in file order.
func findCycles(p *pipeline) [][]string {
	byName := map[string]*pipelineStep{}
	for _, s := range p.Steps {
		byName[s.Name] = s
	}
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var cycles [][]string
	var visit func(n string)
	visit = func(n string) {
		color[n] = grey
		stack = append(stack, n)
		for _, a := range byName[n].After {
			switch color[a] {
			case white:
				visit(a)
			case grey:
				i := len(stack) - 1
				for stack[i] != a {
					i--
				}
				// stack[i:] runs a <- ... <- n (each step comes after the
				// next one); print it in execution order.
				c := make([]string, 0, len(stack)-i+1)
				for j := len(stack) - 1; j >= i; j-- {
					c = append(c, stack[j])
				}
				cycles = append(cycles, append([]string{a}, c...))
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
	}
	for _, s := range p.Steps {
		if color[s.Name] == white {
			visit(s.Name)
		}
	}
	return cycles
}

// order is a topological order of the steps (every step after the steps it
// names in after), ties broken by file order. p must be valid (acyclic).
func (p *pipeline) order() []*pipelineStep {
	done := map[string]bool{}
	out := make([]*pipelineStep, 0, len(p.Steps))
	for len(out) < len(p.Steps) {
		progressed := false
		for _, s := range p.Steps {
			if done[s.Name] {
				continue
			}
			ready := true
			for _, a := range s.After {
				if !done[a] {
					ready = false
					break
				}
			}
			if ready {
				done[s.Name] = true
				out = append(out, s)
				progressed = true
				break // restart from the top: file order among the ready ones
			}
		}
		if !progressed {
			panic("pipeline: order of a cyclic pipeline")
		}
	}
	return out
}

// stepRequestID derives a step's CreateRun request_id from the pipeline's:
// <request-id>.<step>, or a hash of the two when that is too long.
func stepRequestID(requestID, step string) string {
	id := requestID + "." + step
	if len(id) <= maxRequestIDLen {
		return id
	}
	sum := sha256.Sum256([]byte(requestID + "\x00" + step))
	return "pipeline-" + hex.EncodeToString(sum[:])[:maxRequestIDLen-len("pipeline-")]
}

// checkRequestID is the controller's rule for request_id, so that a bad
// --request-id fails before the first step is submitted.
func checkRequestID(id string) error {
	if id == "" || len(id) > maxRequestIDLen-2 {
		return fmt.Errorf("%w: --request-id: want 1-%d characters of A-Z a-z 0-9 . _ -", ErrUsage, maxRequestIDLen-2)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: --request-id %q: want 1-%d characters of A-Z a-z 0-9 . _ -; got %q at byte %d", ErrUsage, id, maxRequestIDLen-2, string(rune(c)), i)
		}
	}
	return nil
}

// stepSpec is the step's spec as submitted: nodes and tasks_per_node 1
// and job_name the step's name when left out, the pipeline labels added and the run ids of its after steps appended to depends_on.
func (p *pipeline) stepSpec(s *pipelineStep, ids map[string]string) *apipb.RunSpec {
	spec := proto.Clone(s.Spec).(*apipb.RunSpec)
	// run submit's flag defaults: 1 node, 1 task per node.
	if spec.Nodes == 0 {
		spec.Nodes = 1
	}
	if spec.TasksPerNode == 0 {
		spec.TasksPerNode = 1
	}
	if spec.JobName == "" {
		spec.JobName = s.Name // step names are valid job names
	}
	if spec.Labels == nil {
		spec.Labels = map[string]string{}
	}
	spec.Labels[pipelineLabel] = p.Name
	spec.Labels[pipelineStepLabel] = s.Name
	for _, a := range s.After {
		spec.DependsOn = append(spec.DependsOn, ids[a])
	}
	return spec
}

type pipelineOptions struct {
	file      string
	requestID string
	watch     bool
	interval  time.Duration
}

func newRunPipelineCommand(a *app, o *clientOptions) *cobra.Command {
	po := &pipelineOptions{interval: time.Second}
	cmd := &cobra.Command{
		Use:   "pipeline -f FILE [--watch]",
		Short: "Submit a pipeline file: steps (runs) chained by Slurm afterok dependencies",
		Long: `Submit the steps of a pipeline file as one unit. The file is JSON:

  {"name": "seed-finetune",
   "steps": [
     {"name": "save",  "spec": {...a RunSpec, as run submit -f reads it...}},
     {"name": "train", "spec": {...}, "after": ["save"]},
     {"name": "infer-original", "spec": {...}, "after": ["train"]},
     {"name": "infer-trained",  "spec": {...}, "after": ["train"]}]}

The whole file is checked first (step names of a-z 0-9 -, unique; every
"after" names a step; no cycles; every spec has a command and a time_limit):
every problem is reported and nothing is submitted. Then the steps are
submitted in dependency order, each with depends_on set to the run ids of its
"after" steps (Slurm starts it only once they COMPLETED), labelled
pipeline=<name> and pipeline-step=<step>. A spec without nodes or
tasks_per_node gets 1 (run submit's defaults); one without job_name is named
after its step.

Each step's request_id is <request-id>.<step>: running the same command again
with the same --request-id submits nothing new and prints the same runs, so a
pipeline that stopped half-way (a refused step, a lost connection) is resumed
by fixing the problem and running it again with the --request-id it printed.

--watch follows every step until all have ended, printing a line per change;
it exits 0 only if every step COMPLETED. A step whose "after" step did not
complete never starts; --watch reports it instead of waiting for it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if po.file == "" {
				return fmt.Errorf("%w: --file is required: the pipeline file (- reads stdin)", ErrUsage)
			}
			b, err := readFileOrStdin(po.file, a.env.Stdin)
			if err != nil {
				return fmt.Errorf("%w: --file: %w", ErrUsage, err)
			}
			p, err := parsePipeline(b, po.file)
			if err != nil {
				return err
			}
			if po.requestID == "" {
				po.requestID = newRequestID()
			} else if err := checkRequestID(po.requestID); err != nil {
				return err
			}
			conn, err := o.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			c := apipb.NewRunServiceClient(conn)
			runs, err := submitPipeline(cmd.Context(), o, c, p, po.requestID)
			if err != nil {
				return err
			}
			if !po.watch {
				if a.json() {
					return writePipelineJSON(a.env.Stdout, a.root.output, p, runs)
				}
				printPipeline(a.env.Stdout, p, runs)
				return nil
			}
			if !a.json() {
				printPipeline(a.env.Stdout, p, runs)
			}
			return watchPipeline(cmd.Context(), a, o, c, p, runs, po.interval)
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&po.file, "file", "f", "", "pipeline file: JSON {\"name\", \"steps\": [{\"name\", \"spec\", \"after\"}]} (- reads stdin)")
	fs.StringVar(&po.requestID, "request-id", "", "idempotency key of the pipeline; each step's is <request-id>.<step>; give the same one to rerun without new jobs (default: a fresh random id)")
	fs.BoolVarP(&po.watch, "watch", "w", false, "after submitting, follow every step until all have ended (exit 0 only if all COMPLETED)")
	return cmd
}

// submitPipeline creates the steps' runs in dependency order; it returns
// the runs by step name.
func submitPipeline(ctx context.Context, o *clientOptions, c apipb.RunServiceClient, p *pipeline, requestID string) (map[string]*apipb.Run, error) {
	runs := map[string]*apipb.Run{}
	ids := map[string]string{}
	for _, s := range p.order() {
		cctx, cancel := o.call(ctx)
		resp, err := c.CreateRun(cctx, &apipb.CreateRunRequest{Spec: p.stepSpec(s, ids), RequestId: stepRequestID(requestID, s.Name)})
		cancel()
		if err != nil {
			err = o.clientError(fmt.Sprintf("pipeline %s: submit step %q", p.Name, s.Name), err)
			if len(runs) > 0 && !errors.Is(err, context.Canceled) {
				var done []string
				for _, d := range p.order() {
					if r, ok := runs[d.Name]; ok {
						done = append(done, d.Name+"="+r.GetId())
					}
				}
				err = fmt.Errorf("%w\n(submitted before it: %s; rerun with --request-id %s to resume without submitting them again)", err, strings.Join(done, " "), requestID)
			}
			return nil, err
		}
		runs[s.Name] = resp.GetRun()
		ids[s.Name] = resp.GetRun().GetId()
	}
	return runs, nil
}

// printPipeline is the table step -> run -> Slurm job -> state, in file
// order.
func printPipeline(w io.Writer, p *pipeline, runs map[string]*apipb.Run) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tRUN ID\tSLURM JOB\tSTATE\tAFTER")
	for _, s := range p.Steps {
		r := runs[s.Name]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Name, r.GetId(), orDash(r.GetSlurmJobId()), stateName(r.GetState()), orDash(strings.Join(s.After, ",")))
	}
	tw.Flush()
}

// writePipelineJSON prints {"<step>": <Run>, ...}.
func writePipelineJSON(w io.Writer, format string, p *pipeline, runs map[string]*apipb.Run) error {
	m := make(map[string]json.RawMessage, len(runs))
	for _, s := range p.Steps {
		b, err := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(runs[s.Name])
		if err != nil {
			return err
		}
		m[s.Name] = b
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	doc, err := formatJSONDoc(format, append(b, '\n'))
	if err != nil {
		return err
	}
	_, err = w.Write(doc)
	return err
}

// watchPipeline polls every step's run until all have ended (or can never
// start because a step they come after did not complete), printing a line
// per change (-o json: the final step -> run object only).
func watchPipeline(ctx context.Context, a *app, o *clientOptions, c apipb.RunServiceClient, p *pipeline, runs map[string]*apipb.Run, interval time.Duration) error {
	w := a.env.Stdout
	width := 0
	for _, s := range p.Steps {
		width = max(width, len(s.Name))
	}
	lastKey := map[string]string{}
	blocked := map[string]string{} // step -> why it never starts
	report := func(s *pipelineStep) {
		r := runs[s.Name]
		if a.json() {
			return
		}
		if key := statusLine(r, time.Time{}); key != lastKey[s.Name] {
			lastKey[s.Name] = key
			fmt.Fprintf(w, "%-*s  %s\n", width, s.Name, statusLine(r, time.Now()))
		}
	}
	for _, s := range p.Steps { // the table above showed these
		lastKey[s.Name] = statusLine(runs[s.Name], time.Time{})
	}
	for {
		open := 0
		for _, s := range p.Steps {
			r := runs[s.Name]
			if terminal(r.GetState()) || blocked[s.Name] != "" {
				continue
			}
			for _, dep := range s.After {
				dr := runs[dep]
				if why := blocked[dep]; why != "" || (terminal(dr.GetState()) && dr.GetState() != apipb.RunState_RUN_STATE_COMPLETED) {
					if r.GetState() == apipb.RunState_RUN_STATE_PENDING {
						blocked[s.Name] = fmt.Sprintf("never starts: step %s did not complete", dep)
						if !a.json() {
							fmt.Fprintf(w, "%-*s  %s  %s (the controller cancels it)\n", width, s.Name, r.GetId(), blocked[s.Name])
						}
					}
					break
				}
			}
			if blocked[s.Name] == "" {
				open++
			}
		}
		if open == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
		for _, s := range p.Steps {
			if terminal(runs[s.Name].GetState()) || blocked[s.Name] != "" {
				continue
			}
			cctx, cancel := o.call(ctx)
			resp, err := c.GetRun(cctx, &apipb.GetRunRequest{RunId: runs[s.Name].GetId()})
			cancel()
			if err != nil {
				return o.clientError(fmt.Sprintf("pipeline %s: watch step %q (run %s)", p.Name, s.Name, runs[s.Name].GetId()), err)
			}
			runs[s.Name] = resp.GetRun()
			report(s)
		}
	}
	if a.json() {
		if err := writePipelineJSON(w, a.root.output, p, runs); err != nil {
			return err
		}
	}
	var failed []string
	for _, s := range p.Steps {
		r := runs[s.Name]
		switch {
		case blocked[s.Name] != "":
			failed = append(failed, fmt.Sprintf("step %s (run %s) %s", s.Name, r.GetId(), blocked[s.Name]))
		case r.GetState() != apipb.RunState_RUN_STATE_COMPLETED:
			failed = append(failed, fmt.Sprintf("step %s: %v", s.Name, endError(r)))
		}
	}
	if len(failed) > 0 {
		return runEndedError(fmt.Sprintf("pipeline %s did not complete:\n  %s", p.Name, strings.Join(failed, "\n  ")))
	}
	if !a.json() {
		fmt.Fprintf(w, "pipeline %s: all %d steps COMPLETED\n", p.Name, len(p.Steps))
	}
	return nil
}
