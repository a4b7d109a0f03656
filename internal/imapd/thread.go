package imapd

// THREAD and UID THREAD (RFC 5256 §3): ORDEREDSUBJECT and REFERENCES.
//
// Implementation notes:
//   - Keys come from store in pages as for SORT (sort.go); REFERENCES
//     also asks for the Message-ID, In-Reply-To and References ids, which
//     store keeps for every message.
//   - REFERENCES follows the six steps of §3 in order; the numbers in the
//     comments are the RFC's. Containers are kept in a slice in the order
//     they were made, so the result does not depend on map order.

import (
	"cmp"
	"slices"
	"strconv"

	"moxd/internal/ipc"
	"moxd/internal/mailproto/imap"
)

func init() {
	addVerbs(map[string]verb{
		"THREAD": {states(stateSelected), (*conn).cmdThread},
	})
	addCaps(capEntry{name: "THREAD=ORDEREDSUBJECT"}, capEntry{name: "THREAD=REFERENCES"})
}

// tnode is a message in a thread tree; msg nil is a dummy (a message
// referenced but not among the results).
type tnode struct {
	msg      *msgInfo
	parent   *tnode
	children []*tnode
}

// first returns the message that dates a node: itself, or for a dummy its
// first child's (children sorted first).
func (n *tnode) first() *msgInfo {
	for n.msg == nil {
		if len(n.children) == 0 {
			return nil
		}
		n = n.children[0]
	}
	return n.msg
}

// bySent orders nodes by sent date (RFC 5256 §2.2), ties by sequence
// number.
func bySent(a, b *tnode) int {
	ma, mb := a.first(), b.first()
	switch {
	case ma == nil || mb == nil:
		return cmp.Compare(btoi(ma != nil), btoi(mb != nil))
	}
	if r := ma.sent.Compare(mb.sent); r != 0 {
		return r
	}
	return cmp.Compare(ma.idx, mb.idx)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// isAncestor tells whether a is b or one of b's ancestors.
func isAncestor(a, b *tnode) bool {
	for n := b; n != nil; n = n.parent {
		if n == a {
			return true
		}
	}
	return false
}

func (n *tnode) unlink() {
	if p := n.parent; p != nil {
		p.children = slices.DeleteFunc(p.children, func(c *tnode) bool { return c == n })
		n.parent = nil
	}
}

func (n *tnode) add(child *tnode) {
	child.parent = n
	n.children = append(n.children, child)
}

// orderedSubject is THREAD=ORDEREDSUBJECT (RFC 5256 §3): messages grouped
// by base subject, sorted by sent date in each group; the first is the
// root, the others its children; threads in the order of their roots.
func orderedSubject(msgs []msgInfo) []*tnode {
	groups := map[string]*tnode{}
	var roots []*tnode
	l := slices.Clone(msgs)
	slices.SortFunc(l, func(a, b msgInfo) int {
		if r := a.sent.Compare(b.sent); r != 0 {
			return r
		}
		return cmp.Compare(a.idx, b.idx)
	})
	for i := range l {
		m := &l[i]
		if g := groups[m.subject]; g != nil {
			g.add(&tnode{msg: m})
			continue
		}
		g := &tnode{msg: m}
		groups[m.subject] = g
		roots = append(roots, g)
	}
	return roots
}

// references is THREAD=REFERENCES (RFC 5256 §3).
func references(msgs []msgInfo) []*tnode {
	byID := map[string]*tnode{}
	var all []*tnode
	get := func(id string) *tnode {
		n := byID[id]
		if n == nil {
			n = &tnode{}
			byID[id] = n
			all = append(all, n)
		}
		return n
	}
	for i := range msgs {
		m := &msgs[i]
		// (1)(A): a message without a valid Message-ID, or with one
		// an earlier message (lower sequence number) has, gets a
		// unique one: its own container, in no table.
		var n *tnode
		if m.messageID != "" && (byID[m.messageID] == nil || byID[m.messageID].msg == nil) {
			n = get(m.messageID)
		} else {
			n = &tnode{}
			all = append(all, n)
		}
		n.msg = m
		// (1)(A): link the references as parent and child, keeping
		// existing links and making no loops.
		for j := 0; j+1 < len(m.refs); j++ {
			p, c := get(m.refs[j]), get(m.refs[j+1])
			if c.parent == nil && !isAncestor(c, p) {
				p.add(c)
			}
		}
		// (1)(B): the last reference is the parent; an earlier guess
		// is replaced. No references: no parent.
		var p *tnode
		if len(m.refs) > 0 {
			p = get(m.refs[len(m.refs)-1])
		}
		if n.parent != p {
			n.unlink()
			if p != nil && !isAncestor(n, p) {
				p.add(n)
			}
		}
	}
	// (2): the root set is the nodes without parent.
	var roots []*tnode
	for _, n := range all {
		if n.parent == nil {
			roots = append(roots, n)
		}
	}
	// (3): prune dummies.
	roots = prune(roots, true)
	// (4): sort the root set by sent date, a dummy by its first child.
	for _, r := range roots {
		if r.msg == nil {
			slices.SortFunc(r.children, bySent)
		}
	}
	slices.SortFunc(roots, bySent)
	// (5): merge threads of the same base subject.
	subj := func(n *tnode) string {
		if m := n.first(); m != nil {
			return m.subject
		}
		return ""
	}
	// (5)(B): the subject table.
	table := map[string]*tnode{}
	for _, r := range roots {
		s := subj(r)
		if s == "" {
			continue
		}
		t := table[s]
		if t == nil || t.msg != nil && (r.msg == nil || t.msg.reply && !r.msg.reply) {
			table[s] = r
		}
	}
	// (5)(C): merge into the table's thread.
	pos := map[*tnode]int{}
	for i, r := range roots {
		pos[r] = i
	}
	for i, r := range roots {
		if r == nil {
			continue
		}
		s := subj(r)
		t := table[s]
		if s == "" || t == r {
			continue
		}
		switch {
		case t.msg == nil && r.msg == nil:
			for _, c := range r.children {
				t.add(c)
			}
			r.children = nil
		case t.msg == nil:
			t.add(r)
		case r.msg != nil && r.msg.reply && !t.msg.reply:
			t.add(r)
		default:
			d := &tnode{}
			j := pos[t]
			d.add(t)
			d.add(r)
			roots[j], pos[d] = d, j
			table[s] = d
		}
		roots[i] = nil
	}
	roots = slices.DeleteFunc(roots, func(n *tnode) bool { return n == nil })
	// (6): sort all siblings by sent date, the deepest first.
	var sortAll func(l []*tnode)
	sortAll = func(l []*tnode) {
		for _, n := range l {
			sortAll(n.children)
		}
		slices.SortFunc(l, bySent)
	}
	sortAll(roots)
	return roots
}

// prune removes dummies (RFC 5256 §3 step 3): a dummy without children
// goes, one with children gives them to its parent's level, except at the
// root, where only a single child is promoted.
func prune(l []*tnode, root bool) []*tnode {
	var out []*tnode
	for _, n := range l {
		n.children = prune(n.children, false)
		for _, c := range n.children {
			c.parent = n
		}
		if n.msg == nil && (len(n.children) == 0 || !root || len(n.children) == 1) {
			for _, c := range n.children {
				c.parent = n.parent
			}
			out = append(out, n.children...)
			continue
		}
		out = append(out, n)
	}
	return out
}

// appendThread writes one thread-list (RFC 5256 §4): a chain of single
// children as numbers, a split into several children as nested lists.
func (c *conn) appendThread(b []byte, n *tnode, uid bool) []byte {
	b = append(b, '(')
	b = c.appendMembers(b, n, uid)
	return append(b, ')')
}

func (c *conn) appendMembers(b []byte, n *tnode, uid bool) []byte {
	if n.msg != nil {
		b = strconv.AppendUint(b, uint64(c.respNumber(n.msg.idx, uid)), 10)
		switch len(n.children) {
		case 0:
			return b
		case 1:
			return c.appendMembers(append(b, ' '), n.children[0], uid)
		}
		b = append(b, ' ')
	}
	// Several children (or a dummy's): thread-nested.
	for _, ch := range n.children {
		b = c.appendThread(b, ch, uid)
	}
	return b
}

func (c *conn) cmdThread(cmd *imap.Command) error {
	a := cmd.Args.(*imap.ThreadArgs)
	if a.Algorithm != "ORDEREDSUBJECT" && a.Algorithm != "REFERENCES" {
		return respBAD("unknown thread algorithm %s (moxd has ORDEREDSUBJECT and REFERENCES)", a.Algorithm)
	}
	// RFC 5256 §3: the charset is required; US-ASCII and UTF-8 must work.
	if err := checkCharset(a.Charset); err != nil {
		return err
	}
	ctx, cancel := c.callCtx()
	defer cancel()
	l, _, err := c.searchView(ctx, &a.Key)
	if err != nil {
		return err
	}
	fields := ipc.SortKeyDate | ipc.SortKeySubject
	if a.Algorithm == "REFERENCES" {
		fields |= ipc.SortKeyThread
	}
	msgs, err := c.msgKeysOf(ctx, l, fields)
	if err != nil {
		return err
	}
	var roots []*tnode
	if a.Algorithm == "ORDEREDSUBJECT" {
		roots = orderedSubject(msgs)
	} else {
		roots = references(msgs)
	}
	b := []byte("* THREAD")
	if len(roots) > 0 {
		b = append(b, ' ')
	}
	for _, r := range roots {
		b = c.appendThread(b, r, cmd.UID)
	}
	c.w.Write(append(b, "\r\n"...))
	return nil
}
