package login_test

// SASL client sides written for the tests, so every mechanism can be driven
// through storeclient against the service; gsasl checks the same exchanges
// from outside in the storeclient tests.

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
)

// saslClient is the client side of one exchange.
type saslClient interface {
	// initial returns the initial response and whether there is one.
	initial() ([]byte, bool)
	// next answers a server challenge.
	next(challenge []byte) ([]byte, error)
}

// plainClient implements PLAIN (RFC 4616).
type plainClient struct {
	user, pass  string
	sendInitial bool
}

func (c *plainClient) msg() []byte { return []byte("\x00" + c.user + "\x00" + c.pass) }

func (c *plainClient) initial() ([]byte, bool) {
	if c.sendInitial {
		return c.msg(), true
	}
	return nil, false
}

func (c *plainClient) next(challenge []byte) ([]byte, error) {
	if len(challenge) != 0 {
		return nil, fmt.Errorf("plain: unexpected challenge %q", challenge)
	}
	return c.msg(), nil
}

// loginClient implements LOGIN (draft-murchison-sasl-login).
type loginClient struct{ user, pass string }

func (c *loginClient) initial() ([]byte, bool) { return nil, false }

func (c *loginClient) next(challenge []byte) ([]byte, error) {
	switch string(challenge) {
	case "Username:":
		return []byte(c.user), nil
	case "Password:":
		return []byte(c.pass), nil
	}
	return nil, fmt.Errorf("login: unexpected challenge %q", challenge)
}

// cramClient implements CRAM-MD5 (RFC 2195 §2).
type cramClient struct{ user, pass string }

func (c *cramClient) initial() ([]byte, bool) { return nil, false }

func (c *cramClient) next(challenge []byte) ([]byte, error) {
	m := hmac.New(md5.New, []byte(c.pass))
	m.Write(challenge)
	return []byte(c.user + " " + hex.EncodeToString(m.Sum(nil))), nil
}

// scramClient implements the client of SCRAM (RFC 5802 §3, §5, §7) with
// optional channel binding (RFC 5802 §6).
type scramClient struct {
	h      func() hash.Hash
	user   string
	pass   string
	cbType string // "" for gs2 flag n
	cbData []byte
	nonce  string

	gs2, bare   string
	serverSig   []byte
	clientFinal []byte // kept for replay tests
	step        int
}

func newSCRAM(mech, user, pass, cbType string, cbData []byte) *scramClient {
	h := sha256.New
	if strings.HasPrefix(mech, "SCRAM-SHA-1") {
		h = sha1.New
	}
	return &scramClient{h: h, user: user, pass: pass, cbType: cbType, cbData: cbData, nonce: "Kx7gTQ9fZ2pLw0c"}
}

func (c *scramClient) first() []byte {
	flag := "n"
	if c.cbType != "" {
		flag = "p=" + c.cbType
	}
	c.gs2 = flag + ",,"
	c.bare = "n=" + c.user + ",r=" + c.nonce
	return []byte(c.gs2 + c.bare)
}

func (c *scramClient) initial() ([]byte, bool) {
	c.step = 1
	return c.first(), true
}

func (c *scramClient) hmac(key []byte, msg string) []byte {
	m := hmac.New(c.h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func (c *scramClient) next(challenge []byte) ([]byte, error) {
	c.step++
	switch c.step {
	case 1: // empty challenge: the server wants client-first
		if len(challenge) != 0 {
			return nil, fmt.Errorf("scram: unexpected first challenge %q", challenge)
		}
		return c.first(), nil
	case 2:
		return c.final(challenge)
	case 3:
		if !hmac.Equal(challenge, []byte("v="+base64.StdEncoding.EncodeToString(c.serverSig))) {
			return nil, fmt.Errorf("scram: server signature %q does not verify", challenge)
		}
		return []byte{}, nil
	}
	return nil, errors.New("scram: too many challenges")
}

func (c *scramClient) final(serverFirst []byte) ([]byte, error) {
	var nonce, salt string
	iter := 0
	for _, attr := range strings.Split(string(serverFirst), ",") {
		k, v, _ := strings.Cut(attr, "=")
		switch k {
		case "r":
			nonce = v
		case "s":
			salt = v
		case "i":
			iter, _ = strconv.Atoi(v)
		}
	}
	if !strings.HasPrefix(nonce, c.nonce) {
		return nil, fmt.Errorf("scram: server nonce %q does not start with ours", nonce)
	}
	saltb, err := base64.StdEncoding.DecodeString(salt)
	if err != nil || iter < 1 {
		return nil, fmt.Errorf("scram: bad server-first %q", serverFirst)
	}
	salted, err := pbkdf2.Key(c.h, c.pass, saltb, iter, c.h().Size())
	if err != nil {
		return nil, err
	}
	clientKey := c.hmac(salted, "Client Key")
	sum := c.h()
	sum.Write(clientKey)
	storedKey := sum.Sum(nil)
	cbind := base64.StdEncoding.EncodeToString(append([]byte(c.gs2), c.cbData...))
	withoutProof := "c=" + cbind + ",r=" + nonce
	authMsg := c.bare + "," + string(serverFirst) + "," + withoutProof
	sig := c.hmac(storedKey, authMsg)
	proof := bytes.Clone(clientKey)
	for i := range proof {
		proof[i] ^= sig[i]
	}
	c.serverSig = c.hmac(c.hmac(salted, "Server Key"), authMsg)
	c.clientFinal = []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof))
	return c.clientFinal, nil
}
