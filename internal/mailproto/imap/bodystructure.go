package imap

// ENVELOPE, BODY and BODYSTRUCTURE of a message (RFC 9051 §7.5.2, RFC 3501
// §7.4.2) from the part tree of internal/mailproto/message.
//
// Implementation notes:
//   - Strings are the raw header values the tree keeps (RFC 2047 encoded
//     words stay encoded, RFC 2231 extended parameters keep their
//     charset'language'%XX form and the "*" in the name). Empty means
//     absent and is sent as NIL. 8-bit text becomes a literal unless the
//     client may receive UTF-8 in quoted strings (utf8OK: UTF8=ACCEPT,
//     RFC 6855 §3).
//   - Media types, subtypes, parameter names and encodings are sent in
//     the lower case the tree keeps them in; clients compare them without
//     regard to case (RFC 2045 §5.1, §6.1).
//   - A message/rfc822 or message/global part whose embedded message is
//     in the tree is sent in the body-type-msg form with the embedded
//     envelope and structure; one that is not (an encoding other than an
//     identity one, or the nesting limit) is sent as a basic part.
//   - A multipart without parts (no boundary, or cut off) gets one empty
//     text/plain part: the grammar needs at least one (1*body).

import (
	"strconv"

	"moxd/internal/mailproto/message"
)

// AppendEnvelope appends the ENVELOPE structure of e (RFC 9051 §7.5.2); a
// nil e is an envelope of NILs.
func AppendEnvelope(b []byte, e *message.Envelope, utf8OK bool) []byte {
	if e == nil {
		e = &message.Envelope{}
	}
	b = append(b, '(')
	b = appendNilString(b, e.Date, utf8OK)
	b = append(b, ' ')
	b = appendNilString(b, e.Subject, utf8OK)
	for _, l := range [][]message.Address{e.From, e.Sender, e.ReplyTo, e.To, e.Cc, e.Bcc} {
		b = append(b, ' ')
		b = appendAddressList(b, l, utf8OK)
	}
	b = append(b, ' ')
	b = appendNilString(b, e.InReplyTo, utf8OK)
	b = append(b, ' ')
	b = appendNilString(b, e.MessageID, utf8OK)
	return append(b, ')')
}

// appendAddressList appends "(" 1*address ")" or NIL for an empty list.
func appendAddressList(b []byte, l []message.Address, utf8OK bool) []byte {
	if len(l) == 0 {
		return append(b, "NIL"...)
	}
	b = append(b, '(')
	for _, a := range l {
		// RFC 9051 §7.5.2: address = "(" addr-name SP addr-adl SP
		// addr-mailbox SP addr-host ")"; the source route (adl) is
		// obsolete and always NIL. A group start has the group name as
		// mailbox and NIL host, a group end NIL mailbox and NIL host;
		// message.Address marks both with an empty Host.
		b = append(b, '(')
		b = appendNilString(b, a.Name, utf8OK)
		b = append(b, " NIL "...)
		b = appendNilString(b, a.Mailbox, utf8OK)
		b = append(b, ' ')
		b = appendNilString(b, a.Host, utf8OK)
		b = append(b, ')')
	}
	return append(b, ')')
}

// appendNilString appends s as a string, or NIL when it is empty.
func appendNilString(b []byte, s string, utf8OK bool) []byte {
	if s == "" {
		return append(b, "NIL"...)
	}
	return AppendString(b, s, utf8OK)
}

// AppendBodyStructure appends the structure of the message whose root part
// is p: with extended set, BODYSTRUCTURE (with the extension data of RFC
// 9051 §7.5.2), else the non-extensible BODY form.
func AppendBodyStructure(b []byte, p *message.Part, extended, utf8OK bool) []byte {
	if p.MediaType == "multipart" {
		return appendMultipart(b, p, extended, utf8OK)
	}
	return appendSinglePart(b, p, extended, utf8OK)
}

// emptyPart stands in for the parts of a multipart that has none.
var emptyPart = &message.Part{MediaType: "text", MediaSubtype: "plain", Params: []message.Param{{Name: "charset", Value: "us-ascii"}}, Encoding: "7bit"}

func appendMultipart(b []byte, p *message.Part, extended, utf8OK bool) []byte {
	// RFC 9051 §7.5.2: body-type-mpart = 1*body SP media-subtype
	// [SP body-ext-mpart], the bodies without space between them.
	b = append(b, '(')
	parts := p.Parts
	if len(parts) == 0 {
		parts = []*message.Part{emptyPart}
	}
	for _, c := range parts {
		b = AppendBodyStructure(b, c, extended, utf8OK)
	}
	b = append(b, ' ')
	b = AppendString(b, p.MediaSubtype, utf8OK)
	if extended {
		// body-ext-mpart = body-fld-param [SP body-fld-dsp [SP
		// body-fld-lang [SP body-fld-loc]]]
		b = append(b, ' ')
		b = appendParams(b, p.Params, utf8OK)
		b = appendPartExt(b, p, utf8OK)
	}
	return append(b, ')')
}

// embedded reports whether p is a message/rfc822 or message/global part
// with the embedded message in the tree.
func embedded(p *message.Part) bool {
	return p.MediaType == "message" && (p.MediaSubtype == "rfc822" || p.MediaSubtype == "global") && len(p.Parts) == 1
}

func appendSinglePart(b []byte, p *message.Part, extended, utf8OK bool) []byte {
	b = append(b, '(')
	b = AppendString(b, p.MediaType, utf8OK)
	b = append(b, ' ')
	b = AppendString(b, p.MediaSubtype, utf8OK)
	// RFC 9051 §7.5.2: body-fields = body-fld-param SP body-fld-id SP
	// body-fld-desc SP body-fld-enc SP body-fld-octets, the octets of the
	// body in its transfer encoding.
	b = append(b, ' ')
	b = appendParams(b, p.Params, utf8OK)
	b = append(b, ' ')
	b = appendNilString(b, p.ID, utf8OK)
	b = append(b, ' ')
	b = appendNilString(b, p.Description, utf8OK)
	b = append(b, ' ')
	enc := p.Encoding
	if enc == "" {
		enc = "7bit" // RFC 2045 §6.1
	}
	b = AppendString(b, enc, utf8OK)
	b = append(b, ' ')
	b = strconv.AppendInt(b, p.End-p.BodyStart, 10)
	switch {
	case embedded(p):
		// body-type-msg: ... SP envelope SP body SP body-fld-lines, the
		// envelope and structure of the embedded message.
		inner := p.Parts[0]
		b = append(b, ' ')
		b = AppendEnvelope(b, inner.Envelope, utf8OK)
		b = append(b, ' ')
		b = AppendBodyStructure(b, inner, extended, utf8OK)
		b = append(b, ' ')
		b = strconv.AppendInt(b, p.BodyLines, 10)
	case p.MediaType == "text":
		// body-type-text: ... SP body-fld-lines.
		b = append(b, ' ')
		b = strconv.AppendInt(b, p.BodyLines, 10)
	}
	if extended {
		// body-ext-1part = body-fld-md5 [SP body-fld-dsp [SP
		// body-fld-lang [SP body-fld-loc]]]
		b = append(b, ' ')
		b = appendNilString(b, p.MD5, utf8OK)
		b = appendPartExt(b, p, utf8OK)
	}
	return append(b, ')')
}

// appendPartExt appends " " body-fld-dsp " " body-fld-lang " "
// body-fld-loc, the extension data both part kinds share.
func appendPartExt(b []byte, p *message.Part, utf8OK bool) []byte {
	// body-fld-dsp = "(" string SP body-fld-param ")" / nil (RFC 2183).
	b = append(b, ' ')
	if p.Disposition == "" {
		b = append(b, "NIL"...)
	} else {
		b = append(b, '(')
		b = AppendString(b, p.Disposition, utf8OK)
		b = append(b, ' ')
		b = appendParams(b, p.DispositionParams, utf8OK)
		b = append(b, ')')
	}
	// body-fld-lang = nstring / "(" string *(SP string) ")" (RFC 3282);
	// always the list form.
	b = append(b, ' ')
	if len(p.Language) == 0 {
		b = append(b, "NIL"...)
	} else {
		b = append(b, '(')
		for i, l := range p.Language {
			if i > 0 {
				b = append(b, ' ')
			}
			b = AppendString(b, l, utf8OK)
		}
		b = append(b, ')')
	}
	// body-fld-loc = nstring (RFC 2557).
	b = append(b, ' ')
	return appendNilString(b, p.Location, utf8OK)
}

// appendParams appends body-fld-param: "(" name SP value ... ")" or NIL.
func appendParams(b []byte, l []message.Param, utf8OK bool) []byte {
	if len(l) == 0 {
		return append(b, "NIL"...)
	}
	b = append(b, '(')
	for i, p := range l {
		if i > 0 {
			b = append(b, ' ')
		}
		b = AppendString(b, p.Name, utf8OK)
		b = append(b, ' ')
		b = AppendString(b, p.Value, utf8OK)
	}
	return append(b, ')')
}
