package queue

// The header of a submitted message, as far as queue reads it: the From
// address it checks, the X-Moxd-Extra-* fields it takes out, TLS-Required,
// Message-ID and Subject. The scan is bounded and strict: a header queue
// cannot read unambiguously is refused rather than guessed at, so that
// what queue checks is what recipients see.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"slices"
	"strings"

	"moxd/internal/ipc"
	"moxd/internal/mailproto/message"
)

const (
	// maxHeader bounds the header block queue reads.
	maxHeader = 256 << 10
	// Limits of the extra data taken from X-Moxd-Extra-* fields.
	extraPrefix     = "x-moxd-extra-"
	maxExtraKey     = 64
	maxExtraValue   = 1024
	maxExtraTotal   = 8 << 10
	maxHeaderString = 1000 // Message-ID and Subject as recorded
)

// errBadHeader marks a header queue refuses; the text says why.
var errBadHeader = errors.New("message header refused")

// headerField is one field of the header: name as written, value
// unfolded and trimmed, and its bytes in the message (with line breaks).
type headerField struct {
	name       string
	value      string
	start, end int64
}

// msgHeader is the scanned header of a message.
type msgHeader struct {
	// eightBit: a field has a non-ASCII octet (RFC 6532 UTF-8).
	eightBit bool
	fields   []headerField
	// end is the offset of the empty line that ends the header, body the
	// offset after it.
	end, body int64
}

// scanHeader reads the header of the message of size bytes in r. Lines
// end in LF, optionally preceded by CR. The header must end with an empty
// line within maxHeader bytes, and every line must be a field ("name:",
// name of printable ASCII) or a continuation of one.
func scanHeader(r io.ReaderAt, size int64) (*msgHeader, error) {
	n := min(size, maxHeader)
	buf := make([]byte, n)
	if _, err := r.ReadAt(buf, 0); err != nil && err != io.EOF {
		return nil, fmt.Errorf("read message header: %w", err)
	}
	h := &msgHeader{}
	var off int64
	for lineNo := 1; ; lineNo++ {
		i := bytes.IndexByte(buf[off:], '\n')
		if i < 0 {
			if size > maxHeader {
				return nil, fmt.Errorf("%w: no end of header (an empty line) in the first %d KiB; the header is too long", errBadHeader, maxHeader>>10)
			}
			return nil, fmt.Errorf("%w: no empty line between header and body; a message needs a header, an empty line, then the body", errBadHeader)
		}
		line := buf[off : off+int64(i)]
		next := off + int64(i) + 1
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			h.end, h.body = off, next
			break
		}
		if !h.eightBit && slices.ContainsFunc(line, func(c byte) bool { return c >= 0x80 }) {
			h.eightBit = true
		}
		if line[0] == ' ' || line[0] == '\t' {
			// RFC 5322 §2.2.3: a continuation; unfolding removes the
			// line break only.
			if len(h.fields) == 0 {
				return nil, fmt.Errorf("%w: line %d of the header is a continuation without a field before it", errBadHeader, lineNo)
			}
			f := &h.fields[len(h.fields)-1]
			f.value += string(line)
			f.end = next
			off = next
			continue
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		// RFC 5322 §4.5.3: obsolete syntax allows space before the colon.
		name = bytes.TrimRight(name, " \t")
		if !ok || len(name) == 0 || !validFieldName(name) {
			return nil, fmt.Errorf("%w: line %d of the header is not a header field (\"Name: value\")", errBadHeader, lineNo)
		}
		h.fields = append(h.fields, headerField{name: string(name), value: string(value), start: off, end: next})
		off = next
	}
	for i := range h.fields {
		h.fields[i].value = strings.TrimSpace(h.fields[i].value)
	}
	return h, nil
}

// validFieldName checks RFC 5322 §3.6.8: printable ASCII except colon.
func validFieldName(b []byte) bool {
	for _, c := range b {
		if c < 33 || c > 126 || c == ':' {
			return false
		}
	}
	return true
}

// get returns the fields named name (case-insensitive).
func (h *msgHeader) get(name string) []headerField {
	var l []headerField
	for _, f := range h.fields {
		if strings.EqualFold(f.name, name) {
			l = append(l, f)
		}
	}
	return l
}

// first returns the value of the first field named name, or "".
func (h *msgHeader) first(name string) string {
	if l := h.get(name); len(l) > 0 {
		return l[0].value
	}
	return ""
}

// fromAddress returns the one address of the From field. RFC 5322 §3.6
// allows one From field; queue also wants one address (a From with
// several addresses needs a Sender, which submissions do not need). The
// value must parse the same way with a strict parser and with the parser
// store uses to show messages, so that the address checked is the one
// recipients see.
func (h *msgHeader) fromAddress(r io.ReaderAt) (localpart, domain string, err error) {
	froms := h.get("From")
	switch len(froms) {
	case 0:
		return "", "", fmt.Errorf("%w: no From header; add a From header with your address", errBadHeader)
	case 1:
	default:
		return "", "", fmt.Errorf("%w: %d From headers; a message has exactly one (RFC 5322 §3.6)", errBadHeader, len(froms))
	}
	strict, err := mail.ParseAddressList(froms[0].value)
	if err != nil {
		return "", "", fmt.Errorf("%w: From header %q: %v", errBadHeader, ipc.ClipText(froms[0].value, 200), err)
	}
	if len(strict) != 1 {
		return "", "", fmt.Errorf("%w: From header has %d addresses; use exactly one", errBadHeader, len(strict))
	}
	// Store's view: the message package on the header block alone.
	part, err := message.Parse(r, h.body, message.Limits{MaxDepth: 0, MaxParts: 1, MaxHeaderBytes: maxHeader})
	if err != nil {
		return "", "", fmt.Errorf("read message header: %w", err)
	}
	var lenient []message.Address
	if part.Envelope != nil {
		lenient = part.Envelope.From
	}
	if len(lenient) != 1 || lenient[0].Host == "" || lenient[0].Host == message.MissingHost || lenient[0].Mailbox == message.MissingMailbox {
		return "", "", fmt.Errorf("%w: From header %q is ambiguous; use a plain address, as in \"Name <user@example.org>\"", errBadHeader, ipc.ClipText(froms[0].value, 200))
	}
	a := lenient[0]
	if !strings.EqualFold(a.Mailbox+"@"+a.Host, strict[0].Address) {
		return "", "", fmt.Errorf("%w: From header %q is ambiguous; use a plain address, as in \"Name <user@example.org>\"", errBadHeader, ipc.ClipText(froms[0].value, 200))
	}
	return a.Mailbox, strings.ToLower(a.Host), nil
}

// extra collects the X-Moxd-Extra-<key> fields (keys lower-cased) and
// returns them with the fields to leave out of the stored message.
func (h *msgHeader) extra() (map[string]string, []headerField, error) {
	var m map[string]string
	var drop []headerField
	total := 0
	for _, f := range h.fields {
		if len(f.name) < len(extraPrefix) || !strings.EqualFold(f.name[:len(extraPrefix)], extraPrefix) {
			continue
		}
		key := strings.ToLower(f.name[len(extraPrefix):])
		switch {
		case key == "":
			return nil, nil, fmt.Errorf("%w: header %s has no key after %q", errBadHeader, f.name, "X-Moxd-Extra-")
		case len(key) > maxExtraKey:
			return nil, nil, fmt.Errorf("%w: key of header %s is longer than %d bytes", errBadHeader, ipc.ClipText(f.name, 100), maxExtraKey)
		case len(f.value) > maxExtraValue:
			return nil, nil, fmt.Errorf("%w: value of header %s is longer than %d bytes", errBadHeader, f.name, maxExtraValue)
		case hasKey(m, key):
			return nil, nil, fmt.Errorf("%w: header %s appears more than once", errBadHeader, f.name)
		case len(m) >= maxExtraFields:
			return nil, nil, fmt.Errorf("%w: more than %d X-Moxd-Extra headers", errBadHeader, maxExtraFields)
		}
		total += len(key) + len(f.value)
		if total > maxExtraTotal {
			return nil, nil, fmt.Errorf("%w: X-Moxd-Extra headers of more than %d KiB in all", errBadHeader, maxExtraTotal>>10)
		}
		if m == nil {
			m = map[string]string{}
		}
		m[key] = f.value
		drop = append(drop, f)
	}
	return m, drop, nil
}

func hasKey(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}

// tlsRequiredNo reports whether the header says "TLS-Required: No" (RFC
// 8689 §5): the sender asks that delivery go on even without TLS.
func (h *msgHeader) tlsRequiredNo() bool {
	for _, f := range h.get("TLS-Required") {
		if strings.EqualFold(f.value, "No") {
			return true
		}
	}
	return false
}

// recordString makes a header value fit a record field.
func recordString(s string) string {
	return ipc.ClipText(s, maxHeaderString)
}

// submitPrefixFields are the fields a submitting role may put before the
// message: its trace field, and the Message-ID and Date a message without
// them gets (RFC 6409 §8.3, §8.4; submit checks the message really lacks
// them). Anything else (a second From, say) would change what the checks
// saw.
var submitPrefixFields = []string{"Received", "Message-ID", "Date"}

// prefixField returns the value of the first field called name in header
// lines a peer computed (checked by checkPrefix), unfolded and trimmed,
// and whether it is there.
func prefixField(prefix []byte, name string) (string, bool) {
	lines := bytes.Split(bytes.TrimSuffix(prefix, []byte("\r\n")), []byte("\r\n"))
	for i, line := range lines {
		n, v, ok := bytes.Cut(line, []byte(":"))
		if !ok || !strings.EqualFold(string(n), name) || len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			continue
		}
		val := string(v)
		for _, c := range lines[i+1:] {
			if len(c) == 0 || c[0] != ' ' && c[0] != '\t' {
				break
			}
			val += string(c)
		}
		return strings.TrimSpace(val), true
	}
	return "", false
}

// checkPrefix checks header lines a peer computed: complete CRLF-ended
// lines, each a field or the continuation of one, and with allowed set
// only fields of those names.
func checkPrefix(prefix []byte, allowed []string) error {
	if len(prefix) == 0 {
		return nil
	}
	if !bytes.HasSuffix(prefix, []byte("\r\n")) {
		return fmt.Errorf("%w: header lines before the message do not end with CRLF", errBadHeader)
	}
	for i, line := range bytes.Split(prefix[:len(prefix)-2], []byte("\r\n")) {
		if bytes.ContainsAny(line, "\r\n") {
			return fmt.Errorf("%w: line %d of the header lines before the message has a bare CR or LF", errBadHeader, i+1)
		}
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') && i > 0 {
			continue
		}
		name, _, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(name) == 0 || !validFieldName(name) {
			return fmt.Errorf("%w: line %d of the header lines before the message is not a header field", errBadHeader, i+1)
		}
		if allowed != nil && !slices.ContainsFunc(allowed, func(s string) bool { return strings.EqualFold(s, string(name)) }) {
			return fmt.Errorf("%w: header field %q may not be added before a submitted message", errBadHeader, ipc.ClipText(string(name), 100))
		}
	}
	return nil
}
