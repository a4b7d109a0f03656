package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strings"
)

// Implementation notes: the server never runs PBKDF2 during an exchange; it
// checks ClientProof against the stored StoredKey (RFC 5802 §3). For an
// unknown user it runs the same exchange with a fake salt derived from the
// Hasher secret and the user name, the default iteration count and random
// keys, and fails at the proof, so the first two messages do not tell
// whether the account exists.

// scramNonceBytes is the number of random bytes in the server nonce.
const scramNonceBytes = 24

type scramState int

const (
	scramWantFirst scramState = iota // want client-first-message
	scramWantFinal                   // sent server-first, want client-final
	scramWantEmpty                   // sent server-final v=, want empty response
	scramFinished
)

type scramServer struct {
	h           func() hash.Hash
	mech        string
	plus        bool // this is a -PLUS mechanism
	plusOffered bool // -PLUS is announced on this connection (RFC 5802 §6)
	cb          []ChannelBinding
	lookup      Lookup
	hasher      *Hasher

	nonce      string // server nonce part; tests set it before the first Next
	state      scramState
	askedFirst bool // sent the empty challenge for a missing initial response

	gs2Header       []byte // as received, for the c= check
	cbData          []byte // binding data for the p= type the client chose
	clientFirstBare []byte
	serverFirst     []byte
	fullNonce       string
	keys            SCRAMKeys
	fake            bool
	authcid         string
	serverFinal     []byte
	identity        string
}

func newSCRAM(name string, lookup Lookup, hasher *Hasher, plus, plusOffered bool, cb []ChannelBinding) *scramServer {
	h := sha256.New
	if name == MechSCRAMSHA1 || name == MechSCRAMSHA1Plus {
		h = sha1.New
	}
	return &scramServer{h: h, mech: name, plus: plus, plusOffered: plusOffered, cb: cb, lookup: lookup, hasher: hasher}
}

func (s *scramServer) Identity() string { return s.identity }

func (s *scramServer) Next(ctx context.Context, response []byte) (challenge []byte, done bool, err error) {
	state := s.state
	if state == scramFinished {
		return nil, false, fmt.Errorf("%w: exchange already finished", ErrMalformed)
	}
	s.state = scramFinished // until a step succeeds
	if isAbort(response) {
		return nil, false, ErrAborted
	}
	if err := checkSize(response); err != nil {
		return nil, false, err
	}
	switch state {
	case scramWantFirst:
		if response == nil && !s.askedFirst {
			// RFC 5802 §5: client speaks first; an empty challenge asks
			// for the client-first-message, once.
			s.askedFirst = true
			s.state = scramWantFirst
			return []byte{}, false, nil
		}
		challenge, err = s.first(ctx, response)
		if err == nil {
			s.state = scramWantFinal
		}
		return challenge, false, err
	case scramWantFinal:
		challenge, err = s.final(response)
		if err == nil {
			s.state = scramWantEmpty
		}
		return challenge, false, err
	default: // scramWantEmpty
		if len(response) != 0 {
			return nil, false, fmt.Errorf("%w: expected empty response after server-final message", ErrMalformed)
		}
		s.identity = s.authcid
		return nil, true, nil
	}
}

// first handles client-first-message, RFC 5802 §7:
//
//	gs2-header = gs2-cbind-flag "," [ authzid ] ","
//	client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
func (s *scramServer) first(ctx context.Context, msg []byte) ([]byte, error) {
	flag, rest, ok := bytes.Cut(msg, []byte(","))
	if !ok {
		return nil, fmt.Errorf("%w: no gs2 header", ErrMalformed)
	}
	authzidAttr, bare, ok := bytes.Cut(rest, []byte(","))
	if !ok {
		return nil, fmt.Errorf("%w: gs2 header not terminated", ErrMalformed)
	}
	s.gs2Header = msg[:len(flag)+1+len(authzidAttr)+1]
	s.clientFirstBare = bare

	switch {
	case len(flag) == 1 && flag[0] == 'n':
		// Client does not support channel binding.
		if s.plus {
			return nil, fmt.Errorf("%w: %s needs channel binding, client sent gs2 flag n", ErrMalformed, s.mech)
		}
	case len(flag) == 1 && flag[0] == 'y':
		// RFC 5802 §6: client supports binding but thinks the server does
		// not; if we offer -PLUS, an attacker removed it from the list.
		if s.plus {
			return nil, fmt.Errorf("%w: %s needs channel binding, client sent gs2 flag y", ErrMalformed, s.mech)
		}
		if s.plusOffered {
			return []byte("e=server-does-support-channel-binding"), fmt.Errorf("%w: client sent gs2 flag y while -PLUS was offered (downgrade)", ErrAuthFailed)
		}
	case bytes.HasPrefix(flag, []byte("p=")):
		if !s.plus {
			return nil, fmt.Errorf("%w: channel binding requested with non-PLUS mechanism %s", ErrMalformed, s.mech)
		}
		name := string(flag[2:])
		for _, b := range s.cb {
			if b.Type == name {
				s.cbData = b.Data
			}
		}
		if s.cbData == nil {
			return []byte("e=unsupported-channel-binding-type"), fmt.Errorf("%w: channel binding type %q not available", ErrAuthFailed, name)
		}
	default:
		return nil, fmt.Errorf("%w: bad gs2 channel binding flag", ErrMalformed)
	}

	var authzid string
	if len(authzidAttr) > 0 {
		if !bytes.HasPrefix(authzidAttr, []byte("a=")) {
			return nil, fmt.Errorf("%w: bad gs2 authzid", ErrMalformed)
		}
		var err error
		if authzid, err = decodeSASLName(authzidAttr[2:]); err != nil {
			return nil, err
		}
	}

	attrs := bytes.Split(bare, []byte(","))
	if len(attrs) < 2 {
		return nil, fmt.Errorf("%w: client-first-message needs n= and r=", ErrMalformed)
	}
	if bytes.HasPrefix(attrs[0], []byte("m=")) {
		// RFC 5802 §5.1: m= must make authentication fail.
		return []byte("e=extensions-not-supported"), fmt.Errorf("%w: mandatory extension m= not supported", ErrMalformed)
	}
	if !bytes.HasPrefix(attrs[0], []byte("n=")) {
		return nil, fmt.Errorf("%w: client-first-message must start with n=", ErrMalformed)
	}
	user, err := decodeSASLName(attrs[0][2:])
	if err != nil {
		return nil, err
	}
	if user == "" {
		return nil, fmt.Errorf("%w: empty user name", ErrMalformed)
	}
	if !bytes.HasPrefix(attrs[1], []byte("r=")) || !validNonce(attrs[1][2:]) {
		return nil, fmt.Errorf("%w: client-first-message needs a printable r= nonce", ErrMalformed)
	}
	for _, a := range attrs[2:] {
		if !validAttr(a) {
			return nil, fmt.Errorf("%w: bad extension attribute", ErrMalformed)
		}
	}
	clientNonce := string(attrs[1][2:])

	creds, err := s.lookup(ctx, user)
	if errors.Is(err, ErrUnknownUser) {
		s.fake = true
	} else if err != nil {
		return nil, fmt.Errorf("looking up account %q: %w", user, err)
	}
	s.keys = creds.SCRAMSHA256
	if s.h().Size() == sha1.Size {
		s.keys = creds.SCRAMSHA1
	}
	if s.keys.Iterations == 0 || len(s.keys.StoredKey) != s.h().Size() {
		// No keys stored for this hash: behave as for an unknown user.
		s.fake = true
	}
	if s.fake {
		s.keys = s.fakeKeys(user)
	}
	// RFC 5802 §6 and §7: authzid empty or the user itself in moxd. Checked
	// after the lookup so the failure does not tell whether the user exists.
	if authzid != "" && authzid != user {
		s.fake = true
	}
	s.authcid = user

	if s.nonce == "" {
		var r [scramNonceBytes]byte
		rand.Read(r[:])
		s.nonce = base64.StdEncoding.EncodeToString(r[:])
	}
	// RFC 5802 §5.1: r= is the client nonce with the server nonce appended.
	s.fullNonce = clientNonce + s.nonce
	s.serverFirst = fmt.Appendf(nil, "r=%s,s=%s,i=%d", s.fullNonce, base64.StdEncoding.EncodeToString(s.keys.Salt), s.keys.Iterations)
	return s.serverFirst, nil
}

// fakeKeys returns keys for a user that does not exist: a salt that stays
// the same for the name, the default iteration count, random keys.
func (s *scramServer) fakeKeys(user string) SCRAMKeys {
	salt := hmacSum(sha256.New, s.hasher.fakeSecret, []byte(s.mech+"\x00"+user))[:scramSaltSize]
	stored := make([]byte, s.h().Size())
	rand.Read(stored)
	return SCRAMKeys{Salt: salt, Iterations: DefaultParams().SCRAMIterations, StoredKey: stored, ServerKey: stored}
}

// final handles client-final-message, RFC 5802 §7:
//
//	client-final-message-without-proof = channel-binding "," nonce ["," extensions]
//	client-final-message = client-final-message-without-proof "," proof
func (s *scramServer) final(msg []byte) ([]byte, error) {
	i := bytes.LastIndex(msg, []byte(",p="))
	if i < 0 {
		return nil, fmt.Errorf("%w: client-final-message without proof", ErrMalformed)
	}
	withoutProof := msg[:i]
	proof, err := base64.StdEncoding.Strict().DecodeString(string(msg[i+3:]))
	if err != nil || len(proof) != s.h().Size() {
		return nil, fmt.Errorf("%w: bad client proof", ErrMalformed)
	}
	attrs := bytes.Split(withoutProof, []byte(","))
	if len(attrs) < 2 || !bytes.HasPrefix(attrs[0], []byte("c=")) || !bytes.HasPrefix(attrs[1], []byte("r=")) {
		return nil, fmt.Errorf("%w: client-final-message must start with c= and r=", ErrMalformed)
	}
	for _, a := range attrs[2:] {
		if !validAttr(a) || bytes.HasPrefix(a, []byte("m=")) {
			return nil, fmt.Errorf("%w: bad extension attribute", ErrMalformed)
		}
	}
	cb, err := base64.StdEncoding.Strict().DecodeString(string(attrs[0][2:]))
	if err != nil {
		return nil, fmt.Errorf("%w: channel binding not base64", ErrMalformed)
	}
	// RFC 5802 §6: the nonce must be the full one from server-first,
	// client part and our part.
	if subtle.ConstantTimeCompare(attrs[1][2:], []byte(s.fullNonce)) != 1 {
		return nil, fmt.Errorf("%w: nonce differs from server-first-message", ErrMalformed)
	}
	// RFC 5802 §7 (c=): gs2 header, then binding data for p=. RFC 9266 §4
	// and RFC 5929 §4 define the data; the caller computed it.
	want := append(append([]byte(nil), s.gs2Header...), s.cbData...)
	if subtle.ConstantTimeCompare(cb, want) != 1 {
		return []byte("e=channel-bindings-dont-match"), fmt.Errorf("%w: channel binding data does not match", ErrAuthFailed)
	}

	// RFC 5802 §3: AuthMessage, ClientSignature, ClientKey := ClientProof
	// XOR ClientSignature, and H(ClientKey) must equal StoredKey.
	authMsg := bytes.Join([][]byte{s.clientFirstBare, s.serverFirst, withoutProof}, []byte(","))
	clientSig := hmacSum(s.h, s.keys.StoredKey, authMsg)
	clientKey := make([]byte, len(proof))
	subtle.XORBytes(clientKey, proof, clientSig)
	hh := s.h()
	hh.Write(clientKey)
	if subtle.ConstantTimeCompare(hh.Sum(nil), s.keys.StoredKey) != 1 || s.fake {
		return []byte("e=invalid-proof"), ErrAuthFailed
	}
	// RFC 5802 §3: ServerSignature := HMAC(ServerKey, AuthMessage).
	serverSig := hmacSum(s.h, s.keys.ServerKey, authMsg)
	return []byte("v=" + base64.StdEncoding.EncodeToString(serverSig)), nil
}

// decodeSASLName undoes RFC 5802 §5.1 escaping: "=2C" is ",", "=3D" is "=",
// any other "=" is an error.
func decodeSASLName(b []byte) (string, error) {
	var sb strings.Builder
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case ',':
			return "", fmt.Errorf("%w: unescaped comma in name", ErrMalformed)
		case '=':
			if i+3 > len(b) {
				return "", fmt.Errorf("%w: truncated escape in name", ErrMalformed)
			}
			switch string(b[i+1 : i+3]) {
			case "2C":
				sb.WriteByte(',')
			case "3D":
				sb.WriteByte('=')
			default:
				return "", fmt.Errorf("%w: bad escape in name", ErrMalformed)
			}
			i += 2
		default:
			sb.WriteByte(b[i])
		}
	}
	return sb.String(), nil
}

// validNonce: RFC 5802 §7 printable = %x21-2B / %x2D-7E, at least one.
func validNonce(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < 0x21 || c > 0x7e || c == ',' {
			return false
		}
	}
	return true
}

// validAttr: RFC 5802 §7 attr-val = ALPHA "=" value.
func validAttr(b []byte) bool {
	return len(b) >= 2 && (b[0] >= 'a' && b[0] <= 'z' || b[0] >= 'A' && b[0] <= 'Z') && b[1] == '='
}
