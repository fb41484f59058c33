// Package jsonscan finds the parts of a JSON document (the members of an
// object, the elements of an array, the ends of strings and values) without
// decoding it, for the readers that only need a few fields of a large
// document: the store's filters over run records and the Slurm job-listing
// parser.
//
// It does not validate. It finds the ends of well-formed values, checks
// every index and reports failure (an end of -1, ok false) rather than
// panic on anything else; a caller that needs validity checks it first
// (json.Valid) or falls back to encoding/json when the scan fails. Keys and
// strings are matched as encoding/json would decode them: exactly, after
// unescaping.
package jsonscan

import (
	"encoding/json"
	"unicode/utf8"
)

// SkipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func SkipSpace(d []byte, i int) int {
	for i < len(d) {
		switch d[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// SkipString returns the index after the string that opens at d[i] and
// whether it holds escapes; end is -1 if the string is not closed.
func SkipString(d []byte, i int) (end int, escaped bool) {
	for j := i + 1; j < len(d); j++ {
		switch d[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			return j + 1, escaped
		}
	}
	return -1, escaped
}

// structural marks the bytes a walk through an object or array has to look
// at; everything else (whitespace, numbers, literals, commas, colons) it
// steps over. Pretty-printed listings are mostly indentation.
var structural = [256]bool{'"': true, '{': true, '[': true, '}': true, ']': true}

// SkipValue returns the index after the value that starts at d[i], or -1
// if there is none. A number or literal ends at the first delimiter.
func SkipValue(d []byte, i int) int {
	if i < 0 || i >= len(d) {
		return -1
	}
	switch d[i] {
	case '"':
		end, _ := SkipString(d, i)
		return end
	case '{', '[':
		depth := 0
		for j := i; j < len(d); j++ {
			if !structural[d[j]] {
				continue
			}
			switch d[j] {
			case '"':
				end, _ := SkipString(d, j)
				if end < 0 {
					return -1
				}
				j = end - 1
			case '{', '[':
				depth++
			default: // '}', ']'
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	default:
		j := i
		for j < len(d) {
			switch d[j] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				if j == i {
					return -1
				}
				return j
			}
			j++
		}
		return j
	}
}

// Fields calls fn with every key (quoted, as in the document, and whether
// it holds escapes) and raw value of the object that opens at d[i], in
// order, and returns the index after the object. ok is false if d[i] does
// not open an object or the object is not closed.
func Fields(d []byte, i int, fn func(key []byte, escaped bool, val []byte)) (end int, ok bool) {
	if i < 0 || i >= len(d) || d[i] != '{' {
		return -1, false
	}
	i = SkipSpace(d, i+1)
	if i < len(d) && d[i] == '}' {
		return i + 1, true
	}
	for {
		if i >= len(d) || d[i] != '"' {
			return -1, false
		}
		kEnd, escaped := SkipString(d, i)
		if kEnd < 0 {
			return -1, false
		}
		key := d[i:kEnd]
		i = SkipSpace(d, kEnd)
		if i >= len(d) || d[i] != ':' {
			return -1, false
		}
		i = SkipSpace(d, i+1)
		vEnd := SkipValue(d, i)
		if vEnd < 0 {
			return -1, false
		}
		fn(key, escaped, d[i:vEnd])
		if i = SkipSpace(d, vEnd); i >= len(d) {
			return -1, false
		}
		switch d[i] {
		case ',':
			i = SkipSpace(d, i+1)
		case '}':
			return i + 1, true
		default:
			return -1, false
		}
	}
}

// Elements calls fn with every element of the array that opens at d[i], in
// order, and returns the index after the array; ok as for Fields. An
// element that is an object is handed to fn whole, and fn returns the
// index after it in val (from Fields, say) so that it is not walked twice;
// fn returns 0 to have Elements find the end itself.
func Elements(d []byte, i int, fn func(val []byte) (end int)) (end int, ok bool) {
	if i < 0 || i >= len(d) || d[i] != '[' {
		return -1, false
	}
	i = SkipSpace(d, i+1)
	if i < len(d) && d[i] == ']' {
		return i + 1, true
	}
	for {
		if i >= len(d) {
			return -1, false
		}
		vEnd := fn(d[i:]) // never empty
		if vEnd > 0 {
			vEnd += i
		} else if vEnd = SkipValue(d, i); vEnd < 0 {
			return -1, false
		}
		if i = SkipSpace(d, vEnd); i >= len(d) {
			return -1, false
		}
		switch d[i] {
		case ',':
			i = SkipSpace(d, i+1)
		case ']':
			return i + 1, true
		default:
			return -1, false
		}
	}
}

// Field returns the raw value of key among the members of the object obj
// (not nested ones); like encoding/json into a map, the last of repeated
// keys wins. found is false if the key is absent, ok false if obj is not
// an object this package can walk.
func Field(obj []byte, key string) (raw []byte, found, ok bool) {
	end, ok := Fields(obj, SkipSpace(obj, 0), func(k []byte, escaped bool, val []byte) {
		if KeyIs(k, escaped, key) {
			raw, found = val, true
		}
	})
	if !ok || SkipSpace(obj, end) != len(obj) {
		return nil, false, false
	}
	return raw, found, true
}

// KeyIs reports whether the quoted key (as in the document, with escaped
// as SkipString found it) decodes to name. A key without escapes is
// compared byte for byte, which is decoding for valid UTF-8.
func KeyIs(key []byte, escaped bool, name string) bool {
	if !escaped {
		return len(key) == len(name)+2 && string(key[1:len(key)-1]) == name
	}
	s, ok := Unquote(key)
	return ok && s == name
}

// Unquote decodes the quoted JSON string raw as encoding/json would
// (invalid UTF-8 becomes U+FFFD); ok is false if raw is no valid string.
func Unquote(raw []byte) (string, bool) {
	if body, plain := plainBody(raw); plain {
		return string(body), true
	}
	return unquoteSlow(raw)
}

// unquoteSlow is apart from Unquote so that the string it decodes into
// (its address taken) is allocated only when it is needed.
func unquoteSlow(raw []byte) (string, bool) {
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// plainBody returns the text between the quotes of a JSON string that
// decodes to itself: no escapes, no control characters, valid UTF-8.
func plainBody(raw []byte) ([]byte, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return nil, false
	}
	body := raw[1 : len(raw)-1]
	for _, c := range body {
		if c < 0x20 || c == '"' || c == '\\' {
			return nil, false
		}
	}
	return body, utf8.Valid(body)
}
