package smtp

import (
	"errors"
	"strconv"
	"strings"
)

// The mail transaction: MAIL, RCPT, and aborting it (RFC 5321 §3.3).

// abortTransaction ends a transaction that has not completed, telling the
// Session. It is a no-op outside a transaction.
func (c *conn) abortTransaction() {
	if c.st.Mail == nil {
		if c.state == stateMail || c.state == stateRcpt {
			c.state = stateReady
		}
		return
	}
	c.sess.Reset(&c.st)
	c.endTransaction()
}

// endTransaction forgets the transaction's state.
func (c *conn) endTransaction() {
	c.st.Mail = nil
	c.st.Rcpts = nil
	c.st.Chunking = false
	if c.state == stateMail || c.state == stateRcpt {
		c.state = stateReady
	}
}

// successReply returns err as a *Reply when it is a 2xx reply a Session
// returned to replace the default success text, else nil.
func successReply(err error) *Reply {
	var r *Reply
	if errors.As(err, &r) && r.Code < 400 {
		return r
	}
	return nil
}

// cutPrefixFold removes prefix from s, ignoring ASCII case.
func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return s, false
	}
	return s[len(prefix):], true
}

// pathArg splits "FROM:<path> params" after the verb. RFC 5321 §4.1.1.2
// has no space after the colon, but many clients send one; it is
// tolerated.
func pathArg(arg, keyword string) (string, error) {
	rest, ok := cutPrefixFold(arg, keyword+":")
	if !ok {
		return "", errorReply(501, "5.5.4", "syntax error: expected "+keyword+":<address>")
	}
	return strings.TrimLeft(rest, " "), nil
}

// pathError turns a path parse error into a reply: 553 for a mailbox name
// that is not allowed, 501 for broken syntax (RFC 5321 §4.2.2, §4.3.2;
// RFC 6531 §3.7.4.1 for UTF-8 without SMTPUTF8).
func pathError(err error) *Reply {
	if errors.Is(err, errNotUTF8Allowed) {
		return errorReply(553, "5.6.7", err.Error())
	}
	return errorReply(501, "5.1.3", "syntax error in address: "+err.Error())
}

// cmdMAIL starts a transaction (RFC 5321 §4.1.1.2).
func (c *conn) cmdMAIL(arg string) error {
	if c.cfg.Submission && c.st.Account == "" {
		// RFC 4954 §6, RFC 6409 §4.3.
		return errorReply(530, "5.7.0", "authentication required: use AUTH before MAIL")
	}
	s, err := pathArg(arg, "FROM")
	if err != nil {
		return err
	}
	// SMTPUTF8 decides whether the path may hold UTF-8, so the parameters
	// are looked at first.
	end := pathEnd(s)
	if end < 0 || !strings.HasPrefix(s, "<") {
		return errorReply(501, "5.5.4", "syntax error: expected FROM:<address>")
	}
	rest := s[end+1:]
	if rest != "" && rest[0] != ' ' {
		return errorReply(501, "5.5.4", "syntax error: a space must separate the address and the parameters")
	}
	params, err := parseParams(rest, true)
	if err != nil {
		return errorReply(501, "5.5.4", err.Error())
	}
	m := &MailFrom{Size: -1, Body: Body7Bit}
	for _, p := range params {
		if r := c.mailParam(m, p); r != nil {
			return r
		}
	}
	for _, p := range params {
		if !m.SMTPUTF8 && !isASCII(p.value) {
			return errorReply(501, "5.6.7", "parameter "+p.key+" has non-ASCII characters without SMTPUTF8")
		}
	}
	path, postmaster, _, err := parsePath(s, m.SMTPUTF8)
	if err != nil {
		return pathError(err)
	}
	if postmaster {
		return errorReply(501, "5.1.7", "the sender address needs a domain")
	}
	m.Path = path
	if m.Size > c.cfg.MaxMessageSize {
		// RFC 1870 §6.1.
		return errorReply(552, "5.3.4", "message size "+strconv.FormatInt(m.Size, 10)+" exceeds the limit of "+strconv.FormatInt(c.cfg.MaxMessageSize, 10)+" bytes")
	}
	c.st.Mail = m
	c.st.Rcpts = nil
	ok := errorReply(250, "2.1.0", "sender OK")
	if err := c.sess.Mail(c.ctx, &c.st, m); err != nil {
		if ok = successReply(err); ok == nil {
			c.st.Mail = nil
			return c.sessionError("mail", err)
		}
	}
	c.state = stateMail
	c.log.Debug("smtp mail from", "from", path.LogString())
	return c.writeReply(ok)
}

// mailParam applies one MAIL parameter, or returns the reply refusing it.
func (c *conn) mailParam(m *MailFrom, p param) *Reply {
	needValue := func() *Reply {
		if !p.set {
			return errorReply(501, "5.5.4", "parameter "+p.key+" needs a value")
		}
		return nil
	}
	noValue := func() *Reply {
		if p.set {
			return errorReply(501, "5.5.4", "parameter "+p.key+" takes no value")
		}
		return nil
	}
	switch p.key {
	case "SIZE": // RFC 1870 §3
		if r := needValue(); r != nil {
			return r
		}
		n, err := strconv.ParseInt(p.value, 10, 64)
		if err != nil || n < 0 || len(p.value) > 20 {
			return errorReply(501, "5.5.4", "SIZE needs a number of octets")
		}
		m.Size = n
	case "BODY": // RFC 6152 §2, RFC 3030 §3
		if r := needValue(); r != nil {
			return r
		}
		switch strings.ToUpper(p.value) {
		case Body7Bit:
			m.Body = Body7Bit
		case Body8BitMIME:
			m.Body = Body8BitMIME
		case "BINARYMIME":
			return errorReply(504, "5.5.4", "BODY=BINARYMIME is not supported (BINARYMIME is not announced)")
		default:
			return errorReply(501, "5.5.4", "BODY must be 7BIT or 8BITMIME")
		}
	case "SMTPUTF8": // RFC 6531 §3.4
		if r := noValue(); r != nil {
			return r
		}
		m.SMTPUTF8 = true
	case "REQUIRETLS": // RFC 8689 §4.1
		if r := noValue(); r != nil {
			return r
		}
		if !c.cfg.RequireTLS || c.tlsState == nil {
			// RFC 8689 §4.1: only over TLS, and only when announced.
			return errorReply(530, "5.7.10", "REQUIRETLS needs TLS; use STARTTLS first")
		}
		m.RequireTLS = true
	case "RET": // RFC 3461 §4.3
		if r := needValue(); r != nil {
			return r
		}
		switch strings.ToUpper(p.value) {
		case RetFull:
			m.Ret = RetFull
		case RetHdrs:
			m.Ret = RetHdrs
		default:
			return errorReply(501, "5.5.4", "RET must be FULL or HDRS")
		}
	case "ENVID": // RFC 3461 §4.4
		if r := needValue(); r != nil {
			return r
		}
		v, err := decodeXtext(p.value)
		if err != nil || len(v) > 100 {
			return errorReply(501, "5.5.4", "ENVID must be xtext of at most 100 characters")
		}
		m.EnvID = v
	case "AUTH": // RFC 4954 §5: accepted, informational.
		if r := needValue(); r != nil {
			return r
		}
		if p.value == "<>" {
			m.Auth = "<>"
			break
		}
		v, err := decodeXtext(p.value)
		if err != nil {
			return errorReply(501, "5.5.4", "AUTH parameter must be xtext or <>")
		}
		m.Auth = v
	default:
		// RFC 5321 §4.1.1.11: 555 for parameters not recognized.
		return errorReply(555, "5.5.4", "unsupported MAIL parameter "+p.key)
	}
	return nil
}

// cmdRCPT adds a recipient (RFC 5321 §4.1.1.3).
func (c *conn) cmdRCPT(arg string) error {
	s, err := pathArg(arg, "TO")
	if err != nil {
		return err
	}
	utf8OK := c.st.Mail.SMTPUTF8
	path, postmaster, rest, err := parsePath(s, utf8OK)
	if err != nil {
		return pathError(err)
	}
	if path.IsNull() {
		return errorReply(501, "5.1.3", "a recipient address is required")
	}
	if rest != "" && rest[0] != ' ' {
		return errorReply(501, "5.5.4", "syntax error: a space must separate the address and the parameters")
	}
	params, err := parseParams(rest, utf8OK)
	if err != nil {
		return errorReply(501, "5.5.4", err.Error())
	}
	r := &RcptTo{Path: path, Postmaster: postmaster}
	for _, p := range params {
		switch p.key {
		case "NOTIFY": // RFC 3461 §4.1
			if !p.set {
				return errorReply(501, "5.5.4", "NOTIFY needs a value")
			}
			n, err := parseNotify(p.value)
			if err != nil {
				return errorReply(501, "5.5.4", err.Error())
			}
			r.Notify = n
		case "ORCPT": // RFC 3461 §4.2: addr-type ";" xtext
			if !p.set {
				return errorReply(501, "5.5.4", "ORCPT needs a value")
			}
			typ, addr, ok := strings.Cut(p.value, ";")
			if !ok || !isKeyword(typ) {
				return errorReply(501, "5.5.4", "ORCPT must be addr-type;address, e.g. rfc822;user@example.org")
			}
			v := addr
			if !strings.EqualFold(typ, "utf-8") {
				// RFC 6533 §3: the utf-8 type uses its own
				// encoding, kept as sent.
				v, err = decodeXtext(addr)
				if err != nil {
					return errorReply(501, "5.5.4", "ORCPT address: "+err.Error())
				}
			}
			if len(v) > maxPath {
				return errorReply(501, "5.5.4", "ORCPT address too long")
			}
			r.ORcpt = strings.ToLower(typ) + ";" + v
		default:
			return errorReply(555, "5.5.4", "unsupported RCPT parameter "+p.key)
		}
	}
	if len(c.st.Rcpts) >= c.cfg.MaxRecipients {
		// RFC 5321 §4.5.3.1.10, RFC 9422 §4.1.
		return errorReply(452, "4.5.3", "too many recipients, at most "+strconv.Itoa(c.cfg.MaxRecipients)+" per message; send the rest in another transaction")
	}
	ok := errorReply(250, "2.1.5", "recipient OK")
	if err := c.sess.Rcpt(c.ctx, &c.st, r); err != nil {
		if ok = successReply(err); ok == nil {
			return c.sessionError("rcpt", err)
		}
	}
	c.st.Rcpts = append(c.st.Rcpts, r)
	c.state = stateRcpt
	c.log.Debug("smtp rcpt to", "to", path.LogString())
	return c.writeReply(ok)
}
