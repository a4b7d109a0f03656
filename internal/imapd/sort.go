package imapd

// SORT and UID SORT (RFC 5256 §3), with the DISPLAYFROM and DISPLAYTO
// keys (RFC 5957) and ESORT's RETURN options (RFC 5267 §3.1).
//
// Implementation notes:
//   - The sort keys of the matching messages come from store in pages
//     (storeclient SortKeys: hundreds of messages per call, only the key
//     groups the criteria need), from what store recorded at delivery; no
//     message file is opened. ARRIVAL and SIZE come from the view. A
//     message expunged meanwhile sorts with empty keys.
//   - Store decodes RFC 2047 words and extracts the base subject (RFC 5256
//     §2.1); here strings are case-folded with Unicode title case: the
//     first step of i;unicode-casemap (RFC 5051); the decomposition step
//     is not done.
//   - The address keys take the first address that is a mailbox (group
//     markers are skipped).

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"moxd/internal/ipc"
	"moxd/internal/mailproto/imap"
)

func init() {
	addVerbs(map[string]verb{
		"SORT": {states(stateSelected), (*conn).cmdSort},
	})
	addCaps(capEntry{name: "SORT"}, capEntry{name: "SORT=DISPLAY"}, capEntry{name: "ESORT"})
}

// msgInfo is what sorting and threading know of a message.
type msgInfo struct {
	idx      int   // view index
	received int64 // internal date, Unix seconds (ARRIVAL)
	size     int64 // RFC822.SIZE (SIZE)
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

// addrKey is RFC 5256's addr-mailbox of the first address.
func addrKey(a ipc.SortAddress) string { return collate(a.Mailbox) }

// displayKey is RFC 5957's display form of the first address: its
// decoded display name, or the address when it has none.
func displayKey(a ipc.SortAddress) string {
	if a.Host == "" {
		return "" // no mailbox in the header
	}
	if name := strings.TrimSpace(a.Name); name != "" {
		return collate(name)
	}
	return collate(a.Mailbox + "@" + a.Host)
}

// keyInfo fills the keys of mi from store's.
func keyInfo(mi *msgInfo, k *ipc.SortKey) {
	mi.sent = time.Unix(k.Sent, 0)
	mi.subject = collate(k.Subject)
	mi.reply = k.Reply
	mi.from, mi.to, mi.cc = addrKey(k.From), addrKey(k.To), addrKey(k.Cc)
	mi.dispFrom, mi.dispTo = displayKey(k.From), displayKey(k.To)
	if k.MessageID != "" {
		mi.messageID = normID(k.MessageID)
	}
	// RFC 5256 §3 REFERENCES: the References ids, or else the first id
	// of In-Reply-To.
	for _, id := range k.References {
		mi.refs = append(mi.refs, normID(id))
	}
	if len(mi.refs) == 0 && k.InReplyTo != "" {
		mi.refs = []string{normID(k.InReplyTo)}
	}
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

// msgKeysOf loads the keys of the view indexes l (ascending) in the
// groups of fields (ipc.SortKey*). Messages that store no longer has
// (expunged meanwhile) keep the internal date as sent date and empty keys.
func (c *conn) msgKeysOf(ctx context.Context, l []int, fields uint8) ([]msgInfo, error) {
	out := make([]msgInfo, len(l))
	uids := make([]uint32, len(l))
	for j, i := range l {
		m := c.sel.at(i)
		out[j] = msgInfo{idx: i, sent: time.Unix(m.received, 0), received: m.received, size: m.size}
		uids[j] = m.uid
	}
	if fields == 0 || len(l) == 0 {
		return out, nil
	}
	j := 0
	err := c.sess.SortKeys(ctx, c.sel.ref, slices.Concat(c.sel.uidRanges(l)...), fields, func(keys []ipc.SortKey) bool {
		for n := range keys {
			k := &keys[n]
			for j < len(uids) && uids[j] < k.UID {
				j++ // expunged meanwhile
			}
			if j == len(uids) {
				return false
			}
			if uids[j] == k.UID {
				keyInfo(&out[j], k)
				j++
			}
		}
		return true
	})
	if err != nil {
		return nil, storeError(err)
	}
	return out, nil
}

// compareBy compares a and b by one sort key (RFC 5256 §3, RFC 5957).
func (c *conn) compareBy(key string, a, b *msgInfo) int {
	switch key {
	case "ARRIVAL":
		return cmp.Compare(a.received, b.received)
	case "CC":
		return strings.Compare(a.cc, b.cc)
	case "DATE":
		return a.sent.Compare(b.sent)
	case "FROM":
		return strings.Compare(a.from, b.from)
	case "SIZE":
		return cmp.Compare(a.size, b.size)
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

// sortFields returns the store key groups the criteria need; ARRIVAL and
// SIZE need none.
func sortFields(criteria []imap.SortCriterion) uint8 {
	var f uint8
	for _, cr := range criteria {
		switch cr.Key {
		case "DATE":
			f |= ipc.SortKeyDate
		case "SUBJECT":
			f |= ipc.SortKeySubject
		case "FROM", "DISPLAYFROM":
			f |= ipc.SortKeyFrom
		case "TO", "DISPLAYTO":
			f |= ipc.SortKeyTo
		case "CC":
			f |= ipc.SortKeyCc
		}
	}
	return f
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
		infos, err = c.msgKeysOf(ctx, l, sortFields(a.Criteria))
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
