package jsonscan

import (
	"bytes"
	"encoding/json"
	"reflect"
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
	for _, bad := range []string{`[1,`, `[1, `, `[1 2]`, `{}`, `[`, `[ `} {
		if _, ok := Elements([]byte(bad), 0, func(val []byte) int { _ = val[0]; return 0 }); ok {
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

// FuzzScan checks the scanner against encoding/json on valid documents:
// an object's members as a map has them (the last duplicate wins), an
// array's elements as a []json.RawMessage has them, each value's end found
// exactly.
func FuzzScan(f *testing.F) {
	f.Add([]byte(`{"spec":{"job_name":"quote\"back\\slash","labels":{"k\"ey":"v"}},"create_time":"2024-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"a":{"b":[1,"]"]},"c":"\"}", "\u0061":1, "a" :2}`))
	f.Add([]byte(`[1,"a\"]",{"b":[2,{}]},[],null,true,-0.5e2]`))
	f.Add([]byte("[\n  {\n    \"x\": \"\\\\\"\n  }\n]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) || !utf8.Valid(data) {
			return // callers validate first, or fall back to a full decode
		}
		start := SkipSpace(data, 0)
		if end := SkipValue(data, start); SkipSpace(data, end) != len(data) {
			t.Fatalf("SkipValue(%q) = %d, want the end of the value", data, end)
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(data, &m) == nil && m != nil {
			got := map[string]json.RawMessage{}
			_, ok := Fields(data, start, func(key []byte, escaped bool, val []byte) {
				s, _ := Unquote(key)
				if !KeyIs(key, escaped, s) {
					t.Fatalf("KeyIs(%q, %q) = false", key, s)
				}
				got[s] = val
			})
			if !ok || !reflect.DeepEqual(got, m) {
				t.Fatalf("Fields(%q) = %q, %v; encoding/json says %q", data, got, ok, m)
			}
			for k, want := range m {
				if raw, found, ok := Field(data, k); !ok || !found || !bytes.Equal(raw, want) {
					t.Fatalf("Field(%q, %q) = %q, %v, %v; want %q", data, k, raw, found, ok, want)
				}
			}
		}
		var a []json.RawMessage
		if json.Unmarshal(data, &a) == nil && a != nil {
			var got []json.RawMessage
			_, ok := Elements(data, start, func(val []byte) int {
				got = append(got, val[:SkipValue(val, 0)])
				return 0
			})
			if !ok || len(got) != len(a) || len(a) > 0 && !reflect.DeepEqual(got, a) {
				t.Fatalf("Elements(%q) = %q, %v; encoding/json says %q", data, got, ok, a)
			}
		}
	})
}
