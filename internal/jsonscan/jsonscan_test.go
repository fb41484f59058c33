package jsonscan

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

func TestField(t *testing.T) {
	tests := []struct {
		name      string
		obj, key  string
		want      string
		wantFound bool
		wantFail  bool
	}{
		{name: "first", obj: `{"a":1,"b":"x"}`, key: "a", want: `1`, wantFound: true},
		{name: "last", obj: `{"a":1,"b":"x"}`, key: "b", want: `"x"`, wantFound: true},
		{name: "absent", obj: `{"a":1,"b":"x"}`, key: "c"},
		{name: "empty object", obj: `{}`, key: "a"},
		{name: "nested keys are not members", obj: `{"a":{"k":1},"b":[{"k":2}],"c":"{\"k\":3}"}`, key: "k"},
		{name: "object value", obj: `{"a":{"k":[1,{"x":"]}"}]},"b":2}`, key: "a", want: `{"k":[1,{"x":"]}"}]}`, wantFound: true},
		{name: "escaped key", obj: `{"\u0061":true}`, key: "a", want: `true`, wantFound: true},
		{name: "escaped quote in string", obj: `{"a":"x\"y","b":null}`, key: "b", want: `null`, wantFound: true},
		{name: "backslashes before a quote", obj: `{"a":"x\\","b":"\\\"}","c":3}`, key: "c", want: `3`, wantFound: true},
		{name: "repeated key: last wins", obj: `{"a":1,"a":2}`, key: "a", want: `2`, wantFound: true},
		{name: "whitespace", obj: " {\n \"a\" : [ 1 , 2 ] ,\t\"b\": -1.5e3 }\n", key: "b", want: `-1.5e3`, wantFound: true},
		{name: "not an object", obj: `[1]`, key: "a", wantFail: true},
		{name: "truncated", obj: `{"a":"x`, key: "a", wantFail: true},
		{name: "missing colon", obj: `{"a" 1}`, key: "a", wantFail: true},
		{name: "missing value", obj: `{"a":,"b":1}`, key: "b", wantFail: true},
		{name: "text after the object", obj: `{"a":1} 2`, key: "a", wantFail: true},
		{name: "empty", obj: ``, key: "a", wantFail: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, found, ok := Field([]byte(tt.obj), tt.key)
			if ok == tt.wantFail {
				t.Fatalf("ok = %v, want %v", ok, !tt.wantFail)
			}
			if found != tt.wantFound || string(raw) != tt.want {
				t.Errorf("Field(%s, %q) = %s, %v; want %s, %v", tt.obj, tt.key, raw, found, tt.want, tt.wantFound)
			}
		})
	}
}

func TestSkipValue(t *testing.T) {
	tests := []struct {
		in   string
		want int // -1: no value
	}{
		{`"a\"b"x`, 6}, {`"a\\"x`, 5}, {`"open`, -1}, {`{"a":[1,"]}"]}x`, 14}, {`[[]`, -1},
		{`-1.5e3,`, 6}, {`true}`, 4}, {`null`, 4}, {`,`, -1}, {``, -1}, {"[\n  1,\n  2\n]", 12},
	}
	for _, tt := range tests {
		if got := SkipValue([]byte(tt.in), 0); got != tt.want {
			t.Errorf("SkipValue(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestElements(t *testing.T) {
	var got []string
	end, ok := Elements([]byte(` [ 1, "x" ,{"a":[2]}, [3] ] ,`), 1, func(val []byte) int {
		if val[0] == '{' {
			end, _ := Fields(val, 0, func([]byte, bool, []byte) {})
			got = append(got, string(val[:end]))
			return end
		}
		got = append(got, string(val[:SkipValue(val, 0)]))
		return 0
	})
	want := []string{`1`, `"x"`, `{"a":[2]}`, `[3]`}
	if !ok || end != 27 || len(got) != len(want) {
		t.Fatalf("Elements = %d, %v, %q; want 27, true, %q", end, ok, got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("element %d = %s, want %s", i, got[i], want[i])
		}
	}
	for _, bad := range []string{`[1,`, `[1 2]`, `{}`, `[`} {
		if _, ok := Elements([]byte(bad), 0, func([]byte) int { return 0 }); ok {
			t.Errorf("Elements(%s) ok", bad)
		}
	}
}

func TestUnquoteAndKeyIs(t *testing.T) {
	tests := []struct {
		raw  string
		want string
		ok   bool
	}{
		{`"plain"`, "plain", true}, {`""`, "", true}, {`"\u00e9t\u00e9"`, "été", true},
		{`"a\"b"`, `a"b`, true}, {"\"bad\xffutf8\"", "bad\uFFFDutf8", true}, {"\"tab\tin\"", "", false},
		{`"open`, "", false}, {`x`, "", false}, {``, "", false}, {`1`, "", false},
	}
	for _, tt := range tests {
		got, ok := Unquote([]byte(tt.raw))
		if got != tt.want || ok != tt.ok {
			t.Errorf("Unquote(%q) = %q, %v; want %q, %v", tt.raw, got, ok, tt.want, tt.ok)
		}
		end, escaped := SkipString([]byte(tt.raw), 0)
		if tt.ok && utf8.ValidString(tt.raw) && end == len(tt.raw) && !KeyIs([]byte(tt.raw), escaped, tt.want) {
			t.Errorf("KeyIs(%q, %q) = false", tt.raw, tt.want)
		}
	}
}

// FuzzField checks Field against encoding/json: whenever it answers on
// valid JSON, it answers what decoding into a map would.
func FuzzField(f *testing.F) {
	f.Add([]byte(`{"spec":{"job_name":"quote\"back\\slash","labels":{"k\"ey":"v"}},"create_time":"2024-01-01T00:00:00Z"}`), "spec")
	f.Add([]byte(`{"a":{"b":[1,"]"]},"c":"\"}"}`), "c")
	f.Add([]byte(`{"\u0061":1, "a" :2}`), "a")
	f.Add([]byte(`{"a":"x\\","b":"\\\"}","c":3}`), "c")
	f.Fuzz(func(t *testing.T, obj []byte, key string) {
		raw, found, ok := Field(obj, key)
		if !ok || !json.Valid(obj) || !utf8.Valid(obj) {
			return // callers fall back to a full decode, or validate first
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(obj, &m); err != nil {
			t.Fatalf("Field answered for %q, which is no object: %v", obj, err)
		}
		want, has := m[key]
		if found != has || !bytes.Equal(raw, want) {
			t.Fatalf("Field(%q, %q) = %q, %v; encoding/json says %q, %v", obj, key, raw, found, want, has)
		}
	})
}

// FuzzElements checks Elements and SkipValue against encoding/json on
// valid arrays: the same elements, and the array's end found exactly.
func FuzzElements(f *testing.F) {
	f.Add([]byte(`[1,"a\"]",{"b":[2,{}]},[],null,true,-0.5e2]`))
	f.Add([]byte("[\n  {\n    \"x\": \"\\\\\"\n  }\n]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var want []json.RawMessage
		if json.Unmarshal(data, &want) != nil || want == nil {
			return
		}
		start := SkipSpace(data, 0)
		var got [][]byte
		end, ok := Elements(data, start, func(val []byte) int {
			got = append(got, val[:SkipValue(val, 0)])
			return 0
		})
		if !ok || SkipSpace(data, end) != len(data) || SkipValue(data, start) != end {
			t.Fatalf("Elements(%q) = %d, %v; SkipValue = %d; want the end of the array", data, end, ok, SkipValue(data, start))
		}
		if len(got) != len(want) {
			t.Fatalf("Elements(%q): %d elements, want %d", data, len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("Elements(%q) element %d = %q, want %q", data, i, got[i], want[i])
			}
		}
	})
}
