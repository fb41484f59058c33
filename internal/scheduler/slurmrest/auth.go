package slurmrest

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// tokenSource yields the X-SLURM-USER-TOKEN value for the next request.
type tokenSource interface {
	token() (string, error)
}

// staticToken is a fixed token. Slurm 22.05 does not answer an expired
// token with 401 but with a dropped connection, so the token's own exp claim
// is checked before each use.
type staticToken struct {
	tok string
	exp time.Time // zero when the token has no readable exp claim
	now func() time.Time
}

func newStaticToken(tok string, now func() time.Time) staticToken {
	st := staticToken{tok: tok, now: now}
	// The signature cannot be checked here (the key is Slurm's); only the
	// claims are read.
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(tok, claims); err == nil {
		if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
			st.exp = exp.Time
		}
	}
	return st
}

func (t staticToken) token() (string, error) {
	if !t.exp.IsZero() && !t.now().Before(t.exp) {
		return "", fmt.Errorf("%w: the configured token expired at %s", ErrUnauthorized, t.exp.UTC().Format(time.RFC3339))
	}
	return t.tok, nil
}

// jwtMinter mints HS256 tokens the way "scontrol token" does: claims iat,
// exp and sun, signed with the raw bytes of Slurm's jwt key file. It caches
// a token until a third of its lifetime is left.
type jwtMinter struct {
	keyFile  string
	user     string
	lifetime time.Duration
	now      func() time.Time
	logger   *slog.Logger

	mu      sync.Mutex
	cached  string
	renewAt time.Time
	lastKey []byte // last key read, used if a later read fails
}

func (m *jwtMinter) token() (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if m.cached != "" && now.Before(m.renewAt) {
		return m.cached, nil
	}
	key, err := readKey(m.keyFile)
	if err != nil {
		if m.lastKey == nil {
			return "", err
		}
		m.logger.Warn("slurmrest: re-reading the JWT key failed; minting with the previous key",
			"key_file", m.keyFile, "err", err)
		key = m.lastKey
	}
	m.lastKey = key
	tok, err := mintToken(key, m.user, now, m.lifetime)
	if err != nil {
		return "", err
	}
	m.cached = tok
	m.renewAt = now.Add(m.lifetime - m.lifetime/3)
	m.logger.Debug("slurmrest: minted a token", "user", m.user, "lifetime", m.lifetime)
	return tok, nil
}

// mintToken returns an HS256 JWT with the claims Slurm's auth/jwt plugin
// checks: "exp" (must be in the future), "iat" and "sun", the Slurm user
// name. The times are whole seconds, as Slurm reads them with
// jwt_get_grant_int.
func mintToken(key []byte, user string, now time.Time, lifetime time.Duration) (string, error) {
	claims := jwt.MapClaims{
		"iat": now.Unix(),
		"exp": now.Add(lifetime).Unix(),
		"sun": user,
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(key)
	if err != nil {
		return "", fmt.Errorf("sign JWT: %w", err)
	}
	return tok, nil
}
