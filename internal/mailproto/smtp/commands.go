package smtp

import (
	"net/netip"
	"strconv"
	"strings"
)

// command is one entry of the command table.
type command struct {
	// states are the session states in which the verb may be sent. In any
	// other state the loop answers with sequenceError and does not call
	// handle.
	states stateSet
	// handle runs the command. It writes its own success reply and returns
	// nil, a *Reply to send as an error, or a *closeError to end the
	// session.
	handle func(c *conn, arg string) error
}

// anyState is every state of a session. RFC 5321 §4.1.4: NOOP, HELP, EXPN,
// VRFY and RSET may be sent at any time, and so may EHLO/HELO and QUIT.
const anyState = stateSet(1<<stateInit | 1<<stateReady | 1<<stateMail | 1<<stateRcpt)

// inTransaction is after MAIL.
var inTransaction = statesOf(stateMail, stateRcpt)

// commands maps an upper-case verb to its command. Read-only.
var commands = map[string]command{
	"EHLO": {anyState, (*conn).cmdEHLO},
	"HELO": {anyState, (*conn).cmdHELO},
	// RFC 3207 has the client learn STARTTLS from EHLO, but some clients
	// (GNU gsasl) start TLS right after the greeting; the session is reset
	// by the handshake anyway, so nothing is gained by refusing them.
	"STARTTLS": {statesOf(stateInit, stateReady), (*conn).cmdSTARTTLS},
	"AUTH":     {statesOf(stateReady), (*conn).cmdAUTH},
	"MAIL":     {statesOf(stateReady), (*conn).cmdMAIL},
	"RCPT":     {inTransaction, (*conn).cmdRCPT},
	"DATA":     {statesOf(stateRcpt), (*conn).cmdDATA},
	// BDAT is dispatched in every state: outside a transaction its chunk
	// must still be read and discarded (data.go).
	"BDAT": {anyState, (*conn).cmdBDAT},
	"NOOP": {anyState, (*conn).cmdNOOP},
	"RSET": {anyState, (*conn).cmdRSET},
	"HELP": {anyState, (*conn).cmdHELP},
	"VRFY": {anyState, (*conn).cmdVRFY},
	"EXPN": {anyState, (*conn).cmdVRFY},
	"QUIT": {anyState, (*conn).cmdQUIT},
}

// dispatch parses one command line (without CRLF) and runs its command.
func (c *conn) dispatch(line string) error {
	// RFC 5321 §4.1.1: the verb, then a single space and the arguments.
	verb, arg, _ := strings.Cut(line, " ")
	if verb == "" {
		return errorReply(500, "5.5.2", "syntax error: empty command")
	}
	if !isVerb(verb) {
		return errorReply(500, "5.5.2", "syntax error: a command verb is ASCII letters")
	}
	// RFC 5321 §2.4: verbs are case-insensitive.
	verb = strings.ToUpper(verb)
	cmd, ok := commands[verb]
	if !ok {
		return errorReply(500, "5.5.2", "command not recognized")
	}
	if !cmd.states.has(c.state) {
		return c.sequenceError(verb)
	}
	return cmd.handle(c, arg)
}

// isVerb reports whether s can be an SMTP verb: ASCII letters only (RFC
// 5321 §4.1.1).
func isVerb(s string) bool {
	for i := 0; i < len(s); i++ {
		ch := s[i] | 0x20
		if ch < 'a' || ch > 'z' {
			return false
		}
	}
	return true
}

// sequenceError is the reply to a known verb sent in a state that does not
// allow it (RFC 5321 §4.1.4, §4.3.2: 503).
func (c *conn) sequenceError(verb string) *Reply {
	if c.state == stateInit {
		return errorReply(503, "5.5.1", "send EHLO or HELO first")
	}
	switch verb {
	case "RCPT":
		return errorReply(503, "5.5.1", "send MAIL FROM first")
	case "DATA":
		if c.state == stateMail {
			// RFC 5321 §3.3: no valid recipients.
			return errorReply(554, "5.5.1", "no valid recipients")
		}
		return errorReply(503, "5.5.1", "send MAIL FROM and RCPT TO first")
	case "MAIL", "AUTH", "STARTTLS":
		if c.state == stateMail || c.state == stateRcpt {
			return errorReply(503, "5.5.1", verb+" is not allowed during a mail transaction; send RSET first")
		}
	}
	return errorReply(503, "5.5.1", "bad sequence of commands")
}

// hello handles the common part of EHLO and HELO: validate the argument and
// reset the session to "greeted".
func (c *conn) hello(verb, arg string) error {
	// RFC 5321 §4.1.1.1: exactly one Domain or address-literal. Trailing
	// spaces are tolerated, as some clients send them.
	arg = strings.TrimRight(arg, " ")
	if arg == "" {
		return errorReply(501, "5.5.4", verb+" needs the client's domain name or address literal")
	}
	if strings.IndexByte(arg, ' ') >= 0 || !validHelloArg(arg) {
		return errorReply(501, "5.5.4", "syntax error in "+verb+": expected a domain name or an address literal like [192.0.2.1]")
	}
	// RFC 5321 §4.1.4: EHLO/HELO also resets any mail transaction, as RSET
	// does.
	c.abortTransaction()
	c.state = stateReady
	c.helloName = arg
	c.st.HelloName = arg
	c.st.EHLO = verb == "EHLO"
	c.log.Debug("smtp hello", "verb", verb, "name", arg)
	if err := c.sess.Hello(c.ctx, &c.st); err != nil {
		c.state = stateInit
		c.helloName, c.st.HelloName = "", ""
		return c.sessionError("hello", err)
	}
	return nil
}

func (c *conn) cmdEHLO(arg string) error {
	if err := c.hello("EHLO", arg); err != nil {
		return err
	}
	// RFC 5321 §4.1.1.1: the first line is our domain, then one extension
	// per line. RFC 2034 §3: no enhanced codes in the EHLO reply.
	return c.writeReply(&Reply{Code: 250, Lines: c.extensions()})
}

func (c *conn) cmdHELO(arg string) error {
	if err := c.hello("HELO", arg); err != nil {
		return err
	}
	return c.writeReply(&Reply{Code: 250, Lines: []string{c.cfg.Hostname}})
}

// RFC 5321 §4.1.1.9: NOOP may carry an argument, which is ignored.
func (c *conn) cmdNOOP(arg string) error {
	return c.writeReply(errorReply(250, "2.0.0", "OK"))
}

// RFC 5321 §4.1.1.5: RSET takes no argument and aborts the mail
// transaction; the EHLO/HELO state stays.
func (c *conn) cmdRSET(arg string) error {
	if arg != "" {
		return errorReply(501, "5.5.4", "RSET takes no arguments")
	}
	c.abortTransaction()
	return c.writeReply(errorReply(250, "2.0.0", "OK"))
}

// RFC 5321 §4.1.1.8: HELP, with an optional topic that is ignored.
func (c *conn) cmdHELP(arg string) error {
	verbs := []string{"EHLO", "HELO"}
	if c.offersStartTLS() {
		verbs = append(verbs, "STARTTLS")
	}
	if c.offersAuth() {
		verbs = append(verbs, "AUTH")
	}
	verbs = append(verbs, "MAIL", "RCPT", "DATA", "BDAT", "RSET", "NOOP", "VRFY", "EXPN", "HELP", "QUIT")
	what := "moxd SMTP server"
	if c.cfg.Submission {
		what = "moxd SMTP submission server: authenticate with AUTH before MAIL"
	}
	return c.writeReply(&Reply{Code: 214, Enhanced: "2.0.0", Lines: []string{
		what,
		"commands: " + strings.Join(verbs, " "),
	}})
}

// extensions returns the lines of the EHLO reply: our name, then every
// extension this session honours (RFC 5321 §4.1.1.1).
func (c *conn) extensions() []string {
	l := []string{
		c.cfg.Hostname,
		"PIPELINING", // RFC 2920
		"SIZE " + strconv.FormatInt(c.cfg.MaxMessageSize, 10), // RFC 1870
		"8BITMIME",            // RFC 6152
		"SMTPUTF8",            // RFC 6531
		"ENHANCEDSTATUSCODES", // RFC 2034
	}
	if c.offersStartTLS() {
		l = append(l, "STARTTLS") // RFC 3207 §4
	}
	if mechs := c.sess.AuthMechanisms(&c.st); len(mechs) > 0 && c.st.Account == "" {
		l = append(l, "AUTH "+strings.Join(mechs, " ")) // RFC 4954 §3
	}
	l = append(l, "CHUNKING") // RFC 3030
	if c.cfg.RequireTLS && c.tlsState != nil {
		l = append(l, "REQUIRETLS") // RFC 8689 §4.1: only over TLS
	}
	l = append(l,
		"LIMITS RCPTMAX="+strconv.Itoa(c.cfg.MaxRecipients), // RFC 9422
		"DSN", // RFC 3461
	)
	return l
}

// cmdVRFY serves VRFY and EXPN. RFC 5321 §3.5.3: 252 says the address is
// neither confirmed nor denied; moxd does not disclose its users.
func (c *conn) cmdVRFY(arg string) error {
	if arg == "" {
		return errorReply(501, "5.5.4", "an argument is required")
	}
	return c.writeReply(errorReply(252, "2.5.0", "cannot verify addresses; this server does not disclose its users"))
}

// RFC 5321 §4.1.1.10: QUIT takes no argument; the server replies 221 and
// closes.
func (c *conn) cmdQUIT(arg string) error {
	if arg != "" {
		return errorReply(501, "5.5.4", "QUIT takes no arguments")
	}
	return &closeError{
		reply: errorReply(221, "2.0.0", c.cfg.Hostname+" closing connection"),
		cause: errQuit,
	}
}

// validHelloArg reports whether s is a Domain or an address-literal as RFC
// 5321 §4.1.2 and §4.1.3 define them.
func validHelloArg(s string) bool {
	if strings.HasPrefix(s, "[") {
		if !strings.HasSuffix(s, "]") {
			return false
		}
		return validAddressLiteral(s[1 : len(s)-1])
	}
	return validDomain(s)
}

// validAddressLiteral checks the inside of an address-literal: an IPv4
// address, or "IPv6:" and an IPv6 address (RFC 5321 §4.1.3). No standardized
// General-address-literal tag exists besides IPv6, so others are refused.
func validAddressLiteral(s string) bool {
	if len(s) > 5 && strings.EqualFold(s[:5], "IPv6:") {
		ip, err := netip.ParseAddr(s[5:])
		return err == nil && ip.Is6() && ip.Zone() == ""
	}
	ip, err := netip.ParseAddr(s)
	return err == nil && ip.Is4()
}

// validDomain checks RFC 5321 §4.1.2 Domain syntax: dot-separated labels of
// letters, digits and hyphens, not starting or ending with a hyphen, within
// the RFC 1035 §2.3.4 sizes (63 per label, 255 in all).
func validDomain(s string) bool {
	if len(s) > 255 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			ch := label[i]
			if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-') {
				return false
			}
		}
	}
	return true
}
