package store

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sopilot/sopilot/internal/run"
)

// listAll walks every page of q and fails on a duplicate or an order break.
func listAll(t testing.TB, s *Store, q ListQuery) []*run.Run {
	t.Helper()
	var out []*run.Run
	seen := map[string]bool{}
	for pages := 0; ; pages++ {
		if pages > 100_000 {
			t.Fatal("ListRuns never ends")
		}
		page, next, err := s.ListRuns(context.Background(), q)
		if err != nil {
			t.Fatalf("ListRuns(%+v): %v", q, err)
		}
		for _, r := range page {
			if seen[r.ID] {
				t.Fatalf("run %s listed twice", r.ID)
			}
			seen[r.ID] = true
		}
		out = append(out, page...)
		if next == "" {
			return out
		}
		q.PageToken = next
	}
}

// wantList is what ListRuns should return for q over runs (in creation
// order), computed the slow way.
func wantList(runs []*run.Run, q ListQuery) []string {
	var out []string
	for i := len(runs) - 1; i >= 0; i-- {
		r := runs[i]
		if len(q.States) > 0 && !slices.Contains(q.States, r.State) {
			continue
		}
		if !strings.HasPrefix(r.Spec.JobName, q.NamePrefix) {
			continue
		}
		if !q.CreatedAfter.IsZero() && !r.CreateTime.After(q.CreatedAfter) {
			continue
		}
		if !q.CreatedBefore.IsZero() && !r.CreateTime.Before(q.CreatedBefore) {
			continue
		}
		ok := true
		for k, v := range q.Labels {
			if got, has := r.Spec.Labels[k]; !has || got != v {
				ok = false
			}
		}
		if ok {
			out = append(out, r.ID)
		}
	}
	return out
}

// mixedStates is a state for run i: mostly terminal, some active.
func mixedState(i int) run.State {
	switch i % 10 {
	case 0:
		return run.StatePending
	case 1:
		return run.StateRunning
	case 2, 3:
		return run.StateFailed
	case 4:
		return run.StateCancelled
	case 5:
		return run.StateTimeout
	default:
		return run.StateCompleted
	}
}

func TestListRunsPagination(t *testing.T) {
	for _, pageSize := range []int{1, 3, 10, 50, 1000} {
		t.Run(fmt.Sprintf("page size %d", pageSize), func(t *testing.T) {
			ctx := context.Background()
			s, _ := newTestStore(t)
			var runs []*run.Run
			for i := range 123 {
				runs = append(runs, testRun(i, mixedState(i)))
			}
			seedRuns(t, s, runs)

			// Walk every page while new runs keep arriving between pages.
			var got []*run.Run
			q := ListQuery{PageSize: pageSize}
			next := 1000
			for {
				page, tok, err := s.ListRuns(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				if len(page) > pageSize {
					t.Fatalf("page of %d runs, page size %d", len(page), pageSize)
				}
				if tok != "" && len(page) != pageSize {
					t.Fatalf("short page (%d of %d) without filters before the end", len(page), pageSize)
				}
				got = append(got, page...)
				for range 2 {
					mustCreate(t, s, testRun(next, run.StatePending))
					next++
				}
				if tok == "" {
					break
				}
				q.PageToken = tok
			}
			if want := wantList(runs, ListQuery{}); !slices.Equal(ids(got), want) {
				t.Fatalf("walk returned %d runs %v...\nwant %d %v...", len(got), ids(got)[:min(5, len(got))], len(want), want[:5])
			}
			checkIndexes(t, s)
		})
	}
}

func TestListRunsEmpty(t *testing.T) {
	s, _ := newTestStore(t)
	for _, q := range []ListQuery{{}, {States: []run.State{run.StateFailed}}, {NamePrefix: "x"}} {
		page, tok, err := s.ListRuns(context.Background(), q)
		if err != nil || len(page) != 0 || tok != "" {
			t.Errorf("ListRuns(%+v) on an empty store = %v, %q, %v", q, page, tok, err)
		}
	}
}

func TestListRunsFilters(t *testing.T) {
	s, _ := newTestStore(t)
	var runs []*run.Run
	for i := range 400 {
		r := testRun(i, mixedState(i))
		if i%37 == 0 {
			r.Spec.Labels["empty"] = ""
		}
		runs = append(runs, r)
	}
	seedRuns(t, s, runs)
	at := func(i int) time.Time { return testEpoch.Add(time.Duration(i) * time.Second) }

	tests := []struct {
		name     string
		q        ListQuery
		wantNone bool
	}{
		{name: "no filter", q: ListQuery{}},
		{name: "state FAILED", q: ListQuery{States: []run.State{run.StateFailed}}},
		{name: "active states", q: ListQuery{States: []run.State{run.StatePending, run.StateRunning}}},
		{name: "states repeated and unsorted", q: ListQuery{States: []run.State{run.StateTimeout, run.StatePending, run.StateTimeout}}},
		{name: "state with no runs", q: ListQuery{States: []run.State{run.StateNodeFail}}, wantNone: true},
		{name: "label team", q: ListQuery{Labels: map[string]string{"team": "vision"}}},
		{name: "two labels", q: ListQuery{Labels: map[string]string{"team": "nlp", "project": "cobalt"}}},
		{name: "label with empty value must be present", q: ListQuery{Labels: map[string]string{"empty": ""}}},
		{name: "label nobody has", q: ListQuery{Labels: map[string]string{"team": "finance"}}, wantNone: true},
		{name: "name prefix", q: ListQuery{NamePrefix: "llama-"}},
		{name: "name prefix narrow", q: ListQuery{NamePrefix: "vit-sweep-1"}},
		{name: "created after", q: ListQuery{CreatedAfter: at(350)}},
		{name: "created before", q: ListQuery{CreatedBefore: at(20)}},
		{name: "created window", q: ListQuery{CreatedAfter: at(100), CreatedBefore: at(200)}},
		{name: "empty window", q: ListQuery{CreatedAfter: at(100), CreatedBefore: at(101)}, wantNone: true},
		{name: "state and label", q: ListQuery{States: []run.State{run.StateFailed, run.StateCompleted}, Labels: map[string]string{"project": "dune"}}},
		{name: "everything", q: ListQuery{
			States: []run.State{run.StateCompleted}, Labels: map[string]string{"team": "infra"},
			NamePrefix: "llama", CreatedAfter: at(30), CreatedBefore: at(390),
		}},
	}
	for _, tt := range tests {
		want := wantList(runs, tt.q)
		if (len(want) == 0) != tt.wantNone {
			t.Fatalf("%s: the fixture gives %d matches; fix the test", tt.name, len(want))
		}
		for _, scanLimit := range []int{defaultScanLimit, 25} {
			for _, pageSize := range []int{7, 1000} {
				t.Run(fmt.Sprintf("%s/scan %d/page %d", tt.name, scanLimit, pageSize), func(t *testing.T) {
					s.scanLimit = scanLimit
					defer func() { s.scanLimit = defaultScanLimit }()
					q := tt.q
					q.PageSize = pageSize
					if got := listAll(t, s, q); !slices.Equal(ids(got), want) {
						t.Errorf("got %d runs %v\nwant %d %v", len(got), ids(got), len(want), want)
					}
				})
			}
		}
	}
}

func TestListRunsScanBound(t *testing.T) {
	ctx := context.Background()
	t.Run("default bound of 10000", func(t *testing.T) {
		s, _ := newTestStore(t)
		const n = defaultScanLimit + 50
		runs := make([]*run.Run, n)
		for i := range runs { // small records: this test is about counts
			runs[i] = &run.Run{ID: fmt.Sprint("r-", i), RequestID: fmt.Sprint("q-", i), State: run.StateCompleted}
		}
		runs[0].Spec.Labels = map[string]string{"rare": "yes"} // only the oldest matches
		seedRuns(t, s, runs)
		q := ListQuery{Labels: map[string]string{"rare": "yes"}}
		page, tok, err := s.ListRuns(ctx, q)
		if err != nil || len(page) != 0 || tok == "" {
			t.Fatalf("first call = %d runs, token %q, %v; want an empty page with a token", len(page), tok, err)
		}
		q.PageToken = tok
		page, tok, err = s.ListRuns(ctx, q)
		if err != nil || len(page) != 1 || page[0].ID != runs[0].ID || tok != "" {
			t.Fatalf("second call = %v, token %q, %v; want [%s] and the end", ids(page), tok, err, runs[0].ID)
		}
	})
	t.Run("every call examines at most the bound", func(t *testing.T) {
		s, _ := newTestStore(t)
		s.scanLimit = 10
		runs := make([]*run.Run, 100)
		for i := range runs {
			runs[i] = testRun(i, run.StateCompleted)
		}
		runs[0].Spec.Labels["rare"] = "yes"
		runs[55].Spec.Labels["rare"] = "yes"
		seedRuns(t, s, runs)
		q := ListQuery{Labels: map[string]string{"rare": "yes"}}
		var sizes []int
		for {
			page, tok, err := s.ListRuns(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			sizes = append(sizes, len(page))
			if tok == "" {
				break
			}
			q.PageToken = tok
		}
		// 100 runs, 10 per call: runs 99..90, ..., 59..50 (holds 55), ..., 9..0 (holds 0).
		want := []int{0, 0, 0, 0, 1, 0, 0, 0, 0, 1}
		if !slices.Equal(sizes, want) {
			t.Errorf("page sizes = %v, want %v", sizes, want)
		}
	})
}

func TestListRunsPageSize(t *testing.T) {
	s, _ := newTestStore(t)
	runs := make([]*run.Run, MaxPageSize+100)
	for i := range runs {
		runs[i] = testRun(i, mixedState(i))
	}
	seedRuns(t, s, runs)
	tests := []struct {
		name     string
		size     int
		wantLen  int
		wantErr  error
		wantMore bool
	}{
		{name: "zero means default", size: 0, wantLen: DefaultPageSize, wantMore: true},
		{name: "one", size: 1, wantLen: 1, wantMore: true},
		{name: "max", size: MaxPageSize, wantLen: MaxPageSize, wantMore: true},
		{name: "larger is clamped", size: 5000, wantLen: MaxPageSize, wantMore: true},
		{name: "negative", size: -1, wantErr: ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, tok, err := s.ListRuns(context.Background(), ListQuery{PageSize: tt.size})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if len(page) != tt.wantLen || (tok != "") != tt.wantMore {
				t.Errorf("got %d runs, token %q; want %d, more %v", len(page), tok, tt.wantLen, tt.wantMore)
			}
		})
	}
	// The exact end: a page that takes the last run has no token.
	q := ListQuery{PageSize: MaxPageSize}
	_, tok, _ := s.ListRuns(context.Background(), q)
	q.PageToken = tok
	q.PageSize = 100
	page, tok, err := s.ListRuns(context.Background(), q)
	if err != nil || len(page) != 100 || tok != "" {
		t.Errorf("last page = %d runs, token %q, %v; want 100 and no token", len(page), tok, err)
	}
}

func TestListRunsBadToken(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	runs := make([]*run.Run, 30)
	for i := range runs {
		runs[i] = testRun(i, mixedState(i))
	}
	seedRuns(t, s, runs)
	tokenFor := func(q ListQuery) string {
		q.PageSize = 2
		_, tok, err := s.ListRuns(ctx, q)
		if err != nil || tok == "" {
			t.Fatalf("ListRuns(%+v) = token %q, %v", q, tok, err)
		}
		return tok
	}
	failed := ListQuery{States: []run.State{run.StateFailed}}
	team := ListQuery{Labels: map[string]string{"team": "nlp"}}
	raw := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	valid, _ := base64.RawURLEncoding.DecodeString(tokenFor(ListQuery{}))
	with := func(i int, v byte) []byte { c := slices.Clone(valid); c[i] = v; return c }

	tests := []struct {
		name  string
		q     ListQuery
		token string
		want  error
	}{
		{name: "garbage", token: "garbage", want: ErrInvalidPageToken},
		{name: "not base64", token: strings.Repeat("!", 23), want: ErrInvalidPageToken},
		{name: "padded base64", token: base64.URLEncoding.EncodeToString(valid), want: ErrInvalidPageToken},
		{name: "too short", token: raw(valid[:16]), want: ErrInvalidPageToken},
		{name: "too long", token: raw(append(slices.Clone(valid), 0)), want: ErrInvalidPageToken},
		{name: "unknown version", token: raw(with(0, 2)), want: ErrInvalidPageToken},
		{name: "zero position", token: raw(append([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0}, valid[9:]...)), want: ErrInvalidPageToken},
		{name: "tampered hash", token: raw(with(16, valid[16]^1)), want: ErrInvalidPageToken},
		{name: "state token without filter", token: tokenFor(failed), want: ErrInvalidPageToken},
		{name: "unfiltered token with state filter", q: failed, token: tokenFor(ListQuery{}), want: ErrInvalidPageToken},
		{name: "other label value", q: ListQuery{Labels: map[string]string{"team": "vision"}}, token: tokenFor(team), want: ErrInvalidPageToken},
		{name: "extra filter", q: ListQuery{Labels: team.Labels, NamePrefix: "llama"}, token: tokenFor(team), want: ErrInvalidPageToken},
		{name: "other time bound", q: ListQuery{CreatedAfter: testEpoch.Add(time.Nanosecond)}, token: tokenFor(ListQuery{CreatedAfter: testEpoch}), want: ErrInvalidPageToken},
		{name: "same filter, other page size", q: ListQuery{PageSize: 5, Labels: map[string]string{"team": "nlp"}}, token: tokenFor(team)},
		{name: "same states in another order", q: ListQuery{States: []run.State{run.StateFailed, run.StatePending}}, token: tokenFor(ListQuery{States: []run.State{run.StatePending, run.StateFailed, run.StatePending}})},
		{name: "same time in another zone", q: ListQuery{CreatedAfter: testEpoch.In(time.FixedZone("X", 3600))}, token: tokenFor(ListQuery{CreatedAfter: testEpoch})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := tt.q
			q.PageToken = tt.token
			page, _, err := s.ListRuns(ctx, q)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ListRuns with token %q = %v, want %v", tt.token, err, tt.want)
			}
			if tt.want != nil && page != nil {
				t.Errorf("page with an error: %v", ids(page))
			}
		})
	}
	if _, _, err := s.ListRuns(ctx, ListQuery{States: []run.State{77}}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("unknown state filter = %v, want ErrInvalidArgument", err)
	}
}

func TestPageTokenRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		seq  uint64
		hash uint64
	}{
		{"one", 1, 0},
		{"typical", 123456, 0xdeadbeefcafef00d},
		{"max", ^uint64(0), ^uint64(0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := encodePageToken(tt.seq, tt.hash)
			got, err := decodePageToken(tok, tt.hash)
			if err != nil || got != tt.seq {
				t.Fatalf("decode(encode(%d)) = %d, %v", tt.seq, got, err)
			}
			if _, err := decodePageToken(tok, tt.hash+1); !errors.Is(err, ErrInvalidPageToken) {
				t.Fatalf("decode with another hash = %v, want ErrInvalidPageToken", err)
			}
		})
	}
}

func FuzzDecodePageToken(f *testing.F) {
	f.Add(encodePageToken(1, 0), uint64(0))
	f.Add(encodePageToken(99, 12345), uint64(12345))
	f.Add(encodePageToken(99, 12345), uint64(1))
	f.Add("", uint64(0))
	f.Add("garbage", uint64(0))
	f.Add(strings.Repeat("A", 23), uint64(0))
	f.Add(strings.Repeat("_", 23), ^uint64(0))
	f.Fuzz(func(t *testing.T, tok string, hash uint64) {
		seq, err := decodePageToken(tok, hash)
		if err != nil {
			if !errors.Is(err, ErrInvalidPageToken) {
				t.Fatalf("error %v does not wrap ErrInvalidPageToken", err)
			}
			return
		}
		if seq == 0 {
			t.Fatal("accepted a zero position")
		}
		// Only the canonical encoding is accepted.
		if again := encodePageToken(seq, hash); again != tok {
			t.Fatalf("accepted %q, which encodes as %q", tok, again)
		}
	})
}
