package moxctl

// moxctl queue: the queue administration master relays to moxd-queue
// (internal/master/queueadmin.go lists the requests). moxctl checks the
// arguments, so usage errors need no running moxd, and sends them in one
// canonical form; the answers are queue's replies with the field names of
// the ipc types. Text that comes from messages or remote servers (last
// errors, headers) is printed with control characters shown as "?".

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"moxd/internal/ctl"
	"moxd/internal/ipc"
)

const queueUsage = `usage: moxctl queue list [FILTER] [-sort queued|-queued|next|-next] [-n N] [MSGID...]
       moxctl queue dump MSGID
       moxctl queue hold|unhold|fail|drop FILTER [MSGID...]
       moxctl queue schedule FILTER [MSGID...] -at TIME|now | -in DURATION
       moxctl queue transport NAME|- FILTER [MSGID...]
       moxctl queue requiretls yes|no|default FILTER [MSGID...]
       moxctl queue holdrules list | add [-account A] [-senderdomain D] [-rcptdomain D] | rm ID
       moxctl queue retired list [-account A] [-n N] [-oldest] | print MSGID [SEQ]
       moxctl queue suppress list [ACCOUNT] | add ACCOUNT ADDRESS [REASON...] | rm ACCOUNT ADDRESS | lookup ACCOUNT ADDRESS
       moxctl queue webhooks list [ACCOUNT] | retired [ACCOUNT] [-n N]
FILTER: -id N (repeatable, or MSGID arguments), -account A, -from S, -to S (substrings, any case),
        -transport T (set with queue transport), -held | -notheld; -all when acting on every queued message
`

// queueUsageErr reports a usage error of a queue command.
func (c *cli) queueUsageErr(format string, args ...any) int {
	fmt.Fprintf(c.stderr, "moxctl: queue: "+format+"\n", args...)
	fmt.Fprint(c.stderr, queueUsage)
	return ExitUsage
}

// qflags are the parsed flags and arguments of a queue command.
type qflags struct {
	ids              []uint64
	account          string
	from, to         string
	transport        string
	held, notHeld    bool
	all              bool
	sort             string
	n                int
	at, in           string
	senderDomain     string
	rcptDomain       string
	oldest           bool
	pos              []string
	filterGiven      bool
	accountFlagGiven bool
}

// Flag groups of queue commands.
const (
	qgFilter = 1 << iota
	qgSort
	qgLimit
	qgWhen
	qgRule
	qgRetired
)

// parseQueue parses args with the flag groups; flags and positional
// arguments may be mixed.
func parseQueue(args []string, groups int) (*qflags, error) {
	q := &qflags{n: -1}
	fs := flag.NewFlagSet("queue", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if groups&qgFilter != 0 {
		fs.Func("id", "", func(s string) error {
			id, err := strconv.ParseUint(s, 10, 64)
			if err != nil || id == 0 {
				return fmt.Errorf("message id %q is not a positive number", s)
			}
			q.ids = append(q.ids, id)
			return nil
		})
		fs.StringVar(&q.from, "from", "", "")
		fs.StringVar(&q.to, "to", "", "")
		fs.StringVar(&q.transport, "transport", "", "")
		fs.BoolVar(&q.held, "held", false, "")
		fs.BoolVar(&q.notHeld, "notheld", false, "")
		fs.BoolVar(&q.all, "all", false, "")
	}
	if groups&(qgFilter|qgRule|qgRetired) != 0 {
		fs.StringVar(&q.account, "account", "", "")
	}
	if groups&qgSort != 0 {
		fs.StringVar(&q.sort, "sort", "", "")
	}
	if groups&qgLimit != 0 {
		fs.IntVar(&q.n, "n", -1, "")
	}
	if groups&qgWhen != 0 {
		fs.StringVar(&q.at, "at", "", "")
		fs.StringVar(&q.in, "in", "", "")
	}
	if groups&qgRule != 0 {
		fs.StringVar(&q.senderDomain, "senderdomain", "", "")
		fs.StringVar(&q.rcptDomain, "rcptdomain", "", "")
	}
	if groups&qgRetired != 0 {
		fs.BoolVar(&q.oldest, "oldest", false, "")
	}
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		q.pos = append(q.pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if q.held && q.notHeld {
		return nil, errors.New("-held and -notheld exclude each other")
	}
	q.filterGiven = len(q.ids) > 0 || q.account != "" || q.from != "" || q.to != "" || q.transport != "" || q.held || q.notHeld
	return q, nil
}

// takeIDs moves the positional arguments from index i on into the ids.
func (q *qflags) takeIDs(i int) error {
	for _, s := range q.pos[i:] {
		id, err := strconv.ParseUint(s, 10, 64)
		if err != nil || id == 0 {
			return fmt.Errorf("message id %q is not a positive number", s)
		}
		q.ids = append(q.ids, id)
		q.filterGiven = true
	}
	q.pos = q.pos[:i]
	if len(q.ids) > ipc.MaxQueueIDs {
		return fmt.Errorf("%d message ids, at most %d per command", len(q.ids), ipc.MaxQueueIDs)
	}
	return nil
}

// filterArgs is the filter in the form master parses.
func (q *qflags) filterArgs() []string {
	var a []string
	for _, id := range q.ids {
		a = append(a, "-id", strconv.FormatUint(id, 10))
	}
	for _, f := range []struct{ name, v string }{{"account", q.account}, {"from", q.from}, {"to", q.to}, {"transport", q.transport}} {
		if f.v != "" {
			a = append(a, "-"+f.name, f.v)
		}
	}
	if q.held {
		a = append(a, "-held")
	}
	if q.notHeld {
		a = append(a, "-notheld")
	}
	if q.all {
		a = append(a, "-all")
	}
	return a
}

func (c *cli) queue(args []string) int {
	if len(args) == 0 {
		return c.queueUsageErr("no queue command given")
	}
	sub, a := args[0], args[1:]
	switch sub {
	case "list":
		return c.queueList(a)
	case "dump":
		if len(a) != 1 {
			return c.queueUsageErr("dump takes one message id")
		}
		if id, err := strconv.ParseUint(a[0], 10, 64); err != nil || id == 0 {
			return c.queueUsageErr("message id %q is not a positive number", a[0])
		}
		return c.queueDump(a[0])
	case "hold", "unhold", "fail", "drop", "schedule", "transport", "requiretls":
		return c.queueAction(sub, a)
	case "holdrules":
		return c.queueHoldRules(a)
	case "retired":
		return c.queueRetired(a)
	case "suppress":
		return c.queueSuppress(a)
	case "webhooks":
		return c.queueWebhooks(a)
	}
	return c.queueUsageErr("unknown queue command %q", sub)
}

// queueCalls sends requests on one connection; next returns the next
// request and the value to decode its answer into, or false when done.
func (c *cli) queueCalls(next func() (ctl.Request, any, bool)) int {
	cl, code := c.dial()
	if cl == nil {
		return code
	}
	defer cl.Close()
	for {
		req, v, ok := next()
		if !ok {
			return ExitOK
		}
		cl.SetDeadline(time.Now().Add(3 * time.Minute))
		files, err := cl.Call(req, nil, v)
		for _, f := range files {
			f.Close()
		}
		if err != nil {
			return c.check(err)
		}
	}
}

// fetchPages pulls a list queue answers in pages: request makes the
// request for the entries from start on (want: how many are still wanted,
// -1 for all), page returns an answer's entries, total and whether more
// follow. It stops after limit entries (-1: all). It returns the entries,
// the total the last answer gave, and the exit code.
func fetchPages[P any, E any](c *cli, limit int, request func(start, want int) ctl.Request, page func(*P) ([]E, uint32, bool)) ([]E, uint32, int) {
	var all []E
	var total uint32
	var p *P
	code := c.queueCalls(func() (ctl.Request, any, bool) {
		if p != nil {
			l, t, more := page(p)
			all = append(all, l...)
			total = t
			if !more || len(l) == 0 || limit >= 0 && len(all) >= limit {
				return ctl.Request{}, nil, false
			}
		}
		p = new(P)
		want := -1
		if limit >= 0 {
			want = limit - len(all)
		}
		return request(len(all), want), p, true
	})
	return all, total, code
}

// queueEntryJSON is a row of "queue list -j".
type queueEntryJSON struct {
	Msg         uint64     `json:"msg"`
	Seq         uint32     `json:"seq"`
	Account     string     `json:"account"`
	MailFrom    string     `json:"mail_from"`
	Recipient   string     `json:"recipient"`
	Queued      time.Time  `json:"queued"`
	NextAttempt *time.Time `json:"next_attempt,omitempty"`
	LastAttempt *time.Time `json:"last_attempt,omitempty"`
	Attempts    uint32     `json:"attempts"`
	Held        bool       `json:"held"`
	Failed      bool       `json:"failed,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
	LastHost    string     `json:"last_host,omitempty"`
	LastStatus  string     `json:"last_status,omitempty"`
	Transport   string     `json:"transport,omitempty"`
	Size        int64      `json:"size"`
	RequireTLS  string     `json:"requiretls"`
	LocalOnly   bool       `json:"local_only,omitempty"`
	DSN         bool       `json:"dsn,omitempty"`
}

// unixTime is a Unix nanosecond time of an answer; nil for 0.
func unixTime(ns int64) *time.Time {
	if ns == 0 {
		return nil
	}
	t := time.Unix(0, ns).UTC()
	return &t
}

func requireTLSName(v uint8) string {
	switch v {
	case 1:
		return "yes"
	case 2:
		return "no"
	}
	return "default"
}

func (c *cli) queueList(args []string) int {
	q, err := parseQueue(args, qgFilter|qgSort|qgLimit)
	if err == nil {
		err = q.takeIDs(0)
	}
	if err != nil {
		return c.queueUsageErr("list: %v", err)
	}
	if !ipc.ValidQueueSort(q.sort) {
		return c.queueUsageErr("list: unknown sort order %q", q.sort)
	}
	if q.all {
		return c.queueUsageErr("list: -all is for commands that change the queue; list shows all without a filter")
	}
	if q.n == 0 {
		q.n = -1 // all
	}
	var entries []ipc.QueueEntry
	var total uint32
	var page ipc.QueueListing
	done := false
	code := c.queueCalls(func() (ctl.Request, any, bool) {
		if done {
			entries = append(entries, page.Entries...)
			total = page.Total
			if !page.More || len(page.Entries) == 0 || q.n >= 0 && len(entries) >= q.n {
				return ctl.Request{}, nil, false
			}
		}
		done = true
		want := ipc.MaxQueueEntries
		if q.n >= 0 {
			want = min(want, q.n-len(entries))
		}
		if want == 0 {
			return ctl.Request{}, nil, false
		}
		a := append(q.filterArgs(), "-start", strconv.Itoa(len(entries)), "-n", strconv.Itoa(want))
		if q.sort != "" {
			a = append(a, "-sort", q.sort)
		}
		page = ipc.QueueListing{}
		return ctl.Request{Cmd: "queue list", Args: a}, &page, true
	})
	if code != ExitOK {
		return code
	}
	if c.json {
		out := struct {
			Total   uint32           `json:"total"`
			Entries []queueEntryJSON `json:"entries"`
		}{Total: total, Entries: []queueEntryJSON{}}
		for _, e := range entries {
			out.Entries = append(out.Entries, queueEntryJSON{
				Msg: e.Msg, Seq: e.Seq, Account: e.Account, MailFrom: e.MailFrom, Recipient: e.Recipient,
				Queued: time.Unix(0, e.Queued).UTC(), NextAttempt: unixTime(e.NextAttempt), LastAttempt: unixTime(e.LastAttempt),
				Attempts: e.Attempts, Held: e.Held, Failed: e.Failed, LastError: e.LastError, LastHost: e.LastHost,
				LastStatus: e.LastStatus, Transport: e.Transport, Size: e.Size, RequireTLS: requireTLSName(e.RequireTLS),
				LocalOnly: e.LocalOnly, DSN: e.DSN,
			})
		}
		return c.printJSON(out)
	}
	if len(entries) == 0 {
		fmt.Fprintln(c.stdout, "no queued recipients match")
		return ExitOK
	}
	now := time.Now()
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MSG\tSEQ\tACCOUNT\tFROM\tTO\tQUEUED\tNEXT\tATT\tSIZE\tNOTES\tLAST ERROR")
	for _, e := range entries {
		next := "-"
		switch {
		case e.Failed:
			next = "failed"
		case e.Held:
			next = "held"
		case e.NextAttempt != 0:
			next = relTime(time.Unix(0, e.NextAttempt), now)
		}
		var notes []string
		if e.Transport != "" {
			notes = append(notes, "transport="+e.Transport)
		}
		if e.RequireTLS != 0 {
			notes = append(notes, "requiretls="+requireTLSName(e.RequireTLS))
		}
		if e.LocalOnly {
			notes = append(notes, "local")
		}
		if e.DSN {
			notes = append(notes, "dsn")
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", e.Msg, e.Seq, orDash(e.Account), cell(orText(e.MailFrom, "<>"), 40),
			cell(e.Recipient, 40), localTime(e.Queued), next, e.Attempts, formatSize(e.Size), orDash(strings.Join(notes, ",")), cell(e.LastError, 80))
	}
	tw.Flush()
	if int(total) > len(entries) {
		fmt.Fprintf(c.stdout, "%d of %d recipients shown\n", len(entries), total)
	}
	return ExitOK
}

// relTime shows t relative to now: "now" for the past, "in 4m30s".
func relTime(t, now time.Time) string {
	d := t.Sub(now)
	if d <= 0 {
		return "now"
	}
	return "in " + d.Round(time.Second).String()
}

func localTime(ns int64) string {
	if ns == 0 {
		return "-"
	}
	return time.Unix(0, ns).Local().Format("2006-01-02 15:04:05")
}

func orDash(s string) string { return orText(s, "-") }

func orText(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

// cell makes text from queue fit a table cell: printable, one line, at
// most max runes.
func cell(s string, max int) string {
	s = printable(s, false)
	if utf8.RuneCountInString(s) > max {
		r := []rune(s)
		s = string(r[:max-1]) + "…"
	}
	return orDash(s)
}

// printable shows control characters (C0, DEL, C1) as "?", so text from
// messages and remote servers cannot steer the terminal. With multiline,
// newlines and tabs stay.
func printable(s string, multiline bool) string {
	s = strings.ToValidUTF8(s, "?")
	return strings.Map(func(r rune) rune {
		if multiline && (r == '\n' || r == '\t') {
			return r
		}
		if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 {
			return '?'
		}
		return r
	}, s)
}

func (c *cli) queueDump(id string) int {
	var text ipc.QueueText
	if code := c.do(ctl.Request{Cmd: "queue dump", Args: []string{id}}, &text); code != ExitOK {
		return code
	}
	if c.json {
		return c.printJSON(struct {
			Text string `json:"text"`
		}{text.Text})
	}
	fmt.Fprint(c.stdout, printable(text.Text, true))
	if !strings.HasSuffix(text.Text, "\n") {
		fmt.Fprintln(c.stdout)
	}
	return ExitOK
}

func (c *cli) queueAction(name string, args []string) int {
	groups := qgFilter
	if name == "schedule" {
		groups |= qgWhen
	}
	q, err := parseQueue(args, groups)
	var arg string
	if err == nil && (name == "transport" || name == "requiretls") {
		if len(q.pos) == 0 {
			err = fmt.Errorf("give the %s first", map[string]string{"transport": "transport name (or - to let the routes decide)", "requiretls": "value: yes, no or default"}[name])
		} else {
			arg = q.pos[0]
			err = q.takeIDs(1)
		}
	} else if err == nil {
		err = q.takeIDs(0)
	}
	if err == nil && name == "requiretls" && arg != "yes" && arg != "no" && arg != "default" {
		err = fmt.Errorf("requiretls %q: give yes, no or default", arg)
	}
	if err == nil && name == "schedule" {
		err = checkWhen(q)
	}
	if err == nil && !q.filterGiven && !q.all {
		err = errors.New("give a filter; to act on every queued message use -all")
	}
	if err != nil {
		return c.queueUsageErr("%s: %v", name, err)
	}
	a := []string{}
	if arg != "" {
		a = append(a, arg)
	}
	a = append(a, q.filterArgs()...)
	if q.at != "" {
		a = append(a, "-at", q.at)
	}
	if q.in != "" {
		a = append(a, "-in", q.in)
	}
	var res ipc.QueueCount
	if code := c.do(ctl.Request{Cmd: "queue " + name, Args: a}, &res); code != ExitOK {
		return code
	}
	if c.json {
		return c.printJSON(struct {
			Count uint32 `json:"count"`
			DSNs  uint32 `json:"dsns"`
		}{res.N, res.DSNs})
	}
	switch name {
	case "transport", "requiretls":
		fmt.Fprintf(c.stdout, "%s changed\n", plural(res.N, "message", "messages"))
	case "fail":
		fmt.Fprintf(c.stdout, "%s failed, %s queued\n", plural(res.N, "recipient", "recipients"), plural(res.DSNs, "DSN", "DSNs"))
	default:
		verb := map[string]string{"hold": "held", "unhold": "released", "schedule": "rescheduled", "drop": "dropped"}[name]
		fmt.Fprintf(c.stdout, "%s %s\n", plural(res.N, "recipient", "recipients"), verb)
	}
	return ExitOK
}

// checkWhen checks the -at and -in of schedule.
func checkWhen(q *qflags) error {
	switch {
	case q.at != "" && q.in != "":
		return errors.New("give -at or -in, not both")
	case q.at == "now":
	case q.at != "":
		if _, err := time.Parse(time.RFC3339, q.at); err != nil {
			return fmt.Errorf("-at %q is not a time like 2026-11-22T15:04:05Z, or now", q.at)
		}
	case q.in != "":
		if _, err := time.ParseDuration(q.in); err != nil {
			return fmt.Errorf("-in %q is not a duration like 10m, 2h30m or -1h", q.in)
		}
	default:
		return errors.New("give the next attempt with -at TIME, -at now or -in DURATION")
	}
	return nil
}

func plural(n uint32, one, more string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, more)
}

// holdRuleJSON is a hold rule of -j output.
type holdRuleJSON struct {
	ID              uint64 `json:"id"`
	Account         string `json:"account,omitempty"`
	SenderDomain    string `json:"sender_domain,omitempty"`
	RecipientDomain string `json:"recipient_domain,omitempty"`
}

func holdRulesJSON(l []ipc.QueueHoldRule) []holdRuleJSON {
	out := []holdRuleJSON{}
	for _, r := range l {
		out = append(out, holdRuleJSON{r.ID, r.Account, r.SenderDomain, r.RecipientDomain})
	}
	return out
}

func (c *cli) queueHoldRules(args []string) int {
	if len(args) == 0 {
		return c.queueUsageErr("holdrules: give list, add or rm")
	}
	sub, a := args[0], args[1:]
	switch sub {
	case "list":
		if len(a) != 0 {
			return c.queueUsageErr("holdrules list takes no arguments")
		}
		rules, _, code := fetchPages(c, -1, func(start, _ int) ctl.Request {
			return ctl.Request{Cmd: "queue holdrules list", Args: []string{"-start", strconv.Itoa(start)}}
		}, func(p *ipc.QueueHoldRuleList) ([]ipc.QueueHoldRule, uint32, bool) { return p.Rules, 0, p.More })
		if code != ExitOK {
			return code
		}
		if c.json {
			return c.printJSON(holdRulesJSON(rules))
		}
		if len(rules) == 0 {
			fmt.Fprintln(c.stdout, "no hold rules")
			return ExitOK
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tACCOUNT\tSENDER DOMAIN\tRECIPIENT DOMAIN")
		for _, r := range rules {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", r.ID, orText(r.Account, "*"), orText(r.SenderDomain, "*"), orText(r.RecipientDomain, "*"))
		}
		tw.Flush()
		return ExitOK
	case "add":
		q, err := parseQueue(a, qgRule)
		if err == nil && len(q.pos) > 0 {
			err = fmt.Errorf("unexpected argument %q", q.pos[0])
		}
		if err != nil {
			return c.queueUsageErr("holdrules add: %v", err)
		}
		var ra []string
		for _, f := range []struct{ name, v string }{{"account", q.account}, {"senderdomain", q.senderDomain}, {"rcptdomain", q.rcptDomain}} {
			if f.v != "" {
				ra = append(ra, "-"+f.name, f.v)
			}
		}
		var res ipc.QueueHoldRuleList
		if code := c.do(ctl.Request{Cmd: "queue holdrules add", Args: ra}, &res); code != ExitOK {
			return code
		}
		if len(res.Rules) != 1 {
			return c.failf("unexpected answer: %d rules", len(res.Rules))
		}
		if c.json {
			return c.printJSON(struct {
				Rule holdRuleJSON `json:"rule"`
				Held uint32       `json:"held"`
			}{holdRulesJSON(res.Rules)[0], res.Held})
		}
		what := "every new message"
		if len(ra) > 0 {
			what = "new matching messages"
		}
		fmt.Fprintf(c.stdout, "hold rule %d added: %s will be held; %s already queued now held\n", res.Rules[0].ID, what, plural(res.Held, "recipient", "recipients"))
		return ExitOK
	case "rm":
		if len(a) != 1 {
			return c.queueUsageErr("holdrules rm takes the rule's id")
		}
		if id, err := strconv.ParseUint(a[0], 10, 64); err != nil || id == 0 {
			return c.queueUsageErr("hold rule id %q is not a positive number", a[0])
		}
		var res ipc.QueueHoldRuleList
		if code := c.do(ctl.Request{Cmd: "queue holdrules rm", Args: a}, &res); code != ExitOK {
			return code
		}
		if c.json {
			return c.printJSON(holdRulesJSON(res.Rules))
		}
		fmt.Fprintf(c.stdout, "hold rule %s removed; what it held stays held (release with moxctl queue unhold)\n", a[0])
		return ExitOK
	}
	return c.queueUsageErr("holdrules: unknown subcommand %q", sub)
}

// retiredJSON is a retired recipient of -j output.
type retiredJSON struct {
	Msg        uint64    `json:"msg"`
	Seq        uint32    `json:"seq"`
	Account    string    `json:"account"`
	MailFrom   string    `json:"mail_from"`
	Recipient  string    `json:"recipient"`
	MessageID  string    `json:"message_id,omitempty"`
	Subject    string    `json:"subject,omitempty"`
	Size       int64     `json:"size"`
	Queued     time.Time `json:"queued"`
	Retired    time.Time `json:"retired"`
	Delivered  bool      `json:"delivered"`
	Attempts   uint32    `json:"attempts"`
	LastError  string    `json:"last_error,omitempty"`
	LastHost   string    `json:"last_host,omitempty"`
	LastStatus string    `json:"last_status,omitempty"`
	Transport  string    `json:"transport,omitempty"`
	History    []string  `json:"history,omitempty"`
}

func retiredListJSON(l []ipc.QueueRetiredEntry) []retiredJSON {
	out := []retiredJSON{}
	for _, r := range l {
		var hist []string
		if r.History != "" {
			hist = strings.Split(strings.TrimSuffix(r.History, "\n"), "\n")
		}
		out = append(out, retiredJSON{r.Msg, r.Seq, r.Account, r.MailFrom, r.Address, r.MessageID, r.Subject, r.Size,
			time.Unix(0, r.Queued).UTC(), time.Unix(0, r.Retired).UTC(), r.Delivered, r.Attempts, r.LastError, r.LastHost, r.LastStatus, r.Transport, hist})
	}
	return out
}

// defaultRetired is how many retired recipients "retired list" shows
// without -n.
const defaultRetired = 100

func (c *cli) queueRetired(args []string) int {
	if len(args) == 0 {
		return c.queueUsageErr("retired: give list or print")
	}
	sub, a := args[0], args[1:]
	var reqArgs []string
	limit := -1
	switch sub {
	case "list":
		q, err := parseQueue(a, qgRetired|qgLimit)
		if err == nil && len(q.pos) > 0 {
			err = fmt.Errorf("unexpected argument %q", q.pos[0])
		}
		if err != nil {
			return c.queueUsageErr("retired list: %v", err)
		}
		switch limit = q.n; {
		case limit < 0:
			limit = defaultRetired
		case limit == 0:
			limit = -1 // all
		}
		if q.account != "" {
			reqArgs = append(reqArgs, "-account", q.account)
		}
		if q.oldest {
			reqArgs = append(reqArgs, "-oldest")
		}
	case "print":
		if len(a) < 1 || len(a) > 2 {
			return c.queueUsageErr("retired print takes a message id and optionally a recipient number")
		}
		if id, err := strconv.ParseUint(a[0], 10, 64); err != nil || id == 0 {
			return c.queueUsageErr("message id %q is not a positive number", a[0])
		}
		if len(a) == 2 {
			if _, err := strconv.ParseUint(a[1], 10, 32); err != nil {
				return c.queueUsageErr("recipient %q is not a number", a[1])
			}
		}
		reqArgs = a
	default:
		return c.queueUsageErr("retired: unknown subcommand %q", sub)
	}
	got, total, code := fetchPages(c, limit, func(start, want int) ctl.Request {
		ra := append(append([]string{}, reqArgs...), "-start", strconv.Itoa(start))
		if sub == "list" {
			n := ipc.MaxQueueRetired
			if want >= 0 {
				n = min(want, n)
			}
			ra = append(ra, "-n", strconv.Itoa(n))
		}
		return ctl.Request{Cmd: "queue retired " + sub, Args: ra}
	}, func(p *ipc.QueueRetiredList) ([]ipc.QueueRetiredEntry, uint32, bool) {
		return p.Entries, p.Total, p.More
	})
	if code != ExitOK {
		return code
	}
	if c.json {
		return c.printJSON(retiredListJSON(got))
	}
	result := func(r ipc.QueueRetiredEntry) string {
		if r.Delivered {
			return "delivered"
		}
		return "failed"
	}
	if sub == "print" {
		for i, r := range got {
			if i > 0 {
				fmt.Fprintln(c.stdout)
			}
			fmt.Fprintf(c.stdout, "message %d recipient %d <%s>: %s\n", r.Msg, r.Seq, printable(r.Address, false), result(r))
			for _, l := range [][2]string{
				{"account", orDash(r.Account)}, {"mail from", "<" + r.MailFrom + ">"}, {"message-id", orDash(r.MessageID)},
				{"subject", orDash(r.Subject)}, {"size", formatSize(r.Size)}, {"queued", time.Unix(0, r.Queued).UTC().Format(time.RFC3339)},
				{"retired", time.Unix(0, r.Retired).UTC().Format(time.RFC3339)}, {"attempts", strconv.FormatUint(uint64(r.Attempts), 10)},
				{"transport", orDash(r.Transport)}, {"last host", orDash(r.LastHost)}, {"last status", orDash(r.LastStatus)},
				{"last error", orDash(r.LastError)},
			} {
				fmt.Fprintf(c.stdout, "  %-13s %s\n", l[0]+":", printable(l[1], false))
			}
			if r.History != "" {
				for _, a := range strings.Split(strings.TrimSuffix(r.History, "\n"), "\n") {
					fmt.Fprintf(c.stdout, "  %-13s %s\n", "attempt:", printable(a, false))
				}
			}
		}
		return ExitOK
	}
	if len(got) == 0 {
		fmt.Fprintln(c.stdout, "no retired recipients")
		return ExitOK
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RETIRED\tMSG\tSEQ\tACCOUNT\tFROM\tTO\tRESULT\tATT\tLAST ERROR")
	for _, r := range got {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\t%d\t%s\n", localTime(r.Retired), r.Msg, r.Seq, orDash(r.Account),
			cell(orText(r.MailFrom, "<>"), 40), cell(r.Address, 40), result(r), r.Attempts, cell(r.LastError, 80))
	}
	tw.Flush()
	if int(total) > len(got) {
		fmt.Fprintf(c.stdout, "%d of %d retired recipients shown (-n N for more, -n 0 for all)\n", len(got), total)
	}
	return ExitOK
}

// suppressionJSON is a suppression list entry of -j output.
type suppressionJSON struct {
	Account string    `json:"account"`
	Address string    `json:"address"`
	Reason  string    `json:"reason,omitempty"`
	Added   time.Time `json:"added"`
	Manual  bool      `json:"manual"`
}

func suppressionsJSON(l []ipc.QueueSuppression) []suppressionJSON {
	out := []suppressionJSON{}
	for _, s := range l {
		out = append(out, suppressionJSON{s.Account, s.Address, s.Reason, time.Unix(0, s.Added).UTC(), s.Manual})
	}
	return out
}

func (c *cli) queueSuppress(args []string) int {
	if len(args) == 0 {
		return c.queueUsageErr("suppress: give list, add, rm or lookup")
	}
	sub, a := args[0], args[1:]
	switch sub {
	case "list":
		if len(a) > 1 {
			return c.queueUsageErr("suppress list takes at most an account")
		}
		l, _, code := fetchPages(c, -1, func(start, _ int) ctl.Request {
			return ctl.Request{Cmd: "queue suppress list", Args: append(append([]string{}, a...), "-start", strconv.Itoa(start))}
		}, func(p *ipc.QueueSuppressionList) ([]ipc.QueueSuppression, uint32, bool) { return p.Entries, 0, p.More })
		if code != ExitOK {
			return code
		}
		if c.json {
			return c.printJSON(suppressionsJSON(l))
		}
		if len(l) == 0 {
			fmt.Fprintln(c.stdout, "no suppressed addresses")
			return ExitOK
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ACCOUNT\tADDRESS\tADDED\tBY\tREASON")
		for _, s := range l {
			by := "delivery"
			if s.Manual {
				by = "admin"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Account, cell(s.Address, 60), localTime(s.Added), by, cell(s.Reason, 80))
		}
		tw.Flush()
		return ExitOK
	case "add", "rm", "lookup":
		if len(a) < 2 || sub != "add" && len(a) != 2 {
			return c.queueUsageErr("suppress %s takes an account and an address%s", sub, map[bool]string{true: ", then a reason", false: ""}[sub == "add"])
		}
		if !strings.Contains(a[1], "@") {
			return c.queueUsageErr("%q is not an address (user@domain)", a[1])
		}
		var res ipc.QueueSuppressionList
		if code := c.do(ctl.Request{Cmd: "queue suppress " + sub, Args: a}, &res); code != ExitOK {
			return code
		}
		if c.json {
			if sub == "lookup" {
				return c.printJSON(struct {
					Suppressed bool              `json:"suppressed"`
					Entries    []suppressionJSON `json:"entries"`
				}{len(res.Entries) > 0, suppressionsJSON(res.Entries)})
			}
			return c.printJSON(suppressionsJSON(res.Entries))
		}
		switch {
		case sub == "add":
			fmt.Fprintf(c.stdout, "%s is on the suppression list of %s\n", a[1], a[0])
		case sub == "rm":
			fmt.Fprintf(c.stdout, "%s removed from the suppression list of %s\n", a[1], a[0])
		case len(res.Entries) == 0:
			fmt.Fprintf(c.stdout, "%s is not on the suppression list of %s\n", a[1], a[0])
			return ExitFailed
		default:
			s := res.Entries[0]
			by := "after a failed delivery"
			if s.Manual {
				by = "by an admin"
			}
			fmt.Fprintf(c.stdout, "%s is suppressed for %s since %s, %s: %s\n", printable(s.Address, false), s.Account, localTime(s.Added), by, printable(s.Reason, false))
		}
		return ExitOK
	}
	return c.queueUsageErr("suppress: unknown subcommand %q", sub)
}

// webhookJSON is a webhook event of -j output. Payload is the event's
// JSON body as text, cut by queue at ipc.MaxQueueHookPayload bytes.
type webhookJSON struct {
	ID          uint64     `json:"id"`
	Account     string     `json:"account"`
	URL         string     `json:"url"`
	Event       string     `json:"event"`
	Queued      time.Time  `json:"queued"`
	Attempts    uint32     `json:"attempts"`
	NextAttempt *time.Time `json:"next_attempt,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
	Posted      bool       `json:"posted"`
	Payload     string     `json:"payload"`
}

func webhooksJSON(l []ipc.QueueWebhook) []webhookJSON {
	out := []webhookJSON{}
	for _, h := range l {
		out = append(out, webhookJSON{h.ID, h.Account, h.URL, h.Event, time.Unix(0, h.Queued).UTC(), h.Attempts,
			unixTime(h.NextAttempt), h.LastError, h.Posted, h.Payload})
	}
	return out
}

// defaultHooksRetired is how many retired webhook events "webhooks
// retired" shows without -n.
const defaultHooksRetired = 100

func (c *cli) queueWebhooks(args []string) int {
	if len(args) == 0 {
		return c.queueUsageErr("webhooks: give list or retired")
	}
	sub, a := args[0], args[1:]
	if sub != "list" && sub != "retired" {
		return c.queueUsageErr("webhooks: unknown subcommand %q", sub)
	}
	groups := 0
	if sub == "retired" {
		groups = qgLimit
	}
	q, err := parseQueue(a, groups)
	if err == nil && len(q.pos) > 1 {
		err = errors.New("takes at most an account")
	}
	if err != nil {
		return c.queueUsageErr("webhooks %s: %v", sub, err)
	}
	limit := -1 // all
	if sub == "retired" {
		switch limit = q.n; {
		case limit < 0:
			limit = defaultHooksRetired
		case limit == 0:
			limit = -1
		}
	}
	got, total, code := fetchPages(c, limit, func(start, want int) ctl.Request {
		ra := append(append([]string{}, q.pos...), "-start", strconv.Itoa(start))
		if sub == "retired" {
			n := ipc.MaxQueueWebhooks
			if want >= 0 {
				n = min(want, n)
			}
			ra = append(ra, "-n", strconv.Itoa(n))
		}
		return ctl.Request{Cmd: "queue webhooks " + sub, Args: ra}
	}, func(p *ipc.QueueWebhookList) ([]ipc.QueueWebhook, uint32, bool) { return p.Entries, p.Total, p.More })
	if code != ExitOK {
		return code
	}
	if limit >= 0 && len(got) > limit {
		got = got[:limit]
	}
	if c.json {
		return c.printJSON(webhooksJSON(got))
	}
	if len(got) == 0 {
		if sub == "list" {
			fmt.Fprintln(c.stdout, "no webhook events waiting to be posted")
		} else {
			fmt.Fprintln(c.stdout, "no retired webhook events")
		}
		return ExitOK
	}
	now := time.Now()
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	if sub == "list" {
		fmt.Fprintln(tw, "ID\tQUEUED\tACCOUNT\tEVENT\tURL\tATT\tNEXT\tLAST ERROR")
	} else {
		fmt.Fprintln(tw, "ID\tQUEUED\tACCOUNT\tEVENT\tURL\tATT\tRESULT\tLAST ERROR OR STATUS")
	}
	for _, h := range got {
		state := relTime(time.Unix(0, h.NextAttempt), now)
		if sub == "retired" {
			state = "given up"
			if h.Posted {
				state = "posted"
			}
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", h.ID, localTime(h.Queued), cell(h.Account, 40), cell(h.Event, 20),
			cell(h.URL, 60), h.Attempts, state, cell(h.LastError, 80))
	}
	tw.Flush()
	if int(total) > len(got) {
		if sub == "retired" {
			fmt.Fprintf(c.stdout, "%d of %d retired webhook events shown (-n N for more, -n 0 for all)\n", len(got), total)
		} else {
			fmt.Fprintf(c.stdout, "%d of %d webhook events shown\n", len(got), total)
		}
	}
	return ExitOK
}
