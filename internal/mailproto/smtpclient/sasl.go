package smtpclient

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
)

// The client side of the SASL mechanisms (RFC 4422) Auth uses. The
// password is used as the bytes given, without SASLprep (RFC 4013): moxd
// carries no normalization tables, and the server side in internal/auth
// does the same, so ASCII and already-normalized passwords work everywhere.

// Mechanism names.
const (
	mechPLAIN           = "PLAIN"
	mechCRAMMD5         = "CRAM-MD5"
	mechSCRAMSHA1       = "SCRAM-SHA-1"
	mechSCRAMSHA256     = "SCRAM-SHA-256"
	mechSCRAMSHA1Plus   = "SCRAM-SHA-1-PLUS"
	mechSCRAMSHA256Plus = "SCRAM-SHA-256-PLUS"
)

// Limits on what a server may make the client do.
const (
	// maxSCRAMIterations bounds the PBKDF2 work a server can ask for:
	// about a second of CPU for SHA-256.
	maxSCRAMIterations = 1 << 22
	// scramNonceBytes random bytes make the client nonce.
	scramNonceBytes = 24
)

// saslClient is the client side of one SASL exchange.
type saslClient interface {
	// start returns the initial response (RFC 4954 §4), or nil for a
	// mechanism where the server speaks first.
	start() ([]byte, error)
	// next answers a server challenge. An error wrapping errServerSaid
	// means the server reported a failure inside the mechanism, and the
	// exchange should be answered with an empty response so the server
	// sends its final reply; any other error means the server's data was
	// unacceptable, and the exchange is cancelled with "*".
	next(challenge []byte) ([]byte, error)
	// done reports whether the client considers the exchange complete:
	// for SCRAM, whether the server proved it knows the password.
	done() bool
}

// errServerSaid marks an error the server reported inside the mechanism
// (SCRAM's "e=").
var errServerSaid = errors.New("server reported a sasl error")

// errSASL marks unacceptable data from the server.
var errSASL = errors.New("bad sasl data from server")

// plainClient implements PLAIN (RFC 4616): the password in clear, only
// ever sent over TLS (Auth enforces that).
type plainClient struct {
	user, pass string
	sent       bool
}

func (p *plainClient) start() ([]byte, error) {
	if strings.IndexByte(p.user, 0) >= 0 || strings.IndexByte(p.pass, 0) >= 0 {
		return nil, errors.New("PLAIN cannot carry a user name or password containing NUL")
	}
	p.sent = true
	// RFC 4616 §2: message = [authzid] UTF8NUL authcid UTF8NUL passwd,
	// with an empty authzid: act as the authenticated user.
	return []byte("\x00" + p.user + "\x00" + p.pass), nil
}

func (p *plainClient) next(challenge []byte) ([]byte, error) {
	// The initial response carried everything; RFC 4616 §2 has no second
	// round.
	return nil, fmt.Errorf("%w: PLAIN challenge after the initial response", errSASL)
}

func (p *plainClient) done() bool { return p.sent }

// cramClient implements CRAM-MD5 (RFC 2195).
type cramClient struct {
	user, pass string
	answered   bool
}

func (c *cramClient) start() ([]byte, error) { return nil, nil }

func (c *cramClient) next(challenge []byte) ([]byte, error) {
	if c.answered {
		return nil, fmt.Errorf("%w: second CRAM-MD5 challenge", errSASL)
	}
	if len(challenge) == 0 {
		return nil, fmt.Errorf("%w: empty CRAM-MD5 challenge", errSASL)
	}
	c.answered = true
	// RFC 2195 §2: user name, a space, and HMAC-MD5 (RFC 2104) of the
	// challenge keyed with the password, as 32 lower-case hex digits.
	m := hmac.New(md5.New, []byte(c.pass))
	m.Write(challenge)
	return []byte(c.user + " " + hex.EncodeToString(m.Sum(nil))), nil
}

func (c *cramClient) done() bool { return c.answered }

// scramClient implements SCRAM (RFC 5802) with SHA-1 or SHA-256 (RFC
// 7677), with the tls-exporter channel binding (RFC 9266) for -PLUS.
type scramClient struct {
	h          func() hash.Hash
	user, pass string
	// gs2Flag is "n" (no channel binding), "y" (the client could bind but
	// the server announced no -PLUS) or "p=tls-exporter".
	gs2Flag string
	cbData  []byte // binding data, for "p=" only
	nonce   string // client nonce; tests may preset it

	step            int // 0 before start, 1 sent client-first, 2 sent client-final, 3 verified
	gs2Header       string
	clientFirstBare string
	serverSig       []byte
}

func newSCRAM(mech, user, pass string, cbData []byte, serverHasPlus bool) *scramClient {
	s := &scramClient{h: sha256.New, user: user, pass: pass, gs2Flag: "n"}
	if mech == mechSCRAMSHA1 || mech == mechSCRAMSHA1Plus {
		s.h = sha1.New
	}
	switch {
	case strings.HasSuffix(mech, "-PLUS"):
		s.gs2Flag = "p=tls-exporter"
		s.cbData = cbData
	case cbData != nil && !serverHasPlus:
		// RFC 5802 §6: a client that supports channel binding and sees
		// no -PLUS announced sends "y", so a server that does support
		// it detects that an attacker stripped -PLUS from the list.
		s.gs2Flag = "y"
	}
	return s
}

func (s *scramClient) start() ([]byte, error) {
	if s.nonce == "" {
		var b [scramNonceBytes]byte
		rand.Read(b[:])
		s.nonce = base64.RawStdEncoding.EncodeToString(b[:])
	}
	// RFC 5802 §7: gs2-header = gs2-cbind-flag "," [authzid] ","; no
	// authzid: act as the authenticated user.
	s.gs2Header = s.gs2Flag + ",,"
	s.clientFirstBare = "n=" + saslName(s.user) + ",r=" + s.nonce
	s.step = 1
	return []byte(s.gs2Header + s.clientFirstBare), nil
}

// saslName escapes a user name for SCRAM: RFC 5802 §5.1, "=" as "=3D" and
// "," as "=2C".
func saslName(s string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s)
}

func (s *scramClient) next(challenge []byte) ([]byte, error) {
	switch s.step {
	case 1:
		s.step = 2
		return s.final(challenge)
	case 2:
		if err := s.verify(challenge); err != nil {
			return nil, err
		}
		s.step = 3
		// RFC 5802 §5: the exchange ends with an empty client response
		// to the server-final-message (RFC 4954 §4: an empty line).
		return []byte{}, nil
	}
	return nil, fmt.Errorf("%w: SCRAM challenge after the exchange ended", errSASL)
}

func (s *scramClient) done() bool { return s.step == 3 }

// final answers server-first-message (RFC 5802 §7):
//
//	server-first-message = [reserved-mext ","] nonce "," salt "," iteration-count ["," extensions]
func (s *scramClient) final(msg []byte) ([]byte, error) {
	if e, ok := bytes.CutPrefix(msg, []byte("e=")); ok {
		return nil, fmt.Errorf("%w: %q", errServerSaid, logLine(string(e)))
	}
	attrs := strings.Split(string(msg), ",")
	if len(attrs) < 3 {
		return nil, fmt.Errorf("%w: server-first-message needs r=, s= and i=", errSASL)
	}
	if strings.HasPrefix(attrs[0], "m=") {
		// RFC 5802 §5.1: an unknown mandatory extension fails the
		// exchange.
		return nil, fmt.Errorf("%w: server requires an unsupported SCRAM extension", errSASL)
	}
	nonce, ok1 := strings.CutPrefix(attrs[0], "r=")
	salt64, ok2 := strings.CutPrefix(attrs[1], "s=")
	iterStr, ok3 := strings.CutPrefix(attrs[2], "i=")
	if !ok1 || !ok2 || !ok3 {
		return nil, fmt.Errorf("%w: server-first-message is not r=,s=,i=", errSASL)
	}
	// RFC 5802 §5.1: the server appends its part to the client nonce.
	if !strings.HasPrefix(nonce, s.nonce) || len(nonce) == len(s.nonce) || !printable(nonce) {
		return nil, fmt.Errorf("%w: server nonce does not extend the client nonce", errSASL)
	}
	salt, err := base64.StdEncoding.Strict().DecodeString(salt64)
	if err != nil || len(salt) == 0 {
		return nil, fmt.Errorf("%w: salt is not base64", errSASL)
	}
	iter, err := strconv.Atoi(iterStr)
	if err != nil || iter < 1 || iter > maxSCRAMIterations {
		return nil, fmt.Errorf("%w: iteration count %q outside 1..%d", errSASL, logLine(iterStr), maxSCRAMIterations)
	}

	// RFC 5802 §3: SaltedPassword := Hi(password, salt, i), Hi being
	// PBKDF2 with HMAC-H; ClientKey := HMAC(SaltedPassword, "Client
	// Key"); StoredKey := H(ClientKey); ClientSignature :=
	// HMAC(StoredKey, AuthMessage); ClientProof := ClientKey XOR
	// ClientSignature; ServerSignature := HMAC(HMAC(SaltedPassword,
	// "Server Key"), AuthMessage).
	salted, err := pbkdf2.Key(s.h, s.pass, salt, iter, s.h().Size())
	if err != nil {
		return nil, fmt.Errorf("scram pbkdf2: %w", err)
	}
	// RFC 5802 §7: c= is the base64 of the gs2 header and, for "p=", the
	// channel binding data (RFC 9266 §2 for tls-exporter).
	cb := base64.StdEncoding.EncodeToString(append([]byte(s.gs2Header), s.cbData...))
	withoutProof := "c=" + cb + ",r=" + nonce
	authMsg := []byte(s.clientFirstBare + "," + string(msg) + "," + withoutProof)
	clientKey := hmacSum(s.h, salted, []byte("Client Key"))
	hh := s.h()
	hh.Write(clientKey)
	clientSig := hmacSum(s.h, hh.Sum(nil), authMsg)
	proof := make([]byte, len(clientKey))
	subtle.XORBytes(proof, clientKey, clientSig)
	s.serverSig = hmacSum(s.h, hmacSum(s.h, salted, []byte("Server Key")), authMsg)
	return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}

// verify checks server-final-message (RFC 5802 §7):
//
//	server-final-message = (server-error / verifier) ["," extensions]
func (s *scramClient) verify(msg []byte) error {
	first, _, _ := bytes.Cut(msg, []byte(","))
	if e, ok := bytes.CutPrefix(first, []byte("e=")); ok {
		return fmt.Errorf("%w: %q", errServerSaid, logLine(string(e)))
	}
	v, ok := bytes.CutPrefix(first, []byte("v="))
	if !ok {
		return fmt.Errorf("%w: server-final-message has no v=", errSASL)
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(string(v))
	if err != nil {
		return fmt.Errorf("%w: server signature is not base64", errSASL)
	}
	// RFC 5802 §5: the client must verify the server signature; a server
	// that does not know the password (an impostor) fails here.
	if !hmac.Equal(sig, s.serverSig) {
		return fmt.Errorf("%w: server signature does not match; the server does not know the credentials", errSASL)
	}
	return nil
}

func hmacSum(h func() hash.Hash, key, msg []byte) []byte {
	m := hmac.New(h, key)
	m.Write(msg)
	return m.Sum(nil)
}

// printable: RFC 5802 §7 printable = %x21-2B / %x2D-7E.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e || s[i] == ',' {
			return false
		}
	}
	return s != ""
}
