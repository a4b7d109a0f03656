package imapd

// Login (LOGIN, AUTHENTICATE) and the commands of the authenticated state
// that work on mailboxes as a whole (RFC 9051 §6.3), through store.

import (
	"context"
	"encoding/base64"
	"errors"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"moxd/internal/auth"
	"moxd/internal/ipc"
	"moxd/internal/mailproto/imap"
	"moxd/internal/storage/storeclient"
)

func (c *conn) callCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.ctx, storeCallTimeout)
}

// private reports whether passwords may be sent: under TLS, or on a
// loopback connection when the server allows it (localserve).
func (c *conn) private() bool {
	return c.tls != nil || c.srv.PlaintextLoopback && c.ip.IsLoopback()
}

func (c *conn) cmdLogin(cmd *imap.Command) error {
	if !c.private() {
		// RFC 9051 §6.2.3: LOGINDISABLED; the password must not travel
		// in clear.
		return respNO(imap.CodePrivacyRequired, "LOGIN needs TLS: use STARTTLS first")
	}
	a := cmd.Args.(*imap.LoginArgs)
	return c.login(cmd, auth.MechPLAIN, []byte("\x00"+a.Username+"\x00"+a.Password), true)
}

func (c *conn) cmdAuthenticate(cmd *imap.Command) error {
	a := cmd.Args.(*imap.AuthenticateArgs)
	if !slices.Contains(c.mechanisms(), a.Mechanism) {
		if a.Mechanism == auth.MechPLAIN && !c.private() {
			return respNO(imap.CodePrivacyRequired, "PLAIN needs TLS: use STARTTLS first")
		}
		return respNO(imap.CodeCannot, "mechanism %s is not offered", a.Mechanism)
	}
	return c.login(cmd, a.Mechanism, a.Initial, a.HasInitial)
}

// login runs a SASL exchange through store (RFC 9051 §6.2.2): challenges
// go to the client as "+ base64", its lines come back base64, "*"
// cancels. On success the session is opened on the channel the exchange
// ran on.
func (c *conn) login(cmd *imap.Command, mech string, initial []byte, hasInitial bool) error {
	if !c.ip.IsValid() {
		return respNO(imap.CodeUnavailable, "cannot log in over this connection")
	}
	sc, err := c.srv.Store()
	if err != nil {
		return respNO(imap.CodeUnavailable, "account store unavailable, try again later")
	}
	// All calls of this login and session go to this one channel: store
	// accepts a token only on the channel that it was issued on.
	peer := func() (*ipc.Conn, error) {
		select {
		case <-sc.Done():
			return nil, errors.New("store channel closed")
		default:
			return sc, nil
		}
	}
	sa := storeclient.NewAuth(peer)
	ctx, cancel := c.callCtx()
	defer cancel()
	step, err := sa.Start(ctx, mech, c.ip, c.private(), auth.ServerChannelBindings(c.tls), initial, hasInitial)
	for err == nil && !step.Done {
		var resp []byte
		resp, err = c.saslExchange(step.Challenge)
		if err != nil {
			sa.Abort(context.WithoutCancel(ctx), step.Exchange)
			return err
		}
		ctx2, cancel2 := c.callCtx()
		step, err = sa.Continue(ctx2, step.Exchange, resp)
		cancel2()
	}
	if err != nil {
		return c.loginFailed(err)
	}
	if len(step.Challenge) > 0 {
		// The mechanism's final data (SCRAM's server-final-message) goes
		// in a last continuation; the client answers with an empty line
		// (RFC 9051 §6.2.2).
		resp, xerr := c.saslExchange(step.Challenge)
		if xerr != nil || len(resp) != 0 {
			sa.RevokeToken(step.Token)
			if xerr != nil {
				return xerr
			}
			return respBAD("expected an empty response to the final authentication data")
		}
	}
	ctx3, cancel3 := c.callCtx()
	defer cancel3()
	sess, err := storeclient.OpenSession(ctx3, peer, step.Token)
	if err != nil {
		sa.RevokeToken(step.Token)
		return storeError(err)
	}
	c.sess, c.storeConn, c.state = sess, sc, stateAuth
	c.authFailures = 0
	c.srv.watchStore(sc, c)
	c.srv.logins.Add(1)
	c.log.Info("logged in", "account", sess.Account, "mechanism", mech)
	// RFC 9051 §6.2.2: the capabilities may change; send them along.
	return &okText{code: imap.CodeCapability(c.capabilities()...), text: "logged in"}
}

// saslExchange sends a challenge and reads the client's response line.
func (c *conn) saslExchange(challenge []byte) ([]byte, error) {
	c.w.WriteString("+ " + base64.StdEncoding.EncodeToString(challenge) + "\r\n")
	if err := c.flush(); err != nil {
		return nil, err
	}
	if why := c.armRead(); why != "" {
		return nil, &respError{status: imap.NO, code: imap.CodeUnavailable, text: why, bye: true}
	}
	line, err := c.r.ReadLine()
	if err != nil {
		c.readFailed(err)
		return nil, &ioError{err}
	}
	if line == "*" {
		// RFC 9051 §6.2.2: the client cancelled; answer BAD.
		return nil, respBAD("authentication cancelled")
	}
	resp, err := base64.StdEncoding.DecodeString(line)
	if err != nil {
		return nil, respBAD("authentication response is not base64")
	}
	return resp, nil
}

// loginFailed maps a failed exchange to the response, after the delay.
func (c *conn) loginFailed(err error) error {
	switch {
	case errors.Is(err, storeclient.ErrAborted):
		return respBAD("authentication cancelled")
	case errors.Is(err, storeclient.ErrMalformed):
		return respBAD("malformed authentication exchange")
	case errors.Is(err, storeclient.ErrRateLimited):
		return respNO(imap.CodeUnavailable, "too many failed logins from your network, try again later")
	case errors.Is(err, storeclient.ErrUnavailable):
		c.log.Error("authentication unavailable", "err", err)
		return respNO(imap.CodeUnavailable, "temporary authentication failure, try again later")
	}
	c.authFailures++
	c.log.Info("authentication failed", "failures", c.authFailures)
	lim := c.srv.currentAuthLimits()
	if d := lim.delay << min(c.authFailures-1, 6); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
		}
	}
	max := lim.max
	if max <= 0 {
		max = DefaultMaxAuthFailures
	}
	e := respNO(imap.CodeAuthenticationFailed, "authentication failed")
	e.bye = c.authFailures >= max
	return e
}

// storeError maps an error of a session call to a response (RFC 5530
// codes).
func storeError(err error) error {
	switch {
	case errors.Is(err, storeclient.ErrNotFound):
		return &respError{status: imap.NO, code: imap.CodeNonExistent, text: "no such mailbox"}
	case errors.Is(err, storeclient.ErrExists):
		return &respError{status: imap.NO, code: imap.CodeAlreadyExists, text: "mailbox exists already"}
	case errors.Is(err, storeclient.ErrOverQuota):
		return &respError{status: imap.NO, code: imap.CodeOverQuota, text: "account over quota"}
	case errors.Is(err, storeclient.ErrRefused):
		return &respError{status: imap.NO, code: imap.CodeCannot, text: err.Error()}
	case errors.Is(err, storeclient.ErrUnavailable), errors.Is(err, storeclient.ErrStale):
		return &respError{status: imap.NO, code: imap.CodeUnavailable, text: "account store unavailable, try again later", cause: err}
	}
	return &respError{status: imap.NO, code: imap.CodeServerBug, text: "internal error", cause: err}
}

// Special-use attributes (RFC 6154 §2) by store's number
// (account.SpecialUse, which moxd-imap does not link).
var specialUses = []string{1: `\Sent`, 2: `\Drafts`, 3: `\Trash`, 4: `\Archive`, 5: `\Junk`, 6: `\All`, 7: `\Flagged`}

func specialUseName(u uint8) string {
	if int(u) < len(specialUses) {
		return specialUses[u]
	}
	return ""
}

func specialUseNumber(attr string) (uint8, bool) {
	for i, s := range specialUses {
		if s != "" && strings.EqualFold(s, attr) {
			return uint8(i), true
		}
	}
	return 0, false
}

// canonName makes INBOX as the first level upper case (RFC 9051 §5.1).
func canonName(name string) string {
	first, rest, ok := strings.Cut(name, "/")
	if imap.IsInbox(first) {
		if ok {
			return "INBOX/" + rest
		}
		return "INBOX"
	}
	return name
}

func (c *conn) writeMailbox(name string) {
	c.w.Write(imap.AppendMailbox(nil, name, c.utf8))
}

// listEntry is one name LIST or LSUB may show.
type listEntry struct {
	name       string
	exists     bool
	mb         ipc.MailboxInfo
	subscribed bool
	children   bool // has child mailboxes
	subChild   bool // has a subscribed descendant (RECURSIVEMATCH)
}

// patternRegexp compiles a LIST pattern: "*" matches anything, "%" anything
// but the hierarchy delimiter (RFC 9051 §6.3.9).
func patternRegexp(p string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	for _, r := range p {
		switch r {
		case '*':
			b.WriteString(".*")
		case '%':
			b.WriteString("[^/]*")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

func (c *conn) cmdList(cmd *imap.Command) error {
	return c.list(cmd.Args.(*imap.ListArgs), "LIST")
}

func (c *conn) cmdLsub(cmd *imap.Command) error {
	return c.list(cmd.Args.(*imap.ListArgs), "LSUB")
}

func (c *conn) list(a *imap.ListArgs, verb string) error {
	var selSubscribed, selSpecial, recursive bool
	for _, o := range a.Selection {
		switch o {
		case "SUBSCRIBED":
			selSubscribed = true
		case "SPECIAL-USE": // RFC 6154 §5.2
			selSpecial = true
		case "RECURSIVEMATCH":
			recursive = true
		case "REMOTE": // RFC 5258 §3.1: no remote mailboxes here
		default:
			return respBAD("unknown LIST selection option %s", o)
		}
	}
	if recursive && !selSubscribed && !selSpecial {
		// RFC 5258 §3.1: RECURSIVEMATCH needs another selection option.
		return respBAD("RECURSIVEMATCH needs another selection option")
	}
	var retSubscribed, retSpecial, retStatus bool
	for _, o := range a.Return {
		switch o {
		case "SUBSCRIBED":
			retSubscribed = true
		case "CHILDREN": // always returned
		case "SPECIAL-USE":
			retSpecial = true
		case "STATUS": // RFC 5819
			retStatus = true
		default:
			return respBAD("unknown LIST return option %s", o)
		}
	}
	_ = retSpecial // special-use attributes are always returned (RFC 6154 §2)
	extended := len(a.Selection) > 0 || len(a.Return) > 0 || len(a.Patterns) > 1

	// RFC 9051 §6.3.9: an empty pattern asks for the delimiter.
	if verb == "LIST" && len(a.Patterns) == 1 && a.Patterns[0] == "" {
		c.w.WriteString(`* LIST (\Noselect) "/" ""` + "\r\n")
		return nil
	}

	ctx, cancel := c.callCtx()
	defer cancel()
	mbs, err := c.sess.Mailboxes(ctx, false)
	if err != nil {
		return storeError(err)
	}
	subs, err := c.sess.Mailboxes(ctx, true)
	if err != nil {
		return storeError(err)
	}
	entries := map[string]*listEntry{}
	entry := func(name string) *listEntry {
		e := entries[name]
		if e == nil {
			e = &listEntry{name: name}
			entries[name] = e
		}
		return e
	}
	for _, mb := range mbs {
		e := entry(mb.Name)
		e.exists, e.mb = true, mb
		e.subscribed = e.subscribed || mb.Subscribed
	}
	for _, mb := range subs {
		entry(mb.Name).subscribed = true
	}
	// Parents of every name, and what their descendants are.
	for _, name := range slices.Collect(maps.Keys(entries)) {
		e := entries[name]
		for i := strings.LastIndexByte(name, '/'); i > 0; i = strings.LastIndexByte(name[:i], '/') {
			p := entry(name[:i])
			if e.exists {
				p.children = true
			}
			if e.subscribed {
				p.subChild = true
			}
		}
	}

	var res []*regexp.Regexp
	for _, p := range a.Patterns {
		res = append(res, patternRegexp(canonName(a.Reference+p)))
	}
	names := slices.Sorted(maps.Keys(entries))
	// INBOX first, as clients expect.
	if i := slices.Index(names, "INBOX"); i > 0 {
		names = append([]string{"INBOX"}, slices.Delete(names, i, i+1)...)
	}
	for _, name := range names {
		e := entries[name]
		if !slices.ContainsFunc(res, func(re *regexp.Regexp) bool { return re.MatchString(name) }) {
			continue
		}
		var attrs []string
		var childInfo bool
		switch {
		case verb == "LSUB":
			// RFC 3501 §6.3.9: subscribed names; a parent of one under
			// "%" shows as \Noselect.
			if !e.subscribed {
				if !e.subChild || !strings.HasSuffix(a.Patterns[0], "%") {
					continue
				}
				attrs = append(attrs, `\Noselect`)
			} else if !e.exists {
				attrs = append(attrs, `\Noselect`)
			}
		case selSubscribed:
			if !e.subscribed {
				if !recursive || !e.subChild {
					continue
				}
				childInfo = true // RFC 5258 §3.5
			}
		case selSpecial:
			if !e.exists || e.mb.SpecialUse == 0 {
				continue
			}
		}
		if verb == "LIST" && !selSubscribed && !e.exists && !e.children {
			// RFC 5258 §3 (RFC 9051 §6.3.9's table): without the
			// SUBSCRIBED selection a name that is neither a mailbox nor
			// the parent of one is not listed, even if subscribed.
			continue
		}
		if verb == "LIST" {
			if !e.exists {
				if extended {
					attrs = append(attrs, `\NonExistent`) // implies \Noselect
				} else {
					attrs = append(attrs, `\Noselect`)
				}
			}
			if e.children {
				attrs = append(attrs, `\HasChildren`)
			} else {
				attrs = append(attrs, `\HasNoChildren`)
			}
			if e.subscribed && (selSubscribed || retSubscribed) {
				attrs = append(attrs, `\Subscribed`)
			}
		}
		if su := specialUseName(e.mb.SpecialUse); su != "" && e.exists {
			attrs = append(attrs, su)
		}
		c.w.WriteString("* " + verb + " (" + strings.Join(attrs, " ") + `) "/" `)
		c.writeMailbox(name)
		if childInfo {
			c.w.WriteString(` ("CHILDINFO" ("SUBSCRIBED"))`)
		}
		c.w.WriteString("\r\n")
		if retStatus && e.exists && verb == "LIST" {
			c.writeStatusData(e.mb, a.ReturnStatus)
		}
	}
	return nil
}

// writeStatusData writes "* STATUS name (items)" (RFC 9051 §7.3.5).
func (c *conn) writeStatusData(mb ipc.MailboxInfo, items []string) {
	c.w.WriteString("* STATUS ")
	c.writeMailbox(mb.Name)
	c.w.WriteString(" (")
	var l []string
	for _, it := range items {
		var v string
		switch it {
		case "MESSAGES":
			v = strconv.FormatUint(uint64(mb.Messages), 10)
		case "UIDNEXT":
			v = strconv.FormatUint(uint64(mb.UIDNext), 10)
		case "UIDVALIDITY":
			v = strconv.FormatUint(uint64(mb.UIDValidity), 10)
		case "UNSEEN":
			v = strconv.FormatUint(uint64(mb.Unseen), 10)
		case "DELETED": // RFC 9051 §6.3.11
			v = strconv.FormatUint(uint64(mb.Deleted), 10)
		case "DELETED-STORAGE":
			// RFC 9208 §4.1.4, §5.1: what EXPUNGE would free, in units
			// of 1024 octets as STORAGE, rounded up as its usage is
			// (quota.go).
			v = strconv.FormatInt((mb.DeletedSize+1023)/1024, 10)
		case "SIZE": // RFC 8438
			v = strconv.FormatInt(mb.Size, 10)
		case "HIGHESTMODSEQ": // RFC 7162 §3.1.6
			v = strconv.FormatUint(mb.HighestModSeq, 10)
		case "RECENT": // IMAP4rev1; moxd has no \Recent
			v = "0"
		default: // APPENDLIMIT: not announced
			continue
		}
		l = append(l, it+" "+v)
	}
	c.w.WriteString(strings.Join(l, " ") + ")\r\n")
}

func (c *conn) cmdStatus(cmd *imap.Command) error {
	a := cmd.Args.(*imap.StatusArgs)
	ctx, cancel := c.callCtx()
	defer cancel()
	mb, err := c.sess.Mailbox(ctx, canonName(a.Mailbox))
	if err != nil {
		return storeError(err)
	}
	c.writeStatusData(mb, a.Items)
	return nil
}

func (c *conn) cmdCreate(cmd *imap.Command) error {
	a := cmd.Args.(*imap.CreateArgs)
	// RFC 9051 §6.3.4: a trailing delimiter only says the client means
	// to create names under it.
	name := canonName(strings.TrimSuffix(a.Mailbox, "/"))
	if name == "INBOX" {
		return respNO(imap.CodeAlreadyExists, "INBOX always exists")
	}
	var use uint8
	for i, su := range a.SpecialUse {
		u, ok := specialUseNumber(su)
		if !ok || i > 0 {
			// RFC 6154 §3: USEATTR for a special use the server cannot
			// give (store keeps one per mailbox).
			return respNO("USEATTR", "special use %s is not supported here (one of \\Sent \\Drafts \\Trash \\Archive \\Junk \\All \\Flagged, one per mailbox)", su)
		}
		use = u
	}
	ctx, cancel := c.callCtx()
	defer cancel()
	if _, err := c.sess.ChangeMailbox(ctx, ipc.MailboxCreate, name, "", use); err != nil {
		return storeError(err)
	}
	return nil
}

func (c *conn) cmdDelete(cmd *imap.Command) error {
	name := canonName(cmd.Args.(*imap.MailboxArgs).Mailbox)
	if name == "INBOX" {
		// RFC 9051 §6.3.5: deleting INBOX is an error.
		return respNO(imap.CodeCannot, "INBOX cannot be deleted")
	}
	ctx, cancel := c.callCtx()
	defer cancel()
	if _, err := c.sess.ChangeMailbox(ctx, ipc.MailboxDelete, name, "", 0); err != nil {
		if errors.Is(err, storeclient.ErrRefused) && c.hasChildren(ctx, name) {
			// RFC 9051 §6.3.5: a server that does not delete a mailbox
			// with inferiors SHOULD say so with [HASCHILDREN] (§7.1).
			return respNO("HASCHILDREN", "mailbox has child mailboxes; delete or rename them first")
		}
		return storeError(err)
	}
	return nil
}

// hasChildren reports whether mailbox name has child mailboxes.
func (c *conn) hasChildren(ctx context.Context, name string) bool {
	mbs, err := c.sess.Mailboxes(ctx, false)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(mbs, func(mb ipc.MailboxInfo) bool { return strings.HasPrefix(mb.Name, name+"/") })
}

func (c *conn) cmdRename(cmd *imap.Command) error {
	a := cmd.Args.(*imap.RenameArgs)
	from, to := canonName(a.From), canonName(a.To)
	if from == "INBOX" {
		// RFC 9051 §6.3.6 gives renaming INBOX special semantics (move
		// its messages); store does not implement them.
		return respNO(imap.CodeCannot, "renaming INBOX is not supported")
	}
	if to == "INBOX" {
		return respNO(imap.CodeAlreadyExists, "INBOX exists")
	}
	ctx, cancel := c.callCtx()
	defer cancel()
	if _, err := c.sess.ChangeMailbox(ctx, ipc.MailboxRename, from, to, 0); err != nil {
		return storeError(err)
	}
	return nil
}

func (c *conn) cmdSubscribe(cmd *imap.Command) error {
	return c.subscribe(cmd, ipc.MailboxSubscribe)
}

func (c *conn) cmdUnsubscribe(cmd *imap.Command) error {
	return c.subscribe(cmd, ipc.MailboxUnsubscribe)
}

func (c *conn) subscribe(cmd *imap.Command, op uint8) error {
	name := canonName(cmd.Args.(*imap.MailboxArgs).Mailbox)
	ctx, cancel := c.callCtx()
	defer cancel()
	if _, err := c.sess.ChangeMailbox(ctx, op, name, "", 0); err != nil {
		return storeError(err)
	}
	return nil
}

// authLimits are the login failure limits a config reload may change.
type authLimits struct {
	delay time.Duration
	max   int
}

// SetAuthLimits changes the login failure delay and the failures per
// connection for logins from now on (config reload).
func (s *Server) SetAuthLimits(delay time.Duration, max int) {
	s.authLimits.Store(&authLimits{delay, max})
}

func (s *Server) currentAuthLimits() authLimits {
	if l := s.authLimits.Load(); l != nil {
		return *l
	}
	return authLimits{s.LoginFailureDelay, s.MaxAuthFailures}
}
