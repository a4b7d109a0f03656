package auth

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func mustIssue(t testing.TB, tokens *Tokens, info TokenInfo) Token {
	t.Helper()
	tok, err := tokens.Issue(info)
	if err != nil {
		t.Fatalf("Issue(%+v): %v", info, err)
	}
	return tok
}

func TestTokenParse(t *testing.T) {
	tokens := NewTokens(nil)
	tok := mustIssue(t, tokens, TokenInfo{Account: "alice", Role: "imap", Expires: time.Now().Add(time.Hour)})
	s := tok.String()
	if len(s) != 64 || strings.ToLower(s) != s {
		t.Errorf("String() = %q, want 64 lower-case hex digits", s)
	}
	for _, in := range []string{s, strings.ToUpper(s)} {
		got, err := ParseToken(in)
		if err != nil || got != tok {
			t.Errorf("ParseToken(%q) = %v, %v; want the issued token", in, got, err)
		}
	}
	bad := []string{
		"",
		s[:62],
		s + "00",
		"zz" + s[2:],
		" " + s[1:],
	}
	for _, in := range bad {
		if got, err := ParseToken(in); err == nil {
			t.Errorf("ParseToken(%q) = %v, want error", in, got)
		}
	}
}

func TestTokensCheck(t *testing.T) {
	clock := newFakeClock()
	tokens := NewTokens(clock.now)
	info := TokenInfo{Account: "alice", Role: "imap", Generation: 3, Expires: clock.now().Add(time.Hour)}
	tok := mustIssue(t, tokens, info)
	other := mustIssue(t, tokens, TokenInfo{Account: "bob", Role: "imap", Generation: 3, Expires: clock.now().Add(time.Hour)})
	var unknown Token
	unknown[0] = 1

	tests := []struct {
		name       string
		tok        Token
		role       string
		generation uint64
		setup      func()
		ok         bool
	}{
		{"valid", tok, "imap", 3, nil, true},
		{"wrong role", tok, "smtp", 3, nil, false},
		{"wrong role case", tok, "IMAP", 3, nil, false},
		{"older generation", tok, "imap", 2, nil, false},
		{"newer generation", tok, "imap", 4, nil, false},
		{"unknown", unknown, "imap", 3, nil, false},
		{"still valid just before expiry", tok, "imap", 3, func() { clock.advance(time.Hour - time.Nanosecond) }, true},
		{"expired", tok, "imap", 3, func() { clock.advance(time.Nanosecond) }, false},
		{"revoked", other, "imap", 3, func() { tokens.Revoke(other) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup()
			}
			got, err := tokens.Check(tt.tok, tt.role, tt.generation)
			if tt.ok {
				if err != nil || got != info {
					t.Errorf("Check = %+v, %v; want %+v", got, err, info)
				}
				return
			}
			if !errors.Is(err, ErrTokenInvalid) {
				t.Errorf("Check = %+v, %v; want ErrTokenInvalid", got, err)
			}
			if got != (TokenInfo{}) {
				t.Errorf("Check returned info %+v with an error", got)
			}
		})
	}
	if n := tokens.Len(); n != 0 {
		t.Errorf("%d tokens held after expiry and revocation, want 0", n)
	}
}

func TestTokensRevokeGeneration(t *testing.T) {
	clock := newFakeClock()
	tokens := NewTokens(clock.now)
	exp := clock.now().Add(time.Hour)
	infos := []TokenInfo{
		{Account: "alice", Role: "imap", Generation: 3, Expires: exp},
		{Account: "bob", Role: "imap", Generation: 3, Expires: exp},
		{Account: "alice", Role: "imap", Generation: 4, Expires: exp},
		{Account: "alice", Role: "smtp", Generation: 3, Expires: exp},
		{Account: "admin", Role: "web", Generation: 3, Expires: exp, Admin: true},
	}
	var toks []Token
	for _, info := range infos {
		toks = append(toks, mustIssue(t, tokens, info))
	}
	tokens.RevokeGeneration("imap", 3)
	wantValid := []bool{false, false, true, true, true}
	for i, info := range infos {
		got, err := tokens.Check(toks[i], info.Role, info.Generation)
		if valid := err == nil; valid != wantValid[i] {
			t.Errorf("token %+v: valid %v (%v), want %v", info, valid, err, wantValid[i])
		} else if valid && got != info {
			t.Errorf("token %+v: Check returned %+v", info, got)
		}
	}
}

func TestTokensRevokeAccount(t *testing.T) {
	clock := newFakeClock()
	tokens := NewTokens(clock.now)
	exp := clock.now().Add(time.Hour)
	infos := []TokenInfo{
		{Account: "alice", Role: "imap", Generation: 1, Expires: exp},
		{Account: "Alice", Role: "web", Generation: 2, Expires: exp},
		{Account: "alice2", Role: "imap", Generation: 1, Expires: exp},
		{Account: "bob", Role: "imap", Generation: 1, Expires: exp},
	}
	var toks []Token
	for _, info := range infos {
		toks = append(toks, mustIssue(t, tokens, info))
	}
	tokens.RevokeAccount("ALICE")
	wantValid := []bool{false, false, true, true}
	for i, info := range infos {
		_, err := tokens.Check(toks[i], info.Role, info.Generation)
		if valid := err == nil; valid != wantValid[i] {
			t.Errorf("token %+v: valid %v (%v), want %v", info, valid, err, wantValid[i])
		}
	}
}

func TestTokensIssueErrors(t *testing.T) {
	clock := newFakeClock()
	tokens := NewTokens(clock.now)
	tests := []struct {
		name string
		info TokenInfo
		want string
	}{
		{"no account", TokenInfo{Role: "imap", Expires: clock.now().Add(time.Hour)}, "no account"},
		{"no role", TokenInfo{Account: "alice", Expires: clock.now().Add(time.Hour)}, "no role"},
		{"no expiry", TokenInfo{Account: "alice", Role: "imap"}, "expiry"},
		{"expires now", TokenInfo{Account: "alice", Role: "imap", Expires: clock.now()}, "expiry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := tokens.Issue(tt.info)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Issue = %v, %v; want error mentioning %q", tok, err, tt.want)
			}
		})
	}
	if n := tokens.Len(); n != 0 {
		t.Errorf("%d tokens held after failed issues", n)
	}
}

func TestTokensUniqueAndHashed(t *testing.T) {
	tokens := NewTokens(nil)
	const n = 2000
	seen := map[Token]bool{}
	for range n {
		tok := mustIssue(t, tokens, TokenInfo{Account: "alice", Role: "web", Expires: time.Now().Add(time.Hour)})
		if tok == (Token{}) {
			t.Fatalf("issued the zero token")
		}
		if seen[tok] {
			t.Fatalf("token %s issued twice", tok)
		}
		seen[tok] = true
	}
	tokens.mu.Lock()
	defer tokens.mu.Unlock()
	if len(tokens.byHash) != n {
		t.Fatalf("table holds %d tokens, want %d", len(tokens.byHash), n)
	}
	for k := range tokens.byHash {
		if seen[Token(k)] {
			t.Fatalf("table key %x is a token itself, want its hash", k)
		}
	}
	for tok := range seen {
		h := tokenHash(tok)
		if _, ok := tokens.byHash[h]; !ok || bytes.Equal(h[:], tok[:]) {
			t.Fatalf("token %s not stored under its SHA-256", tok)
		}
	}
}

func TestTokensSweep(t *testing.T) {
	clock := newFakeClock()
	tokens := NewTokens(clock.now)
	for range 1000 {
		mustIssue(t, tokens, TokenInfo{Account: "a", Role: "web", Expires: clock.now().Add(time.Minute)})
	}
	clock.advance(time.Minute)
	live := mustIssue(t, tokens, TokenInfo{Account: "b", Role: "web", Expires: clock.now().Add(time.Hour)})
	for range 1000 {
		mustIssue(t, tokens, TokenInfo{Account: "c", Role: "web", Expires: clock.now().Add(time.Second)})
		clock.advance(time.Second)
	}
	if n := tokens.Len(); n >= 1000 {
		t.Errorf("%d tokens held, most of them expired; want expired ones swept", n)
	}
	if _, err := tokens.Check(live, "web", 0); err != nil {
		t.Errorf("live token swept: %v", err)
	}
}

func TestTokensConcurrent(t *testing.T) {
	tokens := NewTokens(nil)
	exp := time.Now().Add(time.Hour)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 100 {
				tok, err := tokens.Issue(TokenInfo{Account: "alice", Role: "imap", Generation: uint64(w), Expires: exp})
				if err != nil {
					t.Errorf("Issue: %v", err)
					return
				}
				if _, err := tokens.Check(tok, "imap", uint64(w)); err != nil {
					t.Errorf("Check of fresh token: %v", err)
				}
				if i%2 == 0 {
					tokens.Revoke(tok)
				}
				tokens.RevokeGeneration("imap", 1000+uint64(w))
			}
		})
	}
	wg.Wait()
	if n := tokens.Len(); n != 8*50 {
		t.Errorf("%d tokens held, want %d", n, 8*50)
	}
}

func BenchmarkTokensCheck(b *testing.B) {
	tokens := NewTokens(nil)
	var tok Token
	for range 10000 {
		tok = mustIssue(b, tokens, TokenInfo{Account: "alice", Role: "imap", Expires: time.Now().Add(time.Hour)})
	}
	for b.Loop() {
		if _, err := tokens.Check(tok, "imap", 0); err != nil {
			b.Fatal(err)
		}
	}
}
