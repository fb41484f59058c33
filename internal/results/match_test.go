package results

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// idSet builds a set with one metric from ids in the given order.
func idSet(t testing.TB, ids []string) *Set {
	t.Helper()
	b := NewBuilder(Limits{})
	vals := make([]float64, len(ids))
	for i := range vals {
		vals[i] = float64(i)
	}
	if err := b.AddColumns(Columns{IDs: ids, Metrics: []Column{{Name: "x", Values: vals}}}); err != nil {
		t.Fatal(err)
	}
	s, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sampleIDs(n int, keep func(int) bool) []string {
	var ids []string
	for i := range n {
		if keep(i) {
			ids = append(ids, fmt.Sprintf("s-%05d", i))
		}
	}
	return ids
}

func shuffled(ids []string, seed uint64) []string {
	out := slices.Clone(ids)
	rand.New(rand.NewPCG(seed, 0)).Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// TestMatchSamples checks every path of MatchSamples (same ids in the same
// order, a merge of two ascending sets, lookups in an indexed set, binary
// searches in an ascending one) against a map, and that a set read back
// from its encoding matches the same way.
func TestMatchSamples(t *testing.T) {
	const n = 5000
	all := sampleIDs(n, func(int) bool { return true })
	even := sampleIDs(n, func(i int) bool { return i%2 == 0 })
	thirds := sampleIDs(n+30, func(i int) bool { return i%3 != 0 })
	tests := []struct {
		name     string
		s, o     []string
		wantSame bool
	}{
		{"same ids, same order", all, all, true},
		{"same ids shuffled alike", shuffled(all, 1), shuffled(all, 1), true},
		{"both ascending, different samples", even, thirds, false},
		{"ascending against shuffled", even, shuffled(thirds, 2), false},
		{"shuffled against ascending", shuffled(thirds, 3), even, false},
		{"both shuffled", shuffled(all, 4), shuffled(even, 5), false},
		{"one sample", all[:1], all[1:2], false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, o := idSet(t, tc.s), idSet(t, tc.o)
			dec := decodeSet(t, o)
			for _, other := range []*Set{o, dec} {
				pos, same := s.MatchSamples(other)
				if same != tc.wantSame {
					t.Fatalf("same = %v, want %v", same, tc.wantSame)
				}
				if same {
					continue
				}
				at := map[string]int{}
				for k, id := range tc.o {
					at[id] = k
				}
				for i, id := range tc.s {
					want := uint32(NoMatch)
					if k, ok := at[id]; ok {
						want = uint32(k)
					}
					if pos[i] != want {
						t.Fatalf("pos[%d] (%s) = %d, want %d", i, id, pos[i], want)
					}
				}
			}
		})
	}
}

func decodeSet(t testing.TB, s *Set) *Set {
	t.Helper()
	var buf bytes.Buffer
	if _, err := Encode(&buf, s); err != nil {
		t.Fatal(err)
	}
	d, err := Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestIDOrderAndDuplicates: ids that ascend need no index until one comes
// out of order; a duplicate is refused, naming the first record with the
// id, whether it repeats the last id, an earlier one while the ids still
// ascended, or one after the index was built.
func TestIDOrderAndDuplicates(t *testing.T) {
	tests := []struct {
		name      string
		ids       []string
		wantFirst int // FirstRecord of the refused last id; -1: accepted
		indexed   bool
	}{
		{"ascending", []string{"a", "b", "c"}, -1, false},
		{"repeats the last id", []string{"a", "b", "b"}, 1, true},
		{"repeats an earlier id", []string{"a", "b", "c", "a"}, 0, true},
		{"out of order, then unique", []string{"b", "c", "a", "d"}, -1, true},
		{"out of order, then a repeat", []string{"b", "c", "a", "d", "c"}, 1, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBuilder(Limits{})
			var err error
			for _, id := range tc.ids {
				if err = b.Add(id, map[string]float64{"x": 1}); err != nil {
					break
				}
			}
			var e *Error
			switch {
			case tc.wantFirst < 0 && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.wantFirst >= 0 && (!errors.As(err, &e) || e.Field != "sample_id" || e.FirstRecord != tc.wantFirst):
				t.Fatalf("error %v; want a duplicate sample_id first used by records[%d]", err, tc.wantFirst)
			}
			s := b.set
			if s.indexed != tc.indexed {
				t.Errorf("indexed = %v, want %v", s.indexed, tc.indexed)
			}
			for i := range s.Len() {
				if k, ok := s.Index(s.SampleID(i)); !ok || k != i {
					t.Errorf("Index(%q) = %d, %v; want %d", s.SampleID(i), k, ok, i)
				}
			}
			if _, ok := s.Index("zz"); ok {
				t.Error("found an id never added")
			}
			if _, ok := s.Index(""); ok {
				t.Error("found the empty id")
			}
		})
	}
}
