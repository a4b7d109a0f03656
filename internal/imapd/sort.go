package imapd

// SORT and UID SORT (RFC 5256 §3), with the DISPLAYFROM and DISPLAYTO
// keys (RFC 5957) and ESORT's RETURN options (RFC 5267 §3.1).
//
// Implementation notes:
//   - The sort keys come from each matching message's envelope, asked of
//     store one message at a time (MessageOpen without the file); ARRIVAL
//     and SIZE come from the view. A message expunged meanwhile sorts
//     with empty keys.
//   - Strings are compared after RFC 2047 decoding, case-folded with
//     Unicode title case: the first step of i;unicode-casemap (RFC 5051);
//     the decomposition step is not done.
//   - The address keys take the first address that is a mailbox (group
//     markers are skipped).

import (
	"cmp"
	"context"
	"errors"
	"mime"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"time"

	"moxd/internal/mailproto/imap"
	"moxd/internal/mailproto/message"
	"moxd/internal/storage/storeclient"
)

func init() {
	addVerbs(map[string]verb{
		"SORT": {states(stateSelected), (*conn).cmdSort},
	})
	addCaps(capEntry{name: "SORT"}, capEntry{name: "SORT=DISPLAY"}, capEntry{name: "ESORT"})
}

// msgInfo is what sorting and threading know of a message.
type msgInfo struct {
	idx      int // view index
	sent     time.Time
	subject  string // base subject (RFC 5256 §2.1), folded
	reply    bool   // the subject marks a reply or forward (RFC 5256 §3)
	from     string // folded sort keys
	to       string
	cc       string
	dispFrom string
	dispTo   string

	// For THREAD REFERENCES.
	messageID string
	refs      []string
}

// collate is the comparison form of a string.
func collate(s string) string { return strings.ToTitle(s) }

// decode2047 decodes RFC 2047 encoded words; undecodable text stays raw.
func decode2047(s string) string {
	var d mime.WordDecoder
	if out, err := d.DecodeHeader(s); err == nil {
		return out
	}
	return s
}

// firstMailbox returns the first address of l that is a mailbox.
func firstMailbox(l []message.Address) (message.Address, bool) {
	for _, a := range l {
		if a.Host != "" {
			return a, true
		}
	}
	return message.Address{}, false
}

// addrKey is RFC 5256's addr-mailbox of the first address.
func addrKey(l []message.Address) string {
	a, _ := firstMailbox(l)
	return collate(a.Mailbox)
}

// displayKey is RFC 5957's display form of the first address: its
// decoded display name, or the address when it has none.
func displayKey(l []message.Address) string {
	a, ok := firstMailbox(l)
	if !ok {
		return ""
	}
	if name := strings.TrimSpace(decode2047(a.Name)); name != "" {
		return collate(name)
	}
	return collate(a.Mailbox + "@" + a.Host)
}

// skipSubjBlob removes one leading subj-blob ("[...]" and spaces after it)
// from s (RFC 5256 §5).
func skipSubjBlob(s string) (string, bool) {
	if !strings.HasPrefix(s, "[") {
		return s, false
	}
	i := strings.IndexAny(s[1:], "[]")
	if i < 0 || s[1+i] != ']' {
		return s, false
	}
	return strings.TrimLeft(s[i+2:], " \t"), true
}

// subjectIsReply tells whether base subject extraction removed a reply or
// forward marker (a subj-refwd, "(fwd)", or "[fwd: ...]") from subject
// rather than only white space and list tags (RFC 5256 §3, REFERENCES).
func subjectIsReply(subject, base string) bool {
	s := strings.Join(strings.Fields(subject), " ")
	for {
		t, ok := skipSubjBlob(s)
		if !ok || t == "" {
			break
		}
		s = t
	}
	return s != base
}

// msgKeys returns the sort and thread keys of view index i; refs asks for
// the Message-ID and references of THREAD REFERENCES, which need the
// message header.
func (c *conn) msgKeys(ctx context.Context, i int, refs bool) (msgInfo, error) {
	m := c.sel.at(i)
	mi := msgInfo{idx: i, sent: time.Unix(m.received, 0)}
	msg, err := c.sess.Open(ctx, c.sel.ref, m.uid, refs)
	if errors.Is(err, storeclient.ErrNotFound) {
		return mi, nil // expunged meanwhile
	}
	if err != nil {
		return mi, storeError(err)
	}
	var hdr []byte
	if msg.File != nil {
		defer msg.File.Close()
		hdr = readHeader(msg)
	}
	env := msg.Part.Envelope
	if env == nil {
		env = &message.Envelope{}
	}
	// RFC 5256 §2.2: the Date header's time in UTC; the internal date
	// when it is missing or cannot be parsed.
	if t, err := mail.ParseDate(env.Date); err == nil {
		mi.sent = t
	}
	decoded := decode2047(env.Subject)
	base := message.BaseSubject(decoded)
	mi.subject = collate(base)
	mi.reply = subjectIsReply(decoded, base)
	mi.from, mi.to, mi.cc = addrKey(env.From), addrKey(env.To), addrKey(env.Cc)
	mi.dispFrom, mi.dispTo = displayKey(env.From), displayKey(env.To)
	if refs {
		if ids := message.MessageIDs(env.MessageID); len(ids) > 0 {
			mi.messageID = normID(ids[0])
		}
		// RFC 5256 §3 REFERENCES: the References ids, or else the first
		// id of In-Reply-To.
		for _, id := range message.MessageIDs(headerValue(hdr, "References")) {
			mi.refs = append(mi.refs, normID(id))
		}
		if len(mi.refs) == 0 {
			if ids := message.MessageIDs(env.InReplyTo); len(ids) > 0 {
				mi.refs = []string{normID(ids[0])}
			}
		}
	}
	return mi, nil
}

// maxRefsHeader bounds the header bytes read for References.
const maxRefsHeader = 256 << 10

// readHeader reads the message's top-level header from its file.
func readHeader(msg *storeclient.Message) []byte {
	n := min(msg.Part.BodyStart-msg.Part.HeaderStart, maxRefsHeader)
	if n <= 0 {
		return nil
	}
	b := make([]byte, n)
	k, _ := msg.File.ReadAt(b, msg.Part.HeaderStart)
	return b[:k]
}

// headerValue returns the unfolded value of the first field name in the
// header block hdr, "" if absent.
func headerValue(hdr []byte, name string) string {
	var val []string
	in := false
	for line := range strings.SplitSeq(string(hdr), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if in {
			if line != "" && (line[0] == ' ' || line[0] == '\t') {
				val = append(val, line) // RFC 5322 §2.2.3: unfolding
				continue
			}
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimRight(k, " \t"), name) {
			val, in = []string{v}, true
		}
	}
	return strings.Join(val, "")
}

// normID makes equal ids compare equal: quoting in the local part is
// removed (RFC 5256 §3: <"a"@b> and <a@b> are the same Message ID).
func normID(id string) string {
	if !strings.ContainsAny(id, `"\`) {
		return id
	}
	var b strings.Builder
	for i := 0; i < len(id); i++ {
		switch id[i] {
		case '"':
			continue
		case '\\':
			if i+1 < len(id) {
				i++
			}
		}
		b.WriteByte(id[i])
	}
	return b.String()
}

// msgKeysOf loads the keys of the view indexes l.
func (c *conn) msgKeysOf(ctx context.Context, l []int, refs bool) ([]msgInfo, error) {
	out := make([]msgInfo, 0, len(l))
	for _, i := range l {
		mi, err := c.msgKeys(ctx, i, refs)
		if err != nil {
			return nil, err
		}
		out = append(out, mi)
	}
	return out, nil
}

// compareBy compares a and b by one sort key (RFC 5256 §3, RFC 5957).
func (c *conn) compareBy(key string, a, b *msgInfo) int {
	switch key {
	case "ARRIVAL":
		return cmp.Compare(c.sel.at(a.idx).received, c.sel.at(b.idx).received)
	case "CC":
		return strings.Compare(a.cc, b.cc)
	case "DATE":
		return a.sent.Compare(b.sent)
	case "FROM":
		return strings.Compare(a.from, b.from)
	case "SIZE":
		return cmp.Compare(c.sel.at(a.idx).size, c.sel.at(b.idx).size)
	case "SUBJECT":
		return strings.Compare(a.subject, b.subject)
	case "TO":
		return strings.Compare(a.to, b.to)
	case "DISPLAYFROM":
		return strings.Compare(a.dispFrom, b.dispFrom)
	case "DISPLAYTO":
		return strings.Compare(a.dispTo, b.dispTo)
	}
	return 0
}

// sortInfos sorts by the criteria; RFC 5256 §3: REVERSE turns one
// criterion around, and the sequence number, ascending, breaks ties.
func (c *conn) sortInfos(l []msgInfo, criteria []imap.SortCriterion) {
	slices.SortFunc(l, func(a, b msgInfo) int {
		for _, cr := range criteria {
			r := c.compareBy(cr.Key, &a, &b)
			if cr.Reverse {
				r = -r
			}
			if r != 0 {
				return r
			}
		}
		return cmp.Compare(a.idx, b.idx)
	})
}

// needsEnvelope tells whether a criterion needs more than the view.
func needsEnvelope(criteria []imap.SortCriterion) bool {
	for _, cr := range criteria {
		if cr.Key != "ARRIVAL" && cr.Key != "SIZE" {
			return true
		}
	}
	return false
}

func (c *conn) cmdSort(cmd *imap.Command) error {
	a := cmd.Args.(*imap.SortArgs)
	save := slices.Contains(a.Return, "SAVE")
	// RFC 5256 §3: the charset is required; US-ASCII and UTF-8 must work.
	if err := checkCharset(a.Charset); err != nil {
		if save {
			c.saveResult(nil) // RFC 5182 §2.1
		}
		return err
	}
	ctx, cancel := c.callCtx()
	defer cancel()
	l, modseq, err := c.searchView(ctx, &a.Key)
	var infos []msgInfo
	if err == nil {
		if needsEnvelope(a.Criteria) {
			infos, err = c.msgKeysOf(ctx, l, false)
		} else {
			for _, i := range l {
				infos = append(infos, msgInfo{idx: i})
			}
		}
	}
	if err != nil {
		if re, ok := err.(*respError); save && (!ok || re.status == imap.NO) {
			c.saveResult(nil) // RFC 5182 §2.1
		}
		return err
	}
	c.sortInfos(infos, a.Criteria)
	for j := range infos {
		l[j] = infos[j].idx
	}
	if a.Return == nil {
		b := []byte("* SORT")
		for _, i := range l {
			b = strconv.AppendUint(append(b, ' '), uint64(c.respNumber(i, cmd.UID)), 10)
		}
		if modseq && len(l) > 0 {
			// RFC 7162 §3.1.5, §7 (sort-data): the highest modseq.
			b = strconv.AppendUint(append(b, " (MODSEQ "...), c.highestModSeq(l), 10)
			b = append(b, ')')
		}
		c.w.Write(append(b, "\r\n"...))
		return nil
	}
	// RFC 5267 §3: SORT with RETURN answers ESEARCH, in sort order.
	c.writeESearch(cmd.Tag, cmd.UID, a.Return, l, modseq)
	if save {
		c.saveResult(savedPart(a.Return, l))
		return &okText{text: "SORT completed, result saved"}
	}
	return nil
}
