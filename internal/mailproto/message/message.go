// Package message parses stored messages into a MIME part tree described by
// byte offsets (RFC 5322, RFC 2045-2049), with the IMAP ENVELOPE fields
// (RFC 3501 §7.4.2) and the threading keys of RFC 5256.
//
// moxd-store runs it on its own copy of each delivered or imported message
// (DESIGN.md §1) and keeps the result, serialized with MarshalBinary, in the
// heavy record of the message (DESIGN.md §5), so BODYSTRUCTURE, ENVELOPE,
// BODY[section] and BINARY are answered without parsing the message again.
//
// The parser is written for moxd rather than built on net/mail or
// mime/multipart because those load whole headers and parts and do not report
// byte offsets. It reads the message through an io.ReaderAt in bounded
// chunks, never fails on malformed structure (it marks the affected parts
// Truncated instead) and enforces the limits of Limits: nesting depth, number
// of parts and bytes per header block.
package message

import (
	"bufio"
	"io"
	"strings"
)

// Limits bounds the work Parse does on one message.
type Limits struct {
	// MaxDepth is the deepest nesting level that may have children; the root
	// is at depth 0. A multipart or message/rfc822 part deeper than this is
	// kept as an opaque body without children.
	MaxDepth int
	// MaxParts is the maximum number of parts in the tree, root included.
	// When reached, the enclosing multipart stops adding children and is
	// marked Truncated.
	MaxParts int
	// MaxHeaderBytes is the maximum number of bytes of one header block that
	// are kept for parsing fields. The offsets always cover the full header;
	// a part with a longer header is marked Truncated.
	MaxHeaderBytes int
}

// DefaultLimits returns the limits moxd-store uses unless configured
// otherwise.
func DefaultLimits() Limits {
	return Limits{MaxDepth: 32, MaxParts: 10000, MaxHeaderBytes: 1 << 20}
}

// Part describes one MIME entity by byte offsets into the message.
type Part struct {
	// HeaderStart is the offset of the header block, BodyStart the offset
	// just after the empty line that ends it, End the offset just after the
	// body (exclusive). For a child of a multipart, End is before the line
	// break that precedes the next boundary (RFC 2046 §5.1.1). Always
	// HeaderStart <= BodyStart <= End.
	HeaderStart, BodyStart, End int64
	// BodyLines is the number of lines in the body; a last line without
	// line break counts.
	BodyLines int64
	// MediaType and MediaSubtype are lower-cased. Default text/plain
	// (RFC 2045 §5.2), message/rfc822 inside multipart/digest (RFC 2046
	// §5.1.5).
	MediaType, MediaSubtype string
	// Params are the Content-Type parameters in order of appearance. Names
	// are lower-cased. RFC 2231 continuations are joined; an extended value
	// keeps its charset'language'%XX form and its name ends in "*" (for
	// example "filename*"), so no charset decoding happens here.
	Params []Param
	// ID, Description are the raw Content-ID and Content-Description
	// values. Encoding is the lower-cased Content-Transfer-Encoding, "7bit"
	// by default (RFC 2045 §6.1).
	ID, Description, Encoding string
	// Disposition is the lower-cased Content-Disposition type (RFC 2183),
	// with its parameters parsed like Params.
	Disposition       string
	DispositionParams []Param
	// Language holds the Content-Language tags (RFC 3282), Location the raw
	// Content-Location (RFC 2557), MD5 the raw Content-MD5 (RFC 1864).
	Language []string
	Location string
	MD5      string
	// Envelope is set on the root part of every message: the top-level
	// root (from the message header) and the root of each embedded message
	// (Parts[0] of a message/rfc822 or message/global part). A non-root
	// message/rfc822 or message/global part carries the embedded message's
	// Envelope as well (the same value as its Parts[0].Envelope), which is
	// what BODYSTRUCTURE needs; when the top-level root is itself
	// message/rfc822, its Envelope describes its own header and the
	// embedded one is only in Parts[0].
	Envelope *Envelope
	// Parts holds the children of a multipart, and for a message/rfc822 or
	// message/global part exactly one: the root part of the embedded
	// message, whose HeaderStart is the BodyStart of this part.
	Parts []*Part
	// Truncated is set when the entity ended early: end of message before
	// the closing boundary, a boundary inside a header, a multipart without
	// boundary parameter, a header longer than MaxHeaderBytes or the
	// MaxParts limit. The offsets remain exact and usable.
	Truncated bool
}

// Param is one Content-Type or Content-Disposition parameter.
type Param struct {
	Name, Value string // Name lower-cased
}

// Parse reads the message of size bytes from r and returns its part tree.
// It reads through a bounded buffer and never holds the whole message. The
// error is only for I/O errors; malformed structure yields Truncated parts.
func Parse(r io.ReaderAt, size int64, lim Limits) (*Part, error) {
	if lim.MaxDepth < 0 {
		lim.MaxDepth = 0
	}
	if lim.MaxParts < 1 {
		lim.MaxParts = 1
	}
	if lim.MaxHeaderBytes < 0 {
		lim.MaxHeaderBytes = 0
	}
	p := &parser{
		lr:  &lineReader{br: bufio.NewReaderSize(io.NewSectionReader(r, 0, size), 64*1024)},
		lim: lim,
	}
	root, _, err := p.part(0, nil, false, true)
	if err != nil {
		return nil, err
	}
	return root, nil
}

// maxBoundaryLine is the longest line that is checked for being a boundary:
// RFC 2046 §5.1.1 allows 70 boundary characters, "--" twice, and some
// transport padding.
const maxBoundaryLine = 256

// parser holds the state of one Parse call.
type parser struct {
	lr     *lineReader
	lim    Limits
	nparts int
	hdr    []byte // reused buffer for header blocks
	line   []byte // reused buffer for body lines
}

// stop tells the caller of part why an entity ended: at the boundary
// bounds[idx] (closing if it had the trailing "--"), or at the end of the
// message (idx -1).
type stop struct {
	idx     int
	closing bool
	state   stopState
}

// matchBoundary checks whether line (without terminator handling) is a
// boundary line for one of bounds, innermost first.
func matchBoundary(line []byte, complete bool, bounds []string) (idx int, closing bool) {
	if !complete || len(bounds) == 0 || len(line) < 3 || line[0] != '-' || line[1] != '-' {
		return -1, false
	}
	s := strings.TrimRight(string(line[2:]), "\r\n")
	for i := len(bounds) - 1; i >= 0; i-- {
		b := bounds[i]
		if !strings.HasPrefix(s, b) {
			continue
		}
		rest := s[len(b):]
		closing := false
		if strings.HasPrefix(rest, "--") {
			closing = true
			rest = rest[2:]
		}
		// RFC 2046 §5.1.1: only transport padding may follow.
		if strings.Trim(rest, " \t") == "" {
			return i, closing
		}
	}
	return -1, false
}

// scan reads lines until a boundary of bounds or the end of the message.
func (p *parser) scan(bounds []string) (stop, error) {
	for {
		var info lineInfo
		var err error
		p.line, info, err = p.lr.next(p.line[:0], maxBoundaryLine)
		if err == errEOF {
			return stop{idx: -1, state: p.lr.atEOF()}, nil
		} else if err != nil {
			return stop{}, err
		}
		if idx, closing := matchBoundary(p.line, info.complete, bounds); idx >= 0 {
			return stop{idx: idx, closing: closing, state: p.lr.atBoundary(info)}, nil
		}
	}
}

// part parses one entity starting at the current offset, at nesting level
// depth, inside multiparts with boundaries bounds. With envelope set, the
// entity is a message and gets an Envelope from its header. It returns how
// the entity ended.
func (p *parser) part(depth int, bounds []string, inDigest, envelope bool) (*Part, stop, error) {
	p.nparts++
	pt := &Part{HeaderStart: p.lr.off}
	lr := p.lr

	// Header block, up to and including the empty line (RFC 5322 §2.1).
	p.hdr = p.hdr[:0]
	var st stop
	headerDone := false
	for !headerDone {
		var info lineInfo
		var err error
		n := len(p.hdr)
		// Read enough of the line to recognize a boundary even when the
		// header limit is reached; what exceeds the limit is dropped below.
		p.hdr, info, err = lr.next(p.hdr, max(p.lim.MaxHeaderBytes, n+maxBoundaryLine))
		if err == errEOF {
			// A header without body: the message ends inside the header.
			st = stop{idx: -1, state: lr.atEOF()}
			pt.BodyStart, pt.End = lr.off, lr.off
			break
		} else if err != nil {
			return nil, stop{}, err
		}
		if idx, closing := matchBoundary(p.hdr[n:], info.complete && info.contentLen < maxBoundaryLine, bounds); idx >= 0 {
			// A boundary before the empty line: the header is cut short.
			p.hdr = p.hdr[:n]
			st = stop{idx: idx, closing: closing, state: lr.atBoundary(info)}
			pt.BodyStart, pt.End = info.start, info.start
			pt.Truncated = true
			break
		}
		if !info.complete || len(p.hdr) > p.lim.MaxHeaderBytes {
			p.hdr = p.hdr[:min(len(p.hdr), p.lim.MaxHeaderBytes)]
			pt.Truncated = true
		}
		if info.contentLen == 0 && info.term > 0 {
			headerDone = true
		}
	}
	fields := parseHeader(p.hdr)
	p.fillContent(pt, fields, inDigest)
	if envelope {
		pt.Envelope = parseEnvelope(fields)
	}
	if !headerDone {
		return pt, st, nil
	}
	pt.BodyStart = lr.off
	bodyNl := lr.nl

	var err error
	switch {
	case pt.MediaType == "multipart" && depth < p.lim.MaxDepth:
		st, err = p.multipart(pt, depth, bounds)
	case isEmbedded(pt) && depth < p.lim.MaxDepth && p.nparts < p.lim.MaxParts:
		var child *Part
		child, st, err = p.part(depth+1, bounds, false, true)
		if err == nil {
			if pt.Envelope == nil {
				pt.Envelope = child.Envelope
			}
			pt.Parts = []*Part{child}
		}
	default:
		if isEmbedded(pt) && depth < p.lim.MaxDepth {
			pt.Truncated = true // MaxParts reached
		}
		st, err = p.scan(bounds)
	}
	if err != nil {
		return nil, stop{}, err
	}
	pt.End, pt.BodyLines = st.state.end(pt.BodyStart, bodyNl)
	if n := len(pt.Parts); n > 0 && pt.Parts[n-1].End > pt.End {
		// A child with an empty body right before the boundary ends at the
		// boundary line itself (its body cannot start before its header
		// ends), after the line break this part gives up: keep the child
		// inside, so the whole line before the boundary is in this body.
		pt.End, pt.BodyLines = st.state.at, st.state.nl-bodyNl
	}
	return pt, st, nil
}

// isEmbedded reports whether pt holds a message whose structure is part of
// the tree: message/rfc822 (RFC 2046 §5.2.1) or message/global (RFC 6532
// §3.5), in an identity encoding (the only ones RFC 2046 §5.2.1 permits).
func isEmbedded(pt *Part) bool {
	if pt.MediaType != "message" || (pt.MediaSubtype != "rfc822" && pt.MediaSubtype != "global") {
		return false
	}
	switch pt.Encoding {
	case "7bit", "8bit", "binary":
		return true
	}
	return false
}

// multipart parses the body of a multipart part (RFC 2046 §5.1.1):
// preamble, the parts, epilogue.
func (p *parser) multipart(pt *Part, depth int, bounds []string) (stop, error) {
	boundary := ""
	for _, pa := range pt.Params {
		if pa.Name == "boundary" {
			boundary = pa.Value
			break
		}
	}
	if boundary == "" {
		pt.Truncated = true
		return p.scan(bounds)
	}
	own := len(bounds)
	nb := append(bounds[:own:own], boundary)
	digest := pt.MediaSubtype == "digest"

	// Preamble.
	st, err := p.scan(nb)
	if err != nil {
		return stop{}, err
	}
	for st.idx == own && !st.closing {
		if p.nparts >= p.lim.MaxParts {
			pt.Truncated = true
			// Skip the rest of this multipart without creating parts.
			for st.idx == own && !st.closing {
				if st, err = p.scan(nb); err != nil {
					return stop{}, err
				}
			}
			break
		}
		var child *Part
		child, st, err = p.part(depth+1, nb, digest, false)
		if err != nil {
			return stop{}, err
		}
		pt.Parts = append(pt.Parts, child)
	}
	if st.idx != own {
		// End of message or an enclosing boundary before our closing
		// boundary.
		pt.Truncated = true
		return st, nil
	}
	// Epilogue, up to an enclosing boundary or the end of the message.
	return p.scan(bounds)
}

// fillContent sets the Content-* fields of pt from its header.
func (p *parser) fillContent(pt *Part, fields []field, inDigest bool) {
	pt.MediaType, pt.MediaSubtype = "text", "plain"
	pt.Params = []Param{{Name: "charset", Value: "us-ascii"}} // RFC 2045 §5.2
	if inDigest {
		// RFC 2046 §5.1.5: the default in a digest is message/rfc822.
		pt.MediaType, pt.MediaSubtype, pt.Params = "message", "rfc822", nil
	}
	if v, ok := get(fields, "Content-Type"); ok {
		if t, params, ok := parseParamHeader(v); ok {
			if typ, sub, ok := strings.Cut(t, "/"); ok && typ != "" && sub != "" && !strings.Contains(sub, "/") {
				pt.MediaType, pt.MediaSubtype, pt.Params = typ, sub, params
			}
		}
	}
	pt.Encoding = "7bit"
	if v, ok := get(fields, "Content-Transfer-Encoding"); ok {
		if v = strings.ToLower(strings.TrimSpace(skipCFWS(v))); v != "" {
			if i := strings.IndexAny(v, " \t("); i >= 0 {
				v = v[:i]
			}
			pt.Encoding = v
		}
	}
	pt.ID, _ = get(fields, "Content-ID")
	pt.Description, _ = get(fields, "Content-Description")
	if v, ok := get(fields, "Content-Disposition"); ok {
		if d, params, ok := parseParamHeader(v); ok {
			pt.Disposition, pt.DispositionParams = d, params
		}
	}
	if v, ok := get(fields, "Content-Language"); ok {
		pt.Language = parseLanguage(v)
	}
	pt.Location, _ = get(fields, "Content-Location")
	pt.MD5, _ = get(fields, "Content-MD5")
}
