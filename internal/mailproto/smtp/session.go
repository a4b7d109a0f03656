package smtp

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/netip"
)

// Session is what the protocol engine asks about mail transactions: the
// role (smtpd) implements it per connection and decides who may send, to
// whom, and where the body goes. The engine does the syntax, the state
// machine, the extensions' framing and the replies.
//
// Every method may return a *Reply: with a 4xx or 5xx code it is sent as the
// error reply for the command (a 421 also ends the session); with a 2xx
// code it replaces the engine's default success reply. Any other error is
// logged and answered "451 4.3.0", and for a method that cannot fail
// partially (Mail, Rcpt, Data) the transaction continues or ends as the
// reply says. Methods are called from the session's goroutine only, one at
// a time.
type Session interface {
	// Hello is called after a syntactically valid EHLO or HELO. The
	// session's transaction state is already reset.
	Hello(ctx context.Context, st *State) error

	// AuthMechanisms lists the SASL mechanisms to announce in EHLO and
	// accept in AUTH, given the TLS state. Empty means no AUTH extension.
	AuthMechanisms(st *State) []string
	// Auth runs one SASL exchange (RFC 4954). initial is the initial
	// response when hasInitial (the empty response is "=", RFC 4954 §4).
	// The session talks to the client with exchange: it sends a challenge
	// (334) and returns the client's decoded response, or ErrAuthAborted
	// when the client sent "*". On success Auth returns the account name
	// and the engine replies "235 2.7.0"; a mechanism's final server data
	// (SCRAM's server-final message) must be sent with exchange before
	// returning.
	Auth(ctx context.Context, st *State, mech string, initial []byte, hasInitial bool, exchange func(challenge []byte) ([]byte, error)) (account string, err error)

	// Mail starts a transaction. m is valid until the transaction ends.
	Mail(ctx context.Context, st *State, m *MailFrom) error
	// Rcpt adds a recipient to the transaction started by Mail.
	Rcpt(ctx context.Context, st *State, r *RcptTo) error
	// Data receives the message of the transaction. body yields the
	// message as it will be stored: dot-unstuffed (DATA) or the chunks
	// concatenated (BDAT), with CRLF line endings. Its Read fails with
	// ErrBareLineEnding, ErrTooLarge or ErrLineTooLong on a message that
	// breaks those rules, or with another error when the connection
	// fails; the session must then return that error (or a *Reply). The
	// engine reads and discards what the session leaves unread before it
	// replies. The transaction ends when Data returns.
	Data(ctx context.Context, st *State, body io.Reader) error
	// Reset is called when a transaction is aborted (RSET, EHLO/HELO,
	// STARTTLS, a failed BDAT, the end of the session) after Mail
	// succeeded and before Data returned.
	Reset(st *State)
}

// ErrAuthAborted is returned by an AUTH exchange function when the client
// cancelled the exchange with "*" (RFC 4954 §4).
var ErrAuthAborted = errors.New("authentication cancelled by client")

// Errors of the body reader given to Session.Data.
var (
	// ErrBareLineEnding: the message contains a CR or LF that is not part
	// of a CRLF pair. Such messages are refused: they are how SMTP
	// smuggling hides a second message in the first.
	ErrBareLineEnding = errors.New("message contains a bare CR or LF")
	// ErrTooLarge: the message is larger than Config.MaxMessageSize.
	ErrTooLarge = errors.New("message exceeds the size limit")
	// ErrLineTooLong: a line of the message is longer than RFC 5322 §2.1.1
	// allows (998 octets plus CRLF) by more than the engine tolerates.
	ErrLineTooLong = errors.New("message has a line longer than the limit")
)

// State is what the engine knows about a session, for the Session's
// decisions. The Session must not modify it.
type State struct {
	// Remote and Local are the connection's addresses (zero for a
	// connection that is not TCP, as in tests over pipes).
	Remote, Local netip.AddrPort
	// HelloName is the EHLO/HELO argument ("" before one), EHLO whether
	// it was EHLO.
	HelloName string
	EHLO      bool
	// TLS is the TLS connection state once TLS is up.
	TLS *tls.ConnectionState
	// Account is the authenticated account ("" before a successful AUTH).
	Account string
	// AuthMech is the mechanism of the successful AUTH.
	AuthMech string
	// Mail is the current transaction's MAIL FROM, nil outside one.
	Mail *MailFrom
	// Rcpts are the recipients accepted so far in the transaction.
	Rcpts []*RcptTo
	// Chunking is true while the message arrives with BDAT.
	Chunking bool
}

// Body types of MAIL's BODY parameter (RFC 6152, RFC 3030).
const (
	Body7Bit     = "7BIT"
	Body8BitMIME = "8BITMIME"
)

// DSN RET values (RFC 3461 §4.3).
const (
	RetNone = ""
	RetFull = "FULL"
	RetHdrs = "HDRS"
)

// MailFrom is a parsed MAIL command.
type MailFrom struct {
	Path Path // IsNull for the null reverse-path "<>"
	// Size is the SIZE parameter (RFC 1870), -1 when absent.
	Size int64
	// Body is Body7Bit (also when absent) or Body8BitMIME.
	Body string
	// SMTPUTF8 is set when the client gave the SMTPUTF8 parameter (RFC
	// 6531 §3.4): addresses and headers may contain UTF-8.
	SMTPUTF8 bool
	// RequireTLS is the REQUIRETLS parameter (RFC 8689 §4.1).
	RequireTLS bool
	// Ret and EnvID are the DSN parameters (RFC 3461 §4.3, §4.4); EnvID
	// is xtext-decoded.
	Ret   string
	EnvID string
	// Auth is the AUTH parameter (RFC 4954 §5), xtext-decoded; "<>" when
	// the client gave "<>". Informational only.
	Auth string
}

// DSN NOTIFY flags (RFC 3461 §4.1).
const (
	NotifyNever   uint8 = 1 << 0
	NotifySuccess uint8 = 1 << 1
	NotifyFailure uint8 = 1 << 2
	NotifyDelay   uint8 = 1 << 3
)

// RcptTo is a parsed RCPT command.
type RcptTo struct {
	Path Path
	// Postmaster is set for the bare "<Postmaster>" recipient (RFC 5321
	// §4.1.1.3), which names the postmaster of this server; Path then
	// has no domain.
	Postmaster bool
	// Notify holds Notify* flags, 0 when NOTIFY was not given.
	Notify uint8
	// ORcpt is the ORCPT parameter (RFC 3461 §4.2) as "addr-type;addr"
	// with the address xtext-decoded; "" when absent.
	ORcpt string
}
