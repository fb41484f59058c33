package store

import (
	"bytes"
	"errors"

	"github.com/sopilot/sopilot/internal/jsonscan"
)

// A filtered ListRuns looks at up to 10,000 records per call; decoding each
// into a run.Run costs ~10µs, most of it for fields no filter reads. These
// helpers pick single values out of a record's JSON (package jsonscan), so
// a filter can reject a record for ~1µs. They report errJSONScan for
// anything they do not understand; the caller then decodes the record in
// full, so a limitation here costs time, never correctness.
var errJSONScan = errors.New("store: unexpected JSON")

// jsonField returns the raw value of key among the members of object obj;
// the last of repeated keys wins.
func jsonField(obj []byte, key string) (raw []byte, found bool, err error) {
	raw, found, ok := jsonscan.Field(obj, key)
	if !ok {
		return nil, false, errJSONScan
	}
	return raw, found, nil
}

// jsonString decodes a raw JSON string value; null decodes as "" (as
// encoding/json leaves a string untouched for null).
func jsonString(raw []byte) (string, error) {
	if string(raw) == "null" {
		return "", nil
	}
	if s, ok := jsonscan.Unquote(raw); ok {
		return s, nil
	}
	return "", errJSONScan
}

// stringEquals reports whether the raw JSON string lit decodes to s.
func stringEquals(lit []byte, s string) (bool, error) {
	if bytes.IndexByte(lit, '\\') < 0 {
		return jsonscan.KeyIs(lit, false, s), nil
	}
	d, err := jsonString(lit)
	return d == s, err
}
