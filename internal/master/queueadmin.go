package master

// Queue administration on the control socket (moxctl queue ...). Master
// turns the command's arguments into one FamQueueAdmin request to queue
// and relays queue's reply to moxctl as JSON, with the field names of the
// ipc reply types (ipc.QueueListing, ipc.QueueText, ipc.QueueCount,
// ipc.QueueHoldRuleList, ipc.QueueRetiredList, ipc.QueueSuppressionList,
// ipc.QueueWebhookList).
// It parses only the admin's arguments, never message content: a dump's
// text is made by queue. Commands that change the queue go to the audit
// log.
//
// The commands and their arguments, as moxctl sends them (flags may come
// in any order, before or between the positional arguments):
//
//	queue list [FILTER] [-sort S] [-start N] [-n N]
//	queue dump MSGID
//	queue hold|unhold|fail|drop FILTER
//	queue schedule FILTER -at TIME|now | -in DURATION
//	queue transport NAME|- FILTER
//	queue requiretls yes|no|default FILTER
//	queue holdrules list [-start N]
//	queue holdrules add [-account A] [-senderdomain D] [-rcptdomain D]
//	queue holdrules rm ID
//	queue retired list [-account A] [-start N] [-n N] [-oldest]
//	queue retired print MSGID [SEQ] [-start N]
//	queue suppress list [ACCOUNT] [-start N]
//	queue suppress add ACCOUNT ADDRESS [REASON...]
//	queue suppress rm|lookup ACCOUNT ADDRESS
//	queue webhooks list [ACCOUNT] [-start N]
//	queue webhooks retired [ACCOUNT] [-start N] [-n N]
//
// FILTER is any of -id N (repeatable), -account A, -from S, -to S,
// -transport T, -held or -notheld, and -all, which a changing command
// needs when no other filter is given.
//
// An answer line to moxctl is at most ctl.MaxRequest bytes, so list
// answers are cut to fit (with More set: moxctl asks again from Start
// plus what it got), and so is a dump's text.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"moxd/internal/ctl"
	"moxd/internal/ipc"
)

// queueCallTimeout bounds one administration call to queue; failing many
// messages writes a DSN for each.
const queueCallTimeout = 2 * time.Minute

// ctlAnswerBudget is how large the JSON data of one answer may be,
// leaving room for the response around it within ctl.MaxRequest.
const ctlAnswerBudget = ctl.MaxRequest - 4096

// idList is a repeatable -id flag.
type idList []uint64

func (l *idList) String() string { return fmt.Sprint(*l) }
func (l *idList) Set(s string) error {
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id == 0 {
		return fmt.Errorf("message id %q is not a positive number", s)
	}
	*l = append(*l, id)
	return nil
}

// queueArgs are the parsed arguments of a queue command.
type queueArgs struct {
	filter ipc.QueueFilter
	all    bool
	sort   string
	start  uint
	n      uint
	at, in string
	oldest bool
	rule   ipc.QueueHoldRule
	pos    []string
}

// Flag groups a queue command takes.
const (
	qfFilter = 1 << iota
	qfSort
	qfPage
	qfWhen
	qfRule
	qfRetired
)

// parseQueueArgs parses args with the flags of groups; flags and
// positional arguments may be mixed.
func parseQueueArgs(args []string, groups int) (queueArgs, error) {
	var a queueArgs
	fs := flag.NewFlagSet("queue", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var ids idList
	var held, notHeld bool
	if groups&qfFilter != 0 {
		fs.Var(&ids, "id", "")
		fs.StringVar(&a.filter.Account, "account", "", "")
		fs.StringVar(&a.filter.From, "from", "", "")
		fs.StringVar(&a.filter.To, "to", "", "")
		fs.StringVar(&a.filter.Transport, "transport", "", "")
		fs.BoolVar(&held, "held", false, "")
		fs.BoolVar(&notHeld, "notheld", false, "")
		fs.BoolVar(&a.all, "all", false, "")
	}
	if groups&qfSort != 0 {
		fs.StringVar(&a.sort, "sort", "", "")
	}
	if groups&qfPage != 0 {
		fs.UintVar(&a.start, "start", 0, "")
		fs.UintVar(&a.n, "n", 0, "")
	}
	if groups&qfWhen != 0 {
		fs.StringVar(&a.at, "at", "", "")
		fs.StringVar(&a.in, "in", "", "")
	}
	if groups&qfRule != 0 {
		fs.StringVar(&a.rule.Account, "account", "", "")
		fs.StringVar(&a.rule.SenderDomain, "senderdomain", "", "")
		fs.StringVar(&a.rule.RecipientDomain, "rcptdomain", "", "")
	}
	if groups&qfRetired != 0 {
		fs.StringVar(&a.filter.Account, "account", "", "")
		fs.BoolVar(&a.oldest, "oldest", false, "")
	}
	for {
		if err := fs.Parse(args); err != nil {
			return a, err
		}
		if fs.NArg() == 0 {
			break
		}
		a.pos = append(a.pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if held && notHeld {
		return a, errors.New("-held and -notheld exclude each other")
	}
	if held {
		a.filter.Held = ipc.QueueHeldYes
	} else if notHeld {
		a.filter.Held = ipc.QueueHeldNo
	}
	if len(ids) > ipc.MaxQueueIDs {
		return a, fmt.Errorf("%d message ids, at most %d per command", len(ids), ipc.MaxQueueIDs)
	}
	a.filter.IDs = ids
	return a, nil
}

// handleQueue runs the queue commands; false means unknown command.
func (s *ctlSession) handleQueue(req ctl.Request, files []*os.File) bool {
	closeAll(files) // checkFDs let none through: these commands take no fds
	if !strings.HasPrefix(req.Cmd, "queue ") {
		return false
	}
	a := req.Args
	usage := func(u string) error { return fmt.Errorf("usage: %s", u) }
	switch req.Cmd {
	case "queue list":
		qa, err := parseQueueArgs(a, qfFilter|qfSort|qfPage)
		if err == nil && len(qa.pos) > 0 {
			err = errors.New("message ids go with -id")
		}
		if err == nil && !ipc.ValidQueueSort(qa.sort) {
			err = fmt.Errorf("unknown sort order %q: use queued, -queued, next or -next", qa.sort)
		}
		if err != nil {
			s.respond(nil, fmt.Errorf("%v; usage: queue list [filter] [-sort queued|-queued|next|-next] [-start N] [-n N]", err))
			break
		}
		n := min(qa.n, ipc.MaxQueueEntries)
		s.respond(s.m.queueCall(&ipc.QueueList{Filter: qa.filter, Sort: qa.sort, Start: uint32(min(qa.start, 1<<32-1)), Max: uint16(n)}))
	case "queue dump":
		if len(a) != 1 {
			s.respond(nil, usage("queue dump MSGID"))
			break
		}
		id, err := strconv.ParseUint(a[0], 10, 64)
		if err != nil || id == 0 {
			s.respond(nil, fmt.Errorf("message id %q is not a positive number", a[0]))
			break
		}
		s.respond(s.m.queueCall(&ipc.QueueDump{ID: id}))
	case "queue hold", "queue unhold", "queue fail", "queue drop", "queue schedule", "queue transport", "queue requiretls":
		msg, err := queueAction(req.Cmd, a, time.Now())
		if err != nil {
			s.respond(nil, err)
			break
		}
		s.respond(s.audited(req, func() (any, error) { return s.m.queueCall(msg) }))
	case "queue holdrules list":
		qa, err := parseQueueArgs(a, qfPage)
		if err != nil || len(qa.pos) > 0 || qa.n > 0 {
			s.respond(nil, usage("queue holdrules list [-start N]"))
			break
		}
		s.respond(s.m.queueCall(&ipc.QueueHoldRules{Op: ipc.QueueRulesOpList, Start: uint32(min(qa.start, 1<<32-1))}))
	case "queue holdrules add":
		qa, err := parseQueueArgs(a, qfRule)
		if err != nil || len(qa.pos) > 0 {
			s.respond(nil, usage("queue holdrules add [-account A] [-senderdomain D] [-rcptdomain D]"))
			break
		}
		s.respond(s.audited(req, func() (any, error) {
			return s.m.queueCall(&ipc.QueueHoldRules{Op: ipc.QueueRulesOpAdd, Rule: qa.rule})
		}))
	case "queue holdrules rm":
		id, err := uint64Arg(a, 1)
		if err != nil {
			s.respond(nil, fmt.Errorf("%v; usage: queue holdrules rm ID", err))
			break
		}
		s.respond(s.audited(req, func() (any, error) {
			return s.m.queueCall(&ipc.QueueHoldRules{Op: ipc.QueueRulesOpRm, Rule: ipc.QueueHoldRule{ID: id}})
		}))
	case "queue retired list":
		qa, err := parseQueueArgs(a, qfRetired|qfPage)
		if err != nil || len(qa.pos) > 0 {
			s.respond(nil, usage("queue retired list [-account A] [-start N] [-n N] [-oldest]"))
			break
		}
		s.respond(s.m.queueCall(&ipc.QueueRetired{Op: ipc.QueueRetiredOpList, Account: qa.filter.Account,
			Start: uint32(min(qa.start, 1<<32-1)), Max: uint16(min(qa.n, ipc.MaxQueueRetired)), NewestFirst: !qa.oldest}))
	case "queue retired print":
		qa, err := parseQueueArgs(a, qfPage)
		if err == nil && (len(qa.pos) < 1 || len(qa.pos) > 2 || qa.n > 0) {
			err = errors.New("wrong arguments")
		}
		var id, seq uint64
		if err == nil {
			id, err = uint64Arg(qa.pos[:1], 1)
		}
		if err == nil && len(qa.pos) == 2 {
			seq, err = strconv.ParseUint(qa.pos[1], 10, 32)
			if err != nil {
				err = fmt.Errorf("recipient %q is not a number", qa.pos[1])
			}
		}
		if err != nil {
			s.respond(nil, fmt.Errorf("%v; usage: queue retired print MSGID [SEQ]", err))
			break
		}
		s.respond(s.m.queueCall(&ipc.QueueRetired{Op: ipc.QueueRetiredOpGet, Msg: id, Seq: uint32(seq), AnySeq: len(qa.pos) == 1,
			Start: uint32(min(qa.start, 1<<32-1))}))
	case "queue suppress list":
		qa, err := parseQueueArgs(a, qfPage)
		if err != nil || len(qa.pos) > 1 || qa.n > 0 {
			s.respond(nil, usage("queue suppress list [ACCOUNT] [-start N]"))
			break
		}
		account := ""
		if len(qa.pos) == 1 {
			account = qa.pos[0]
		}
		s.respond(s.m.queueCall(&ipc.QueueSuppress{Op: ipc.QueueSuppressOpList, Account: account, Start: uint32(min(qa.start, 1<<32-1))}))
	case "queue suppress add":
		if len(a) < 2 {
			s.respond(nil, usage("queue suppress add ACCOUNT ADDRESS [REASON...]"))
			break
		}
		reason := strings.Join(a[2:], " ")
		if reason == "" {
			reason = "added by admin"
		}
		if len(reason) > ipc.MaxTextLen {
			s.respond(nil, fmt.Errorf("reason longer than %d bytes", ipc.MaxTextLen))
			break
		}
		s.respond(s.audited(req, func() (any, error) {
			return s.m.queueCall(&ipc.QueueSuppress{Op: ipc.QueueSuppressOpAdd, Account: a[0], Address: a[1], Reason: reason})
		}))
	case "queue suppress rm", "queue suppress lookup":
		if len(a) != 2 {
			s.respond(nil, usage(req.Cmd+" ACCOUNT ADDRESS"))
			break
		}
		op := ipc.QueueSuppressOpLookup
		if req.Cmd == "queue suppress rm" {
			op = ipc.QueueSuppressOpRm
		}
		msg := &ipc.QueueSuppress{Op: op, Account: a[0], Address: a[1]}
		if op == ipc.QueueSuppressOpRm {
			s.respond(s.audited(req, func() (any, error) { return s.m.queueCall(msg) }))
		} else {
			s.respond(s.m.queueCall(msg))
		}
	case "queue webhooks list", "queue webhooks retired":
		retired := req.Cmd == "queue webhooks retired"
		u := "queue webhooks list [ACCOUNT] [-start N]"
		if retired {
			u = "queue webhooks retired [ACCOUNT] [-start N] [-n N]"
		}
		qa, err := parseQueueArgs(a, qfPage)
		if err != nil || len(qa.pos) > 1 || !retired && qa.n > 0 {
			s.respond(nil, usage(u))
			break
		}
		account := ""
		if len(qa.pos) == 1 {
			account = qa.pos[0]
		}
		if len(account) > ipc.MaxAccountLen {
			s.respond(nil, fmt.Errorf("account name longer than %d bytes", ipc.MaxAccountLen))
			break
		}
		s.respond(s.m.queueCall(&ipc.QueueWebhooks{Retired: retired, Account: account,
			Start: uint32(min(qa.start, 1<<32-1)), Max: uint16(min(qa.n, ipc.MaxQueueWebhooks))}))
	default:
		return false
	}
	return true
}

// uint64Arg parses the only argument of args as a positive number.
func uint64Arg(args []string, n int) (uint64, error) {
	if len(args) != n {
		return 0, errors.New("wrong number of arguments")
	}
	id, err := strconv.ParseUint(args[0], 10, 64)
	if err != nil || id == 0 {
		return 0, fmt.Errorf("%q is not a positive number", args[0])
	}
	return id, nil
}

// queueAction makes the QueueAction of a changing command.
func queueAction(cmd string, args []string, now time.Time) (*ipc.QueueAction, error) {
	name := strings.TrimPrefix(cmd, "queue ")
	groups := qfFilter
	if name == "schedule" {
		groups |= qfWhen
	}
	qa, err := parseQueueArgs(args, groups)
	if err != nil {
		return nil, fmt.Errorf("%v; usage: %s", err, queueActionUsage(name))
	}
	m := &ipc.QueueAction{Filter: qa.filter, All: qa.all}
	npos := 0
	switch name {
	case "hold":
		m.Action = ipc.QueueHold
	case "unhold":
		m.Action = ipc.QueueUnhold
	case "fail":
		m.Action = ipc.QueueFail
	case "drop":
		m.Action = ipc.QueueDrop
	case "schedule":
		m.Action = ipc.QueueSchedule
		switch {
		case qa.at != "" && qa.in != "":
			return nil, fmt.Errorf("give -at or -in, not both; usage: %s", queueActionUsage(name))
		case qa.at == "now":
		case qa.at != "":
			t, err := time.Parse(time.RFC3339, qa.at)
			if err != nil {
				return nil, fmt.Errorf("-at %q is not a time like %s, or now", qa.at, now.UTC().Format(time.RFC3339))
			}
			if t.IsZero() || t.UnixNano() == 0 {
				return nil, fmt.Errorf("-at %q is out of range", qa.at)
			}
			m.At = t.UnixNano()
		case qa.in != "":
			d, err := time.ParseDuration(qa.in)
			if err != nil {
				return nil, fmt.Errorf("-in %q is not a duration like 10m or 2h30m", qa.in)
			}
			m.Delay = int64(d)
		default:
			return nil, fmt.Errorf("give the new next attempt with -at TIME or -in DURATION; usage: %s", queueActionUsage(name))
		}
	case "transport":
		m.Action = ipc.QueueTransport
		npos = 1
	case "requiretls":
		m.Action = ipc.QueueRequireTLS
		npos = 1
	}
	if len(qa.pos) != npos {
		return nil, fmt.Errorf("usage: %s (message ids go with -id)", queueActionUsage(name))
	}
	if npos == 1 {
		m.Arg = qa.pos[0]
		if m.Action == ipc.QueueTransport && m.Arg == "-" {
			m.Arg = ""
		}
		if m.Action == ipc.QueueRequireTLS && m.Arg != "yes" && m.Arg != "no" && m.Arg != "default" {
			return nil, fmt.Errorf("requiretls %q: give yes, no or default", m.Arg)
		}
		if len(m.Arg) > ipc.MaxNameLen {
			return nil, fmt.Errorf("transport name longer than %d bytes", ipc.MaxNameLen)
		}
	}
	if m.Filter.Empty() && !m.All {
		return nil, fmt.Errorf("queue %s needs a filter; to act on every queued message give -all", name)
	}
	return m, nil
}

func queueActionUsage(name string) string {
	switch name {
	case "schedule":
		return "queue schedule FILTER -at TIME|now | -in DURATION"
	case "transport":
		return "queue transport NAME|- FILTER"
	case "requiretls":
		return "queue requiretls yes|no|default FILTER"
	}
	return "queue " + name + " FILTER (-id N, -account A, -from S, -to S, -transport T, -held, -notheld, -all)"
}

// queueCall sends msg to queue and returns its reply, cut to fit an
// answer line.
func (m *Master) queueCall(msg ipc.Message) (any, error) {
	c, err := m.queueConn()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), queueCallTimeout)
	defer cancel()
	rep, err := c.Call(ctx, msg)
	if err != nil {
		return nil, roleError(ipc.RoleQueue, err)
	}
	return fitAnswer(rep.Msg), nil
}

// fitAnswer cuts a list reply to the entries whose JSON fits
// ctlAnswerBudget, setting More when it cut, and a text to what fits.
// Entries can take far more room in JSON than on the wire (escapes).
func fitAnswer(v ipc.Message) ipc.Message {
	fits := func(x any) bool {
		b, err := json.Marshal(x)
		return err == nil && len(b) <= ctlAnswerBudget
	}
	if fits(v) {
		return v
	}
	// Halve until it fits; lists are at most a few hundred entries.
	switch r := v.(type) {
	case *ipc.QueueListing:
		for len(r.Entries) > 1 && !fits(r) {
			r.Entries, r.More = r.Entries[:len(r.Entries)/2], true
		}
	case *ipc.QueueRetiredList:
		for len(r.Entries) > 1 && !fits(r) {
			r.Entries, r.More = r.Entries[:len(r.Entries)/2], true
		}
	case *ipc.QueueHoldRuleList:
		for len(r.Rules) > 1 && !fits(r) {
			r.Rules, r.More = r.Rules[:len(r.Rules)/2], true
		}
	case *ipc.QueueSuppressionList:
		for len(r.Entries) > 1 && !fits(r) {
			r.Entries, r.More = r.Entries[:len(r.Entries)/2], true
		}
	case *ipc.QueueWebhookList:
		for len(r.Entries) > 1 && !fits(r) {
			r.Entries, r.More = r.Entries[:len(r.Entries)/2], true
		}
	case *ipc.QueueText:
		const note = "\n[cut to fit the control socket's answer]\n"
		for len(r.Text) > 1024 && !fits(r) {
			r.Text = ipc.ClipText(r.Text, len(r.Text)*3/4)
		}
		r.Text += note
	}
	return v
}
