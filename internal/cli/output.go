package cli

// output.go: the machine-readable output formats. -o json prints the API's
// messages as protojson (or the cluster group's reports as JSON); -o yaml
// prints the same document as YAML, converted from that JSON so that the
// field names, their order and the enum spellings are the same in both.

import (
	"bytes"
	"encoding/json"
	"fmt"

	"go.yaml.in/yaml/v3"
)

// Output formats of -o.
const (
	formatTable = "table"
	formatJSON  = "json"
	formatYAML  = "yaml"
)

// jsonToYAML converts one JSON document to YAML, keeping the order of
// object keys. Strings that would read back as another type ("4759",
// "true", "null") stay quoted, so a YAML reader sees what a JSON reader
// sees.
// fileToJSON accepts a run or pipeline file in JSON or YAML and returns
// JSON: YAML is decoded and re-encoded, so both take the same field names
// (snake_case or camelCase) and the same checks.
func fileToJSON(b []byte) ([]byte, error) {
	if t := bytes.TrimSpace(b); len(t) > 0 && (t[0] == '{' || t[0] == '[') {
		return b, nil
	}
	var v any
	if err := yaml.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("neither JSON nor YAML: %w", err)
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("YAML that JSON cannot hold (keys must be strings): %w", err)
	}
	return out, nil
}

func jsonToYAML(b []byte) ([]byte, error) {
	var doc yaml.Node
	// JSON is YAML (1.2); decoding into a node keeps the key order.
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("converting JSON output to YAML: %w", err)
	}
	if doc.Kind == 0 { // empty input
		return []byte("null\n"), nil
	}
	blockStyle(&doc)
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("converting JSON output to YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("converting JSON output to YAML: %w", err)
	}
	return out.Bytes(), nil
}

// blockStyle drops the flow and quoting styles the JSON text implied, so
// that the encoder writes block YAML and quotes only where it must. A key
// given twice keeps its last value, as JSON decoders do (YAML forbids
// duplicate keys).
func blockStyle(n *yaml.Node) {
	n.Style = 0
	if n.Kind == yaml.MappingNode {
		last := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			last[n.Content[i].Value] = i
		}
		if len(last)*2 < len(n.Content) {
			kept := make([]*yaml.Node, 0, len(last)*2)
			for i := 0; i+1 < len(n.Content); i += 2 {
				if last[n.Content[i].Value] == i {
					kept = append(kept, n.Content[i], n.Content[i+1])
				}
			}
			n.Content = kept
		}
	}
	for _, c := range n.Content {
		blockStyle(c)
	}
}

// formatJSONDoc renders one JSON document (with its trailing newline) in
// format f: as is for json, converted for yaml.
func formatJSONDoc(f string, b []byte) ([]byte, error) {
	if f != formatYAML {
		return b, nil
	}
	return jsonToYAML(b)
}
