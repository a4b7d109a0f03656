package auth

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fastParams keep tests quick; DefaultParams is exercised by its own test
// and the benchmark.
var fastParams = Params{Argon2Time: 1, Argon2MemoryKiB: 64, Argon2Threads: 1, SCRAMIterations: MinSCRAMIterations}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// lookupMap serves credentials from a map.
func lookupMap(m map[string]Credentials) Lookup {
	return func(ctx context.Context, authcid string) (Credentials, error) {
		c, ok := m[authcid]
		if !ok {
			return Credentials{}, fmt.Errorf("account %q: %w", authcid, ErrUnknownUser)
		}
		return c, nil
	}
}

func mustCreds(t testing.TB, password string) Credentials {
	t.Helper()
	c, err := NewCredentials(password, fastParams)
	if err != nil {
		t.Fatalf("NewCredentials: %v", err)
	}
	return c
}

// scramClient is the client side of SCRAM written for the tests, used where
// gsasl cannot be (tls-server-end-point, malformed variants).
type scramClient struct {
	h        func() hash.Hash
	user     string
	password string
	authzid  string
	flag     string // "n", "y" or "p=<type>"
	cbData   []byte
	nonce    string

	gs2       string
	bare      string
	serverSig []byte
}

func (c *scramClient) first() []byte {
	c.gs2 = c.flag + ","
	if c.authzid != "" {
		c.gs2 += "a=" + escapeName(c.authzid)
	}
	c.gs2 += ","
	if c.nonce == "" {
		c.nonce = "clientnonce0123456789"
	}
	c.bare = "n=" + escapeName(c.user) + ",r=" + c.nonce
	return []byte(c.gs2 + c.bare)
}

func escapeName(s string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s)
}

// final builds client-final-message from server-first; nonce overrides the
// r= value when not empty.
func (c *scramClient) final(t testing.TB, serverFirst []byte, nonce string) []byte {
	t.Helper()
	var r, salt string
	var iter int
	for _, a := range strings.Split(string(serverFirst), ",") {
		switch {
		case strings.HasPrefix(a, "r="):
			r = a[2:]
		case strings.HasPrefix(a, "s="):
			salt = a[2:]
		case strings.HasPrefix(a, "i="):
			iter, _ = strconv.Atoi(a[2:])
		}
	}
	if !strings.HasPrefix(r, c.nonce) || len(r) <= len(c.nonce) {
		t.Fatalf("server nonce %q does not extend client nonce %q", r, c.nonce)
	}
	if nonce != "" {
		r = nonce
	}
	saltb, err := base64.StdEncoding.DecodeString(salt)
	if err != nil {
		t.Fatalf("salt %q: %v", salt, err)
	}
	salted, err := pbkdf2.Key(c.h, c.password, saltb, iter, c.h().Size())
	if err != nil {
		t.Fatal(err)
	}
	withoutProof := "c=" + base64.StdEncoding.EncodeToString(append([]byte(c.gs2), c.cbData...)) + ",r=" + r
	authMsg := c.bare + "," + string(serverFirst) + "," + withoutProof
	clientKey := hmacSum(c.h, salted, []byte("Client Key"))
	hh := c.h()
	hh.Write(clientKey)
	clientSig := hmacSum(c.h, hh.Sum(nil), []byte(authMsg))
	proof := make([]byte, len(clientKey))
	for i := range proof {
		proof[i] = clientKey[i] ^ clientSig[i]
	}
	c.serverSig = hmacSum(c.h, hmacSum(c.h, salted, []byte("Server Key")), []byte(authMsg))
	return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof))
}

func (c *scramClient) checkServerFinal(msg []byte) bool {
	return hmac.Equal(msg, []byte("v="+base64.StdEncoding.EncodeToString(c.serverSig)))
}

// TestSCRAMVectors replays RFC 5802 §5 and RFC 7677 §3 byte for byte.
func TestSCRAMVectors(t *testing.T) {
	tests := []struct {
		mech        string
		h           func() hash.Hash
		salt        string
		serverNonce string
		msgs        []string // client-first, server-first, client-final, server-final
	}{
		{
			MechSCRAMSHA1, sha1.New, "QSXCR+Q6sek8bf92", "3rfcNHYJY1ZVvWVs7j",
			[]string{
				"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
				"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
				"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
				"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
			},
		},
		{
			MechSCRAMSHA256, sha256.New, "W22ZaJ0SNY7soEsUEjb6gQ==", "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
			[]string{
				"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
				"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
				"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
				"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.mech, func(t *testing.T) {
			ctx := testContext(t)
			salt, _ := base64.StdEncoding.DecodeString(tc.salt)
			keys, err := newSCRAMKeys(tc.h, "pencil", salt, 4096)
			if err != nil {
				t.Fatal(err)
			}
			var c Credentials
			c.SCRAMSHA1, c.SCRAMSHA256 = keys, keys
			m, err := NewServer(tc.mech, lookupMap(map[string]Credentials{"user": c}), NewHasher(1), false, nil)
			if err != nil {
				t.Fatal(err)
			}
			m.(*scramServer).nonce = tc.serverNonce
			ch, done, err := m.Next(ctx, []byte(tc.msgs[0]))
			if err != nil || done || string(ch) != tc.msgs[1] {
				t.Fatalf("server-first: got %q, %v, %v; want %q", ch, done, err, tc.msgs[1])
			}
			ch, done, err = m.Next(ctx, []byte(tc.msgs[2]))
			if err != nil || done || string(ch) != tc.msgs[3] {
				t.Fatalf("server-final: got %q, %v, %v; want %q", ch, done, err, tc.msgs[3])
			}
			ch, done, err = m.Next(ctx, []byte{})
			if err != nil || !done || ch != nil || m.Identity() != "user" {
				t.Fatalf("end: got %q, %v, %v, identity %q", ch, done, err, m.Identity())
			}
		})
	}
}

// TestCRAMMD5Vector replays the RFC 2195 §2 example.
func TestCRAMMD5Vector(t *testing.T) {
	ctx := testContext(t)
	creds := mustCreds(t, "tanstaaftanstaaf")
	challenge := "<1896.697170952@postoffice.reston.mci.net>"
	for _, tc := range []struct {
		response string
		wantErr  error
	}{
		{"tim b913a602c7eda7a495b4e6e7334d3890", nil},
		{"tim B913A602C7EDA7A495B4E6E7334D3890", nil},
		{"tim b913a602c7eda7a495b4e6e7334d3891", ErrAuthFailed},
		{"tom b913a602c7eda7a495b4e6e7334d3890", ErrAuthFailed},
		{"tim b913a602c7eda7a495b4e6e7334d38", ErrMalformed},
		{"timb913a602c7eda7a495b4e6e7334d3890", ErrMalformed},
		{"*", ErrAborted},
	} {
		t.Run(tc.response, func(t *testing.T) {
			m, err := NewServer(MechCRAMMD5, lookupMap(map[string]Credentials{"tim": creds}), NewHasher(1), false, nil)
			if err != nil {
				t.Fatal(err)
			}
			m.(*cramServer).challenge = []byte(challenge)
			ch, done, err := m.Next(ctx, nil)
			if err != nil || done || string(ch) != challenge {
				t.Fatalf("challenge: %q %v %v", ch, done, err)
			}
			_, done, err = m.Next(ctx, []byte(tc.response))
			if !errors.Is(err, tc.wantErr) || done != (tc.wantErr == nil) {
				t.Fatalf("got done %v err %v, want err %v", done, err, tc.wantErr)
			}
			if tc.wantErr == nil && m.Identity() != "tim" {
				t.Fatalf("identity %q", m.Identity())
			}
		})
	}
}

func TestCRAMMD5Challenge(t *testing.T) {
	ctx := testContext(t)
	var seen []string
	for range 2 {
		m, err := NewServer(MechCRAMMD5, lookupMap(nil), NewHasher(1), false, nil)
		if err != nil {
			t.Fatal(err)
		}
		ch, _, err := m.Next(ctx, nil)
		if err != nil || !bytes.HasPrefix(ch, []byte("<")) || !bytes.HasSuffix(ch, []byte("@moxd>")) {
			t.Fatalf("challenge %q, %v", ch, err)
		}
		seen = append(seen, string(ch))
	}
	if seen[0] == seen[1] {
		t.Fatalf("two exchanges got the same challenge %q", seen[0])
	}
	m, _ := NewServer(MechCRAMMD5, lookupMap(nil), NewHasher(1), false, nil)
	if _, _, err := m.Next(ctx, []byte("tim 00")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("initial response: got %v, want ErrMalformed", err)
	}
}

func TestPlainLogin(t *testing.T) {
	creds := mustCreds(t, "secret")
	lookup := lookupMap(map[string]Credentials{"mjl": creds})
	tests := []struct {
		name     string
		mech     string
		steps    []string // client responses; "<nil>" is no initial response
		wantCh   []string // challenges expected before the last step
		wantErr  error
		identity string
	}{
		{"plain initial", MechPLAIN, []string{"\x00mjl\x00secret"}, nil, nil, "mjl"},
		{"plain authzid self", MechPLAIN, []string{"mjl\x00mjl\x00secret"}, nil, nil, "mjl"},
		{"plain no initial", MechPLAIN, []string{"<nil>", "\x00mjl\x00secret"}, []string{""}, nil, "mjl"},
		{"plain other authzid", MechPLAIN, []string{"admin\x00mjl\x00secret"}, nil, ErrAuthFailed, ""},
		{"plain wrong password", MechPLAIN, []string{"\x00mjl\x00wrong"}, nil, ErrAuthFailed, ""},
		{"plain unknown user", MechPLAIN, []string{"\x00nobody\x00secret"}, nil, ErrAuthFailed, ""},
		{"plain one nul", MechPLAIN, []string{"mjl\x00secret"}, nil, ErrMalformed, ""},
		{"plain three nuls", MechPLAIN, []string{"\x00mjl\x00secret\x00"}, nil, ErrMalformed, ""},
		{"plain empty password", MechPLAIN, []string{"\x00mjl\x00"}, nil, ErrMalformed, ""},
		{"plain too long", MechPLAIN, []string{"\x00mjl\x00" + strings.Repeat("x", MaxMessageSize)}, nil, ErrMalformed, ""},
		{"plain abort", MechPLAIN, []string{"<nil>", "*"}, []string{""}, ErrAborted, ""},
		{"login", MechLOGIN, []string{"<nil>", "mjl", "secret"}, []string{"Username:", "Password:"}, nil, "mjl"},
		{"login initial user", MechLOGIN, []string{"mjl", "secret"}, []string{"Password:"}, nil, "mjl"},
		{"login wrong password", MechLOGIN, []string{"<nil>", "mjl", "wrong"}, []string{"Username:", "Password:"}, ErrAuthFailed, ""},
		{"login unknown", MechLOGIN, []string{"<nil>", "nobody", "secret"}, []string{"Username:", "Password:"}, ErrAuthFailed, ""},
		{"login abort", MechLOGIN, []string{"<nil>", "mjl", "*"}, []string{"Username:", "Password:"}, ErrAborted, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t)
			m, err := NewServer(tc.mech, lookup, NewHasher(2), true, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range tc.steps {
				var resp []byte
				if s != "<nil>" {
					resp = []byte(s)
				}
				ch, done, err := m.Next(ctx, resp)
				if i < len(tc.steps)-1 {
					if err != nil || done || string(ch) != tc.wantCh[i] {
						t.Fatalf("step %d: got %q, %v, %v; want challenge %q", i, ch, done, err, tc.wantCh[i])
					}
					continue
				}
				if !errors.Is(err, tc.wantErr) || done != (tc.wantErr == nil) {
					t.Fatalf("last step: got done %v err %v, want %v", done, err, tc.wantErr)
				}
			}
			if m.Identity() != tc.identity {
				t.Fatalf("identity %q, want %q", m.Identity(), tc.identity)
			}
			if _, _, err := m.Next(ctx, []byte("x")); err == nil {
				t.Fatal("Next after the end succeeded")
			}
		})
	}
}

func TestMechanisms(t *testing.T) {
	if got, want := Mechanisms(false, false), []string{MechSCRAMSHA256, MechSCRAMSHA1, MechCRAMMD5}; !slices.Equal(got, want) {
		t.Errorf("no tls: %v, want %v", got, want)
	}
	if got := Mechanisms(true, false); slices.Contains(got, MechSCRAMSHA256Plus) || !slices.Contains(got, MechPLAIN) || !slices.Contains(got, MechLOGIN) {
		t.Errorf("tls without cb: %v", got)
	}
	if got := Mechanisms(true, true); got[0] != MechSCRAMSHA256Plus || !slices.Contains(got, MechSCRAMSHA1Plus) {
		t.Errorf("tls with cb: %v", got)
	}
	lookup, h := lookupMap(nil), NewHasher(1)
	cb := []ChannelBinding{{CBTLSExporter, []byte{1, 2, 3}}}
	for _, tc := range []struct {
		name string
		tls  bool
		cb   []ChannelBinding
		ok   bool
	}{
		{MechPLAIN, false, nil, false},
		{MechLOGIN, false, nil, false},
		{MechPLAIN, true, nil, true},
		{MechSCRAMSHA256Plus, true, nil, false},
		{MechSCRAMSHA256Plus, false, cb, false},
		{MechSCRAMSHA256Plus, true, []ChannelBinding{{"tls-unique", []byte{1}}}, false},
		{MechSCRAMSHA1Plus, true, cb, true},
		{MechCRAMMD5, false, nil, true},
		{"DIGEST-MD5", true, cb, false},
	} {
		_, err := NewServer(tc.name, lookup, h, tc.tls, tc.cb)
		if (err == nil) != tc.ok {
			t.Errorf("NewServer(%s, tls %v, cb %v): err %v, want ok %v", tc.name, tc.tls, tc.cb, err, tc.ok)
		}
	}
}

// TestSCRAM runs the test client against the server, including -PLUS with
// both binding types and the failures a client or attacker can cause.
func TestSCRAM(t *testing.T) {
	creds := mustCreds(t, "pass word")
	lookup := lookupMap(map[string]Credentials{"mjl": creds, "a,b=c": creds})
	exporter := []byte("exporter-data-0123456789abcdef01")
	endpoint := []byte("end-point-hash-0123456789abcdef0")
	bothCB := []ChannelBinding{{CBTLSExporter, exporter}, {CBTLSServerEndPoint, endpoint}}

	type step int
	const (
		failFirst step = iota
		failFinal
		success
	)
	tests := []struct {
		name     string
		mech     string
		tls      bool
		cb       []ChannelBinding
		client   scramClient
		first    string // replaces the client-first-message when set
		nonce    string // replaces r= in client-final when set; "CLIENT" is the client nonce only
		final    string // replaces the client-final-message when set
		wantStep step
		wantErr  error
	}{
		{name: "sha1", mech: MechSCRAMSHA1, client: scramClient{flag: "n"}, wantStep: success},
		{name: "sha256", mech: MechSCRAMSHA256, client: scramClient{flag: "n"}, wantStep: success},
		{name: "escaped user", mech: MechSCRAMSHA256, client: scramClient{flag: "n", user: "a,b=c"}, wantStep: success},
		{name: "authzid self", mech: MechSCRAMSHA256, client: scramClient{flag: "n", authzid: "mjl"}, wantStep: success},
		{name: "authzid other", mech: MechSCRAMSHA256, client: scramClient{flag: "n", authzid: "root"}, wantStep: failFinal, wantErr: ErrAuthFailed},
		{name: "y without plus offered", mech: MechSCRAMSHA256, tls: true, client: scramClient{flag: "y"}, wantStep: success},
		{name: "y downgrade", mech: MechSCRAMSHA256, tls: true, cb: bothCB, client: scramClient{flag: "y"}, wantStep: failFirst, wantErr: ErrAuthFailed},
		{name: "plus exporter", mech: MechSCRAMSHA256Plus, tls: true, cb: bothCB, client: scramClient{flag: "p=tls-exporter", cbData: exporter}, wantStep: success},
		{name: "plus endpoint sha1", mech: MechSCRAMSHA1Plus, tls: true, cb: bothCB, client: scramClient{flag: "p=tls-server-end-point", cbData: endpoint}, wantStep: success},
		{name: "plus cb mismatch", mech: MechSCRAMSHA256Plus, tls: true, cb: bothCB, client: scramClient{flag: "p=tls-exporter", cbData: endpoint}, wantStep: failFinal, wantErr: ErrAuthFailed},
		{name: "plus type unavailable", mech: MechSCRAMSHA256Plus, tls: true, cb: bothCB[:1], client: scramClient{flag: "p=tls-server-end-point", cbData: endpoint}, wantStep: failFirst, wantErr: ErrAuthFailed},
		{name: "plus with n flag", mech: MechSCRAMSHA256Plus, tls: true, cb: bothCB, client: scramClient{flag: "n"}, wantStep: failFirst, wantErr: ErrMalformed},
		{name: "p flag on non-plus", mech: MechSCRAMSHA256, tls: true, cb: bothCB, client: scramClient{flag: "p=tls-exporter", cbData: exporter}, wantStep: failFirst, wantErr: ErrMalformed},
		{name: "wrong password", mech: MechSCRAMSHA256, client: scramClient{flag: "n", password: "wrong"}, wantStep: failFinal, wantErr: ErrAuthFailed},
		{name: "unknown user", mech: MechSCRAMSHA1, client: scramClient{flag: "n", user: "nobody"}, wantStep: failFinal, wantErr: ErrAuthFailed},
		{name: "client nonce only", mech: MechSCRAMSHA256, client: scramClient{flag: "n"}, nonce: "CLIENT", wantStep: failFinal, wantErr: ErrMalformed},
		{name: "other nonce", mech: MechSCRAMSHA256, client: scramClient{flag: "n"}, nonce: "clientnonce0123456789AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", wantStep: failFinal, wantErr: ErrMalformed},
		{name: "bad gs2 flag", mech: MechSCRAMSHA256, first: "x,,n=mjl,r=abcdef", wantStep: failFirst, wantErr: ErrMalformed},
		{name: "no gs2 header", mech: MechSCRAMSHA256, first: "n=mjl,r=abcdef", wantStep: failFirst, wantErr: ErrMalformed},
		{name: "bad authzid", mech: MechSCRAMSHA256, first: "n,mjl,n=mjl,r=abcdef", wantStep: failFirst, wantErr: ErrMalformed},
		{name: "missing nonce", mech: MechSCRAMSHA256, first: "n,,n=mjl", wantStep: failFirst, wantErr: ErrMalformed},
		{name: "missing user", mech: MechSCRAMSHA256, first: "n,,r=abcdef", wantStep: failFirst, wantErr: ErrMalformed},
		{name: "bad escape", mech: MechSCRAMSHA256, first: "n,,n=mj=2Xl,r=abcdef", wantStep: failFirst, wantErr: ErrMalformed},
		{name: "mandatory extension", mech: MechSCRAMSHA256, first: "n,,m=ext,n=mjl,r=abcdef", wantStep: failFirst, wantErr: ErrMalformed},
		{name: "no initial response twice", mech: MechSCRAMSHA256, first: "<nil>", wantStep: failFirst, wantErr: ErrMalformed},
		{name: "abort first", mech: MechSCRAMSHA256, first: "*", wantStep: failFirst, wantErr: ErrAborted},
		{name: "abort final", mech: MechSCRAMSHA256, client: scramClient{flag: "n"}, final: "*", wantStep: failFinal, wantErr: ErrAborted},
		{name: "missing proof", mech: MechSCRAMSHA256, client: scramClient{flag: "n"}, final: "c=biws,r=x", wantStep: failFinal, wantErr: ErrMalformed},
		{name: "missing channel binding", mech: MechSCRAMSHA256, client: scramClient{flag: "n"}, final: "r=x,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", wantStep: failFinal, wantErr: ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t)
			m, err := NewServer(tc.mech, lookup, NewHasher(1), tc.tls, tc.cb)
			if err != nil {
				t.Fatal(err)
			}
			c := tc.client
			c.h = sha256.New
			if strings.HasPrefix(tc.mech, MechSCRAMSHA1) && !strings.HasPrefix(tc.mech, MechSCRAMSHA256) {
				c.h = sha1.New
			}
			if c.user == "" {
				c.user = "mjl"
			}
			if c.password == "" {
				c.password = "pass word"
			}
			first := c.first()
			if tc.first != "" {
				first = []byte(tc.first)
			}
			if ch, _, err := m.Next(ctx, nil); err != nil || len(ch) != 0 {
				t.Fatalf("no initial response: got %q, %v; want empty challenge", ch, err)
			}
			if tc.first == "<nil>" {
				first = nil
			}
			serverFirst, done, err := m.Next(ctx, first)
			if tc.wantStep == failFirst {
				if !errors.Is(err, tc.wantErr) || done {
					t.Fatalf("client-first: got %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || done {
				t.Fatalf("client-first: %v", err)
			}
			nonce := tc.nonce
			if nonce == "CLIENT" {
				nonce = c.nonce
			}
			final := c.final(t, serverFirst, nonce)
			if tc.final != "" {
				final = []byte(tc.final)
			}
			serverFinal, done, err := m.Next(ctx, final)
			if tc.wantStep == failFinal {
				if !errors.Is(err, tc.wantErr) || done {
					t.Fatalf("client-final: got %v, want %v", err, tc.wantErr)
				}
				if errors.Is(err, ErrAuthFailed) && !bytes.HasPrefix(serverFinal, []byte("e=")) {
					t.Fatalf("failure without e= message: %q", serverFinal)
				}
				if m.Identity() != "" {
					t.Fatalf("identity %q after failure", m.Identity())
				}
				return
			}
			if err != nil || done {
				t.Fatalf("client-final: %v", err)
			}
			if !c.checkServerFinal(serverFinal) {
				t.Fatalf("server signature %q does not verify", serverFinal)
			}
			if _, done, err := m.Next(ctx, nil); err != nil || !done || m.Identity() != c.user {
				t.Fatalf("end: %v %v identity %q", done, err, m.Identity())
			}
		})
	}
}

// TestSCRAMUnknownUser checks that an unknown user gets a stable salt and
// the default iteration count, as an existing user would.
func TestSCRAMUnknownUser(t *testing.T) {
	ctx := testContext(t)
	h := NewHasherSecret(1, []byte("0123456789abcdef"))
	first := func(user string) string {
		m, err := NewServer(MechSCRAMSHA256, lookupMap(nil), h, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		ch, _, err := m.Next(ctx, []byte("n,,n="+user+",r=abcdefgh"))
		if err != nil {
			t.Fatal(err)
		}
		_, rest, _ := strings.Cut(string(ch), ",")
		return rest
	}
	a, b, other := first("ghost"), first("ghost"), first("spook")
	if a != b {
		t.Errorf("salt for same unknown user differs: %q, %q", a, b)
	}
	if a == other {
		t.Errorf("two unknown users share salt %q", a)
	}
	if want := ",i=" + strconv.Itoa(DefaultParams().SCRAMIterations); !strings.HasSuffix(a, want) {
		t.Errorf("unknown user server-first %q, want suffix %q", a, want)
	}
	h2 := NewHasherSecret(1, []byte("0123456789abcdef"))
	m, _ := NewServer(MechSCRAMSHA256, lookupMap(nil), h2, false, nil)
	ch, _, _ := m.Next(ctx, []byte("n,,n=ghost,r=abcdefgh"))
	if _, rest, _ := strings.Cut(string(ch), ","); rest != a {
		t.Errorf("same secret, new hasher: %q, want %q", rest, a)
	}
}

// TestSCRAMNonce checks the server nonce is fresh and long enough.
func TestSCRAMNonce(t *testing.T) {
	ctx := testContext(t)
	lookup := lookupMap(map[string]Credentials{"mjl": mustCreds(t, "pw")})
	var nonces []string
	for range 2 {
		m, _ := NewServer(MechSCRAMSHA1, lookup, NewHasher(1), false, nil)
		ch, _, err := m.Next(ctx, []byte("n,,n=mjl,r=abc"))
		if err != nil {
			t.Fatal(err)
		}
		r, _, _ := strings.Cut(string(ch), ",")
		server := strings.TrimPrefix(r, "r=abc")
		raw, err := base64.StdEncoding.DecodeString(server)
		if err != nil || len(raw) < 18 {
			t.Fatalf("server nonce %q: %d random bytes, %v", server, len(raw), err)
		}
		nonces = append(nonces, server)
	}
	if nonces[0] == nonces[1] {
		t.Fatalf("server nonce repeated: %q", nonces[0])
	}
}

func TestCredentialsBinary(t *testing.T) {
	c := mustCreds(t, "hunter2")
	b, err := c.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var d Credentials
	if err := d.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if !d.VerifyPassword("hunter2") || d.VerifyPassword("hunter3") {
		t.Fatal("round-tripped argon2 hash does not verify the password")
	}
	b2, _ := d.MarshalBinary()
	if !bytes.Equal(b, b2) {
		t.Fatal("marshal after unmarshal differs")
	}
	if !hmac.Equal(d.SCRAMSHA256.StoredKey, c.SCRAMSHA256.StoredKey) || d.SCRAMSHA1.Iterations != fastParams.SCRAMIterations {
		t.Fatal("scram keys changed in round trip")
	}
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"truncated", b[:len(b)-1]},
		{"half", b[:len(b)/2]},
		{"trailing", append(slices.Clone(b), 0)},
		{"version 0", append([]byte{0}, b[1:]...)},
		{"version 2", append([]byte{2}, b[1:]...)},
		{"zero argon2 time", append(append([]byte{1}, 0, 0, 0, 0), b[5:]...)},
	} {
		var x Credentials
		if err := x.UnmarshalBinary(tc.data); err == nil {
			t.Errorf("%s: UnmarshalBinary accepted it", tc.name)
		}
	}
	if _, err := (Credentials{}).MarshalBinary(); err == nil {
		t.Error("MarshalBinary of empty credentials succeeded")
	}
}

func TestNewCredentials(t *testing.T) {
	if _, err := NewCredentials("pw", Params{Argon2Time: 1, Argon2MemoryKiB: 64, Argon2Threads: 1, SCRAMIterations: 100}); err == nil {
		t.Error("accepted 100 SCRAM iterations")
	}
	if _, err := NewCredentials("pw", Params{Argon2MemoryKiB: 64, Argon2Threads: 1, SCRAMIterations: 4096}); err == nil {
		t.Error("accepted argon2 time 0")
	}
	a, b := mustCreds(t, "same"), mustCreds(t, "same")
	if a.Argon2.Salt == b.Argon2.Salt || bytes.Equal(a.SCRAMSHA256.Salt, b.SCRAMSHA256.Salt) {
		t.Error("two credentials for the same password share a salt")
	}
	// CRAM-MD5 state equals HMAC-MD5 keyed with the password, also for
	// passwords longer than the block size.
	long := strings.Repeat("k", 100)
	got, err := newCRAMMD5State(long).digest([]byte("challenge"))
	if err != nil {
		t.Fatal(err)
	}
	want := hmac.New(md5New, []byte(long))
	want.Write([]byte("challenge"))
	if !bytes.Equal(got, want.Sum(nil)) {
		t.Error("cram-md5 state differs from hmac-md5 for a long key")
	}
}

func TestDefaultParams(t *testing.T) {
	p := DefaultParams()
	if err := p.check(); err != nil {
		t.Fatal(err)
	}
	if testing.Short() {
		return
	}
	c, err := NewCredentials("correct horse", p)
	if err != nil {
		t.Fatal(err)
	}
	if !c.VerifyPassword("correct horse") || c.VerifyPassword("correct horsE") {
		t.Fatal("default-parameter hash does not tell passwords apart")
	}
}

func TestHasher(t *testing.T) {
	h := NewHasher(1)
	c := mustCreds(t, "pw")
	ctx := testContext(t)
	if ok, err := h.Verify(ctx, c, "pw"); !ok || err != nil {
		t.Fatalf("verify: %v %v", ok, err)
	}
	// Hold the only slot: a call must give up when its context ends.
	if err := h.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := h.Verify(short, c, "pw"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("verify with full semaphore: %v, want deadline exceeded", err)
	}
	if _, err := h.New(short, "pw", fastParams); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("new with full semaphore: %v, want deadline exceeded", err)
	}
	h.release()
	if _, err := h.New(ctx, "pw", fastParams); err != nil {
		t.Fatal(err)
	}
	if n := cap(NewHasher(0).sem); n < 1 {
		t.Fatalf("NewHasher(0) allows %d", n)
	}
}

func BenchmarkArgon2Default(b *testing.B) {
	c, err := NewCredentials("benchmark", DefaultParams())
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		c.VerifyPassword("benchmark")
	}
}

func md5New() hash.Hash { return md5.New() }
