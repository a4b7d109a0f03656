package dsn

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"strings"
	"time"
	"unicode/utf8"

	"moxd/internal/mailproto/headerfield"
)

// Limits of Compose.
const (
	// maxLine is the hard limit on a line, CRLF excluded (RFC 5322 §2.1.1).
	maxLine = 998
	// foldAt is where header fields are folded when they can be (RFC 5322
	// §2.1.1: lines should be at most 78 characters).
	foldAt = 78
	// maxOriginalHeader is the most of the original's header section that
	// is included; a longer header section is cut at a line boundary.
	maxOriginalHeader = 1 << 20
	// maxSubjectRunes caps the original subject quoted in the DSN subject.
	maxSubjectRunes = 200
)

// Compose writes the complete DSN, header and body, with CRLF line endings:
// a multipart/report of report-type delivery-status (RFC 6522) with a
// text/plain part for people, the message/delivery-status part (RFC 3464
// §2; message/global-delivery-status with SMTPUTF8, RFC 6533 §6) and, if
// Original is set, the original message or its header section.
//
// The header has Date, From, To, Subject (RFC 2047-encoded when not ASCII),
// Message-ID, In-Reply-To and References (with OriginalMessageID),
// Auto-Submitted: auto-replied (RFC 3834 §5) and the MIME fields. No line is
// longer than 998 octets. Without SMTPUTF8 everything outside the included
// original is ASCII; the original part is labeled 8bit when it has 8-bit
// octets (the caller then needs 8BITMIME, or sevenbit.Convert).
//
// Compose reads Original (up to MaxOriginal) before writing anything; an
// invalid Message is reported before w is written to.
func (m *Message) Compose(w io.Writer) error {
	if err := m.check(); err != nil {
		return err
	}
	orig, err := m.readOriginal()
	if err != nil {
		return err
	}

	text := m.textPart(orig)
	status := m.statusPart()
	parts := []part{text, status}
	if orig != nil {
		parts = append(parts, orig.part(m.SMTPUTF8))
	}
	boundary, err := chooseBoundary(m.MessageID, parts)
	if err != nil {
		return err
	}

	bw := bufio.NewWriter(w)
	bw.WriteString(m.header(boundary))
	bw.WriteString("\r\n")
	// RFC 2046 §5.1.1: the preamble is for readers without MIME support.
	bw.WriteString("This is a delivery status notification in MIME format.\r\n")
	for _, p := range parts {
		bw.WriteString("\r\n--" + boundary + "\r\n")
		bw.WriteString(p.header)
		bw.WriteString("\r\n")
		bw.Write(p.body)
		if len(p.body) > 0 && !bytes.HasSuffix(p.body, []byte("\r\n")) {
			bw.WriteString("\r\n")
		}
	}
	// The CRLF before a delimiter belongs to the delimiter (RFC 2046
	// §5.1.1), so each body keeps its own final line break.
	bw.WriteString("\r\n--" + boundary + "--\r\n")
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("dsn: write: %w", err)
	}
	return nil
}

// part is one body part: its header fields (CRLF-terminated, without the
// blank line) and its encoded body.
type part struct {
	header string
	body   []byte
}

// check validates m, with errors that name the field to fix.
func (m *Message) check() error {
	if len(m.Recipients) == 0 {
		return errors.New("dsn: no recipients to report on")
	}
	if err := m.checkHost("ReportingMTA", m.ReportingMTA); err != nil {
		return err
	}
	if err := m.checkAddress("From", m.From); err != nil {
		return err
	}
	if err := m.checkAddress("To", m.To); err != nil {
		return err
	}
	if err := m.checkMsgID("MessageID", m.MessageID); err != nil {
		return err
	}
	// RFC 3461 §4.4: ENVID is at most 100 characters of printable ASCII.
	if len(m.EnvID) > 100 || strings.ContainsFunc(m.EnvID, func(r rune) bool { return r < 0x20 || r >= 0x7f }) {
		return fmt.Errorf("dsn: EnvID %q is not up to 100 printable ASCII characters (RFC 3461 §4.4)", m.EnvID)
	}
	if m.Date.IsZero() {
		return errors.New("dsn: Date is not set")
	}
	if m.MaxOriginal < 0 {
		return fmt.Errorf("dsn: MaxOriginal %d is negative", m.MaxOriginal)
	}
	for i, r := range m.Recipients {
		if !r.Action.valid() {
			return fmt.Errorf("dsn: recipient %d (%q): action %q is not one of failed, delayed, delivered, relayed, expanded (RFC 3464 §2.3.3)", i, r.FinalRecipient, r.Action)
		}
		if r.Status == "" {
			return fmt.Errorf("dsn: recipient %d (%q): Status is required, e.g. 5.1.1 (RFC 3464 §2.3.4)", i, r.FinalRecipient)
		}
		if !validStatus(r.Status) {
			return fmt.Errorf("dsn: recipient %d (%q): status %q is not an enhanced status code like 5.1.1 (RFC 3463 §2)", i, r.FinalRecipient, r.Status)
		}
		if err := m.checkAddress(fmt.Sprintf("recipient %d FinalRecipient", i), r.FinalRecipient); err != nil {
			return err
		}
		if r.OriginalRecipient != "" {
			if _, err := m.origRecipientValue(r.OriginalRecipient); err != nil {
				return fmt.Errorf("dsn: recipient %d (%q): %w", i, r.FinalRecipient, err)
			}
		}
		if r.RemoteMTA != "" {
			if err := m.checkHost(fmt.Sprintf("recipient %d RemoteMTA", i), r.RemoteMTA); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *Message) checkAddress(what, addr string) error {
	switch {
	case addr == "":
		return fmt.Errorf("dsn: %s address is empty", what)
	case !utf8.ValidString(addr) || hasControl(addr):
		return fmt.Errorf("dsn: %s address %q has control characters or invalid UTF-8", what, addr)
	case strings.ContainsAny(addr, "<>"):
		return fmt.Errorf("dsn: %s address %q must be given without angle brackets", what, addr)
	case len(addr) > 500:
		return fmt.Errorf("dsn: %s address is longer than 500 octets", what)
	case !isASCII(addr) && !m.SMTPUTF8:
		// RFC 6533 §3 and §6: UTF-8 addresses are only carried by an
		// internationalized DSN, which itself needs SMTPUTF8 to travel.
		return fmt.Errorf("dsn: %s address %q is not ASCII: it can only be reported in an internationalized DSN; set Message.SMTPUTF8 (and deliver the DSN with SMTPUTF8)", what, addr)
	}
	return nil
}

func (m *Message) checkHost(what, host string) error {
	switch {
	case host == "":
		return fmt.Errorf("dsn: %s host name is empty", what)
	case !utf8.ValidString(host) || hasControl(host) || strings.ContainsAny(host, " ;()"):
		return fmt.Errorf("dsn: %s %q is not a host name", what, host)
	case len(host) > 255:
		return fmt.Errorf("dsn: %s host name is longer than 255 octets", what)
	case !isASCII(host) && !m.SMTPUTF8:
		return fmt.Errorf("dsn: %s %q is not ASCII: give the A-label form (xn--...) or set Message.SMTPUTF8", what, host)
	}
	return nil
}

func (m *Message) checkMsgID(what, id string) error {
	switch {
	case id == "":
		return fmt.Errorf("dsn: %s is empty; the caller generates it", what)
	case !utf8.ValidString(id) || hasControl(id) || strings.ContainsAny(id, "<> \t"):
		return fmt.Errorf("dsn: %s %q must be an id-left@id-right without angle brackets or spaces", what, id)
	case len(id) > 250:
		return fmt.Errorf("dsn: %s is longer than 250 octets", what)
	case !isASCII(id) && !m.SMTPUTF8:
		return fmt.Errorf("dsn: %s %q is not ASCII; set Message.SMTPUTF8", what, id)
	}
	return nil
}

// origRecipientValue returns the Original-Recipient field value for an
// ORCPT parameter "addr-type;xtext" (RFC 3464 §2.3.1, RFC 3461 §4.2).
func (m *Message) origRecipientValue(orcpt string) (string, error) {
	i := strings.IndexByte(orcpt, ';')
	if i <= 0 {
		return "", fmt.Errorf("OriginalRecipient %q is not of the form addr-type;address (RFC 3461 §4.2)", orcpt)
	}
	typ := strings.TrimSpace(orcpt[:i])
	val := xtextDecode(strings.TrimSpace(orcpt[i+1:]))
	if typ == "" || val == "" || !headerfield.IsDotAtom(typ) {
		return "", fmt.Errorf("OriginalRecipient %q is not of the form addr-type;address (RFC 3461 §4.2)", orcpt)
	}
	if strings.EqualFold(typ, "utf-8") {
		// RFC 6533 §3: given as utf-8-addr-xtext or -unitext; an
		// internationalized DSN carries the plain UTF-8 form, an ASCII one
		// the xtext form.
		val = unitextDecode(val)
		typ = "utf-8"
	}
	if !utf8.ValidString(val) || hasControl(val) || len(val) > 500 {
		return "", fmt.Errorf("OriginalRecipient %q has control characters, invalid UTF-8 or is too long", orcpt)
	}
	switch {
	case isASCII(val):
	case m.SMTPUTF8:
		typ = "utf-8"
	default:
		// RFC 6533 §3: the ASCII form of the utf-8 address type keeps the
		// address intact in a message/delivery-status.
		typ, val = "utf-8", unitextEncode(val)
	}
	return typ + ";" + val, nil
}

// finalRecipientValue returns the Final-Recipient value (RFC 3464 §2.3.2;
// RFC 6533 §3 for UTF-8 addresses). check has validated addr.
func (m *Message) finalRecipientValue(addr string) string {
	if isASCII(addr) {
		return "rfc822; " + addr
	}
	return "utf-8; " + addr
}

// header returns the DSN's own header section.
func (m *Message) header(boundary string) string {
	var b strings.Builder
	b.WriteString(fold("Date", m.Date.Format(time.RFC1123Z)))
	b.WriteString(fold("From", "Mail Delivery Subsystem <"+m.From+">"))
	b.WriteString(fold("To", "<"+m.To+">"))
	b.WriteString(fold("Subject", encodeWords(m.subject())))
	b.WriteString(fold("Message-ID", "<"+m.MessageID+">"))
	if m.OriginalMessageID != "" && m.checkMsgID("OriginalMessageID", m.OriginalMessageID) == nil {
		// RFC 5322 §3.6.4: a reply names its parent in both fields.
		b.WriteString(fold("In-Reply-To", "<"+m.OriginalMessageID+">"))
		b.WriteString(fold("References", "<"+m.OriginalMessageID+">"))
	}
	// RFC 3834 §5: so vacation responders and the like do not answer it.
	b.WriteString("Auto-Submitted: auto-replied\r\n")
	b.WriteString("MIME-Version: 1.0\r\n")
	// RFC 6522 §3 and RFC 6533 §6: report-type stays delivery-status for
	// internationalized DSNs too; the status part's type tells them apart.
	b.WriteString(fold("Content-Type", `multipart/report; report-type=delivery-status; boundary="`+boundary+`"`))
	return b.String()
}

// worst returns the action that decides the subject and the opening text:
// failures first, then delays, then the successes.
func (m *Message) worst() Action {
	for _, a := range []Action{Failed, Delayed, Delivered, Expanded, Relayed} {
		for _, r := range m.Recipients {
			if r.Action == a {
				return a
			}
		}
	}
	return Failed
}

func (m *Message) subject() string {
	if m.Subject != "" {
		return cleanText(m.Subject, true)
	}
	orig := cleanText(m.OriginalSubject, true)
	if utf8.RuneCountInString(orig) > maxSubjectRunes {
		orig = string([]rune(orig)[:maxSubjectRunes]) + "..."
	}
	prefix, alone := "", ""
	switch m.worst() {
	case Failed:
		prefix, alone = "Undelivered mail: ", "Undelivered mail returned to sender"
	case Delayed:
		prefix, alone = "Delivery delayed: ", "Delayed mail (still being retried)"
	case Relayed:
		prefix, alone = "Relayed: ", "Mail relayed"
	default:
		prefix, alone = "Delivered: ", "Successful mail delivery"
	}
	if orig == "" {
		return alone
	}
	return prefix + orig
}

// encodeWords returns s as RFC 2047 encoded words when it is not ASCII.
func encodeWords(s string) string {
	if isASCII(s) {
		return s
	}
	return mime.QEncoding.Encode("utf-8", s)
}

// textPart returns the human-readable part (RFC 6522 §3: the first part).
func (m *Message) textPart(o *original) part {
	var lines []string
	add := func(s string) { lines = append(lines, wrap(s, 76)...) }
	add("This is the mail system at " + m.ReportingMTA + ".")
	add("")
	subj := ""
	if s := cleanText(m.OriginalSubject, true); s != "" {
		subj = ` "` + s + `"`
	}
	switch m.worst() {
	case Failed:
		add("Your message" + subj + " could not be delivered to one or more of its recipients.")
	case Delayed:
		add("Your message" + subj + " has not yet been delivered to one or more of its recipients. Delivery will be tried again; you do not need to send the message again now.")
	default:
		add("This is a report on the delivery of your message" + subj + ", as you asked for.")
	}
	add("")
	for _, r := range m.Recipients {
		var what string
		switch r.Action {
		case Failed:
			what = "delivery failed."
		case Delayed:
			what = "delivery is delayed."
		case Delivered:
			what = "delivered."
		case Relayed:
			what = "relayed to a system that does not report on delivery."
		case Expanded:
			what = "delivered, and forwarded to further addresses."
		}
		add("<" + r.FinalRecipient + ">: " + what)
		add("    Status: " + r.Status)
		if d := cleanText(r.Diagnostic, true); d != "" {
			if r.RemoteMTA != "" {
				add("    The server " + r.RemoteMTA + " answered: " + d)
			} else {
				add("    Reason: " + d)
			}
		} else if r.RemoteMTA != "" {
			add("    Server: " + r.RemoteMTA)
		}
		if !r.LastAttempt.IsZero() {
			add("    Last attempt: " + r.LastAttempt.Format(time.RFC1123Z))
		}
		if r.Action == Delayed && !r.WillRetryUntil.IsZero() {
			add("    Delivery will be tried until: " + r.WillRetryUntil.Format(time.RFC1123Z))
		}
		add("")
	}
	if m.Explanation != "" {
		for _, l := range strings.Split(strings.ReplaceAll(m.Explanation, "\r\n", "\n"), "\n") {
			add(cleanText(l, true))
		}
		add("")
	}
	if o != nil {
		switch {
		case !o.headersOnly:
			add("The original message is attached.")
		case o.reason == "":
			add("The header section of the original message is attached.")
		default:
			add("Only the header section of the original message is attached: " + o.reason + ".")
		}
	}

	body := []byte(strings.Join(lines, "\r\n") + "\r\n")
	cte := "7bit"
	if !isASCII(string(body)) || longestLine(body) > maxLine {
		cte = "quoted-printable"
		body = qpEncode(body)
	}
	return part{
		header: "Content-Type: text/plain; charset=utf-8\r\n" +
			"Content-Description: Notification\r\n" +
			"Content-Transfer-Encoding: " + cte + "\r\n",
		body: body,
	}
}

// statusPart returns the machine-readable part (RFC 3464 §2.1): the
// per-message fields, then one field group per recipient, each group
// preceded by a blank line.
func (m *Message) statusPart() part {
	utf := m.SMTPUTF8
	var b strings.Builder
	// RFC 3464 §2.2: per-message fields in this order.
	if m.EnvID != "" {
		b.WriteString(fold("Original-Envelope-Id", m.EnvID))
	}
	b.WriteString(fold("Reporting-MTA", "dns; "+m.ReportingMTA))
	if !m.ArrivalDate.IsZero() {
		b.WriteString(fold("Arrival-Date", m.ArrivalDate.Format(time.RFC1123Z)))
	}
	for _, r := range m.Recipients {
		b.WriteString("\r\n")
		// RFC 3464 §2.3: per-recipient fields in this order.
		if r.OriginalRecipient != "" {
			v, _ := m.origRecipientValue(r.OriginalRecipient) // checked
			b.WriteString(fold("Original-Recipient", v))
		}
		b.WriteString(fold("Final-Recipient", m.finalRecipientValue(r.FinalRecipient)))
		b.WriteString(fold("Action", string(r.Action)))
		b.WriteString(fold("Status", r.Status))
		if r.RemoteMTA != "" {
			b.WriteString(fold("Remote-MTA", "dns; "+r.RemoteMTA))
		}
		if d := cleanText(r.Diagnostic, utf); d != "" {
			// RFC 3464 §2.3.6: the reply of an SMTP server is of type smtp.
			b.WriteString(fold("Diagnostic-Code", "smtp; "+d))
		}
		if !r.LastAttempt.IsZero() {
			b.WriteString(fold("Last-Attempt-Date", r.LastAttempt.Format(time.RFC1123Z)))
		}
		if r.Action == Delayed && !r.WillRetryUntil.IsZero() {
			b.WriteString(fold("Will-Retry-Until", r.WillRetryUntil.Format(time.RFC1123Z)))
		}
	}
	body := []byte(b.String())
	ctype, cte := "message/delivery-status", "7bit"
	if utf {
		// RFC 6533 §6.2: the same fields, UTF-8 allowed.
		ctype = "message/global-delivery-status"
		if !isASCII(string(body)) {
			cte = "8bit"
		}
	}
	return part{
		header: "Content-Type: " + ctype + "\r\n" +
			"Content-Description: Delivery report\r\n" +
			"Content-Transfer-Encoding: " + cte + "\r\n",
		body: body,
	}
}

// original is what is included of the original message.
type original struct {
	header      []byte // header section, CRLF lines, without the empty line
	body        []byte // body, CRLF lines; unused when headersOnly
	headersOnly bool
	reason      string // why only the header section, when not asked for
}

// readOriginal reads m.Original within the limits, or returns nil if there
// is none.
func (m *Message) readOriginal() (*original, error) {
	if m.Original == nil {
		return nil, nil
	}
	o := &original{headersOnly: m.HeadersOnly}
	br := bufio.NewReader(m.Original)
	for {
		line, err := readLine(br, maxOriginalHeader-len(o.header))
		if err == errLongLine {
			// o.header holds complete lines only.
			o.headersOnly = true
			o.reason = fmt.Sprintf("its header section is larger than %d bytes and was cut", maxOriginalHeader)
			break
		}
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("dsn: read original message: %w", err)
		}
		if len(line) == 0 || len(bytes.TrimRight(line, "\r\n")) == 0 {
			break // the empty line that ends the header, or the end
		}
		o.header = append(o.header, line...)
		if err == io.EOF {
			if !bytes.HasSuffix(line, []byte("\n")) {
				o.header = append(o.header, '\n')
			}
			break
		}
	}
	o.header = toCRLF(o.header)

	if !o.headersOnly {
		limit := int64(-1)
		if m.MaxOriginal > 0 {
			limit = max(m.MaxOriginal-int64(len(o.header))-2, 0)
		}
		var src io.Reader = br
		if limit >= 0 {
			src = io.LimitReader(br, limit+1)
		}
		body, err := io.ReadAll(src)
		if err != nil {
			return nil, fmt.Errorf("dsn: read original message: %w", err)
		}
		o.body = toCRLF(body)
		switch {
		case limit >= 0 && int64(len(body)) > limit:
			o.headersOnly = true
			o.reason = fmt.Sprintf("the message is larger than %d bytes", m.MaxOriginal)
		case longestLine(o.header) > maxLine || longestLine(o.body) > maxLine:
			o.headersOnly = true
			o.reason = "the message has lines longer than 998 octets, which cannot be included as they are"
		case !m.SMTPUTF8 && !isASCII(string(o.header)):
			// RFC 6532 header fields need message/global (RFC 6533 §6.3).
			o.headersOnly = true
			o.reason = "its header has UTF-8 characters, which this report cannot include as they are"
		}
	}
	if o.headersOnly {
		o.body = nil
	}
	return o, nil
}

// part returns the third part of the report (RFC 6522 §3): the message
// (message/rfc822, or message/global, RFC 6533 §6.3) or its header section
// (text/rfc822-headers, RFC 6522 §4, or message/global-headers, RFC 6533
// §6.4).
func (o *original) part(smtputf8 bool) part {
	if !o.headersOnly {
		body := make([]byte, 0, len(o.header)+2+len(o.body))
		body = append(append(append(body, o.header...), "\r\n"...), o.body...)
		ctype, desc := "message/rfc822", "Original message"
		if smtputf8 {
			ctype = "message/global"
		}
		// RFC 2046 §5.2.1: message/rfc822 is 7bit, 8bit or binary, never
		// encoded; lines are short (checked in readOriginal).
		cte := "7bit"
		if !is7bit(body) {
			cte = "8bit"
		}
		return part{
			header: "Content-Type: " + ctype + "\r\nContent-Description: " + desc + "\r\nContent-Transfer-Encoding: " + cte + "\r\n",
			body:   body,
		}
	}
	ctype := "text/rfc822-headers"
	if smtputf8 {
		ctype = "message/global-headers"
	}
	body := o.header
	cte := "7bit"
	switch {
	case longestLine(body) > maxLine || (!is7bit(body) && !smtputf8):
		// RFC 6522 §4: headers that are not 7-bit or too long for it may
		// be quoted-printable encoded.
		cte = "quoted-printable"
		body = qpEncode(body)
	case !is7bit(body):
		cte = "8bit"
	}
	return part{
		header: "Content-Type: " + ctype + "\r\nContent-Description: Header section of the original message\r\nContent-Transfer-Encoding: " + cte + "\r\n",
		body:   body,
	}
}

// chooseBoundary returns a multipart boundary derived from the DSN's
// Message-ID (so output is reproducible) that occurs in no part.
func chooseBoundary(msgID string, parts []part) (string, error) {
	for n := 0; n < 100; n++ {
		sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%d", msgID, n))
		// "=_" cannot occur in quoted-printable text (RFC 2045 §6.7).
		b := "=_moxd-dsn-" + hex.EncodeToString(sum[:12])
		clash := false
		for _, p := range parts {
			if strings.Contains(p.header, b) || bytes.Contains(p.body, []byte(b)) {
				clash = true
				break
			}
		}
		if !clash {
			return b, nil
		}
	}
	return "", errors.New("dsn: no multipart boundary found that is absent from the content")
}

// fold returns the field "name: value", CRLF-terminated, folded at spaces
// (RFC 5322 §2.2.3) so lines are at most 78 octets where a space allows it
// and never more than 998. A run of more than 998 octets without a space is
// broken anyway, which inserts a space into the value.
func fold(name, value string) string {
	s := name + ": " + strings.TrimRight(value, " \t")
	var b strings.Builder
	for len(s) > foldAt {
		// The break goes before a space, which starts the continuation
		// line; a line must keep something besides whitespace.
		p := -1
		for i := foldAt; i > 0; i-- {
			if s[i] == ' ' && strings.TrimLeft(s[:i], " \t") != "" {
				p = i
				break
			}
		}
		if p < 0 {
			for i := foldAt + 1; i < len(s) && i <= maxLine; i++ {
				if s[i] == ' ' && strings.TrimLeft(s[:i], " \t") != "" {
					p = i
					break
				}
			}
		}
		if p < 0 {
			if len(s) <= maxLine {
				break
			}
			p = maxLine - 8
			for p > 0 && !utf8.RuneStart(s[p]) {
				p--
			}
			b.WriteString(s[:p])
			b.WriteString("\r\n")
			s = " " + s[p:]
			continue
		}
		b.WriteString(s[:p])
		b.WriteString("\r\n")
		s = s[p:]
	}
	b.WriteString(s)
	b.WriteString("\r\n")
	return b.String()
}

// wrap splits a line of prose at spaces into lines of at most width octets
// where possible. Continuation lines of an indented line are indented two
// spaces further.
func wrap(s string, width int) []string {
	if len(s) <= width {
		return []string{s}
	}
	indent := s[:len(s)-len(strings.TrimLeft(s, " "))]
	if indent != "" {
		indent += "  "
	}
	var lines []string
	for len(s) > width {
		p := strings.LastIndexByte(s[:width+1], ' ')
		if p <= len(indent) {
			p = strings.IndexByte(s[width:], ' ')
			if p < 0 {
				break
			}
			p += width
		}
		lines = append(lines, strings.TrimRight(s[:p], " "))
		s = indent + strings.TrimLeft(s[p:], " ")
	}
	return append(lines, s)
}

// cleanText makes s fit for one line of a field or of the text part: line
// breaks and other control characters become spaces, invalid UTF-8 and,
// unless utf8ok, non-ASCII characters become "?"; runs of spaces are kept.
func cleanText(s string, utf8ok bool) string {
	s = strings.ToValidUTF8(s, "?")
	s = strings.Map(func(r rune) rune {
		switch {
		case r < 0x20 || r == 0x7f:
			return ' '
		case r >= 0x80 && !utf8ok:
			return '?'
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

var errLongLine = errors.New("line too long")

// readLine returns the next line including its LF, or up to the end of
// input; errLongLine if it is longer than limit.
func readLine(br *bufio.Reader, limit int) ([]byte, error) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		if len(line)+len(frag) > limit {
			return nil, errLongLine
		}
		line = append(line, frag...)
		if err != bufio.ErrBufferFull {
			return line, err
		}
	}
}

// toCRLF returns b with every line ending CRLF: a bare LF gets a CR.
func toCRLF(b []byte) []byte {
	n := bytes.Count(b, []byte("\n")) - bytes.Count(b, []byte("\r\n"))
	if n == 0 {
		return b
	}
	out := make([]byte, 0, len(b)+n)
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}

// longestLine returns the length of the longest line of b, line ending
// excluded.
func longestLine(b []byte) int {
	longest := 0
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		line := b
		if i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		longest = max(longest, len(bytes.TrimSuffix(line, []byte("\r"))))
	}
	return longest
}

func is7bit(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// qpEncode returns b quoted-printable encoded (RFC 2045 §6.7), CRLF line
// breaks kept as hard line breaks.
func qpEncode(b []byte) []byte {
	var buf bytes.Buffer
	qw := quotedprintable.NewWriter(&buf)
	qw.Write(b) // a bytes.Buffer does not fail
	qw.Close()
	return buf.Bytes()
}
