package auth

// Session and admin tokens (DESIGN.md §6).
//
// Implementation notes:
//   - A token is 256 bits from crypto/rand. The table is keyed by the
//     SHA-256 of the token, never the token itself: a map lookup takes time
//     that depends on the key's bytes, and with hashed keys that time says
//     nothing an attacker can steer towards a valid token; a dump of the
//     table gives no usable tokens.
//   - A token is valid only for the role and channel generation it was
//     issued for, and only before its expiry. Channel reset revokes a
//     generation; a store restart starts with an empty table, which revokes
//     everything.
//   - One mutex guards the table. Expired tokens are dropped when Check
//     meets them and in a sweep that runs when the table has doubled since
//     the previous sweep, so the table stays proportional to live tokens.

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// TokenSize is the size of a token in bytes.
const TokenSize = 32

// ErrTokenInvalid is returned by Check for a token that is unknown, revoked,
// expired or presented for another role or channel generation; the wrapped
// text says which, for logs. The client has to log in again.
var ErrTokenInvalid = errors.New("session token not valid, log in again")

// Token is a session or admin token.
type Token [TokenSize]byte

// String returns the token in lower-case hex, the form it travels in.
func (t Token) String() string { return hex.EncodeToString(t[:]) }

// ParseToken parses the hex form String returns.
func ParseToken(s string) (Token, error) {
	var t Token
	if len(s) != 2*TokenSize {
		return t, fmt.Errorf("parse token: need %d hex digits, got %d characters", 2*TokenSize, len(s))
	}
	if _, err := hex.Decode(t[:], []byte(s)); err != nil {
		return Token{}, fmt.Errorf("parse token: %w", err)
	}
	return t, nil
}

// TokenInfo is what a token stands for.
type TokenInfo struct {
	Account    string
	Role       string // role process the token was issued to: smtp, submission, imap, web, moxctl
	Generation uint64 // generation of the role's channel to store
	Expires    time.Time
	Admin      bool // the token authorizes admin actions
}

// Tokens is the in-memory token table of moxd-store. It is safe for
// concurrent use. The zero value is not usable; call NewTokens.
type Tokens struct {
	now func() time.Time

	mu        sync.Mutex
	byHash    map[[sha256.Size]byte]TokenInfo
	nextSweep int
}

// minSweep is the table size below which no sweep runs.
const minSweep = 64

// NewTokens returns an empty table reading time from now; a nil now means
// time.Now.
func NewTokens(now func() time.Time) *Tokens {
	if now == nil {
		now = time.Now
	}
	return &Tokens{now: now, byHash: map[[sha256.Size]byte]TokenInfo{}, nextSweep: minSweep}
}

func tokenHash(t Token) [sha256.Size]byte { return sha256.Sum256(t[:]) }

// Issue makes a new random token for info. Account and Role must be set and
// Expires must be in the future.
func (t *Tokens) Issue(info TokenInfo) (Token, error) {
	if info.Account == "" {
		return Token{}, errors.New("issue token: no account given")
	}
	if info.Role == "" {
		return Token{}, fmt.Errorf("issue token for %s: no role given", info.Account)
	}
	var tok Token
	if _, err := rand.Read(tok[:]); err != nil {
		return Token{}, fmt.Errorf("issue token for %s: reading random bytes: %w", info.Account, err)
	}
	h := tokenHash(tok)

	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if !info.Expires.After(now) {
		return Token{}, fmt.Errorf("issue token for %s: expiry %s is not after the current time %s", info.Account, info.Expires.Format(time.RFC3339), now.Format(time.RFC3339))
	}
	if _, dup := t.byHash[h]; dup {
		// 256 random bits do not repeat unless the random source is broken.
		return Token{}, fmt.Errorf("issue token for %s: random source repeated a token", info.Account)
	}
	if len(t.byHash) >= t.nextSweep {
		t.sweep(now)
		t.nextSweep = max(minSweep, 2*len(t.byHash))
	}
	t.byHash[h] = info
	return tok, nil
}

// sweep drops expired tokens. Callers hold t.mu.
func (t *Tokens) sweep(now time.Time) {
	for h, info := range t.byHash {
		if !now.Before(info.Expires) {
			delete(t.byHash, h)
		}
	}
}

// Check returns what tok stands for if it was issued for role and
// generation, has not expired and has not been revoked. Otherwise the error
// wraps ErrTokenInvalid.
func (t *Tokens) Check(tok Token, role string, generation uint64) (TokenInfo, error) {
	h := tokenHash(tok)
	t.mu.Lock()
	defer t.mu.Unlock()
	info, ok := t.byHash[h]
	switch {
	case !ok:
		return TokenInfo{}, fmt.Errorf("%w: unknown or revoked", ErrTokenInvalid)
	case !t.now().Before(info.Expires):
		delete(t.byHash, h)
		return TokenInfo{}, fmt.Errorf("%w: expired at %s", ErrTokenInvalid, info.Expires.Format(time.RFC3339))
	case info.Role != role:
		return TokenInfo{}, fmt.Errorf("%w: issued for role %q, presented by %q", ErrTokenInvalid, info.Role, role)
	case info.Generation != generation:
		return TokenInfo{}, fmt.Errorf("%w: issued for channel generation %d, presented on %d", ErrTokenInvalid, info.Generation, generation)
	}
	return info, nil
}

// Revoke ends tok, at session close. Revoking an unknown token does nothing.
func (t *Tokens) Revoke(tok Token) {
	h := tokenHash(tok)
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.byHash, h)
}

// RevokeGeneration ends every token issued for role on channel generation,
// when that channel is reset. Tokens of other roles or generations stay.
func (t *Tokens) RevokeGeneration(role string, generation uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for h, info := range t.byHash {
		if info.Role == role && info.Generation == generation {
			delete(t.byHash, h)
		}
	}
}

// RevokeAccount ends every token of account, compared case-insensitively,
// for example when its password changes or it is removed.
func (t *Tokens) RevokeAccount(account string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for h, info := range t.byHash {
		if strings.EqualFold(info.Account, account) {
			delete(t.byHash, h)
		}
	}
}

// Len returns the number of tokens held, expired ones not yet dropped
// included, for metrics.
func (t *Tokens) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byHash)
}
