package cli

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/sopilot/sopilot/pkg/apipb"
)

func TestJSONToYAML(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"order kept, strings that look like other types quoted",
			`{"id":"r-1","slurmJobId":"4759","flag":"true","none":"null","n":null,"b":false,"x":1.5e3}`,
			"id: r-1\nslurmJobId: \"4759\"\nflag: \"true\"\nnone: \"null\"\nn: null\nb: false\nx: 1.5e3\n"},
		{"nesting, empty containers",
			`{"a":{"b":[1,{"c":"d"}]},"e":{},"f":[]}`,
			"a:\n  b:\n    - 1\n    - c: d\ne: {}\nf: []\n"},
		{"special strings", `{"s":"a: b","m":"x\ny","q":"#no comment","k":"- item"}`,
			"s: 'a: b'\nm: |-\n  x\n  y\nq: '#no comment'\nk: '- item'\n"},
		{"empty document", ``, "null\n"},
		{"duplicate key: the last wins, as in JSON decoders", `{"a":1,"b":2,"a":3}`, "b: 2\na: 3\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := jsonToYAML([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
	if _, err := jsonToYAML([]byte(`{"a": [}`)); err == nil || !strings.Contains(err.Error(), "converting JSON output to YAML") {
		t.Errorf("bad JSON: err = %v", err)
	}
}

func TestWriteProtoYAML(t *testing.T) {
	var b bytes.Buffer
	if err := writeProto(&b, formatYAML, completedRun()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"id: r-01m8kc4a4s0xq0n7w6zv5c2k9e\n", "state: RUN_STATE_COMPLETED\n", "slurmJobId: \"71\"\n",
		"  timeLimit: 21600s\n", "  totalSteps: \"1000\"\n", "  gpuCount: 16\n", "  labels:\n    experiment: doc\n    seed: \"1\"\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("run as YAML lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	if err := writeProtoLine(&b, formatYAML, &apipb.Run{Id: "r-1", State: apipb.RunState_RUN_STATE_PENDING}); err != nil {
		t.Fatal(err)
	}
	if b.String() != "---\nid: r-1\nstate: RUN_STATE_PENDING\n" {
		t.Errorf("stream document %q", b.String())
	}
	b.Reset()
	if err := writeJSON(&b, formatYAML, map[string]any{"kind": "preflight", "blocking": false}); err != nil {
		t.Fatal(err)
	}
	if b.String() != "blocking: false\nkind: preflight\n" {
		t.Errorf("writeJSON yaml: %q", b.String())
	}
}

// YAML -o yaml on the command line is accepted, an unknown format is not.
func TestOutputFormatFlag(t *testing.T) {
	r := sopilot(t, invocation{args: []string{"nodes", "-o", "xml", "--controller", "127.0.0.1:1"}})
	if r.code != ExitUsage || !strings.Contains(r.stderr, `--output "xml": want table, json or yaml`) {
		t.Errorf("-o xml: exit %d, stderr %q", r.code, r.stderr)
	}
	r = sopilot(t, invocation{args: []string{"cluster", "preflight", "--print-rules", "-o", "yaml"}})
	if r.code != ExitOK {
		t.Errorf("-o yaml: exit %d, stderr %q", r.code, r.stderr)
	}
}

// FuzzJSONToYAML: whatever JSON document goes in, the YAML that comes out
// reads back as the same value.
func FuzzJSONToYAML(f *testing.F) {
	for _, s := range []string{`{"a":"1"}`, `[1,"2",true,"true",null,"null"]`, `{"s":"a: b\n- c"}`, `"0x10"`, `{"k":"~"}`, `{"":"", "y":"y", "no":"no"}`,
		`{"n":1e400}`, `{"t":"\t"}`, `{"u":"\u2028"}`, `1.0`, `{"a":{"b":{"c":[[],{}]}}}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var want any
		if err := json.Unmarshal([]byte(in), &want); err != nil {
			return // not JSON: not what the CLI converts
		}
		out, err := jsonToYAML([]byte(in))
		if err != nil {
			// yaml.v3 is stricter than encoding/json in places (e.g.
			// duplicate keys); an error is fine, a wrong value is not.
			return
		}
		var got any
		if err := yaml.Unmarshal(out, &got); err != nil {
			t.Fatalf("YAML output does not parse: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(normalize(want), normalize(got)) {
			t.Fatalf("round trip changed the value:\nJSON %s\nYAML %s\nwant %#v\ngot  %#v", in, out, normalize(want), normalize(got))
		}
	})
}

// normalize makes JSON and YAML decodings comparable: numbers as float64,
// maps with string keys.
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = normalize(e)
		}
		return m
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	case int:
		return float64(x)
	case int64:
		return float64(x)
	case uint64:
		return float64(x)
	}
	return v
}
