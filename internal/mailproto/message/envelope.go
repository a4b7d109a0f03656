package message

import "strings"

// Envelope holds the IMAP ENVELOPE fields of a message (RFC 3501 §7.4.2).
// Values are the raw header values, unfolded, not RFC 2047-decoded. An
// absent field is empty.
type Envelope struct {
	Date, Subject                      string
	From, Sender, ReplyTo, To, Cc, Bcc []Address
	InReplyTo, MessageID               string
}

// Address is one ENVELOPE address structure (RFC 3501 §7.4.2).
//
// Group syntax (RFC 5322 §3.4) follows RFC 3501: the start of a group is an
// Address with Mailbox set to the group name and empty Name and Host, the
// end of a group is the zero Address. An empty Host therefore always marks a
// group: an address without domain gets Host MissingHost, and an address
// without local part gets Mailbox MissingMailbox.
type Address struct {
	Name    string // display name, raw: quoted strings unquoted, not RFC 2047-decoded
	Mailbox string // local part
	Host    string // domain; a domain literal keeps its brackets
}

// MissingHost and MissingMailbox stand in for the domain or the local part
// of an address that lacks one, keeping Host == "" for group markers only.
const (
	MissingHost    = "MISSING_DOMAIN"
	MissingMailbox = "MISSING_MAILBOX"
)

// parseEnvelope extracts the ENVELOPE fields from a header.
func parseEnvelope(fields []field) *Envelope {
	e := &Envelope{}
	e.Date, _ = get(fields, "Date")
	e.Subject, _ = get(fields, "Subject")
	addrs := func(name string) []Address {
		v, _ := get(fields, name)
		return parseAddressList(v)
	}
	e.From = addrs("From")
	e.Sender = addrs("Sender")
	e.ReplyTo = addrs("Reply-To")
	e.To = addrs("To")
	e.Cc = addrs("Cc")
	e.Bcc = addrs("Bcc")
	// RFC 3501 §7.4.2: a missing or empty Sender or Reply-To is set to From.
	if len(e.Sender) == 0 {
		e.Sender = e.From
	}
	if len(e.ReplyTo) == 0 {
		e.ReplyTo = e.From
	}
	e.InReplyTo, _ = get(fields, "In-Reply-To")
	e.MessageID, _ = get(fields, "Message-ID")
	return e
}

// addrToken is one lexical element of an address list.
type addrToken struct {
	kind byte   // 'a' atom or dot-atom, 'q' quoted string, 'd' domain literal, or a special: < > @ : ; ,
	text string // for 'a', 'q', 'd'
}

// lexAddresses splits an address list into tokens, dropping comments and
// whitespace (RFC 5322 §3.2).
func lexAddresses(s string) []addrToken {
	var toks []addrToken
	for {
		s = skipCFWS(s)
		if s == "" {
			return toks
		}
		switch c := s[0]; c {
		case '<', '>', '@', ':', ';', ',':
			toks = append(toks, addrToken{kind: c})
			s = s[1:]
		case '"':
			var v string
			v, s = readQuoted(s)
			toks = append(toks, addrToken{kind: 'q', text: v})
		case '[':
			i := strings.IndexByte(s, ']')
			if i < 0 {
				i = len(s) - 1
			}
			toks = append(toks, addrToken{kind: 'd', text: s[:i+1]})
			s = s[i+1:]
		default:
			i := 0
			for i < len(s) && !strings.ContainsRune("<>@:;,\"[( \t\r\n", rune(s[i])) {
				i++
			}
			if i == 0 {
				// A stray character such as ')' or ']': skip it.
				s = s[1:]
				continue
			}
			toks = append(toks, addrToken{kind: 'a', text: s[:i]})
			s = s[i:]
		}
	}
}

// parseAddressList parses an RFC 5322 §3.4 address-list leniently: whatever
// can be read as an address is returned, garbage between addresses is
// skipped.
func parseAddressList(s string) []Address {
	toks := lexAddresses(s)
	var out []Address
	inGroup := false
	// phrase collects words until we know what they are: a display name,
	// a group name or a local part.
	var words []addrToken
	flush := func() {
		// Words not followed by "<" or ":": an addr-spec without angle
		// brackets (local@domain) or garbage.
		if a, ok := addrSpec(words); ok {
			out = append(out, a)
		}
		words = words[:0]
	}
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		switch t.kind {
		case '<':
			name := phrase(words)
			words = words[:0]
			j := i + 1
			for j < len(toks) && toks[j].kind != '>' {
				j++
			}
			spec := toks[i+1 : j]
			// RFC 5322 §4.4: an obsolete route before ":" is dropped.
			for k := len(spec) - 1; k >= 0; k-- {
				if spec[k].kind == ':' {
					spec = spec[k+1:]
					break
				}
			}
			if a, ok := addrSpec(spec); ok {
				a.Name = name
				out = append(out, a)
			}
			i = j
		case ':':
			if !inGroup {
				// RFC 3501 §7.4.2: group start marker.
				out = append(out, Address{Mailbox: phrase(words)})
				inGroup = true
				words = words[:0]
			}
		case ';':
			flush()
			if inGroup {
				out = append(out, Address{}) // group end marker
				inGroup = false
			}
		case ',':
			flush()
		default:
			words = append(words, t)
		}
	}
	flush()
	if inGroup {
		out = append(out, Address{})
	}
	return out
}

// phrase joins display-name words with single spaces.
func phrase(words []addrToken) string {
	var parts []string
	for _, w := range words {
		switch w.kind {
		case 'a', 'q':
			parts = append(parts, w.text)
		case '@':
			parts = append(parts, "@")
		case 'd':
			parts = append(parts, w.text)
		}
	}
	return strings.Join(parts, " ")
}

// addrSpec reads local-part "@" domain from tokens.
func addrSpec(toks []addrToken) (Address, bool) {
	if len(toks) == 0 {
		return Address{}, false
	}
	at := -1
	for i, t := range toks {
		if t.kind == '@' {
			at = i
		}
	}
	var local, domain []addrToken
	if at < 0 {
		local = toks
	} else {
		local, domain = toks[:at], toks[at+1:]
	}
	var lb strings.Builder
	for _, t := range local {
		if t.kind != 'a' && t.kind != 'q' {
			return Address{}, false
		}
		lb.WriteString(t.text)
	}
	var db strings.Builder
	for _, t := range domain {
		if t.kind != 'a' && t.kind != 'd' {
			return Address{}, false
		}
		db.WriteString(t.text)
	}
	a := Address{Mailbox: lb.String(), Host: db.String()}
	if a.Mailbox == "" && a.Host == "" {
		return Address{}, false
	}
	if a.Mailbox == "" {
		a.Mailbox = MissingMailbox
	}
	if a.Host == "" {
		a.Host = MissingHost
	}
	return a, true
}
