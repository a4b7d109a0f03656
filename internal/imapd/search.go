package imapd

// SEARCH and UID SEARCH (RFC 9051 §6.4.4, RFC 3501 §6.4.4) with ESEARCH
// (RFC 4731), SEARCHRES (RFC 5182, searchres.go), WITHIN (RFC 5032), the
// MODSEQ criterion (RFC 7162 §3.1.5) and the save date criteria (RFC 8514
// §4.3); SORT (sort.go) and THREAD (thread.go) start from the same search.
//
// Implementation notes:
//   - Store evaluates the program; it knows UIDs only, so sequence sets
//     and UID sets (and "$") are resolved against the view here and sent
//     as UID ranges. Store also sees messages the view does not have yet
//     (new deliveries before NOOP): results are cut to the view, so a
//     search never names a message the client has not been told about.
//   - A search request must fit one IPC frame. Sets of many ranges are
//     split: the view is cut into windows of consecutive messages, each
//     window searched with every set clipped to its UIDs, the results
//     concatenated. Programs too large even then (ipc.MaxSearchNodes
//     criteria, ipc.MaxSearchDepth nesting, strings over
//     ipc.MaxSearchText) answer NO [LIMIT].
//   - moxd has no \Recent (SELECT says "0 RECENT"): RECENT and NEW
//     (RECENT UNSEEN) match nothing, OLD (NOT RECENT) matches everything.
//   - MODSEQ in the response is the highest modseq the view has for the
//     returned messages; flag changes by other sessions reach the view
//     with NOOP, like the FLAGS the client sees.
//   - YOUNGER and OLDER are measured from the time the command runs.

import (
	"context"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"moxd/internal/ipc"
	"moxd/internal/mailproto/imap"
)

func init() {
	addVerbs(map[string]verb{
		"SEARCH": {states(stateSelected), (*conn).cmdSearch},
	})
	addCaps(capEntry{name: "ESEARCH"}, capEntry{name: "SEARCHRES"}, capEntry{name: "WITHIN"})
}

// imap4rev2 reports whether the session runs IMAP4rev2 (RFC 9051), where
// SEARCH without RETURN answers ESEARCH.
func (c *conn) imap4rev2() bool { return c.rev2 }

// checkCharset accepts the charsets moxd searches in: strings arrive as
// UTF-8, of which US-ASCII is a subset (RFC 9051 §6.4.4: US-ASCII and
// UTF-8 must be supported).
func checkCharset(cs string) error {
	switch cs {
	case "", "US-ASCII", "UTF-8":
		return nil
	}
	// RFC 9051 §6.4.4, §7.1: NO [BADCHARSET] with the supported list.
	return respNO("BADCHARSET (US-ASCII UTF-8)", "charset %s is not supported", cs)
}

// searchFrameBudget is what a search request's criteria may take of an
// IPC frame (the rest is the mailbox reference and the message header).
const searchFrameBudget = ipc.MaxPayload - 64

// searchProg is a search program translated for store.
type searchProg struct {
	root   ipc.SearchNode
	modseq bool              // has a MODSEQ criterion (RFC 7162 §3.1.5)
	sets   []*[]ipc.UIDRange // the UID lists of set criteria, for windows
	texts  int               // bytes of strings, for the frame budget
	nodes  int               // criteria
	now    time.Time         // for YOUNGER and OLDER
	budget int               // bytes of a request for criteria (searchFrameBudget)
	c      *conn
}

// translate builds the store's search tree for k.
func (c *conn) translate(k *imap.SearchKey) (*searchProg, error) {
	p := &searchProg{c: c, now: time.Now(), budget: searchFrameBudget}
	root, err := p.node(k)
	if err != nil {
		return nil, err
	}
	p.root = root
	p.nodes = countNodes(&p.root)
	if p.nodes > ipc.MaxSearchNodes {
		return nil, respNO(imap.CodeLimit, "search program has %d criteria, more than the %d moxd allows", p.nodes, ipc.MaxSearchNodes)
	}
	if d := nodeDepth(&p.root); d > ipc.MaxSearchDepth {
		return nil, respNO(imap.CodeLimit, "search program nests %d deep, more than the %d moxd allows", d, ipc.MaxSearchDepth)
	}
	// Pointers into the finished tree: the set nodes' UID lists.
	var walk func(n *ipc.SearchNode)
	walk = func(n *ipc.SearchNode) {
		if n.Op == ipc.SearchUIDs {
			p.sets = append(p.sets, &n.UIDs)
		}
		for i := range n.Sub {
			walk(&n.Sub[i])
		}
	}
	walk(&p.root)
	return p, nil
}

func countNodes(n *ipc.SearchNode) int {
	c := 1
	for i := range n.Sub {
		c += countNodes(&n.Sub[i])
	}
	return c
}

func nodeDepth(n *ipc.SearchNode) int {
	d := 0
	for i := range n.Sub {
		d = max(d, 1+nodeDepth(&n.Sub[i]))
	}
	return d
}

var (
	matchAll     = ipc.SearchNode{Op: ipc.SearchAll}
	matchNothing = ipc.SearchNode{Op: ipc.SearchNot, Sub: []ipc.SearchNode{{Op: ipc.SearchAll}}}
)

// searchFlags are the flag criteria, by key (RFC 9051 §6.4.4).
var searchFlags = map[string]struct {
	bit uint8
	not bool
}{
	"ANSWERED": {ipc.FlagAnswered, false}, "UNANSWERED": {ipc.FlagAnswered, true},
	"DELETED": {ipc.FlagDeleted, false}, "UNDELETED": {ipc.FlagDeleted, true},
	"DRAFT": {ipc.FlagDraft, false}, "UNDRAFT": {ipc.FlagDraft, true},
	"FLAGGED": {ipc.FlagFlagged, false}, "UNFLAGGED": {ipc.FlagFlagged, true},
	"SEEN": {ipc.FlagSeen, false}, "UNSEEN": {ipc.FlagSeen, true},
}

// searchDates are the date criteria, by key.
var searchDates = map[string]uint8{
	"BEFORE": ipc.SearchBefore, "ON": ipc.SearchOn, "SINCE": ipc.SearchSince,
	"SENTBEFORE": ipc.SearchSentBefore, "SENTON": ipc.SearchSentOn, "SENTSINCE": ipc.SearchSentSince,
	// RFC 8514 §4.3: the save date, like the internal date for BEFORE,
	// ON and SINCE.
	"SAVEDBEFORE": ipc.SearchSavedBefore, "SAVEDON": ipc.SearchSavedOn, "SAVEDSINCE": ipc.SearchSavedSince,
}

func negate(n ipc.SearchNode) ipc.SearchNode {
	return ipc.SearchNode{Op: ipc.SearchNot, Sub: []ipc.SearchNode{n}}
}

// text checks a string criterion against what store takes.
func (p *searchProg) text(what, s string, max int) error {
	if !utf8.ValidString(s) {
		return respBAD("%s: search strings must be UTF-8 (or US-ASCII)", what)
	}
	if len(s) > max {
		return respNO(imap.CodeLimit, "%s: search string of %d bytes, more than the %d moxd allows", what, len(s), max)
	}
	p.texts += len(s)
	return nil
}

func (p *searchProg) node(k *imap.SearchKey) (ipc.SearchNode, error) {
	if f, ok := searchFlags[k.Op]; ok {
		n := ipc.SearchNode{Op: ipc.SearchFlag, Flags: f.bit}
		if f.not {
			n = negate(n)
		}
		return n, nil
	}
	if op, ok := searchDates[k.Op]; ok {
		// RFC 9051 §6.4.4: dates without time; store compares days.
		day := time.Date(k.Date.Year, time.Month(k.Date.Month), k.Date.Day, 0, 0, 0, 0, time.UTC)
		return ipc.SearchNode{Op: op, Number: day.Unix()}, nil
	}
	switch k.Op {
	case "AND":
		var subs []ipc.SearchNode
		for i := range k.Children {
			n, err := p.node(&k.Children[i])
			if err != nil {
				return n, err
			}
			if n.Op == ipc.SearchAnd {
				// Groups in groups: one level, so nesting stays low.
				subs = append(subs, n.Sub...)
			} else {
				subs = append(subs, n)
			}
		}
		switch len(subs) {
		case 0:
			return matchAll, nil
		case 1:
			return subs[0], nil
		}
		return ipc.SearchNode{Op: ipc.SearchAnd, Sub: subs}, nil
	case "NOT":
		n, err := p.node(&k.Children[0])
		if err != nil {
			return n, err
		}
		if n.Op == ipc.SearchNot {
			return n.Sub[0], nil
		}
		return negate(n), nil
	case "OR":
		a, err := p.node(&k.Children[0])
		if err != nil {
			return a, err
		}
		b, err := p.node(&k.Children[1])
		if err != nil {
			return b, err
		}
		return ipc.SearchNode{Op: ipc.SearchOr, Sub: []ipc.SearchNode{a, b}}, nil
	case "ALL":
		return matchAll, nil
	case "RECENT", "NEW":
		// moxd has no \Recent: no message is recent, so RECENT and NEW
		// (RECENT UNSEEN) match nothing.
		return matchNothing, nil
	case "OLD":
		// OLD is NOT RECENT: every message.
		return matchAll, nil
	case "SEQSET", "UID":
		// The store knows UIDs only: sets become the UIDs of the view's
		// messages they name ("$" is the saved result, RFC 5182 §2.1).
		l, err := p.c.resolveSet(k.Set, k.Op == "UID")
		if err != nil {
			return ipc.SearchNode{}, err
		}
		var uids []ipc.UIDRange
		for _, ch := range p.c.sel.uidRanges(l) {
			uids = append(uids, ch...)
		}
		return ipc.SearchNode{Op: ipc.SearchUIDs, UIDs: uids}, nil
	case "KEYWORD", "UNKEYWORD":
		if len(k.Value) > ipc.MaxNameLen {
			// No keyword is that long.
			if k.Op == "KEYWORD" {
				return matchNothing, nil
			}
			return matchAll, nil
		}
		if err := p.text(k.Op, k.Value, ipc.MaxNameLen); err != nil {
			return ipc.SearchNode{}, err
		}
		n := ipc.SearchNode{Op: ipc.SearchFlag, Keyword: k.Value}
		if k.Op == "UNKEYWORD" {
			n = negate(n)
		}
		return n, nil
	case "BCC", "CC", "FROM", "SUBJECT", "TO":
		if err := p.text(k.Op, k.Value, ipc.MaxSearchText); err != nil {
			return ipc.SearchNode{}, err
		}
		return ipc.SearchNode{Op: ipc.SearchHeader, Name: strings.ToLower(k.Op), Text: k.Value}, nil
	case "HEADER":
		if err := p.text("HEADER field name", k.Field, ipc.MaxNameLen); err != nil {
			return ipc.SearchNode{}, err
		}
		if err := p.text("HEADER", k.Value, ipc.MaxSearchText); err != nil {
			return ipc.SearchNode{}, err
		}
		return ipc.SearchNode{Op: ipc.SearchHeader, Name: k.Field, Text: k.Value}, nil
	case "BODY", "TEXT":
		if err := p.text(k.Op, k.Value, ipc.MaxSearchText); err != nil {
			return ipc.SearchNode{}, err
		}
		op := ipc.SearchBody
		if k.Op == "TEXT" {
			op = ipc.SearchText
		}
		return ipc.SearchNode{Op: op, Text: k.Value}, nil
	case "LARGER", "SMALLER":
		size := int64(min(k.Number, math.MaxInt64))
		if k.Op == "LARGER" {
			return ipc.SearchNode{Op: ipc.SearchLarger, Number: size}, nil
		}
		return ipc.SearchNode{Op: ipc.SearchSmaller, Number: size}, nil
	case "OLDER", "YOUNGER":
		// RFC 5032 §3: OLDER n is an internal date more than n seconds
		// ago, YOUNGER n one within the last n seconds; the two are
		// complements.
		cut := p.now.Unix() - int64(k.Number)
		if k.Op == "OLDER" {
			return ipc.SearchNode{Op: ipc.SearchOlder, Number: cut}, nil
		}
		return ipc.SearchNode{Op: ipc.SearchYounger, Number: cut}, nil
	case "MODSEQ":
		// RFC 7162 §3.1.5: modseq at least the value. Store keeps one
		// modseq per message, which stands for every metadata entry
		// name and type (§3.1.5 allows it).
		p.modseq = true
		return ipc.SearchNode{Op: ipc.SearchModSeq, Number: int64(min(k.Number, math.MaxInt64))}, nil
	case "SAVEDATESUPPORTED":
		// RFC 8514 §4.3: every message of a mailbox that keeps save
		// dates, which every moxd mailbox does.
		return matchAll, nil
	}
	return ipc.SearchNode{}, respBAD("unknown search key %s", k.Op)
}

// size estimates the encoded size of the tree without its UID ranges.
func (p *searchProg) size() int {
	// Per criterion: op, two counts, flags, number and three string
	// lengths (see ipc.SearchNode's encoding).
	return 20*p.nodes + p.texts
}

func clipRanges(l []ipc.UIDRange, lo, hi uint32) []ipc.UIDRange {
	var out []ipc.UIDRange
	for _, r := range l {
		if r.Last < lo || r.First > hi {
			continue
		}
		out = append(out, ipc.UIDRange{First: max(r.First, lo), Last: min(r.Last, hi)})
	}
	return out
}

// run evaluates the program and returns the view indexes of the matching
// messages, ascending.
func (p *searchProg) run(ctx context.Context) ([]int, error) {
	s := p.c.sel
	n := s.count()
	if n == 0 {
		return nil, nil
	}
	ranges := 0
	maxPerSet := 0
	for _, set := range p.sets {
		ranges += len(*set)
		maxPerSet = max(maxPerSet, len(*set))
	}
	base := p.size() + 24 // the window's own UID criterion and AND
	if base > p.budget {
		return nil, respNO(imap.CodeLimit, "search program too large for moxd's store requests")
	}
	if base+8*ranges <= p.budget && maxPerSet <= ipc.MaxRanges {
		uids, err := p.c.sess.Search(ctx, s.ref, p.root)
		if err != nil {
			return nil, storeError(err)
		}
		return inView(s, uids, 0, n), nil
	}
	// Windows of w consecutive view messages: each set clipped to a
	// window has at most w ranges.
	w := (p.budget - base) / (8 * (len(p.sets) + 1))
	w = max(1, min(w, ipc.MaxRanges))
	var res []int
	full := make([][]ipc.UIDRange, len(p.sets))
	for i, set := range p.sets {
		full[i] = *set
	}
	defer func() {
		for i, set := range p.sets {
			*set = full[i]
		}
	}()
	for start := 0; start < n; start += w {
		end := min(start+w, n) // exclusive
		lo, hi := s.at(start).uid, s.at(end-1).uid
		for i, set := range p.sets {
			*set = clipRanges(full[i], lo, hi)
		}
		key := ipc.SearchNode{Op: ipc.SearchAnd, Sub: []ipc.SearchNode{{Op: ipc.SearchUIDs, UIDs: []ipc.UIDRange{{First: lo, Last: hi}}}, p.root}}
		uids, err := p.c.sess.Search(ctx, s.ref, key)
		if err != nil {
			return nil, storeError(err)
		}
		res = append(res, inView(s, uids, start, end)...)
	}
	return res, nil
}

// inView returns the view indexes in [start, end) whose UIDs are in uids
// (ascending ranges), dropping UIDs the view does not have.
func inView(s *selected, uids []ipc.UIDRange, start, end int) []int {
	var l []int
	j := 0
	for i := start; i < end && j < len(uids); i++ {
		u := s.at(i).uid
		for j < len(uids) && uids[j].Last < u {
			j++
		}
		if j < len(uids) && uids[j].First <= u {
			l = append(l, i)
		}
	}
	return l
}

// searchView runs a search program (SEARCH, SORT, THREAD) and returns
// the matching view indexes, ascending, and whether it had a MODSEQ
// criterion.
func (c *conn) searchView(ctx context.Context, k *imap.SearchKey) ([]int, bool, error) {
	p, err := c.translate(k)
	if err != nil {
		return nil, false, err
	}
	if p.modseq {
		c.enableCondStore() // RFC 7162 §3.1
	}
	l, err := p.run(ctx)
	return l, p.modseq, err
}

// respNumber is what a response says for view index i: the sequence number,
// or the UID for UID commands.
func (c *conn) respNumber(i int, uid bool) uint32 {
	if uid {
		return c.sel.at(i).uid
	}
	return uint32(i + 1)
}

// highestModSeq returns the highest modseq of the view indexes l.
func (c *conn) highestModSeq(l []int) uint64 {
	var m uint64
	for _, i := range l {
		m = max(m, c.sel.at(i).modseq)
	}
	return m
}

func (c *conn) cmdSearch(cmd *imap.Command) error {
	a := cmd.Args.(*imap.SearchArgs)
	if a.Charset != "" && c.utf8Accept {
		// RFC 6855 §3: after ENABLE UTF8=ACCEPT, SEARCH takes no CHARSET.
		return respBAD("SEARCH with CHARSET after ENABLE UTF8=ACCEPT")
	}
	save := slices.Contains(a.Return, "SAVE")
	if err := checkCharset(a.Charset); err != nil {
		if save {
			c.saveResult(nil) // RFC 5182 §2.1: a failed SAVE empties $
		}
		return err
	}
	ctx, cancel := c.callCtx()
	defer cancel()
	l, modseq, err := c.searchView(ctx, &a.Key)
	if err != nil {
		if re, ok := err.(*respError); save && (!ok || re.status == imap.NO) {
			c.saveResult(nil) // RFC 5182 §2.1: a SEARCH that answers NO empties $
		}
		return err
	}
	if a.Return == nil && !c.imap4rev2() {
		// RFC 9051 §7.3.5 (IMAP4rev1 SEARCH response), RFC 7162 §3.1.5:
		// (MODSEQ n) with the highest modseq when there are results.
		b := []byte("* SEARCH")
		for _, i := range l {
			b = strconv.AppendUint(append(b, ' '), uint64(c.respNumber(i, cmd.UID)), 10)
		}
		if modseq && len(l) > 0 {
			b = strconv.AppendUint(append(b, " (MODSEQ "...), c.highestModSeq(l), 10)
			b = append(b, ')')
		}
		c.w.Write(append(b, "\r\n"...))
		return nil
	}
	ret := a.Return
	if ret == nil {
		ret = []string{"ALL"} // RFC 9051 §6.4.4: IMAP4rev2 answers ESEARCH
	}
	c.writeESearch(cmd.Tag, cmd.UID, ret, l, modseq)
	if save {
		c.saveResult(savedPart(ret, l))
		return &okText{text: "SEARCH completed, result saved"}
	}
	return nil
}

// savedPart returns what RETURN (SAVE ...) saves of the result l (in
// result order): with MIN and/or MAX and neither ALL nor COUNT, only
// those messages; otherwise all of them (RFC 5182 §2.1).
func savedPart(ret []string, l []int) []int {
	has := func(s string) bool { return slices.Contains(ret, s) }
	if len(l) == 0 || has("ALL") || has("COUNT") || (!has("MIN") && !has("MAX")) {
		return l
	}
	var part []int
	if has("MIN") {
		part = append(part, l[0])
	}
	if has("MAX") {
		part = append(part, l[len(l)-1])
	}
	return part
}

// writeESearch writes the ESEARCH response (RFC 4731 §3.1) for the result
// l: ascending for SEARCH, in sort order for SORT (RFC 5267 §3.1, where MIN
// and MAX are the first and last in that order and ALL keeps the order).
// RETURN (SAVE) alone gets no ESEARCH response (RFC 5182 §2.1).
func (c *conn) writeESearch(tag string, uid bool, ret []string, l []int, modseq bool) {
	has := func(s string) bool { return slices.Contains(ret, s) }
	if !has("MIN") && !has("MAX") && !has("ALL") && !has("COUNT") {
		return
	}
	// RFC 4731 §4, RFC 4466: the tag as a string, always quoted.
	b := imap.AppendString([]byte("* ESEARCH (TAG "), tag, false)
	b = append(b, ')')
	if uid {
		b = append(b, " UID"...) // RFC 4731 §3.1: the UID indicator
	}
	// RFC 4731 §3.1: MIN, MAX and ALL only when something matched.
	if len(l) > 0 {
		if has("MIN") {
			b = strconv.AppendUint(append(b, " MIN "...), uint64(c.respNumber(l[0], uid)), 10)
		}
		if has("MAX") {
			b = strconv.AppendUint(append(b, " MAX "...), uint64(c.respNumber(l[len(l)-1], uid)), 10)
		}
		if has("ALL") {
			nums := make([]uint32, len(l))
			for j, i := range l {
				nums[j] = c.respNumber(i, uid)
			}
			b = append(append(b, " ALL "...), orderedSet(nums)...)
		}
	}
	if has("COUNT") {
		b = strconv.AppendInt(append(b, " COUNT "...), int64(len(l)), 10)
	}
	if modseq && len(l) > 0 {
		// RFC 4731 §3.2: with MIN and/or MAX alone, the highest modseq of
		// those messages; otherwise of all returned.
		b = strconv.AppendUint(append(b, " MODSEQ "...), c.highestModSeq(savedPart(ret, l)), 10)
	}
	c.w.Write(append(b, "\r\n"...))
}

// orderedSet writes nums as a sequence set in their order, joining runs
// of consecutive ascending numbers into ranges (RFC 4731 §3.1 ALL; RFC
// 5267 §3.2: ranges only ascending, so a sort order survives).
func orderedSet(nums []uint32) []byte {
	var b []byte
	for i := 0; i < len(nums); {
		j := i
		for j+1 < len(nums) && nums[j+1] == nums[j]+1 {
			j++
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, uint64(nums[i]), 10)
		if j > i {
			b = strconv.AppendUint(append(b, ':'), uint64(nums[j]), 10)
		}
		i = j + 1
	}
	return b
}
