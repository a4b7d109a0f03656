package imapd

// QUOTA (RFC 9208): GETQUOTAROOT and GETQUOTA report the account's
// storage quota, which domains.conf sets per account ([[account]]
// quota); SETQUOTA is not offered (no QUOTASET capability, RFC 9208
// §4.1.3) and answers NO saying where the quota is set.
//
// An account has one quota root, "", for all its mailboxes, with the one
// resource STORAGE (RFC 9208 §5.1): the sum of the message sizes, in
// units of 1024 octets, usage rounded up and the limit down, so a client
// never sees room that is not there. moxd has no message or mailbox count
// limits. An account without a quota has no quota root: GETQUOTAROOT
// names none and GETQUOTA "" answers NO (RFC 9208 §4.1.2 allows a mailbox
// without quota roots).

import (
	"fmt"

	"moxd/internal/ipc"
	"moxd/internal/mailproto/imap"
)

// quotaRoot is the name of the account's one quota root.
const quotaRoot = ""

func init() {
	addVerbs(map[string]verb{
		"GETQUOTA":     {authState, (*conn).cmdGetQuota},
		"GETQUOTAROOT": {authState, (*conn).cmdGetQuotaRoot},
		"SETQUOTA":     {authState, (*conn).cmdSetQuota},
	})
	// RFC 9208 §1: a server of this RFC announces at least one
	// QUOTA=RES- capability with QUOTA.
	addCaps(capEntry{name: "QUOTA"}, capEntry{name: "QUOTA=RES-STORAGE"})
}

func (c *conn) cmdGetQuotaRoot(cmd *imap.Command) error {
	name := canonName(cmd.Args.(*imap.MailboxArgs).Mailbox)
	ctx, cancel := c.callCtx()
	defer cancel()
	if _, err := c.sess.Mailbox(ctx, name); err != nil {
		return storeError(err)
	}
	q, err := c.sess.Quota(ctx)
	if err != nil {
		return storeError(err)
	}
	// RFC 9208 §4.2.2: QUOTAROOT names the mailbox and its quota roots,
	// then a QUOTA response follows for each root (§4.1.2).
	c.w.WriteString("* QUOTAROOT ")
	c.writeMailbox(name)
	if q.Limit > 0 {
		c.w.WriteString(" " + imap.Quote(quotaRoot))
	}
	c.w.WriteString("\r\n")
	if q.Limit > 0 {
		c.writeQuota(q)
	}
	return nil
}

func (c *conn) cmdGetQuota(cmd *imap.Command) error {
	root := cmd.Args.(*imap.GetQuotaArgs).Root
	ctx, cancel := c.callCtx()
	defer cancel()
	q, err := c.sess.Quota(ctx)
	if err != nil {
		return storeError(err)
	}
	if root != quotaRoot || q.Limit <= 0 {
		// RFC 9208 §4.1.1: a quota root that does not exist is NO.
		return respNO(imap.CodeNonExistent, "no such quota root (the account's one root is \"\", with a quota set in moxd.conf)")
	}
	c.writeQuota(q)
	return nil
}

// writeQuota sends the QUOTA response of the account's root (RFC 9208
// §4.2.1).
func (c *conn) writeQuota(q *ipc.QuotaInfo) {
	used := (q.Used + 1023) / 1024 // RFC 9208 §5.1: units of 1024 octets
	fmt.Fprintf(c.w, "* QUOTA %s (STORAGE %d %d)\r\n", imap.Quote(quotaRoot), used, q.Limit/1024)
}

func (c *conn) cmdSetQuota(cmd *imap.Command) error {
	// RFC 9208 §4.1.3: without QUOTASET the server refuses.
	return respNO(imap.CodeNoPerm, "quotas are set by the administrator: quota of the account in domains.conf")
}
