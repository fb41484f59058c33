package store

import (
	"bytes"
	"encoding/json"
	"errors"
)

// A filtered ListRuns looks at up to 10,000 records per call; decoding each
// into a run.Run costs ~10µs, most of it for fields no filter reads. The
// helpers here pick single values out of a record's JSON without decoding
// the rest, so a filter can reject a record for ~1µs. Only records that
// pass are decoded in full.
//
// They accept the JSON that encoding/json writes (any valid JSON, in fact)
// and report errJSONScan for anything they do not understand; the caller
// then decodes the record in full, so a limitation here costs time, never
// correctness.

var errJSONScan = errors.New("store: unexpected JSON")

// jsonField returns the raw value of key in the JSON object obj, looking at
// the object's own members only (not nested ones). Like encoding/json into
// a map, the last of repeated keys wins. found is false if the key is
// absent.
func jsonField(obj []byte, key string) (raw []byte, found bool, err error) {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return nil, false, errJSONScan
	}
	i = skipSpace(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return nil, false, nil
	}
	for {
		if i >= len(obj) || obj[i] != '"' {
			return nil, false, errJSONScan
		}
		kEnd, err := skipString(obj, i)
		if err != nil {
			return nil, false, err
		}
		match, err := stringEquals(obj[i:kEnd], key)
		if err != nil {
			return nil, false, err
		}
		i = skipSpace(obj, kEnd)
		if i >= len(obj) || obj[i] != ':' {
			return nil, false, errJSONScan
		}
		vStart := skipSpace(obj, i+1)
		vEnd, err := skipValue(obj, vStart)
		if err != nil {
			return nil, false, err
		}
		if match {
			raw, found = obj[vStart:vEnd], true
		}
		i = skipSpace(obj, vEnd)
		if i >= len(obj) {
			return nil, false, errJSONScan
		}
		switch obj[i] {
		case '}':
			return raw, found, nil
		case ',':
			i = skipSpace(obj, i+1)
		default:
			return nil, false, errJSONScan
		}
	}
}

// jsonString decodes a raw JSON string value; null decodes as "" (as
// encoding/json leaves a string untouched for null).
func jsonString(raw []byte) (string, error) {
	if string(raw) == "null" {
		return "", nil
	}
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", errJSONScan
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", errJSONScan
	}
	return s, nil
}

// stringEquals reports whether the raw JSON string lit decodes to s.
func stringEquals(lit []byte, s string) (bool, error) {
	if bytes.IndexByte(lit, '\\') < 0 {
		return len(lit) == len(s)+2 && string(lit[1:len(lit)-1]) == s, nil
	}
	d, err := jsonString(lit)
	return d == s, err
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the string that starts at b[i]:
// the first quote after it that follows an even number of backslashes.
func skipString(b []byte, i int) (int, error) {
	for j := i + 1; j < len(b); {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			break
		}
		q := j + k
		escaped := false
		for p := q - 1; p > i && b[p] == '\\'; p-- {
			escaped = !escaped
		}
		if !escaped {
			return q + 1, nil
		}
		j = q + 1
	}
	return 0, errJSONScan
}

// skipValue returns the index just past the value that starts at b[i]. It
// finds the value's end; it does not validate what lies inside.
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errJSONScan
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, err := skipString(b, j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, errJSONScan
	default: // number, true, false, null
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
			j++
		}
		if j == i {
			return 0, errJSONScan
		}
		return j, nil
	}
}
