package dsn

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"strings"
)

// maxParts bounds the parts Parse looks at in one multipart.
const maxParts = 100

// Parse reads a message (CRLF or LF line endings) and, if it is a delivery
// status notification, returns its report: a multipart/report with
// report-type delivery-status or global-delivery-status (RFC 6522 §3, RFC
// 6533 §6), found at the top or inside other multiparts up to MaxDepth
// levels (not inside message/rfc822 parts: a forwarded DSN is not one).
//
// Parse reads at most MaxParseSize bytes; a longer message gives
// ErrTooLarge. A message that is not a DSN, or whose report has no
// delivery-status part with recipients, gives an error matching ErrNotDSN.
// More than MaxRecipients recipient groups is an error.
func Parse(r io.Reader) (*Report, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxParseSize+1))
	if err != nil {
		return nil, fmt.Errorf("dsn: read message: %w", err)
	}
	if len(data) > MaxParseSize {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, MaxParseSize)
	}
	return parseEntity(data, 0)
}

// parseEntity looks for the report in one entity (a message or body part).
func parseEntity(data []byte, depth int) (*Report, error) {
	hdr, body := splitHeader(data)
	mt, params, err := mime.ParseMediaType(get(hdr, "Content-Type"))
	if err != nil {
		return nil, ErrNotDSN
	}
	if mt == "multipart/report" {
		switch strings.ToLower(params["report-type"]) {
		case "delivery-status", "global-delivery-status":
			return parseReport(body, params["boundary"])
		}
		return nil, ErrNotDSN
	}
	if !strings.HasPrefix(mt, "multipart/") || depth+1 >= MaxDepth {
		return nil, ErrNotDSN
	}
	parts, _ := splitMultipart(body, params["boundary"])
	for _, p := range parts {
		rep, err := parseEntity(p, depth+1)
		if !errors.Is(err, ErrNotDSN) {
			return rep, err
		}
	}
	return nil, ErrNotDSN
}

// parseReport reads the parts of a multipart/report.
func parseReport(body []byte, boundary string) (*Report, error) {
	parts, err := splitMultipart(body, boundary)
	if len(parts) == 0 {
		return nil, fmt.Errorf("%w: multipart/report without parts (%v)", ErrNotDSN, err)
	}
	var rep *Report
	var origID string
	for _, p := range parts {
		hdr, pbody := splitHeader(p)
		mt, _, _ := mime.ParseMediaType(get(hdr, "Content-Type"))
		switch mt {
		case "message/delivery-status", "message/global-delivery-status":
			if rep != nil {
				continue
			}
			rep, err = parseStatus(decodeBody(pbody, get(hdr, "Content-Transfer-Encoding")))
			if err != nil {
				return nil, err
			}
		case "message/rfc822", "message/global", "text/rfc822-headers", "message/global-headers", "message/rfc822-headers":
			if origID != "" {
				continue
			}
			orig, _ := splitHeader(decodeBody(pbody, get(hdr, "Content-Transfer-Encoding")))
			origID = msgID(get(orig, "Message-ID"))
		}
	}
	if rep == nil {
		return nil, fmt.Errorf("%w: multipart/report without a delivery-status part", ErrNotDSN)
	}
	rep.OriginalMessageID = origID
	return rep, nil
}

// parseStatus reads the field groups of a delivery-status part (RFC 3464
// §2.1): per-message fields first, then one group per recipient. Groups
// are told apart by their fields rather than position, because some
// senders leave out the blank line after the per-message fields.
func parseStatus(b []byte) (*Report, error) {
	rep := &Report{}
	for _, g := range fieldGroups(b) {
		if v := get(g, "Reporting-MTA"); v != "" && rep.ReportingMTA == "" {
			rep.ReportingMTA = stripType(v)
		}
		if v := get(g, "Original-Envelope-Id"); v != "" && rep.EnvID == "" {
			rep.EnvID = v
		}
		final := get(g, "Final-Recipient")
		if final == "" && get(g, "Action") == "" {
			continue
		}
		if len(rep.Recipients) == MaxRecipients {
			return nil, fmt.Errorf("dsn: report has more than %d recipients", MaxRecipients)
		}
		var rr ReportRecipient
		rr.FinalRecipient = address(final)
		if v := get(g, "Original-Recipient"); v != "" {
			if i := strings.IndexByte(v, ';'); i > 0 {
				typ := strings.ToLower(strings.TrimSpace(v[:i]))
				rr.OriginalRecipient = typ + ";" + address(v)
			}
		}
		// RFC 3464 §2.3.3 and §2.3.4 allow no comments, but senders add
		// them: "Action: failed (bad mailbox)", "Status: 5.0.0 (permanent)".
		rr.Action = Action(strings.ToLower(firstWord(get(g, "Action"))))
		rr.Status = firstWord(get(g, "Status"))
		rr.RemoteMTA = stripType(get(g, "Remote-MTA"))
		rr.Diagnostic = stripType(get(g, "Diagnostic-Code"))
		rep.Recipients = append(rep.Recipients, rr)
	}
	if len(rep.Recipients) == 0 {
		return nil, fmt.Errorf("%w: delivery-status part without recipients", ErrNotDSN)
	}
	return rep, nil
}

// field is one unfolded header field.
type field struct{ name, value string }

// get returns the first value of the field name, case-insensitive.
func get(fields []field, name string) string {
	for _, f := range fields {
		if strings.EqualFold(f.name, name) {
			return f.value
		}
	}
	return ""
}

// splitHeader splits an entity at its first empty line into its header
// fields and its body.
func splitHeader(b []byte) ([]field, []byte) {
	var lines [][]byte
	rest := b
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		line := rest
		if i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break
		}
		lines = append(lines, line)
	}
	return parseFields(lines), rest
}

// fieldGroups splits b at empty lines into groups of header fields.
func fieldGroups(b []byte) [][]field {
	var groups [][]field
	var lines [][]byte
	for _, line := range bytes.Split(b, []byte("\n")) {
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(bytes.TrimSpace(line)) == 0 {
			if len(lines) > 0 {
				groups = append(groups, parseFields(lines))
			}
			lines = nil
			continue
		}
		lines = append(lines, line)
	}
	if len(lines) > 0 {
		groups = append(groups, parseFields(lines))
	}
	return groups
}

// parseFields unfolds lines into fields (RFC 5322 §2.2.3: unfolding removes
// the line break). Lines that are neither a field nor a continuation are
// skipped.
func parseFields(lines [][]byte) []field {
	var fields []field
	for _, line := range lines {
		if line[0] == ' ' || line[0] == '\t' {
			if n := len(fields); n > 0 {
				fields[n-1].value += string(line)
			}
			continue
		}
		i := bytes.IndexByte(line, ':')
		if i <= 0 {
			continue
		}
		fields = append(fields, field{strings.TrimSpace(string(line[:i])), string(line[i+1:])})
	}
	for i := range fields {
		fields[i].value = strings.TrimSpace(fields[i].value)
	}
	return fields
}

// splitMultipart returns the raw parts (header and body) of a multipart
// body. With a missing close delimiter the parts read so far are returned
// with the error.
func splitMultipart(body []byte, boundary string) ([][]byte, error) {
	if boundary == "" {
		return nil, errors.New("no boundary")
	}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	var parts [][]byte
	for len(parts) < maxParts {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			return parts, nil
		}
		if err != nil {
			return parts, err
		}
		var raw bytes.Buffer
		for k, vs := range p.Header {
			for _, v := range vs {
				raw.WriteString(k + ": " + v + "\r\n")
			}
		}
		raw.WriteString("\r\n")
		_, err = io.Copy(&raw, p)
		parts = append(parts, raw.Bytes())
		if err != nil {
			return parts, err
		}
	}
	return parts, nil
}

// decodeBody undoes a base64 or quoted-printable transfer encoding; other
// encodings are identities. A damaged encoding gives what decoded.
func decodeBody(b []byte, cte string) []byte {
	var r io.Reader
	switch strings.ToLower(firstWord(cte)) {
	case "base64":
		clean := bytes.Map(func(r rune) rune {
			if r == '\r' || r == '\n' || r == ' ' || r == '\t' {
				return -1
			}
			return r
		}, b)
		r = base64.NewDecoder(base64.StdEncoding, bytes.NewReader(clean))
	case "quoted-printable":
		r = quotedprintable.NewReader(bytes.NewReader(b))
	default:
		return b
	}
	out, _ := io.ReadAll(r)
	return out
}

// stripType returns the value after "type;" (Reporting-MTA "dns; host",
// Diagnostic-Code "smtp; 550 ..."), or all of it without a type.
func stripType(v string) string {
	if i := strings.IndexByte(v, ';'); i >= 0 {
		return strings.TrimSpace(v[i+1:])
	}
	return strings.TrimSpace(v)
}

// address returns the address of an "addr-type; address" value without its
// type and angle brackets, with the escapes of the utf-8 type (RFC 6533 §3)
// decoded.
func address(v string) string {
	typ := ""
	if i := strings.IndexByte(v, ';'); i >= 0 {
		typ = strings.TrimSpace(v[:i])
	}
	a := stripType(v)
	if strings.HasPrefix(a, "<") && strings.HasSuffix(a, ">") {
		a = strings.TrimSpace(a[1 : len(a)-1])
	}
	if strings.EqualFold(typ, "utf-8") {
		a = unitextDecode(a)
	}
	return a
}

func firstWord(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return f[0]
	}
	return ""
}

// msgID returns the first message id of a Message-ID value, without angle
// brackets; a value without brackets is taken whole.
func msgID(v string) string {
	if i := strings.IndexByte(v, '<'); i >= 0 {
		v = v[i+1:]
		if j := strings.IndexByte(v, '>'); j >= 0 {
			v = v[:j]
		}
	}
	id := firstWord(v)
	if strings.ContainsAny(id, "<>") {
		return ""
	}
	return id
}
