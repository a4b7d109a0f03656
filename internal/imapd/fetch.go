package imapd

// FETCH of message data (RFC 9051 §6.4.5, §7.5.2; RFC 3501 §6.4.5 for
// IMAP4rev1 clients; BINARY from RFC 3516; SAVEDATE from RFC 8514): the
// items of one message, ENVELOPE and BODYSTRUCTURE from store's part tree,
// body sections, their partials, and decoded BINARY sections.
//
// Implementation notes:
//   - Message data is Prefix (header lines store adds at delivery)
//     followed by the file; its size is store's metadata size. The part
//     tree's offsets are into the file: len(Prefix) is added for the
//     served message, except that the top-level header starts at 0 (the
//     prefix lines belong to it) and the top-level body ends at the
//     metadata size.
//   - Each message is answered in two steps. First every data item is
//     planned: its section resolved and its size known, from the offsets
//     or, for HEADER.FIELDS and BINARY, from a pass over the data; what
//     the client must be told instead (BAD, NO [UNKNOWN-CTE]) is returned
//     before any of the message's response is written. Then the response
//     is written, data streamed from the file. A file shorter than a
//     literal's announced length ends the connection; one found short
//     while planning gets NO [SERVERBUG].
//   - A FETCH that sets \Seen stores it before the first message is
//     planned (the responses show the new flags), so what planning can
//     refuse for a message's structure (BINARY of a multipart, an unknown
//     encoding) is checked for all messages first, from their part trees
//     (checkStructure), and only then is \Seen stored.
//   - Part numbers (RFC 9051 §6.4.5): the parts of a multipart count
//     from 1; a message that is not multipart has one part, 1, its body;
//     past a message/rfc822 or message/global part, numbers count in the
//     embedded message. A section that does not exist is the empty string
//     "" (BINARY.SIZE 0), for every kind of item, never an error.
//   - BINARY[] is the whole message as stored: a message as a whole has
//     no transfer encoding (its header's applies to its body, which
//     BINARY[1] decodes when the message is not multipart).
//   - Literal data is written with the write deadline renewed per chunk:
//     the write timeout bounds each chunk, not the whole of a large
//     message.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"moxd/internal/mailproto/imap"
	"moxd/internal/mailproto/message"
)

// codeUnknownCTE is the response code for a transfer encoding BINARY
// cannot remove (RFC 3516 §4.3).
const codeUnknownCTE = "UNKNOWN-CTE"

func init() {
	// RFC 3516 §4.1; RFC 8514 §4.1 (SAVEDATE: FETCH here, SEARCH in
	// search.go).
	addCaps(capEntry{name: "BINARY"}, capEntry{name: "SAVEDATE"})
}

// msgReader serves a message: prefix, then the file.
type msgReader struct {
	prefix []byte
	f      *os.File
}

func (r *msgReader) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	if off < int64(len(r.prefix)) {
		n = copy(p, r.prefix[off:])
		if n == len(p) {
			return n, nil
		}
	}
	m, err := r.f.ReadAt(p[n:], off+int64(n)-int64(len(r.prefix)))
	return n + m, err
}

// headerLen returns the length of the header section read from r, with
// the blank line that ends it (all of r if there is none). FETCH takes the
// header's end from the part tree; this is the same rule applied to the
// data itself.
func headerLen(r io.Reader) (int64, error) {
	br := bufio.NewReaderSize(r, 16*1024)
	var n int64
	lineStart := true
	for {
		line, err := br.ReadSlice('\n')
		n += int64(len(line))
		switch {
		case err == bufio.ErrBufferFull:
			lineStart = false
			continue
		case err == io.EOF:
			return n, nil
		case err != nil:
			return n, err
		}
		if lineStart && (len(line) == 2 && line[0] == '\r' || len(line) == 1) {
			return n, nil
		}
		lineStart = true
	}
}

// fetchBody says whether the item needs the message data (ENVELOPE,
// BODYSTRUCTURE and BODY need only the part tree), and checks that it is
// an item moxd serves.
func fetchBody(it imap.FetchItem) (bool, error) {
	switch it.Name {
	case "FLAGS", "UID", "INTERNALDATE", "RFC822.SIZE", "MODSEQ", "ENVELOPE", "BODYSTRUCTURE", "SAVEDATE":
		return false, nil
	case "BODY":
		return it.Section != nil, nil
	case "RFC822", "RFC822.HEADER", "RFC822.TEXT", "BINARY", "BINARY.SIZE":
		return true, nil
	}
	// Whatever else the parser learns: not in CAPABILITY.
	return false, respBAD("FETCH %s is not supported by moxd (see CAPABILITY)", it.Name)
}

// setsSeen says whether fetching the item sets \Seen: BODY[...] and
// BINARY[...] without .PEEK (RFC 9051 §6.4.5, RFC 3516 §4.2), RFC822 and
// RFC822.TEXT (RFC 3501 §6.4.5). BODY without a section is the structure
// and BINARY.SIZE only a number; neither does.
func setsSeen(it imap.FetchItem) bool {
	switch it.Name {
	case "RFC822", "RFC822.TEXT":
		return true
	case "BODY", "BINARY":
		return it.Section != nil && !it.Peek
	}
	return false
}

// needsTree says whether the item is answered from the part tree.
func needsTree(it imap.FetchItem) bool {
	switch it.Name {
	case "FLAGS", "UID", "INTERNALDATE", "RFC822.SIZE", "MODSEQ", "SAVEDATE":
		return false
	}
	return true
}

// isDataItem says whether the item is message data: a literal (or "")
// planned before the response is written.
func isDataItem(it imap.FetchItem) bool {
	switch it.Name {
	case "RFC822", "RFC822.HEADER", "RFC822.TEXT", "BINARY", "BINARY.SIZE":
		return true
	case "BODY":
		return it.Section != nil
	}
	return false
}

// msgData is the message being fetched.
type msgData struct {
	m    selMsg
	root *message.Part // nil when no item needs the tree
	plen int64         // len(Prefix)
	ra   io.ReaderAt   // the served message; nil without the file
}

// Offsets of a part in the served message.

func (d *msgData) headerStart(p *message.Part) int64 {
	if p == d.root {
		return 0
	}
	return p.HeaderStart + d.plen
}

func (d *msgData) bodyStart(p *message.Part) int64 { return p.BodyStart + d.plen }

func (d *msgData) end(p *message.Part) int64 {
	if p == d.root {
		return d.m.size
	}
	return p.End + d.plen
}

// isMessagePart says whether p holds an embedded message in the tree.
func isMessagePart(p *message.Part) bool {
	return p.MediaType == "message" && (p.MediaSubtype == "rfc822" || p.MediaSubtype == "global") && len(p.Parts) == 1
}

// part follows part numbers from the root; nil if there is no such part.
func (d *msgData) part(nums []uint32) *message.Part {
	// inMessage: the next number counts the parts of the message p (not
	// those of the part p).
	p, inMessage := d.root, true
	for _, n := range nums {
		if !inMessage && isMessagePart(p) {
			// RFC 9051 §6.4.5: the parts of a message/rfc822 part are
			// those of the embedded message.
			p, inMessage = p.Parts[0], true
		}
		switch {
		case p.MediaType == "multipart":
			if int(n) > len(p.Parts) {
				return nil
			}
			p, inMessage = p.Parts[n-1], false
		case inMessage && n == 1:
			// RFC 9051 §6.4.5: a message that is not multipart has
			// one part, its body.
			inMessage = false
		default:
			return nil
		}
	}
	return p
}

func partString(nums []uint32) string {
	var b strings.Builder
	for i, n := range nums {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(strconv.FormatUint(uint64(n), 10))
	}
	return b.String()
}

// itemData is the planned data of one item.
type itemData struct {
	missing    bool  // no such section: ""
	start, end int64 // range of the served message
	filter     bool  // HEADER.FIELDS, or with not HEADER.FIELDS.NOT
	not        bool
	fields     []string
	decode     string // BINARY: the transfer encoding to remove
	text       bool   // BINARY of a text part: CRLF line ends
	binary     bool   // BINARY: a literal8 when the data holds NUL
	size       int64  // of the data, before the partial
	nul        bool
}

// plain says whether the data is the range itself.
func (id *itemData) plain() bool { return !id.filter && id.decode == "" && !id.text }

// plan resolves a data item's section and finds its size.
func (d *msgData) plan(it imap.FetchItem) (itemData, error) {
	var sec imap.Section
	switch it.Name {
	case "RFC822.HEADER":
		sec.Specifier = "HEADER" // RFC 3501 §6.4.5: BODY.PEEK[HEADER]
	case "RFC822.TEXT":
		sec.Specifier = "TEXT" // BODY[TEXT]
	case "RFC822": // BODY[]
	default:
		sec = *it.Section
	}
	var id itemData
	var err error
	switch {
	case it.Name == "BINARY" || it.Name == "BINARY.SIZE":
		id, err = d.binarySection(sec.Part)
	case len(sec.Part) == 0 && sec.Specifier == "":
		id.start, id.end = 0, d.m.size
	default:
		id = d.bodySection(sec)
	}
	if err != nil || id.missing {
		return id, err
	}
	// The offsets come from store; never announce more than the message.
	id.end = min(id.end, d.m.size)
	id.start = min(id.start, id.end)
	id.size = id.end - id.start
	if !id.plain() || id.binary && it.Name == "BINARY" {
		// A pass over the data for its size, and for BINARY whether it
		// holds NUL.
		var sw sizeWriter
		if err := d.copyData(&sw, &id); err != nil {
			return id, &respError{status: imap.NO, code: imap.CodeServerBug, text: "reading the message failed", cause: fmt.Errorf("message %d: %w", d.m.uid, err)}
		}
		id.size, id.nul = sw.n, sw.nul
	}
	return id, nil
}

// bodySection resolves a BODY section (RFC 9051 §6.4.5).
func (d *msgData) bodySection(sec imap.Section) itemData {
	p := d.part(sec.Part)
	if p == nil {
		return itemData{missing: true}
	}
	var id itemData
	switch sec.Specifier {
	case "":
		id.start, id.end = d.bodyStart(p), d.end(p)
	case "MIME":
		// The part's MIME header; for part 1 of a message that is not
		// multipart, the message header.
		id.start, id.end = d.headerStart(p), d.bodyStart(p)
	default: // HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT
		if len(sec.Part) > 0 {
			// RFC 9051 §6.4.5: after a part number, these are only
			// for a message/rfc822 or message/global part, and refer
			// to the embedded message.
			if !isMessagePart(p) {
				return itemData{missing: true}
			}
			p = p.Parts[0]
		}
		if sec.Specifier == "TEXT" {
			id.start, id.end = d.bodyStart(p), d.end(p)
		} else {
			id.start, id.end = d.headerStart(p), d.bodyStart(p)
		}
		if strings.HasPrefix(sec.Specifier, "HEADER.FIELDS") {
			id.filter, id.fields, id.not = true, sec.Fields, sec.Specifier == "HEADER.FIELDS.NOT"
		}
	}
	return id
}

// binarySection resolves a BINARY section (RFC 3516 §4.2).
func (d *msgData) binarySection(nums []uint32) (itemData, error) {
	id := itemData{binary: true}
	if len(nums) == 0 {
		id.start, id.end = 0, d.m.size
		return id, nil
	}
	p := d.part(nums)
	if p == nil {
		return itemData{missing: true, binary: true}, nil
	}
	if p.MediaType == "multipart" || p.MediaType == "message" && (p.MediaSubtype == "rfc822" || p.MediaSubtype == "global") {
		// RFC 9051 §6.4.5: BINARY can only be requested for leaf parts;
		// asking for another is an invalid argument (BAD).
		return id, respBAD("BINARY[%s] is a %s/%s part: BINARY is only for parts that are not multipart or messages (use BODY)", partString(nums), p.MediaType, p.MediaSubtype)
	}
	ok, identity := cteDecodable(p.Encoding)
	if !ok {
		// RFC 3516 §4.3: NO [UNKNOWN-CTE].
		return id, respNO(codeUnknownCTE, "cannot decode content-transfer-encoding %q of part %s (use BODY)", p.Encoding, partString(nums))
	}
	if !identity {
		id.decode = p.Encoding
	}
	id.text = p.MediaType == "text" // RFC 3516 §6: CRLF line ends
	id.start, id.end = d.bodyStart(p), d.end(p)
	return id, nil
}

// copyData writes the item's data to w: its range, filtered or decoded.
func (d *msgData) copyData(w io.Writer, id *itemData) error {
	src := &fullReader{r: io.NewSectionReader(d.ra, id.start, id.end-id.start), left: id.end - id.start}
	if id.filter {
		return filterHeader(w, src, id.fields, id.not)
	}
	if id.text {
		w = &crlfWriter{w: w}
	}
	dec := newDecoder(id.decode, w)
	if _, err := io.Copy(dec, src); err != nil {
		return err
	}
	return dec.Close()
}

// fullReader reads exactly left bytes from r: an early end is
// io.ErrUnexpectedEOF.
type fullReader struct {
	r    io.Reader
	left int64
}

func (f *fullReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	f.left -= int64(n)
	if err == io.EOF && f.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// filterHeader writes the fields of the header read from r that are named
// in names (with not: that are not), then the empty line that ends a
// header (RFC 9051 §6.4.5 HEADER.FIELDS, HEADER.FIELDS.NOT). Names compare
// without regard to case; continuation lines go with their field; lines
// that are not fields are left out.
func filterHeader(w io.Writer, r io.Reader, names []string, not bool) error {
	br := bufio.NewReaderSize(r, 4096)
	keep, lineStart, openLine := false, true, false
	for {
		line, err := br.ReadSlice('\n')
		if lineStart && len(line) > 0 {
			switch {
			case line[0] == ' ' || line[0] == '\t':
				// RFC 5322 §2.2.3: a continuation of the field before.
			case err == nil && (len(line) == 1 || len(line) == 2 && line[0] == '\r'):
				// The empty line: the end of the header.
				_, err := io.WriteString(w, "\r\n")
				return err
			default:
				name, isField := fieldName(line)
				keep = isField && slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, name) }) != not
			}
		}
		if keep && len(line) > 0 {
			if _, err := w.Write(line); err != nil {
				return err
			}
			openLine = line[len(line)-1] != '\n'
		}
		switch err {
		case nil:
			lineStart = true
		case bufio.ErrBufferFull:
			lineStart = false // the rest of a long line follows
		case io.EOF:
			// A header without the empty line (a message without
			// body): end the last line, then add the empty line.
			end := "\r\n"
			if openLine {
				end += "\r\n"
			}
			_, err := io.WriteString(w, end)
			return err
		default:
			return err
		}
	}
}

// fieldName returns the name of the header field starting the line, and
// whether the line starts a field at all (RFC 5322 §2.2: name ":").
func fieldName(line []byte) (string, bool) {
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return "", false
	}
	// RFC 5322 §4.5.3 (obsolete syntax): white space before the colon.
	name := bytes.TrimRight(line[:i], " \t")
	if len(name) == 0 || bytes.ContainsAny(name, " \t\r\n") {
		return "", false
	}
	return string(name), true
}

// partialRange returns the offset and length of the partial of data of
// size bytes (RFC 9051 §6.4.5: past the end, the empty string).
func partialRange(size int64, p *imap.Partial) (int64, int64) {
	if p == nil {
		return 0, size
	}
	off := min(int64(p.Offset), size)
	return off, min(int64(p.Count), size-off)
}

// windowWriter passes on count bytes after skipping skip; then it reports
// errWindowFull to stop the copy.
type windowWriter struct {
	w           io.Writer
	skip, count int64
}

var errWindowFull = errors.New("partial complete")

func (ww *windowWriter) Write(p []byte) (int, error) {
	n := len(p)
	k := min(int64(len(p)), ww.skip)
	p, ww.skip = p[k:], ww.skip-k
	p = p[:min(int64(len(p)), ww.count)]
	if len(p) > 0 {
		m, err := ww.w.Write(p)
		ww.count -= int64(m)
		if err != nil {
			return 0, err
		}
	}
	if ww.count == 0 {
		return n, errWindowFull
	}
	return n, nil
}

// dataWriter writes literal data to the connection, renewing the write
// deadline for each chunk.
type dataWriter struct{ c *conn }

func (w dataWriter) Write(p []byte) (int, error) {
	w.c.nc.SetWriteDeadline(time.Now().Add(w.c.writeTimeout()))
	return w.c.w.Write(p)
}

// responseName is the item's name in the response: as the request named
// it, with HEADER.FIELDS names in upper case as other servers send them.
func responseName(it imap.FetchItem) string {
	if s := it.Section; s != nil && len(s.Fields) > 0 {
		cp := *s
		cp.Fields = make([]string, len(s.Fields))
		for i, f := range s.Fields {
			cp.Fields[i] = asciiUpper(f)
		}
		it.Section = &cp
	}
	return it.ResponseName()
}

func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// structureChecks returns the items whose answer depends on the part
// tree in a way that can fail the command: BINARY and BINARY.SIZE of a
// part, refused for multipart and message parts (BAD) and for encodings
// moxd cannot decode (NO [UNKNOWN-CTE]).
func structureChecks(items []imap.FetchItem) []imap.FetchItem {
	var l []imap.FetchItem
	for _, it := range items {
		if (it.Name == "BINARY" || it.Name == "BINARY.SIZE") && it.Section != nil && len(it.Section.Part) > 0 {
			l = append(l, it)
		}
	}
	return l
}

// checkStructure runs the checks of items (from structureChecks) for the
// view indexes l from the part trees alone (store sends no file). cmdFetch
// calls it before it sets \Seen, so a FETCH that answers BAD or NO marks
// no message read: the client got no message's data. A FETCH without such
// items, the common case, skips it and opens each message once.
func (c *conn) checkStructure(ctx context.Context, l []int, items []imap.FetchItem) error {
	s := c.sel
	for _, i := range l {
		d := &msgData{m: s.at(i)}
		msg, err := c.sess.Open(ctx, s.ref, d.m.uid, false)
		if err != nil {
			return storeError(err)
		}
		if msg.File != nil {
			msg.File.Close()
		}
		if msg.Part == nil {
			return respNO(imap.CodeServerBug, "store sent no message structure")
		}
		d.root, d.plen = msg.Part, int64(len(msg.Prefix))
		for _, it := range items {
			if _, err := d.binarySection(it.Section.Part); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *conn) fetchMessage(ctx context.Context, i int, items []imap.FetchItem, needBody, addFlags bool) error {
	s := c.sel
	d := &msgData{m: s.at(i)}
	m := d.m
	needBody = needBody || slices.ContainsFunc(items, isDataItem)
	if needBody || slices.ContainsFunc(items, needsTree) {
		// Without data items only the tree: store sends no file.
		msg, err := c.sess.Open(ctx, s.ref, m.uid, needBody)
		if err != nil {
			return storeError(err)
		}
		if msg.File != nil {
			defer msg.File.Close()
		}
		if needBody && msg.File == nil {
			return respNO(imap.CodeServerBug, "store sent no message file")
		}
		if msg.Part == nil {
			return respNO(imap.CodeServerBug, "store sent no message structure")
		}
		d.root, d.plen = msg.Part, int64(len(msg.Prefix))
		if msg.File != nil {
			d.ra = &msgReader{prefix: msg.Prefix, f: msg.File}
		}
	}

	// Step 1: plan the data items; refusals come before any response.
	plans := make([]itemData, len(items))
	for k, it := range items {
		if !isDataItem(it) {
			continue
		}
		id, err := d.plan(it)
		if err != nil {
			return err
		}
		plans[k] = id
	}

	// Step 2: the response; before it, FLAGS for keywords the client has
	// not been told of (selected.go).
	if addFlags || slices.ContainsFunc(items, func(it imap.FetchItem) bool { return it.Name == "FLAGS" }) {
		c.writeNewKeywords()
	}
	c.w.WriteString("* " + strconv.Itoa(i+1) + " FETCH (")
	first := true
	sp := func() {
		if !first {
			c.w.WriteByte(' ')
		}
		first = false
	}
	hasFlags, hasModSeq, hasUID := false, false, false
	for k, it := range items {
		sp()
		switch it.Name {
		case "FLAGS":
			hasFlags = true
			c.w.Write(appendFlags([]byte("FLAGS "), m.flags, m.keywords))
			continue
		case "UID":
			hasUID = true
			c.w.WriteString("UID " + strconv.FormatUint(uint64(m.uid), 10))
			continue
		case "INTERNALDATE":
			c.w.WriteString(`INTERNALDATE "` + imap.FormatDateTime(time.Unix(m.received, 0).UTC()) + `"`)
			continue
		case "RFC822.SIZE":
			c.w.WriteString("RFC822.SIZE " + strconv.FormatInt(m.size, 10))
			continue
		case "SAVEDATE":
			// RFC 8514 §4.2: every moxd mailbox keeps save dates, so
			// never NIL.
			c.w.WriteString(`SAVEDATE "` + imap.FormatDateTime(time.Unix(m.saved, 0).UTC()) + `"`)
			continue
		case "MODSEQ":
			hasModSeq = true
			c.w.Write(appendModSeq(nil, m.modseq))
			continue
		case "ENVELOPE":
			c.w.Write(imap.AppendEnvelope([]byte("ENVELOPE "), d.root.Envelope, c.utf8))
			continue
		case "BODYSTRUCTURE":
			c.w.Write(imap.AppendBodyStructure([]byte("BODYSTRUCTURE "), d.root, true, c.utf8))
			continue
		case "BODY":
			if it.Section == nil {
				c.w.Write(imap.AppendBodyStructure([]byte("BODY "), d.root, false, c.utf8))
				continue
			}
		}
		id := &plans[k]
		name := responseName(it)
		if it.Name == "BINARY.SIZE" {
			// RFC 3516 §4.3: the size BINARY of the section sends.
			c.w.WriteString(name + " " + strconv.FormatInt(id.size, 10))
			continue
		}
		if id.missing {
			c.w.WriteString(name + ` ""`)
			continue
		}
		off, n := partialRange(id.size, it.Partial)
		lit := " {"
		if id.binary && id.nul {
			lit = " ~{" // RFC 3516 §4.3: literal8 for data with NUL
		}
		c.w.WriteString(name + lit + strconv.FormatInt(n, 10) + "}\r\n")
		if err := d.send(dataWriter{c}, id, off, n); err != nil {
			// The literal's length is out: the connection cannot go on.
			return &ioError{fmt.Errorf("message %d, %s: %w", m.uid, name, err)}
		}
	}
	if addFlags && !hasFlags {
		sp()
		c.w.Write(appendFlags([]byte("FLAGS "), m.flags, m.keywords))
	}
	if addFlags && c.condstore && !hasModSeq {
		// RFC 7162 §3.2: a flag change reports UID and MODSEQ.
		sp()
		c.w.Write(appendModSeq(nil, m.modseq))
	}
	if addFlags && c.condstore && !hasUID {
		sp()
		c.w.WriteString("UID " + strconv.FormatUint(uint64(m.uid), 10))
	}
	c.w.WriteString(")\r\n")
	return nil
}

// send writes n bytes of the item's data from offset off to w.
func (d *msgData) send(w io.Writer, id *itemData, off, n int64) error {
	if id.plain() {
		src := &fullReader{r: io.NewSectionReader(d.ra, id.start+off, n), left: n}
		_, err := io.Copy(w, src)
		return err
	}
	if n == 0 {
		return nil
	}
	ww := &windowWriter{w: w, skip: off, count: n}
	err := d.copyData(ww, id)
	if errors.Is(err, errWindowFull) {
		err = nil
	}
	if err == nil && ww.count > 0 {
		err = fmt.Errorf("%d bytes short of the %d announced", ww.count, n)
	}
	return err
}
