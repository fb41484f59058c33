package cli

// run_file.go: run files (run submit -f, the steps of run pipeline) in YAML
// or JSON, read field by field so that an error names the file's line and
// field, and time_limit takes what --time takes.

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/sopilot/sopilot/pkg/apipb"
)

// parseYAMLDoc reads a YAML or JSON document (JSON is YAML) into a node
// that keeps the line of every value.
func parseYAMLDoc(b []byte) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("neither YAML nor JSON: %w", err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, errors.New("the file is empty")
	}
	return doc.Content[0], nil
}

// specFromNode reads a RunSpec from a YAML mapping, one field at a time.
// It returns the spec and every problem, each "line N: field: what is
// wrong". time_limit is a Go duration (90m, 600s) or one of Slurm's forms
// (MINUTES, HH:MM:SS, D-HH:MM:SS), as --time takes it.
func specFromNode(n *yaml.Node) (*apipb.RunSpec, []string) {
	if n.Kind != yaml.MappingNode {
		return nil, []string{fmt.Sprintf("line %d: want a mapping of RunSpec fields (job_name: ..., time_limit: ..., argv: [...]), got %s", n.Line, nodeKind(n))}
	}
	spec := &apipb.RunSpec{}
	fields := spec.ProtoReflect().Descriptor().Fields()
	var probs []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		fd := fields.ByName(protoreflect.Name(k.Value))
		if fd == nil {
			fd = fields.ByJSONName(k.Value)
		}
		if fd == nil {
			probs = append(probs, fmt.Sprintf("line %d: %s: not a RunSpec field (fields: %s)", k.Line, k.Value, fieldNames(fields)))
			continue
		}
		if fd.Kind() == protoreflect.StringKind || (fd.IsMap() && fd.MapValue().Kind() == protoreflect.StringKind) {
			// argv: [python3, train.py, --lr, 3e-4] means strings, not a
			// float; labels: {gpus: 8} too.
			v = asStrings(v)
		}
		val, err := nodeJSON(v)
		if err == nil && fd.Name() == "time_limit" {
			val, err = timeLimitJSON(v)
		}
		if err == nil {
			one := &apipb.RunSpec{}
			err = protojson.Unmarshal([]byte(`{"`+string(fd.Name())+`":`+string(val)+`}`), one)
			if err == nil {
				// An empty list or map is unset, and cannot be Set.
				if one.ProtoReflect().Has(fd) {
					spec.ProtoReflect().Set(fd, one.ProtoReflect().Get(fd))
				}
				continue
			}
			err = errors.New(trimProtoJSONPosition(err.Error()))
		}
		probs = append(probs, fmt.Sprintf("line %d: %s: %v", v.Line, k.Value, err))
	}
	return spec, probs
}

// timeLimitJSON turns time_limit's value into protojson's "600s".
func timeLimitJSON(v *yaml.Node) ([]byte, error) {
	if v.Kind != yaml.ScalarNode || v.Value == "" {
		return nil, fmt.Errorf("want a duration such as 10m, 90m, 06:00:00 or 1-00:00:00, got %s", nodeKind(v))
	}
	d, err := parseTimeLimit(v.Value)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", v.Value, err)
	}
	return json.Marshal(fmt.Sprintf("%ds", d/time.Second))
}

// nodeJSON is the JSON text of a YAML value.
func nodeJSON(v *yaml.Node) ([]byte, error) {
	var x any
	if err := v.Decode(&x); err != nil {
		return nil, err
	}
	b, err := json.Marshal(x)
	if err != nil {
		return nil, fmt.Errorf("not representable in JSON (keys must be strings): %w", err)
	}
	return b, nil
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "nothing"
}

// trimProtoJSONPosition drops protojson's "proto: (line 1:18): " prefix,
// whose position is in the one-field document built here, not the file.
func trimProtoJSONPosition(msg string) string {
	msg = strings.TrimPrefix(msg, "proto:")
	msg = strings.TrimSpace(msg)
	if strings.HasPrefix(msg, "(line ") {
		if _, rest, ok := strings.Cut(msg, "): "); ok {
			msg = rest
		}
	}
	return msg
}

func fieldNames(fields protoreflect.FieldDescriptors) string {
	names := make([]string, 0, fields.Len())
	for i := range fields.Len() {
		names = append(names, string(fields.Get(i).Name()))
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// mappingValue is the value of key in mapping n, or nil.
func mappingValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// asStrings is a copy of v whose scalars (other than null) are strings.
func asStrings(v *yaml.Node) *yaml.Node {
	c := *v
	switch {
	case c.Kind == yaml.ScalarNode && c.Tag != "!!null":
		c.Tag, c.Style = "!!str", 0
	case c.Kind == yaml.SequenceNode:
		c.Content = make([]*yaml.Node, len(v.Content))
		for i, e := range v.Content {
			c.Content[i] = asStrings(e)
		}
	case c.Kind == yaml.MappingNode:
		c.Content = make([]*yaml.Node, len(v.Content))
		for i, e := range v.Content {
			if i%2 == 1 {
				e = asStrings(e)
			}
			c.Content[i] = e
		}
	}
	return &c
}
