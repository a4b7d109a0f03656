package moxctl

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"moxd/internal/ctl"
	"moxd/internal/ipc"
)

// TestQueueUsage: arguments moxctl refuses itself, with exit status 2,
// without a running moxd.
func TestQueueUsage(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"queue"}, "no queue command"},
		{[]string{"queue", "frob"}, `unknown queue command "frob"`},
		{[]string{"queue", "list", "-sort", "size"}, `unknown sort order "size"`},
		{[]string{"queue", "list", "-held", "-notheld"}, "exclude each other"},
		{[]string{"queue", "list", "abc"}, `message id "abc"`},
		{[]string{"queue", "list", "-all"}, "-all is for commands that change"},
		{[]string{"queue", "list", "-bogus"}, "-bogus"},
		{[]string{"queue", "dump"}, "one message id"},
		{[]string{"queue", "dump", "0"}, "not a positive number"},
		{[]string{"queue", "hold"}, "give a filter; to act on every queued message use -all"},
		{[]string{"queue", "drop", "-held=false"}, "give a filter"},
		{[]string{"queue", "fail", "-id", "x"}, `message id "x"`},
		{[]string{"queue", "schedule", "-all"}, "-at TIME, -at now or -in DURATION"},
		{[]string{"queue", "schedule", "-all", "-at", "tomorrow"}, "is not a time"},
		{[]string{"queue", "schedule", "-all", "-in", "soon"}, "is not a duration"},
		{[]string{"queue", "schedule", "-all", "-in", "1h", "-at", "now"}, "not both"},
		{[]string{"queue", "transport"}, "give the transport name"},
		{[]string{"queue", "transport", "relay"}, "give a filter"},
		{[]string{"queue", "requiretls", "maybe", "-all"}, "give yes, no or default"},
		{[]string{"queue", "holdrules"}, "give list, add or rm"},
		{[]string{"queue", "holdrules", "add", "x"}, `unexpected argument "x"`},
		{[]string{"queue", "holdrules", "rm"}, "rule's id"},
		{[]string{"queue", "holdrules", "rm", "x"}, "not a positive number"},
		{[]string{"queue", "retired", "list", "x"}, `unexpected argument "x"`},
		{[]string{"queue", "retired", "print"}, "a message id"},
		{[]string{"queue", "retired", "print", "3", "x"}, `recipient "x"`},
		{[]string{"queue", "suppress", "add", "mjl"}, "an account and an address"},
		{[]string{"queue", "suppress", "rm", "mjl", "a@b", "c"}, "an account and an address"},
		{[]string{"queue", "suppress", "lookup", "mjl", "nobody"}, "is not an address"},
		{[]string{"queue", "suppress", "list", "a", "b"}, "at most an account"},
		{[]string{"queue", "webhooks"}, "give list or retired"},
		{[]string{"queue", "webhooks", "frob"}, `unknown subcommand "frob"`},
		{[]string{"queue", "webhooks", "list", "a", "b"}, "at most an account"},
		{[]string{"queue", "webhooks", "list", "-n", "3"}, "-n"},
		{[]string{"queue", "webhooks", "retired", "-n", "x"}, "-n"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, stdout, stderr := run(append([]string{"-f", "/nonexistent/moxd.conf"}, tc.args...)...)
			if code != ExitUsage {
				t.Errorf("exit %d, want %d; stderr %q", code, ExitUsage, stderr)
			}
			if !strings.Contains(stderr, tc.want) || !strings.Contains(stderr, "usage: moxctl queue list") {
				t.Errorf("stderr lacks %q or the usage:\n%s", tc.want, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q", stdout)
			}
		})
	}
}

// TestQueueCommands: the requests moxctl sends and how it shows answers.
func TestQueueCommands(t *testing.T) {
	now := time.Now()
	entries := []ipc.QueueEntry{
		{Msg: 12, Seq: 0, Account: "mjl", MailFrom: "mjl@example.org", Recipient: "a@example.net", Queued: now.Add(-time.Hour).UnixNano(),
			NextAttempt: now.Add(90 * time.Minute).UnixNano(), Attempts: 2, LastError: "dane: no usable TLSA record\x1b[2J", Size: 2048,
			Transport: "relay", RequireTLS: 1},
		{Msg: 13, Seq: 1, Account: "mjl", MailFrom: "", Recipient: "b@example.net", Queued: now.UnixNano(), Held: true, DSN: true},
	}
	tests := []struct {
		name    string
		args    []string
		resp    any
		refuse  string
		wantReq ctl.Request
		code    int
		out     []string
		notOut  []string
		errOut  string
	}{
		{name: "list", args: []string{"queue", "list", "-account", "mjl", "-sort", "-next", "12", "13"},
			resp:    ipc.QueueListing{Total: 2, Entries: entries},
			wantReq: ctl.Request{Cmd: "queue list", Args: []string{"-id", "12", "-id", "13", "-account", "mjl", "-start", "0", "-n", "200", "-sort", "-next"}},
			out: []string{"MSG  SEQ  ACCOUNT", "mjl@example.org", "a@example.net", "in 1h30m0s", "2.0K", "transport=relay,requiretls=yes",
				"dane: no usable TLSA record?[2J", "<>", "held", "dsn"},
			notOut: []string{"\x1b"}},
		{name: "list limited", args: []string{"queue", "list", "-n", "1", "-to", "a@"}, resp: ipc.QueueListing{Total: 2, More: true, Entries: entries[:1]},
			wantReq: ctl.Request{Cmd: "queue list", Args: []string{"-to", "a@", "-start", "0", "-n", "1"}},
			out:     []string{"1 of 2 recipients shown"}},
		{name: "list empty", args: []string{"queue", "list"}, resp: ipc.QueueListing{},
			wantReq: ctl.Request{Cmd: "queue list", Args: []string{"-start", "0", "-n", "200"}}, out: []string{"no queued recipients match"}},
		{name: "list json", args: []string{"-j", "queue", "list", "-held"}, resp: ipc.QueueListing{Total: 2, Entries: entries},
			wantReq: ctl.Request{Cmd: "queue list", Args: []string{"-held", "-start", "0", "-n", "200"}},
			out:     []string{`"total": 2`, `"mail_from": "mjl@example.org"`, `"requiretls": "yes"`, `"held": true`, `"next_attempt": "` + now.Add(90*time.Minute).UTC().Format("2006-01-02T15:04")}},
		{name: "dump", args: []string{"queue", "dump", "12"}, resp: ipc.QueueText{Text: "message 12\n  last error:    x\x07y\n"},
			wantReq: ctl.Request{Cmd: "queue dump", Args: []string{"12"}}, out: []string{"message 12\n  last error:    x?y\n"}},
		{name: "dump unknown", args: []string{"queue", "dump", "99"}, refuse: "queue: no message 99 in the queue",
			wantReq: ctl.Request{Cmd: "queue dump", Args: []string{"99"}}, code: ExitFailed, errOut: "moxctl: queue: no message 99"},
		{name: "hold all", args: []string{"queue", "hold", "-all"}, resp: ipc.QueueCount{N: 5},
			wantReq: ctl.Request{Cmd: "queue hold", Args: []string{"-all"}}, out: []string{"5 recipients held"}},
		{name: "unhold ids", args: []string{"queue", "unhold", "4", "-from", "mjl@", "5"}, resp: ipc.QueueCount{N: 1},
			wantReq: ctl.Request{Cmd: "queue unhold", Args: []string{"-id", "4", "-id", "5", "-from", "mjl@"}}, out: []string{"1 recipient released"}},
		{name: "fail", args: []string{"queue", "fail", "-id", "7"}, resp: ipc.QueueCount{N: 2, DSNs: 1},
			wantReq: ctl.Request{Cmd: "queue fail", Args: []string{"-id", "7"}}, out: []string{"2 recipients failed, 1 DSN queued"}},
		{name: "drop json", args: []string{"-j", "queue", "drop", "-notheld", "-transport", "relay"}, resp: ipc.QueueCount{N: 3},
			wantReq: ctl.Request{Cmd: "queue drop", Args: []string{"-transport", "relay", "-notheld"}}, out: []string{`"count": 3`}},
		{name: "schedule in", args: []string{"queue", "schedule", "-in", "-1h", "-account", "mjl"}, resp: ipc.QueueCount{N: 2},
			wantReq: ctl.Request{Cmd: "queue schedule", Args: []string{"-account", "mjl", "-in", "-1h"}}, out: []string{"2 recipients rescheduled"}},
		{name: "schedule at", args: []string{"queue", "schedule", "3", "-at", "2026-11-22T15:04:05Z"}, resp: ipc.QueueCount{N: 1},
			wantReq: ctl.Request{Cmd: "queue schedule", Args: []string{"-id", "3", "-at", "2026-11-22T15:04:05Z"}}},
		{name: "transport clear", args: []string{"queue", "transport", "-", "3"}, resp: ipc.QueueCount{N: 1},
			wantReq: ctl.Request{Cmd: "queue transport", Args: []string{"-", "-id", "3"}}, out: []string{"1 message changed"}},
		{name: "transport refused", args: []string{"queue", "transport", "nope", "-all"},
			refuse:  `queue: transport "nope" is not configured; configured transports: relay (or - to let the routes decide)`,
			wantReq: ctl.Request{Cmd: "queue transport", Args: []string{"nope", "-all"}}, code: ExitFailed, errOut: "configured transports: relay"},
		{name: "requiretls", args: []string{"queue", "requiretls", "default", "-to", "x"}, resp: ipc.QueueCount{N: 4},
			wantReq: ctl.Request{Cmd: "queue requiretls", Args: []string{"default", "-to", "x"}}, out: []string{"4 messages changed"}},
		{name: "holdrules add", args: []string{"queue", "holdrules", "add", "-account", "mjl", "-rcptdomain", "example.net"},
			resp:    ipc.QueueHoldRuleList{Total: 1, Held: 3, Rules: []ipc.QueueHoldRule{{ID: 2, Account: "mjl", RecipientDomain: "example.net"}}},
			wantReq: ctl.Request{Cmd: "queue holdrules add", Args: []string{"-account", "mjl", "-rcptdomain", "example.net"}},
			out:     []string{"hold rule 2 added: new matching messages will be held; 3 recipients already queued now held"}},
		{name: "holdrules add all", args: []string{"queue", "holdrules", "add"},
			resp:    ipc.QueueHoldRuleList{Total: 1, Rules: []ipc.QueueHoldRule{{ID: 3}}},
			wantReq: ctl.Request{Cmd: "queue holdrules add"}, out: []string{"every new message will be held"}},
		{name: "holdrules list", args: []string{"queue", "holdrules", "list"},
			resp:    ipc.QueueHoldRuleList{Total: 1, Rules: []ipc.QueueHoldRule{{ID: 2, Account: "mjl"}}},
			wantReq: ctl.Request{Cmd: "queue holdrules list", Args: []string{"-start", "0"}}, out: []string{"ID  ACCOUNT  SENDER DOMAIN  RECIPIENT DOMAIN\n2   mjl      *              *"}},
		{name: "holdrules rm", args: []string{"queue", "holdrules", "rm", "2"}, resp: ipc.QueueHoldRuleList{Total: 1, Rules: []ipc.QueueHoldRule{{ID: 2}}},
			wantReq: ctl.Request{Cmd: "queue holdrules rm", Args: []string{"2"}}, out: []string{"hold rule 2 removed; what it held stays held"}},
		{name: "retired list", args: []string{"queue", "retired", "list", "-account", "mjl", "-n", "5"},
			resp: ipc.QueueRetiredList{Total: 9, Entries: []ipc.QueueRetiredEntry{
				{Msg: 12, Account: "mjl", MailFrom: "mjl@example.org", Address: "a@example.net", Retired: now.UnixNano(), Delivered: true, LastError: "250 ok"}}},
			wantReq: ctl.Request{Cmd: "queue retired list", Args: []string{"-account", "mjl", "-start", "0", "-n", "5"}},
			out:     []string{"delivered", "250 ok", "1 of 9 retired recipients shown"}},
		{name: "retired print", args: []string{"queue", "retired", "print", "12", "0"},
			resp: ipc.QueueRetiredList{Total: 1, Entries: []ipc.QueueRetiredEntry{
				{Msg: 12, Account: "mjl", Address: "a@example.net", LastError: "failed by admin (moxctl queue fail)", LastStatus: "5.0.0"}}},
			wantReq: ctl.Request{Cmd: "queue retired print", Args: []string{"12", "0", "-start", "0"}},
			out:     []string{"message 12 recipient 0 <a@example.net>: failed", "last status:  5.0.0", "failed by admin"}},
		{name: "suppress list", args: []string{"queue", "suppress", "list", "mjl"},
			resp:    ipc.QueueSuppressionList{Total: 1, Entries: []ipc.QueueSuppression{{Account: "mjl", Address: "gone@example.net", Reason: "550 no such user", Added: now.UnixNano()}}},
			wantReq: ctl.Request{Cmd: "queue suppress list", Args: []string{"mjl", "-start", "0"}}, out: []string{"gone@example.net", "delivery", "550 no such user"}},
		{name: "suppress add", args: []string{"queue", "suppress", "add", "mjl", "x@example.net", "asked", "to", "stop"},
			resp:    ipc.QueueSuppressionList{Total: 1, Entries: []ipc.QueueSuppression{{Account: "mjl", Address: "x@example.net", Manual: true}}},
			wantReq: ctl.Request{Cmd: "queue suppress add", Args: []string{"mjl", "x@example.net", "asked", "to", "stop"}},
			out:     []string{"x@example.net is on the suppression list of mjl"}},
		{name: "suppress lookup absent", args: []string{"queue", "suppress", "lookup", "mjl", "x@example.net"}, resp: ipc.QueueSuppressionList{},
			wantReq: ctl.Request{Cmd: "queue suppress lookup", Args: []string{"mjl", "x@example.net"}}, code: ExitFailed,
			out: []string{"x@example.net is not on the suppression list of mjl"}},
		{name: "webhooks list", args: []string{"queue", "webhooks", "list", "mjl"},
			resp: ipc.QueueWebhookList{Total: 3, Entries: []ipc.QueueWebhook{
				{ID: 7, Account: "mjl", URL: "https://hooks.example.net/moxd", Event: "delivered", Queued: now.UnixNano(),
					Attempts: 2, NextAttempt: now.Add(10 * time.Minute).UnixNano(), LastError: "hooks.example.net answered 500:\x1b[2J oops",
					Payload: `{"event":"delivered"}`}}},
			wantReq: ctl.Request{Cmd: "queue webhooks list", Args: []string{"mjl", "-start", "0"}},
			out: []string{"ID  QUEUED", "NEXT", "https://hooks.example.net/moxd", "delivered", "in 10m0s", "answered 500:?[2J oops",
				"1 of 3 webhook events shown"},
			notOut: []string{"\x1b", `{"event"`}},
		{name: "webhooks list empty", args: []string{"queue", "webhooks", "list"}, resp: ipc.QueueWebhookList{},
			wantReq: ctl.Request{Cmd: "queue webhooks list", Args: []string{"-start", "0"}}, out: []string{"no webhook events waiting to be posted"}},
		{name: "webhooks retired", args: []string{"queue", "webhooks", "retired", "-n", "5"},
			resp: ipc.QueueWebhookList{Total: 9, Entries: []ipc.QueueWebhook{
				{ID: 3, Account: "mjl", URL: "https://hooks.example.net/moxd", Event: "failed", Queued: now.UnixNano(), Attempts: 1, LastError: "200 OK", Posted: true},
				{ID: 2, Account: "other", URL: "http://other.example/", Event: "delayed", Queued: now.UnixNano(), Attempts: 8, LastError: "connection refused"}}},
			wantReq: ctl.Request{Cmd: "queue webhooks retired", Args: []string{"-start", "0", "-n", "5"}},
			out:     []string{"RESULT", "posted", "200 OK", "given up", "connection refused", "2 of 9 retired webhook events shown"}},
		{name: "webhooks retired json", args: []string{"-j", "queue", "webhooks", "retired", "mjl"},
			resp: ipc.QueueWebhookList{Total: 1, Entries: []ipc.QueueWebhook{
				{ID: 3, Account: "mjl", URL: "https://hooks.example.net/moxd", Event: "failed", Queued: now.UnixNano(), Attempts: 1,
					NextAttempt: now.UnixNano(), LastError: "200 OK", Posted: true, Payload: `{"event":"failed"}`}}},
			wantReq: ctl.Request{Cmd: "queue webhooks retired", Args: []string{"mjl", "-start", "0", "-n", "100"}},
			out: []string{`"id": 3`, `"url": "https://hooks.example.net/moxd"`, `"posted": true`, `"payload": "{\"event\":\"failed\"}"`,
				`"last_error": "200 OK"`, `"next_attempt": "`}},
		{name: "suppress rm refused", args: []string{"queue", "suppress", "rm", "mjl", "x@example.net"},
			refuse:  "queue: x@example.net is not on the suppression list of account mjl",
			wantReq: ctl.Request{Cmd: "queue suppress rm", Args: []string{"mjl", "x@example.net"}}, code: ExitFailed, errOut: "not on the suppression list"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := shortDir(t)
			p := writeConf(t, dir, "")
			fake := startScripted(t, filepath.Join(dir, "run"), func(req ctl.Request, files []*os.File, c *ctl.Conn) {
				if tc.refuse != "" {
					c.WriteResponse(ctl.Response{Error: tc.refuse})
					return
				}
				respondOK(c, tc.resp)
			})
			code, stdout, stderr := run(append([]string{"-f", p}, tc.args...)...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tc.code, stderr)
			}
			for _, s := range tc.out {
				if !strings.Contains(stdout, s) {
					t.Errorf("output lacks %q:\n%s", s, stdout)
				}
			}
			for _, s := range tc.notOut {
				if strings.Contains(stdout, s) {
					t.Errorf("output has %q:\n%s", s, stdout)
				}
			}
			if tc.errOut != "" && !strings.Contains(stderr, tc.errOut) {
				t.Errorf("stderr %q lacks %q", stderr, tc.errOut)
			}
			if reqs := fake.requests(); len(reqs) != 1 || !reflect.DeepEqual(reqs[0], tc.wantReq) {
				t.Errorf("requests %#v, want [%#v]", reqs, tc.wantReq)
			}
		})
	}
}

// TestQueueListPages: moxctl pulls a listing page by page on one
// connection, from where the last page ended.
func TestQueueListPages(t *testing.T) {
	dir := shortDir(t)
	p := writeConf(t, dir, "")
	const total = 450
	fake := startScripted(t, filepath.Join(dir, "run"), func(req ctl.Request, files []*os.File, c *ctl.Conn) {
		var start, n int
		for i := 0; i+1 < len(req.Args); i++ {
			switch req.Args[i] {
			case "-start":
				start, _ = strconv.Atoi(req.Args[i+1])
			case "-n":
				n, _ = strconv.Atoi(req.Args[i+1])
			}
		}
		// Pages of at most 150, fewer than asked, as when an answer is
		// cut to fit.
		l := ipc.QueueListing{Total: total}
		for i := start; i < min(start+min(n, 150), total); i++ {
			l.Entries = append(l.Entries, ipc.QueueEntry{Msg: uint64(i + 1), Recipient: "r" + strconv.Itoa(i) + "@example.net"})
		}
		l.More = start+len(l.Entries) < total
		respondOK(c, l)
	})
	code, stdout, stderr := run("-j", "-f", p, "queue", "list")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var out struct {
		Total   int              `json:"total"`
		Entries []queueEntryJSON `json:"entries"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatal(err)
	}
	if out.Total != total || len(out.Entries) != total || out.Entries[total-1].Msg != total {
		t.Errorf("got %d of %d entries", len(out.Entries), out.Total)
	}
	var starts []string
	for _, r := range fake.requests() {
		starts = append(starts, r.Args[1])
	}
	if strings.Join(starts, " ") != "0 150 300" {
		t.Errorf("pages started at %v", starts)
	}

	// -n stops early.
	code, stdout, _ = run("-f", p, "queue", "list", "-n", "160")
	if code != ExitOK || !strings.Contains(stdout, "160 of 450 recipients shown") {
		t.Errorf("-n 160: exit %d\n%s", code, stdout)
	}
}
