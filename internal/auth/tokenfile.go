package auth

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// MinTokenLength is the least number of characters of a token in a token
// file; shorter tokens are refused as guessable.
const MinTokenLength = 32

// TokenEntry is one line of a token file, with the token replaced by its
// SHA-256 digest.
type TokenEntry struct {
	// Digest is the SHA-256 of the token.
	Digest [sha256.Size]byte
	// Name is the caller's name.
	Name string
	// Role is the caller's role.
	Role Role
	// Line is the line number in the file, from 1.
	Line int
}

// ParseTokenFile parses a token file: one "token,name,role" per line,
// fields trimmed of spaces; blank lines and lines starting with '#' are
// ignored. Tokens are at least MinTokenLength printable ASCII characters
// without spaces or commas, unique within the file; names are non-empty;
// roles are viewer, submitter, operator or admin. Errors name the line
// number and the field, and never contain a token.
func ParseTokenFile(data []byte) ([]TokenEntry, error) {
	var out []TokenEntry
	seen := map[[sha256.Size]byte]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.Split(text, ",")
		if len(fields) != 3 {
			return nil, fmt.Errorf("line %d: want 3 comma-separated fields token,name,role, got %d", line, len(fields))
		}
		token := strings.TrimSpace(fields[0])
		name := strings.TrimSpace(fields[1])
		roleText := strings.TrimSpace(fields[2])
		if len(token) < MinTokenLength {
			return nil, fmt.Errorf("line %d: field token: too short (%d characters, need at least %d)", line, len(token), MinTokenLength)
		}
		for i := 0; i < len(token); i++ {
			if c := token[i]; c <= ' ' || c > '~' {
				return nil, fmt.Errorf("line %d: field token: character %d is not printable ASCII (or is a space)", line, i+1)
			}
		}
		if name == "" {
			return nil, fmt.Errorf("line %d: field name: empty", line)
		}
		if !validName(name) {
			return nil, fmt.Errorf("line %d: field name: %s contains a character other than letters, digits, '.', '-', '_', '@' and ':'", line, quoteField(name))
		}
		role, err := ParseRole(roleText)
		if err != nil {
			return nil, fmt.Errorf("line %d: field role: unknown role %s (want viewer, submitter, operator or admin)", line, quoteField(roleText))
		}
		digest := sha256.Sum256([]byte(token))
		if prev, dup := seen[digest]; dup {
			return nil, fmt.Errorf("line %d: field token: same token as line %d", line, prev)
		}
		seen[digest] = line
		out = append(out, TokenEntry{Digest: digest, Name: name, Role: role, Line: line})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", line+1, err)
	}
	return out, nil
}

// quoteField quotes a field for an error message, unless it is long
// enough to be a token pasted into the wrong column.
func quoteField(s string) string {
	if len(s) > 24 {
		return fmt.Sprintf("(a %d-character value, not shown)", len(s))
	}
	return fmt.Sprintf("%q", s)
}

func validName(s string) bool {
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.ContainsRune(".-_@:", c):
		default:
			return false
		}
	}
	return true
}

// lookupDigest finds digest among entries comparing every entry in
// constant time, so the time taken does not depend on which entry, if
// any, matched.
func lookupDigest(entries []TokenEntry, digest [sha256.Size]byte) (TokenEntry, bool) {
	found := -1
	for i := range entries {
		if subtle.ConstantTimeCompare(entries[i].Digest[:], digest[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return TokenEntry{}, false
	}
	return entries[found], true
}

// TokenFileOptions tunes a TokenFile.
type TokenFileOptions struct {
	// CheckInterval is the least time between two checks of the file for
	// changes; default 2s.
	CheckInterval time.Duration
	// Logger receives reload messages; default slog.Default().
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// TokenFile authenticates bearer tokens listed in a static token file (see
// ParseTokenFile) and reloads the file when its modification time, size or
// identity changes, checked at most once per CheckInterval: a token
// removed from the file stops working at the next check. Only SHA-256
// digests of the tokens are kept in memory. A changed file that does not
// parse, or that disappears, is logged as an error and the tokens loaded
// before stay in force until a valid file is in place.
type TokenFile struct {
	path string
	opts TokenFileOptions

	mu        sync.Mutex
	entries   []TokenEntry
	info      os.FileInfo
	lastCheck time.Time
}

// NewTokenFile loads the token file at path; an unreadable or invalid file
// is an error.
func NewTokenFile(path string, opts TokenFileOptions) (*TokenFile, error) {
	if opts.CheckInterval <= 0 {
		opts.CheckInterval = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	f := &TokenFile{path: path, opts: opts}
	info, entries, err := f.read()
	if err != nil {
		return nil, err
	}
	f.info, f.entries, f.lastCheck = info, entries, opts.Now()
	return f, nil
}

func (f *TokenFile) read() (os.FileInfo, []TokenEntry, error) {
	info, err := os.Stat(f.path)
	if err != nil {
		return nil, nil, fmt.Errorf("token file: %w", err)
	}
	data, err := os.ReadFile(f.path)
	if err != nil {
		return nil, nil, fmt.Errorf("token file: %w", err)
	}
	entries, err := ParseTokenFile(data)
	if err != nil {
		return nil, nil, fmt.Errorf("token file %s: %w", f.path, err)
	}
	return info, entries, nil
}

// Authenticate returns the identity token belongs to, and false when the
// file does not list it.
func (f *TokenFile) Authenticate(token string) (Identity, bool) {
	digest := sha256.Sum256([]byte(token))
	f.mu.Lock()
	f.maybeReloadLocked()
	entries := f.entries
	f.mu.Unlock()
	e, ok := lookupDigest(entries, digest)
	if !ok {
		return Identity{}, false
	}
	return Identity{Name: e.Name, Kind: KindUser, Role: e.Role, Source: "token-file"}, true
}

func (f *TokenFile) maybeReloadLocked() {
	t := f.opts.Now()
	if t.Sub(f.lastCheck) < f.opts.CheckInterval {
		return
	}
	f.lastCheck = t
	info, err := os.Stat(f.path)
	if err != nil {
		f.opts.Logger.Error("token file unreadable; keeping the tokens loaded before", "path", f.path, "err", err)
		return
	}
	if info.ModTime().Equal(f.info.ModTime()) && info.Size() == f.info.Size() && os.SameFile(info, f.info) {
		return
	}
	info, entries, err := f.read()
	if err != nil {
		f.opts.Logger.Error("token file changed but does not load; keeping the tokens loaded before", "err", err)
		return
	}
	f.info, f.entries = info, entries
	f.opts.Logger.Info("token file reloaded", "path", f.path, "tokens", len(entries))
}
