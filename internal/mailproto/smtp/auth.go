package smtp

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// AUTH (RFC 4954). The engine frames the exchange; the Session runs the
// mechanism (in moxd, moxd-store does).

// maxAuthLine is the longest AUTH command or response line accepted, in
// octets including CRLF: RFC 4954 §4 asks for at least 12288.
const maxAuthLine = 12288 + 2

// errAuthSyntax: a response line that is not base64.
var errAuthSyntax = errors.New("authentication response is not valid base64")

// offersAuth reports whether EHLO announces AUTH now.
func (c *conn) offersAuth() bool {
	return c.st.Account == "" && len(c.sess.AuthMechanisms(&c.st)) > 0
}

// cmdAUTH runs one SASL exchange.
func (c *conn) cmdAUTH(arg string) error {
	if c.st.Account != "" {
		// RFC 4954 §4: one successful AUTH per session.
		return errorReply(503, "5.5.1", "already authenticated")
	}
	mechs := c.sess.AuthMechanisms(&c.st)
	if len(mechs) == 0 {
		if c.cfg.Submission {
			return errorReply(502, "5.5.1", "no authentication mechanism is available on this connection")
		}
		return errorReply(502, "5.5.1", "AUTH is not available on this port; use the submission port (587 or 465)")
	}
	mech, initStr, hasInit := strings.Cut(arg, " ")
	mech = strings.ToUpper(mech)
	if mech == "" {
		return errorReply(501, "5.5.4", "AUTH needs a mechanism name")
	}
	if !slices.Contains(mechs, mech) {
		// RFC 4954 §4: 504 for an unsupported mechanism.
		return errorReply(504, "5.5.4", "mechanism "+mech+" is not available; offered: "+strings.Join(mechs, " "))
	}
	var initial []byte
	if hasInit {
		if initStr == "=" {
			// RFC 4954 §4: "=" is an empty initial response.
			initial = []byte{}
		} else {
			b, err := base64.StdEncoding.Strict().DecodeString(initStr)
			if err != nil {
				return errorReply(501, "5.5.2", "initial response is not valid base64")
			}
			initial = b
		}
	}
	var connErr error // a read or write failure during the exchange
	exchange := func(challenge []byte) ([]byte, error) {
		r := &Reply{Code: 334, Lines: []string{base64.StdEncoding.EncodeToString(challenge)}}
		if err := c.writeReply(r); err != nil {
			connErr = err
			return nil, err
		}
		line, err := c.readAuthLine()
		if err != nil {
			var reply *Reply
			if errors.As(err, &reply) {
				return nil, errAuthSyntax
			}
			connErr = err
			return nil, err
		}
		if line == "*" {
			return nil, ErrAuthAborted
		}
		b, err := base64.StdEncoding.Strict().DecodeString(line)
		if err != nil {
			return nil, errAuthSyntax
		}
		return b, nil
	}
	account, err := c.sess.Auth(c.ctx, &c.st, mech, initial, hasInit, exchange)
	switch {
	case connErr != nil:
		return connErr
	case errors.Is(err, ErrAuthAborted):
		return errorReply(501, "5.0.0", "authentication cancelled")
	case errors.Is(err, errAuthSyntax):
		return errorReply(501, "5.5.2", "authentication response is not valid base64")
	case err != nil:
		return c.sessionError("auth", err)
	case account == "":
		c.log.Error("smtp session accepted AUTH without an account")
		return errorReply(454, "4.7.0", "temporary authentication failure")
	}
	c.st.Account = account
	c.st.AuthMech = mech
	c.log.Info("smtp authenticated", "account", account, "mechanism", mech)
	return c.writeReply(errorReply(235, "2.7.0", "authentication successful"))
}

// readAuthLine reads one response line of an AUTH exchange, without CRLF.
// It is never logged: it carries credentials.
func (c *conn) readAuthLine() (string, error) {
	if err := c.raw.SetReadDeadline(time.Now().Add(c.cfg.CommandTimeout)); err != nil {
		return "", fmt.Errorf("set read deadline: %w", err)
	}
	if err := c.ctx.Err(); err != nil {
		return "", c.shutdown(err)
	}
	var buf []byte
	for {
		piece, err := c.br.ReadSlice('\n')
		if len(buf)+len(piece) > maxAuthLine {
			// Skip to the end of the line, then refuse it.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = c.br.ReadSlice('\n')
			}
			if err != nil {
				return "", c.readFailure(err)
			}
			return "", errorReply(500, "5.5.6", "authentication response too long")
		}
		buf = append(buf, piece...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			return "", c.readFailure(err)
		}
		break
	}
	c.log.Log(c.ctx, LevelTrace, "smtp recv", "line", "[authentication response redacted]")
	n := len(buf)
	if n < 2 || buf[n-2] != '\r' || bytes.IndexByte(buf[:n-2], '\r') >= 0 {
		return "", errorReply(500, "5.5.2", "response lines must end in CRLF")
	}
	return string(buf[:n-2]), nil
}
