// Package dsn composes and parses delivery status notifications: the
// multipart/report messages of RFC 3464 and RFC 6522 that tell a sender what
// became of a message (failed, delayed, delivered, relayed, expanded), with
// the internationalized variant of RFC 6533 for SMTPUTF8 messages.
//
// The queue composes a DSN with Message.Compose when a delivery fails or is
// delayed, or when a sender asked for NOTIFY=SUCCESS (RFC 3461), and hands it
// to store like any other message. Parse reads DSNs that other servers send
// back for messages we sent, so the queue and the web interface can match
// them to the original message and recipient.
//
// The package is written on the standard library (mime, mime/multipart,
// mime/quotedprintable) rather than a MIME composition library: a DSN is a
// fixed three-part structure whose machine-readable part has its own field
// grammar (RFC 3464 §2), and what matters is exact control over that grammar,
// over line lengths and over what the included original may contain.
package dsn

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Action is the action-field value of RFC 3464 §2.3.3: what the reporting
// MTA did with the message for one recipient.
type Action string

// The actions of RFC 3464 §2.3.3.
const (
	// Failed: the message could not be delivered and will not be retried.
	Failed Action = "failed"
	// Delayed: not delivered yet; delivery is still being attempted.
	Delayed Action = "delayed"
	// Delivered: delivered to the recipient's mailbox.
	Delivered Action = "delivered"
	// Relayed: handed on to a system that does not send DSNs itself.
	Relayed Action = "relayed"
	// Expanded: delivered, and forwarded to further addresses (an alias or
	// mailing list expansion).
	Expanded Action = "expanded"
)

func (a Action) valid() bool {
	switch a {
	case Failed, Delayed, Delivered, Relayed, Expanded:
		return true
	}
	return false
}

// Errors Parse returns; compare with errors.Is.
var (
	// ErrNotDSN: the message is not a multipart/report of report-type
	// delivery-status or global-delivery-status, or it claims to be one
	// but has no delivery-status part with recipients.
	ErrNotDSN = errors.New("dsn: not a delivery status notification")
	// ErrTooLarge: the message is larger than Parse is willing to read
	// (MaxParseSize).
	ErrTooLarge = errors.New("dsn: message too large")
)

// Limits of Parse.
const (
	// MaxParseSize is the most Parse reads of a message. Real DSNs are a few
	// kilobytes plus (part of) the returned message.
	MaxParseSize = 4 << 20
	// MaxRecipients is the most per-recipient field groups Parse accepts.
	MaxRecipients = 1000
	// MaxDepth is how deep Parse looks through nested multiparts for the
	// multipart/report.
	MaxDepth = 5
)

// Recipient is the outcome for one recipient, written as one per-recipient
// field group (RFC 3464 §2.3) and as a paragraph of the human-readable part.
type Recipient struct {
	// FinalRecipient is the address the message was sent to (RCPT TO),
	// without angle brackets.
	FinalRecipient string
	// OriginalRecipient is the ORCPT parameter as given with RCPT TO (RFC
	// 3461 §4.2), "addr-type;xtext", e.g. "rfc822;bob@example.com". The xtext
	// encoding is removed before it is written (RFC 3461 §6.3); a non-ASCII
	// address in a report without SMTPUTF8 is written with the utf-8
	// address type's escapes (RFC 6533 §3). May be "".
	OriginalRecipient string
	// Action is what happened; required.
	Action Action
	// Status is the RFC 3463 enhanced status code, e.g. "5.1.1"; required.
	Status string
	// RemoteMTA is the host name of the server that answered; may be "".
	RemoteMTA string
	// Diagnostic is the server's reply, e.g. "550 5.1.1 no such user",
	// written as "Diagnostic-Code: smtp; 550 5.1.1 no such user". The lines
	// of a multi-line reply are joined with spaces. May be "".
	Diagnostic string
	// LastAttempt is the time of the last delivery attempt; zero omits it.
	LastAttempt time.Time
	// WillRetryUntil is, for Delayed only, when the queue gives up; zero
	// omits it (RFC 3464 §2.3.7).
	WillRetryUntil time.Time
}

// Message is a DSN to compose. See Compose.
type Message struct {
	// ReportingMTA is our host name, written as "Reporting-MTA: dns; host".
	ReportingMTA string
	// From is the DSN's author address, e.g. "postmaster@mail.example.org";
	// it is written as "Mail Delivery Subsystem <postmaster@...>".
	From string
	// To is the original sender (the envelope MAIL FROM). Callers must not
	// compose DSNs for the null reverse path (RFC 5321 §4.5.5), and must send
	// the DSN itself with MAIL FROM:<> (RFC 3461 §6.2).
	To string
	// Subject of the DSN; "" means a default by action, naming
	// OriginalSubject.
	Subject string
	// OriginalSubject is the Subject of the original message, decoded.
	OriginalSubject string
	// MessageID is the Message-ID of the DSN, without angle brackets;
	// required, the caller generates it.
	MessageID string
	// OriginalMessageID is the Message-ID of the original message, without
	// angle brackets. When set, In-Reply-To and References point at it so
	// mail readers thread the DSN with the message. It comes from the
	// message rather than from us, so one that is not a valid id (spaces,
	// brackets, UTF-8 without SMTPUTF8) is left out instead of failing.
	OriginalMessageID string
	// EnvID is the ENVID given with MAIL FROM, xtext-decoded (RFC 3461
	// §4.4), written as Original-Envelope-Id; may be "".
	EnvID string
	// ArrivalDate is when the original entered our system; zero omits
	// Arrival-Date.
	ArrivalDate time.Time
	// Date is the DSN's Date header; required.
	Date time.Time
	// Recipients are the recipients reported on; at least one.
	Recipients []Recipient
	// Explanation is extra plain text for the human-readable part, e.g. how
	// long delivery will be retried. Lines may be separated by LF or CRLF.
	Explanation string
	// Original is the original message with CRLF line endings (LF is
	// accepted and converted), or nil to include none.
	Original io.Reader
	// HeadersOnly includes only the header section of Original, as the
	// sender asked with RET=HDRS (RFC 3461 §4.3), as text/rfc822-headers
	// (RFC 6522 §4).
	HeadersOnly bool
	// SMTPUTF8 composes an internationalized DSN (RFC 6533 §6):
	// message/global-delivery-status and message/global (or
	// message/global-headers), with UTF-8 allowed in addresses and in the
	// header of the DSN. Without it, every address must be ASCII.
	SMTPUTF8 bool
	// MaxOriginal caps the bytes of Original that are included. A larger
	// original is represented by its header section only, and the
	// human-readable part says so. 0 means no cap.
	MaxOriginal int64
}

// Report is what Parse found in a DSN.
type Report struct {
	// ReportingMTA is the host of the Reporting-MTA field, without "dns;".
	ReportingMTA string
	// EnvID is the Original-Envelope-Id field.
	EnvID string
	// Recipients are the per-recipient field groups, in order.
	Recipients []ReportRecipient
	// OriginalMessageID is the Message-ID of the returned message or header
	// section, without angle brackets; "" if there is none.
	OriginalMessageID string
}

// ReportRecipient is one per-recipient field group of a parsed DSN.
type ReportRecipient struct {
	// FinalRecipient is the address of the Final-Recipient field, without
	// its address type ("rfc822; a@b" gives "a@b"; "utf-8" addresses are
	// decoded to UTF-8).
	FinalRecipient string
	// OriginalRecipient keeps its address type, in the form Compose takes:
	// "rfc822;a@b". "" if absent.
	OriginalRecipient string
	// Action is the first word of the Action field, lower case. It may be a
	// value outside the constants of this package.
	Action Action
	// Status is the enhanced status code (any comment after it removed).
	Status string
	// RemoteMTA is the Remote-MTA value without its type ("dns;").
	RemoteMTA string
	// Diagnostic is the Diagnostic-Code value without its type ("smtp;").
	Diagnostic string
}

// validStatus reports whether s is an RFC 3464 §2.3.4 status-code: class
// 2, 4 or 5, then two numbers of 1 to 3 digits.
func validStatus(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || (parts[0] != "2" && parts[0] != "4" && parts[0] != "5") {
		return false
	}
	for _, p := range parts[1:] {
		if len(p) < 1 || len(p) > 3 {
			return false
		}
		for i := 0; i < len(p); i++ {
			if p[i] < '0' || p[i] > '9' {
				return false
			}
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// hasControl reports whether s has an ASCII control character (CR and LF
// included) or DEL.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// xtextDecode removes the xtext encoding of RFC 3461 §4: "+" followed by two
// upper-case hex digits is that octet. A "+" not followed by two hex digits
// is kept (it is not valid xtext, but neither is it worth failing a DSN).
func xtextDecode(s string) string {
	if !strings.Contains(s, "+") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '+' && i+2 < len(s) && isUpperHex(s[i+1]) && isUpperHex(s[i+2]) {
			v, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
			b.WriteByte(byte(v))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isUpperHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'A' && c <= 'F'
}

// unitextDecode decodes the EmbeddedUnicodeChar escapes "\x{HEX}" of the
// utf-8 address type (RFC 6533 §3). Malformed escapes are kept as written.
func unitextDecode(s string) string {
	if !strings.Contains(s, `\x{`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], `\x{`) {
			if end := strings.IndexByte(s[i+3:], '}'); end >= 1 && end <= 6 {
				v, err := strconv.ParseUint(s[i+3:i+3+end], 16, 32)
				if err == nil && utf8.ValidRune(rune(v)) {
					b.WriteRune(rune(v))
					i += 3 + end + 1
					continue
				}
			}
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}

// unitextEncode returns s as utf-8-addr-xtext (RFC 6533 §3): ASCII
// graphic characters except "+", "=" and "\" as themselves, everything else
// as "\x{HEX}". The result is ASCII, for message/delivery-status.
func unitextEncode(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r > 0x20 && r < 0x7f && r != '+' && r != '=' && r != '\\' {
			b.WriteRune(r)
			continue
		}
		fmt.Fprintf(&b, `\x{%X}`, r)
	}
	return b.String()
}
