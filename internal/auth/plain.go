package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
)

// plainState is where a PLAIN or LOGIN exchange stands.
type plainState int

const (
	plainStart    plainState = iota // nothing received yet
	plainWaitAll                    // PLAIN: sent empty challenge, want the message
	loginWaitUser                   // LOGIN: sent "Username:"
	loginWaitPass                   // LOGIN: sent "Password:"
	plainFinished                   // succeeded or failed
)

// plainServer implements PLAIN (RFC 4616) and LOGIN
// (draft-murchison-sasl-login): both carry the password in the clear and are
// checked against the argon2id hash.
type plainServer struct {
	login    bool
	lookup   Lookup
	hasher   *Hasher
	state    plainState
	username string
	identity string
}

func (s *plainServer) Identity() string { return s.identity }

func (s *plainServer) Next(ctx context.Context, response []byte) ([]byte, bool, error) {
	if s.state == plainFinished {
		return nil, false, fmt.Errorf("%w: exchange already finished", ErrMalformed)
	}
	if isAbort(response) {
		s.state = plainFinished
		return nil, false, ErrAborted
	}
	if err := checkSize(response); err != nil {
		s.state = plainFinished
		return nil, false, err
	}
	if s.login {
		return s.nextLogin(ctx, response)
	}
	return s.nextPlain(ctx, response)
}

func (s *plainServer) nextPlain(ctx context.Context, response []byte) ([]byte, bool, error) {
	if s.state == plainStart && response == nil {
		// RFC 4616 §2: without an initial response the server sends an
		// empty challenge.
		s.state = plainWaitAll
		return []byte{}, false, nil
	}
	s.state = plainFinished
	// RFC 4616 §2: message = [authzid] UTF8NUL authcid UTF8NUL passwd.
	parts := bytes.Split(response, []byte{0})
	if len(parts) != 3 {
		return nil, false, fmt.Errorf("%w: plain message needs exactly two NUL separators, has %d", ErrMalformed, len(parts)-1)
	}
	authzid, authcid, passwd := string(parts[0]), string(parts[1]), string(parts[2])
	if authcid == "" || passwd == "" {
		return nil, false, fmt.Errorf("%w: plain message with empty authcid or password", ErrMalformed)
	}
	return s.verify(ctx, authzid, authcid, passwd)
}

func (s *plainServer) nextLogin(ctx context.Context, response []byte) ([]byte, bool, error) {
	switch s.state {
	case plainStart:
		if len(response) == 0 {
			s.state = loginWaitUser
			return []byte("Username:"), false, nil
		}
		// Clients may send the user name as initial response.
		s.username = string(response)
		s.state = loginWaitPass
		return []byte("Password:"), false, nil
	case loginWaitUser:
		if len(response) == 0 {
			s.state = plainFinished
			return nil, false, fmt.Errorf("%w: empty login user name", ErrMalformed)
		}
		s.username = string(response)
		s.state = loginWaitPass
		return []byte("Password:"), false, nil
	default: // loginWaitPass
		s.state = plainFinished
		if len(response) == 0 {
			return nil, false, fmt.Errorf("%w: empty login password", ErrMalformed)
		}
		return s.verify(ctx, "", s.username, string(response))
	}
}

// verify checks a password, spending one argon2 verification whether or
// not the account exists.
func (s *plainServer) verify(ctx context.Context, authzid, authcid, password string) ([]byte, bool, error) {
	creds, err := s.lookup(ctx, authcid)
	unknown := errors.Is(err, ErrUnknownUser)
	if err != nil && !unknown {
		return nil, false, fmt.Errorf("looking up account %q: %w", authcid, err)
	}
	if unknown {
		creds = dummyCredentials()
	}
	ok, err := s.hasher.Verify(ctx, creds, password)
	if err != nil {
		return nil, false, err
	}
	if !ok || unknown {
		return nil, false, ErrAuthFailed
	}
	// RFC 4616 §2: moxd only lets an account act as itself.
	if authzid != "" && authzid != authcid {
		return nil, false, fmt.Errorf("%w: authorization identity %q differs from %q", ErrAuthFailed, authzid, authcid)
	}
	s.identity = authcid
	return nil, true, nil
}
