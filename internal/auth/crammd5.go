package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// cramServer implements CRAM-MD5 (RFC 2195) from the stored HMAC-MD5
// states.
type cramServer struct {
	lookup    Lookup
	challenge []byte // set by tests before the first Next
	step      int    // 0: send challenge, 1: want response, 2: finished
	identity  string
}

func (s *cramServer) Identity() string { return s.identity }

func (s *cramServer) Next(ctx context.Context, response []byte) ([]byte, bool, error) {
	switch s.step {
	case 0:
		s.step = 1
		if response != nil {
			// RFC 2195 §2: the server speaks first.
			s.step = 2
			if isAbort(response) {
				return nil, false, ErrAborted
			}
			return nil, false, fmt.Errorf("%w: cram-md5 does not take an initial response", ErrMalformed)
		}
		if s.challenge == nil {
			// RFC 2195 §2: a challenge in msg-id form, unique per exchange.
			var r [8]byte
			rand.Read(r[:])
			s.challenge = fmt.Appendf(nil, "<%d.%d@moxd>", binary.BigEndian.Uint64(r[:])>>1, time.Now().Unix())
		}
		return s.challenge, false, nil
	case 1:
		s.step = 2
	default:
		return nil, false, fmt.Errorf("%w: exchange already finished", ErrMalformed)
	}
	if isAbort(response) {
		return nil, false, ErrAborted
	}
	if err := checkSize(response); err != nil {
		return nil, false, err
	}
	// RFC 2195 §2: response is user name, space, 32 lowercase hex digits.
	i := bytes.LastIndexByte(response, ' ')
	if i <= 0 {
		return nil, false, fmt.Errorf("%w: cram-md5 response is not \"user digest\"", ErrMalformed)
	}
	user := string(response[:i])
	given, err := hex.DecodeString(string(response[i+1:]))
	if err != nil || len(given) != 16 {
		return nil, false, fmt.Errorf("%w: cram-md5 digest is not 32 hex digits", ErrMalformed)
	}
	creds, err := s.lookup(ctx, user)
	unknown := errors.Is(err, ErrUnknownUser)
	if err != nil && !unknown {
		return nil, false, fmt.Errorf("looking up account %q: %w", user, err)
	}
	if unknown {
		creds.CRAMMD5 = newCRAMMD5State("")
	}
	want, err := creds.CRAMMD5.digest(s.challenge)
	if err != nil {
		return nil, false, fmt.Errorf("stored credentials of %q: %w", user, err)
	}
	if subtle.ConstantTimeCompare(want, given) != 1 || unknown {
		return nil, false, ErrAuthFailed
	}
	s.identity = user
	return nil, true, nil
}
