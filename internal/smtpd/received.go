package smtpd

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/base32"
	"net/netip"
	"strings"
	"time"

	"moxd/internal/mailproto/headerfield"
)

// Trace headers smtpd puts in front of a message: Received (RFC 5321
// §4.4), and for submissions a Message-ID and Date when the message has
// none (RFC 6409 §8.3, §8.4).

// receivedInfo is what the Received header says.
type receivedInfo struct {
	HelloName string
	RemoteIP  netip.Addr
	// IPRevName is the verified reverse DNS name of RemoteIP, "" if none.
	IPRevName string
	Hostname  string
	// With is the protocol (RFC 3848, RFC 6531 §3.7.3): ESMTP, ESMTPS,
	// ESMTPA, ESMTPSA, or the UTF8SMTP forms.
	With string
	TLS  *tls.ConnectionState
	// DNSSEC lists the checks whose DNS answers were DNSSEC-authentic.
	DNSSEC []string
	// RequireTLS: the message came with REQUIRETLS (RFC 8689 §4.2 wants
	// that recorded).
	RequireTLS bool
	ID         string
	// For is the recipient when there is exactly one.
	For  string
	Time time.Time
}

// protocol returns the "with" keyword for a transaction.
func protocol(utf8, tlsOn, authenticated bool) string {
	p := "ESMTP"
	if utf8 {
		p = "UTF8SMTP"
	}
	if tlsOn {
		p += "S"
	}
	if authenticated {
		p += "A"
	}
	return p
}

// header renders the Received header field, folded, CRLF-terminated.
func (ri receivedInfo) header() string {
	var tok []string
	// RFC 5321 §4.4: "from" the EHLO name, with the TCP-info comment of
	// what the server knows: the verified reverse name and the address.
	from := ri.HelloName
	if from == "" {
		from = "unknown"
	}
	tcp := "[" + ri.RemoteIP.String() + "]"
	if ri.IPRevName != "" {
		tcp = ri.IPRevName + " " + tcp
	}
	tok = append(tok, "from", headerSafe(from), "("+headerSafe(tcp)+")", "by", ri.Hostname, "(moxd)", "with", ri.With)
	if ri.TLS != nil {
		tok = append(tok, "("+tls.VersionName(ri.TLS.Version)+" "+tls.CipherSuiteName(ri.TLS.CipherSuite)+")")
	}
	if len(ri.DNSSEC) > 0 {
		tok = append(tok, "(dnssec-authentic: "+strings.Join(ri.DNSSEC, " ")+")")
	} else {
		tok = append(tok, "(no dnssec-authentic lookups)")
	}
	if ri.RequireTLS {
		tok = append(tok, "(requiretls)")
	}
	tok = append(tok, "id", ri.ID)
	if ri.For != "" {
		tok = append(tok, "for", "<"+headerSafe(ri.For)+">")
	}
	tok[len(tok)-1] += ";"
	tok = append(tok, ri.Time.Format(time.RFC1123Z))
	return headerfield.Fold("Received", tok)
}

// headerSafe replaces characters that would break a header field or a
// comment: controls, and parentheses and backslashes that would end or
// escape a comment.
func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '(' || r == ')' || r == '\\' {
			return '_'
		}
		return r
	}, s)
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns a random identifier for Received ids and Message-IDs.
func newID() string {
	var b [10]byte
	rand.Read(b[:])
	return idEncoding.EncodeToString(b[:])
}
