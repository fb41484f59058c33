package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sopilot/sopilot/internal/results"
	"github.com/sopilot/sopilot/internal/slurmtest"
	"github.com/sopilot/sopilot/pkg/apipb"
)

// writeResultsFile writes n samples in the flat shape of docs/results.md:
// sample i is correct when (i*7919)%100 < percent, and every fifth sample
// has no loss (null).
func writeResultsFile(t *testing.T, n, percent int) string {
	t.Helper()
	var b strings.Builder
	for i := range n {
		correct := 0
		if (i*7919)%100 < percent {
			correct = 1
		}
		loss := fmt.Sprint(float64(i%97) / 97)
		if i%5 == 0 {
			loss = "null"
		}
		fmt.Fprintf(&b, "{\"sample_id\": \"img-%06d\", \"correct\": %d, \"loss\": %s}\n", i, correct, loss)
	}
	fmt.Fprintf(&b, "{\"run_metrics\": {\"accuracy\": %g}}\n", float64(percent)/100)
	path := filepath.Join(t.TempDir(), fmt.Sprintf("results-%d.jsonl", percent))
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestResultsUploadAgainstController(t *testing.T) {
	env := slurmtest.Require(t)
	addr := startRealController(t, env)
	cliEnv := map[string]string{"SOPILOT_CONTROLLER": addr}
	run := func(args ...string) result {
		t.Helper()
		return sopilot(t, invocation{args: args, env: cliEnv})
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	runs := apipb.NewRunServiceClient(conn)
	newRun := func(name string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		resp, err := runs.CreateRun(ctx, &apipb.CreateRunRequest{Spec: &apipb.RunSpec{
			JobName: name, Nodes: 1, TimeLimit: durationpb.New(time.Minute), Argv: []string{"true"}}})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetRun().GetId()
	}
	// hasResults asks the controller through the public API: a comparison
	// against a run with results fails when the other run has none.
	withResults := newRun("results-ref")
	hasResults := func(id string) bool {
		t.Helper()
		r := run("compare", withResults, id, "--metric", "correct:higher", "--seed", "1")
		if r.code != ExitOK && !strings.Contains(r.stderr, "no results") {
			t.Fatalf("compare %s: exit %d, neither a comparison nor \"no results\":\n%s%s", id, r.code, r.stdout, r.stderr)
		}
		return r.code == ExitOK
	}

	// 120,000 samples: three batches.
	const n = 120_000
	first := writeResultsFile(t, n, 60)
	r := run("results", "upload", withResults, first)
	if r.code != ExitOK || !strings.HasPrefix(r.stdout, fmt.Sprintf("stored %d samples (2 metrics, 1 run metrics) as the results of run %s in ", n, withResults)) {
		t.Fatalf("results upload: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	// Off a terminal, progress is plain lines on stderr: the file's size,
	// then a line at each quarter of it, the last at 100%.
	checkUploadProgress(t, r.stderr, first, n)

	candidate := newRun("results-candidate")
	r = run("results", "upload", candidate, writeResultsFile(t, n, 90), "-o", "json")
	if r.code != ExitOK || !strings.Contains(r.stdout, fmt.Sprintf(`"sampleCount": "%d"`, n)) {
		t.Fatalf("results upload -o json: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = run("compare", withResults, candidate, "--metric", "correct:higher", "--seed", "1")
	if r.code != ExitOK || !strings.HasPrefix(r.stdout, "verdict: IMPROVED (on correct, higher is better)\n") {
		t.Errorf("compare the uploads: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// A bad line: refused here with its line and field; nothing is sent.
	refused := newRun("results-refused")
	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	if err := os.WriteFile(bad, []byte("{\"sample_id\": \"a\", \"loss\": 0.5}\n{\"sample_id\": \"b\", \"loss\": 0.7}\n{\"sample_id\": \"c\", \"loss\": \"0.1\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = run("results", "upload", refused, bad)
	if want := "sopilot: " + bad + `: line 3: values["loss"]: must be a number, true, false or null, got a string; nothing was sent`; r.code != ExitError || strings.TrimSpace(r.stderr) != want {
		t.Errorf("upload of a bad file: exit %d, stderr %q, want %q", r.code, r.stderr, want)
	}
	// The controller refuses what the file check would have: a bad value
	// the client did not check is named by its field, and nothing stored.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := runs.ReportRunResults(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = stream.Send(&apipb.ReportRunResultsRequest{RunId: refused, Columns: &apipb.ResultColumns{SampleIds: []string{"a", "b"},
		Metrics: []*apipb.ResultColumn{{Name: "loss", Values: []float64{0.5, 0.7}}}}})
	_ = stream.Send(&apipb.ReportRunResultsRequest{Columns: &apipb.ResultColumns{SampleIds: []string{"c"},
		Metrics: []*apipb.ResultColumn{{Name: "loss", Values: []float64{math.NaN()}}}}})
	_, err = stream.CloseAndRecv()
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || st.Message() != `records[2].values["loss"]: must be a finite number, got NaN` {
		t.Errorf("bad value through the API: %v", err)
	}
	if hasResults(refused) {
		t.Errorf("run %s has results after refused uploads", refused)
	}
	r = run("results", "upload", "r-00000000000000000000000000", writeResultsFile(t, 10, 50))
	if r.code != ExitError || !strings.Contains(r.stderr, "not found") {
		t.Errorf("upload to an unknown run: exit %d, stderr %q", r.code, r.stderr)
	}

	// A bad line after the first batch went out: the stream is abandoned,
	// and the controller stores nothing.
	late := newRun("results-late")
	lateFile := writeResultsFile(t, n, 80)
	data, err := os.ReadFile(lateFile)
	if err != nil {
		t.Fatal(err)
	}
	// Line 100,001 repeats the id of line 2.
	data = bytes.Replace(data, []byte(`"img-100000"`), []byte(`"img-000001"`), 1)
	if err := os.WriteFile(lateFile, data, 0o644); err != nil {
		t.Fatal(err)
	}
	r = run("results", "upload", late, lateFile)
	if want := "sopilot: " + lateFile + `: line 100001: sample_id: duplicate sample_id "img-000001", first used on line 2; the upload was abandoned and nothing was stored`; r.code != ExitError || !strings.HasSuffix(strings.TrimSpace(r.stderr), want) {
		t.Errorf("upload of a file bad after the first batch: exit %d, stderr %q, want it to end %q", r.code, r.stderr, want)
	}
	if !strings.Contains(r.stderr, "% of the file)") {
		t.Errorf("upload of a file bad after the first batch: no batch went out first:\n%s", r.stderr)
	}
	for range 3 {
		if hasResults(late) {
			t.Fatalf("run %s has results after an abandoned upload", late)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Interrupted after the first batch: the stream ends unclosed and the
	// controller stores nothing.
	interrupted := newRun("results-interrupted")
	f, err := os.Open(writeResultsFile(t, n, 70))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	uctx, ucancel := context.WithCancel(context.Background())
	defer ucancel()
	batches := make(chan parsedBatch, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		parseBatches(uctx, results.NewReader(f, results.Limits{}), batches)
	}()
	sent := 0
	_, err = uploadBatches(uctx, runs, interrupted, batches, func(int, int64) { sent++; ucancel() })
	<-done
	if status.Code(err) != codes.Canceled && !errors.Is(err, context.Canceled) || sent != 1 {
		t.Errorf("interrupted upload: err %v after %d messages, want Canceled after 1", err, sent)
	}
	for range 3 {
		if hasResults(interrupted) {
			t.Fatalf("run %s has results after an interrupted upload", interrupted)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkUploadProgress checks the plain progress lines of an upload of n
// samples from path: its size first, then at least one line a quarter,
// samples ascending, the last at 100% with all n.
func checkUploadProgress(t *testing.T, stderr, path string, n int) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	if want := fmt.Sprintf("uploading %s (%d bytes)", path, fi.Size()); len(got) < 4 || got[0] != want {
		t.Fatalf("progress:\n%s\nwant it to start %q and have a line a quarter", stderr, want)
	}
	line := regexp.MustCompile(`^sent (\d+) samples \((\d+)% of the file\)$`)
	last, lastPct := 0, 0
	for _, l := range got[1:] {
		m := line.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("progress line %q, want \"sent N samples (P%% of the file)\"", l)
		}
		samples, _ := strconv.Atoi(m[1])
		pct, _ := strconv.Atoi(m[2])
		if samples <= last || pct <= lastPct || pct/25 == lastPct/25 {
			t.Errorf("progress line %q after %d samples (%d%%): not a new quarter", l, last, lastPct)
		}
		last, lastPct = samples, pct
	}
	if last != n || lastPct != 100 {
		t.Errorf("progress ends at %d samples (%d%%), want %d (100%%):\n%s", last, lastPct, n, stderr)
	}
}
