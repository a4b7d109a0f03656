package auth

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"runtime"

	"golang.org/x/crypto/argon2"
)

// Credentials is what store keeps for an account: no plaintext and no
// reversible form of the password. Every field is derived from the password
// with its own salt.
type Credentials struct {
	Argon2      Argon2Hash   // for PLAIN, LOGIN and web
	SCRAMSHA1   SCRAMKeys    // RFC 5802 §3
	SCRAMSHA256 SCRAMKeys    // RFC 7677
	CRAMMD5     CRAMMD5State // RFC 2195
}

// Argon2Hash is an argon2id (RFC 9106) hash with the parameters it was made
// with, so parameters can change without invalidating stored hashes.
type Argon2Hash struct {
	Time      uint32
	MemoryKiB uint32
	Threads   uint8
	Salt      [16]byte
	Key       [32]byte
}

// SCRAMKeys are the RFC 5802 §3 server-side keys for one hash function.
type SCRAMKeys struct {
	Salt       []byte // scramSaltSize random bytes
	Iterations int
	StoredKey  []byte // H(ClientKey)
	ServerKey  []byte // HMAC(SaltedPassword, "Server Key")
}

// CRAMMD5State holds the HMAC-MD5 (RFC 2104) inner and outer MD5 states
// after absorbing key^ipad and key^opad, as crypto/md5 MarshalBinary output.
// They let the server compute the RFC 2195 digest without the password; they
// are as sensitive as the password for CRAM-MD5 itself.
type CRAMMD5State struct {
	Inner []byte
	Outer []byte
}

// Params are the cost parameters for new credentials.
type Params struct {
	Argon2Time      uint32 // passes over memory
	Argon2MemoryKiB uint32
	Argon2Threads   uint8
	SCRAMIterations int // PBKDF2 iterations, at least MinSCRAMIterations
}

// MinSCRAMIterations is the RFC 7677 §4 minimum iteration count.
const MinSCRAMIterations = 4096

const (
	argon2SaltSize = 16
	argon2KeySize  = 32
	scramSaltSize  = 16
)

// DefaultParams returns the parameters for new credentials, sized for a
// 2-core host. Argon2id with 3 passes over 64 MiB at 1 thread takes about
// 150 ms per verification on such a host (measured with
// BenchmarkArgon2Default: 165 ms on the 2-core build machine); with the
// Hasher sized to 2 cores, hashing uses at most 128 MiB at once.
//
// SCRAM iterations are 65536 (gsasl's default): a server never runs PBKDF2
// during login, only clients do, once per login (tens of milliseconds on a
// phone), while an attacker with a stolen StoredKey pays it per guess.
func DefaultParams() Params {
	return Params{
		Argon2Time:      3,
		Argon2MemoryKiB: 64 * 1024,
		Argon2Threads:   1,
		SCRAMIterations: 65536,
	}
}

func (p Params) check() error {
	if p.Argon2Time < 1 || p.Argon2MemoryKiB < 8*uint32(max(p.Argon2Threads, 1)) || p.Argon2Threads < 1 {
		return fmt.Errorf("argon2 parameters time=%d memory=%dKiB threads=%d: need time >= 1, threads >= 1, memory >= 8 KiB per thread", p.Argon2Time, p.Argon2MemoryKiB, p.Argon2Threads)
	}
	if p.SCRAMIterations < MinSCRAMIterations {
		return fmt.Errorf("scram iterations %d: need at least %d (RFC 7677 §4)", p.SCRAMIterations, MinSCRAMIterations)
	}
	return nil
}

// NewCredentials derives all stored forms of password with fresh salts. The
// password is used as the bytes given (see the package comment). It runs
// argon2 and PBKDF2 without bounds; servers call it through Hasher.New.
func NewCredentials(password string, p Params) (Credentials, error) {
	if err := p.check(); err != nil {
		return Credentials{}, fmt.Errorf("new credentials: %w", err)
	}
	var c Credentials
	c.Argon2 = Argon2Hash{Time: p.Argon2Time, MemoryKiB: p.Argon2MemoryKiB, Threads: p.Argon2Threads}
	rand.Read(c.Argon2.Salt[:])
	copy(c.Argon2.Key[:], c.Argon2.derive(password))

	var err error
	for _, k := range []struct {
		keys *SCRAMKeys
		h    func() hash.Hash
	}{{&c.SCRAMSHA1, sha1.New}, {&c.SCRAMSHA256, sha256.New}} {
		salt := make([]byte, scramSaltSize)
		rand.Read(salt)
		*k.keys, err = newSCRAMKeys(k.h, password, salt, p.SCRAMIterations)
		if err != nil {
			return Credentials{}, fmt.Errorf("new credentials: %w", err)
		}
	}
	c.CRAMMD5 = newCRAMMD5State(password)
	return c, nil
}

func (a Argon2Hash) derive(password string) []byte {
	// RFC 9106 §3.1: argon2id, the variant recommended for password hashing.
	return argon2.IDKey([]byte(password), a.Salt[:], a.Time, a.MemoryKiB, a.Threads, argon2KeySize)
}

// newSCRAMKeys implements RFC 5802 §3: SaltedPassword := Hi(password, salt,
// i), ClientKey := HMAC(SaltedPassword, "Client Key"), StoredKey :=
// H(ClientKey), ServerKey := HMAC(SaltedPassword, "Server Key").
func newSCRAMKeys(h func() hash.Hash, password string, salt []byte, iterations int) (SCRAMKeys, error) {
	salted, err := pbkdf2.Key(h, password, salt, iterations, h().Size())
	if err != nil {
		return SCRAMKeys{}, fmt.Errorf("scram pbkdf2: %w", err)
	}
	clientKey := hmacSum(h, salted, []byte("Client Key"))
	stored := h()
	stored.Write(clientKey)
	return SCRAMKeys{
		Salt:       salt,
		Iterations: iterations,
		StoredKey:  stored.Sum(nil),
		ServerKey:  hmacSum(h, salted, []byte("Server Key")),
	}, nil
}

func hmacSum(h func() hash.Hash, key, msg []byte) []byte {
	m := hmac.New(h, key)
	m.Write(msg)
	return m.Sum(nil)
}

// newCRAMMD5State runs the key half of RFC 2104 HMAC-MD5: a key longer than
// the 64-byte block is hashed first, then padded with zeros; the inner hash
// absorbs key^ipad and the outer key^opad.
func newCRAMMD5State(password string) CRAMMD5State {
	key := []byte(password)
	if len(key) > md5.BlockSize {
		s := md5.Sum(key)
		key = s[:]
	}
	var ipad, opad [md5.BlockSize]byte
	copy(ipad[:], key)
	copy(opad[:], key)
	for i := range ipad {
		ipad[i] ^= 0x36
		opad[i] ^= 0x5c
	}
	inner, outer := md5.New(), md5.New()
	inner.Write(ipad[:])
	outer.Write(opad[:])
	ib, err := inner.(interface{ MarshalBinary() ([]byte, error) }).MarshalBinary()
	if err != nil {
		panic(fmt.Sprintf("md5 marshal: %v", err)) // crypto/md5 never fails here
	}
	ob, err := outer.(interface{ MarshalBinary() ([]byte, error) }).MarshalBinary()
	if err != nil {
		panic(fmt.Sprintf("md5 marshal: %v", err))
	}
	return CRAMMD5State{Inner: ib, Outer: ob}
}

// digest returns HMAC-MD5(password, challenge) from the stored states.
func (s CRAMMD5State) digest(challenge []byte) ([]byte, error) {
	inner, outer := md5.New(), md5.New()
	if err := inner.(interface{ UnmarshalBinary([]byte) error }).UnmarshalBinary(s.Inner); err != nil {
		return nil, fmt.Errorf("cram-md5 inner state: %w", err)
	}
	if err := outer.(interface{ UnmarshalBinary([]byte) error }).UnmarshalBinary(s.Outer); err != nil {
		return nil, fmt.Errorf("cram-md5 outer state: %w", err)
	}
	inner.Write(challenge)
	outer.Write(inner.Sum(nil))
	return outer.Sum(nil), nil
}

// VerifyPassword reports whether password matches the argon2id hash, with a
// constant-time comparison. It is slow on purpose; servers call it through
// Hasher.Verify.
func (c Credentials) VerifyPassword(password string) bool {
	if c.Argon2.Time == 0 || c.Argon2.Threads == 0 || c.Argon2.MemoryKiB == 0 {
		return false
	}
	return subtle.ConstantTimeCompare(c.Argon2.derive(password), c.Argon2.Key[:]) == 1
}

// Binary form, version 1, all integers big-endian:
//
//	version u8 = 1
//	argon2: time u32, memoryKiB u32, threads u8, salt [16], key [32]
//	scram-sha-1:   iterations u32, saltlen u8, salt, storedkey [20], serverkey [20]
//	scram-sha-256: iterations u32, saltlen u8, salt, storedkey [32], serverkey [32]
//	cram-md5: innerlen u16, inner, outerlen u16, outer
const credentialsVersion = 1

// MarshalBinary encodes the credentials in the versioned binary form store
// keeps on disk.
func (c Credentials) MarshalBinary() ([]byte, error) {
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("marshal credentials: %w", err)
	}
	b := []byte{credentialsVersion}
	b = binary.BigEndian.AppendUint32(b, c.Argon2.Time)
	b = binary.BigEndian.AppendUint32(b, c.Argon2.MemoryKiB)
	b = append(b, c.Argon2.Threads)
	b = append(b, c.Argon2.Salt[:]...)
	b = append(b, c.Argon2.Key[:]...)
	for _, k := range []SCRAMKeys{c.SCRAMSHA1, c.SCRAMSHA256} {
		b = binary.BigEndian.AppendUint32(b, uint32(k.Iterations))
		b = append(b, byte(len(k.Salt)))
		b = append(b, k.Salt...)
		b = append(b, k.StoredKey...)
		b = append(b, k.ServerKey...)
	}
	for _, s := range [][]byte{c.CRAMMD5.Inner, c.CRAMMD5.Outer} {
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
		b = append(b, s...)
	}
	return b, nil
}

// validate checks what MarshalBinary and UnmarshalBinary rely on.
func (c Credentials) validate() error {
	if c.Argon2.Time == 0 || c.Argon2.MemoryKiB == 0 || c.Argon2.Threads == 0 {
		return errors.New("argon2 parameters are zero")
	}
	for _, k := range []struct {
		name string
		keys SCRAMKeys
		size int
	}{{"scram-sha-1", c.SCRAMSHA1, sha1.Size}, {"scram-sha-256", c.SCRAMSHA256, sha256.Size}} {
		if k.keys.Iterations < MinSCRAMIterations || int64(k.keys.Iterations) > 1<<31-1 {
			return fmt.Errorf("%s: iterations %d out of range", k.name, k.keys.Iterations)
		}
		if len(k.keys.Salt) == 0 || len(k.keys.Salt) > 255 {
			return fmt.Errorf("%s: salt of %d bytes, need 1-255", k.name, len(k.keys.Salt))
		}
		if len(k.keys.StoredKey) != k.size || len(k.keys.ServerKey) != k.size {
			return fmt.Errorf("%s: keys must be %d bytes", k.name, k.size)
		}
	}
	if _, err := c.CRAMMD5.digest(nil); err != nil {
		return err
	}
	return nil
}

// UnmarshalBinary decodes MarshalBinary output. It rejects unknown versions,
// truncated input and trailing bytes.
func (c *Credentials) UnmarshalBinary(data []byte) error {
	r := reader{buf: data}
	if v := r.byte(); v != credentialsVersion {
		if r.err != nil {
			return fmt.Errorf("unmarshal credentials: %w", r.err)
		}
		return fmt.Errorf("unmarshal credentials: unknown version %d, want %d", v, credentialsVersion)
	}
	var n Credentials
	n.Argon2.Time = r.u32()
	n.Argon2.MemoryKiB = r.u32()
	n.Argon2.Threads = r.byte()
	copy(n.Argon2.Salt[:], r.bytes(argon2SaltSize))
	copy(n.Argon2.Key[:], r.bytes(argon2KeySize))
	for _, k := range []struct {
		keys *SCRAMKeys
		size int
	}{{&n.SCRAMSHA1, sha1.Size}, {&n.SCRAMSHA256, sha256.Size}} {
		k.keys.Iterations = int(r.u32())
		k.keys.Salt = r.bytes(int(r.byte()))
		k.keys.StoredKey = r.bytes(k.size)
		k.keys.ServerKey = r.bytes(k.size)
	}
	n.CRAMMD5.Inner = r.bytes(int(r.u16()))
	n.CRAMMD5.Outer = r.bytes(int(r.u16()))
	if r.err != nil {
		return fmt.Errorf("unmarshal credentials: %w", r.err)
	}
	if len(r.buf) != 0 {
		return fmt.Errorf("unmarshal credentials: %d trailing bytes", len(r.buf))
	}
	if err := n.validate(); err != nil {
		return fmt.Errorf("unmarshal credentials: %w", err)
	}
	*c = n
	return nil
}

// reader consumes a byte slice, remembering the first shortage.
type reader struct {
	buf []byte
	err error
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.buf) < n {
		r.err = fmt.Errorf("truncated: need %d bytes, have %d", n, len(r.buf))
		return nil
	}
	b := append([]byte(nil), r.buf[:n]...)
	r.buf = r.buf[n:]
	return b
}

func (r *reader) byte() byte {
	if b := r.bytes(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if b := r.bytes(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if b := r.bytes(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

// Hasher bounds the number of concurrent slow hashes (argon2, PBKDF2) so a
// burst of logins cannot take all memory and CPU. It also holds the secret
// that gives unknown users a stable fake SCRAM salt.
type Hasher struct {
	sem        chan struct{}
	fakeSecret []byte
}

// NewHasher returns a Hasher allowing n hashes at once; n <= 0 means one
// per CPU core. The fake-salt secret is random, so fake salts change when
// the process restarts; use NewHasherSecret to keep them stable.
func NewHasher(n int) *Hasher {
	secret := make([]byte, 32)
	rand.Read(secret)
	return NewHasherSecret(n, secret)
}

// NewHasherSecret is NewHasher with a persistent secret (at least 16
// bytes, kept by store) from which unknown users' fake SCRAM salts are
// derived, so they stay the same across restarts like real salts do.
func NewHasherSecret(n int, secret []byte) *Hasher {
	if n <= 0 {
		n = runtime.NumCPU()
	}
	return &Hasher{sem: make(chan struct{}, n), fakeSecret: append([]byte(nil), secret...)}
}

func (h *Hasher) acquire(ctx context.Context) error {
	select {
	case h.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for password hashing slot: %w", context.Cause(ctx))
	}
}

func (h *Hasher) release() { <-h.sem }

// Verify runs c.VerifyPassword when a slot is free, or returns the context's
// error if it ends first.
func (h *Hasher) Verify(ctx context.Context, c Credentials, password string) (bool, error) {
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	defer h.release()
	return c.VerifyPassword(password), nil
}

// New runs NewCredentials when a slot is free.
func (h *Hasher) New(ctx context.Context, password string, p Params) (Credentials, error) {
	if err := h.acquire(ctx); err != nil {
		return Credentials{}, err
	}
	defer h.release()
	return NewCredentials(password, p)
}

// dummyCredentials returns an argon2 hash with default parameters that no
// password matches, verified for unknown users so the reply takes as long
// as for an account with default parameters.
func dummyCredentials() Credentials {
	p := DefaultParams()
	return Credentials{Argon2: Argon2Hash{Time: p.Argon2Time, MemoryKiB: p.Argon2MemoryKiB, Threads: p.Argon2Threads}}
}
