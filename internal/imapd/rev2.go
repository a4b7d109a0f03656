package imapd

// IMAP4rev2 (RFC 9051). Every session starts as IMAP4rev1 (RFC 3501); the
// server announces both, and "ENABLE IMAP4rev2" (RFC 9051 §6.3.1) switches
// the session to the rev2 behaviour:
//   - mailbox names and strings are UTF-8, not modified UTF-7 (§5.1,
//     §4.3), as after ENABLE UTF8=ACCEPT;
//   - SELECT and EXAMINE send a LIST response for the mailbox instead of
//     RECENT and [UNSEEN] (§6.3.2, Appendix E);
//   - SEARCH answers ESEARCH (§6.4.4; search.go).
// The extensions IMAP4rev2 includes (ESEARCH, SEARCHRES, MOVE, UIDPLUS,
// LIST-EXTENDED, LIST-STATUS, SPECIAL-USE, BINARY, STATUS=SIZE, UNSELECT,
// IDLE, NAMESPACE, LITERAL-, SASL-IR, ENABLE) are served to both.

import (
	"strings"

	"moxd/internal/ipc"
)

func init() {
	enablers["IMAP4REV2"] = func(c *conn) bool {
		if c.rev2 {
			return false
		}
		c.rev2 = true
		c.utf8, c.r.UTF8 = true, true
		return true
	}
}

// selectList writes the LIST response SELECT sends in IMAP4rev2 (RFC 9051
// §6.3.2): the mailbox's name and its special-use attribute.
func (c *conn) selectList(mb ipc.MailboxInfo) {
	var attrs []string
	if su := specialUseName(mb.SpecialUse); su != "" {
		attrs = append(attrs, su)
	}
	c.w.WriteString("* LIST (" + strings.Join(attrs, " ") + `) "/" `)
	c.writeMailbox(mb.Name)
	c.w.WriteString("\r\n")
}
