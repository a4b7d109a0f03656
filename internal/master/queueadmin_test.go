package master

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"moxd/internal/ctl"
	"moxd/internal/ipc"
)

// fakeQueueAdmin answers queue administration requests with fixed
// replies and records them.
type fakeQueueAdmin struct {
	mu      sync.Mutex
	got     []ipc.Message
	listing *ipc.QueueListing
}

func (f *fakeQueueAdmin) handle(req *ipc.Request) (ipc.Message, []*os.File, error) {
	closeAll(req.Files)
	f.mu.Lock()
	f.got = append(f.got, req.Msg)
	f.mu.Unlock()
	switch m := req.Msg.(type) {
	case *ipc.QueueList:
		if f.listing != nil {
			return f.listing, nil, nil
		}
		return &ipc.QueueListing{Total: 1, Entries: []ipc.QueueEntry{{Msg: 7, Recipient: "a@example.net"}}}, nil, nil
	case *ipc.QueueDump:
		if m.ID == 404 {
			return nil, nil, ipc.Errorf(ipc.CodeNotFound, "no message 404 in the queue")
		}
		return &ipc.QueueText{Text: "message 7\n"}, nil, nil
	case *ipc.QueueAction:
		return &ipc.QueueCount{N: 3, DSNs: 1}, nil, nil
	case *ipc.QueueHoldRules:
		return &ipc.QueueHoldRuleList{Total: 1, Rules: []ipc.QueueHoldRule{{ID: 1}}}, nil, nil
	case *ipc.QueueRetired:
		return &ipc.QueueRetiredList{}, nil, nil
	case *ipc.QueueSuppress:
		return &ipc.QueueSuppressionList{}, nil, nil
	case *ipc.QueueWebhooks:
		return &ipc.QueueWebhookList{}, nil, nil
	}
	return nil, nil, ipc.Errorf(ipc.CodeBadRequest, "unexpected %s", req.Msg.Type())
}

func (f *fakeQueueAdmin) requests() []ipc.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.got
	f.got = nil
	return l
}

// TestQueueCommands: each queue command becomes the queue request its
// arguments say, changes are audited, and bad arguments are refused
// before anything reaches queue.
func TestQueueCommands(t *testing.T) {
	tm := newTestMaster(t, ackStore, keysFake)
	if err := tm.call(t, ctl.Request{Cmd: "queue list"}, nil); err == nil || !strings.Contains(err.Error(), "queue unavailable") {
		t.Errorf("list without queue: %v", err)
	}
	fq := &fakeQueueAdmin{}
	tm.queue = tm.connect(t, ipc.RoleQueue, fq.handle)

	at := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		args    []string
		want    ipc.Message // nil: refused
		wantErr string
		audited bool
	}{
		{[]string{"list", "-account", "mjl", "-held", "-sort", "-next", "-start", "3", "-n", "50"},
			&ipc.QueueList{Filter: ipc.QueueFilter{Account: "mjl", Held: ipc.QueueHeldYes}, Sort: "-next", Start: 3, Max: 50}, "", false},
		{[]string{"list", "-n", "100000"}, &ipc.QueueList{Max: ipc.MaxQueueEntries}, "", false},
		{[]string{"list", "-sort", "size"}, nil, "unknown sort order", false},
		{[]string{"list", "-held", "-notheld"}, nil, "exclude each other", false},
		{[]string{"list", "12"}, nil, "-id", false},
		{[]string{"dump", "12"}, &ipc.QueueDump{ID: 12}, "", false},
		{[]string{"dump", "x"}, nil, "not a positive number", false},
		{[]string{"dump", "404"}, &ipc.QueueDump{ID: 404}, "queue: no message 404", false},
		{[]string{"hold"}, nil, "needs a filter; to act on every queued message give -all", false},
		{[]string{"hold", "-all"}, &ipc.QueueAction{Action: ipc.QueueHold, All: true}, "", true},
		{[]string{"unhold", "-id", "4", "-id", "5", "-to", "@example.net"},
			&ipc.QueueAction{Action: ipc.QueueUnhold, Filter: ipc.QueueFilter{IDs: []uint64{4, 5}, To: "@example.net"}}, "", true},
		{[]string{"fail", "-from", "spam@"}, &ipc.QueueAction{Action: ipc.QueueFail, Filter: ipc.QueueFilter{From: "spam@"}}, "", true},
		{[]string{"drop", "-notheld", "-transport", "relay"},
			&ipc.QueueAction{Action: ipc.QueueDrop, Filter: ipc.QueueFilter{Held: ipc.QueueHeldNo, Transport: "relay"}}, "", true},
		{[]string{"drop", "-id", "0"}, nil, "not a positive number", false},
		{[]string{"schedule", "-id", "5", "-in", "-1h"}, &ipc.QueueAction{Action: ipc.QueueSchedule, Filter: ipc.QueueFilter{IDs: []uint64{5}}, Delay: int64(-time.Hour)}, "", true},
		{[]string{"schedule", "-all", "-at", "now"}, &ipc.QueueAction{Action: ipc.QueueSchedule, All: true}, "", true},
		{[]string{"schedule", "-account", "mjl", "-at", at.Format(time.RFC3339)},
			&ipc.QueueAction{Action: ipc.QueueSchedule, Filter: ipc.QueueFilter{Account: "mjl"}, At: at.UnixNano()}, "", true},
		{[]string{"schedule", "-all"}, nil, "-at TIME or -in DURATION", false},
		{[]string{"schedule", "-all", "-at", "tomorrow"}, nil, "is not a time", false},
		{[]string{"schedule", "-all", "-at", "now", "-in", "1h"}, nil, "not both", false},
		{[]string{"transport", "relay", "-account", "mjl"},
			&ipc.QueueAction{Action: ipc.QueueTransport, Filter: ipc.QueueFilter{Account: "mjl"}, Arg: "relay"}, "", true},
		{[]string{"transport", "-id", "3", "-"}, &ipc.QueueAction{Action: ipc.QueueTransport, Filter: ipc.QueueFilter{IDs: []uint64{3}}}, "", true},
		{[]string{"transport", "-id", "3"}, nil, "usage: queue transport NAME|- FILTER", false},
		{[]string{"requiretls", "no", "-id", "3"}, &ipc.QueueAction{Action: ipc.QueueRequireTLS, Filter: ipc.QueueFilter{IDs: []uint64{3}}, Arg: "no"}, "", true},
		{[]string{"requiretls", "maybe", "-id", "3"}, nil, "give yes, no or default", false},
		{[]string{"holdrules", "list"}, &ipc.QueueHoldRules{Op: ipc.QueueRulesOpList}, "", false},
		{[]string{"holdrules", "add", "-account", "mjl", "-rcptdomain", "example.net"},
			&ipc.QueueHoldRules{Op: ipc.QueueRulesOpAdd, Rule: ipc.QueueHoldRule{Account: "mjl", RecipientDomain: "example.net"}}, "", true},
		{[]string{"holdrules", "rm", "2"}, &ipc.QueueHoldRules{Op: ipc.QueueRulesOpRm, Rule: ipc.QueueHoldRule{ID: 2}}, "", true},
		{[]string{"holdrules", "rm"}, nil, "usage: queue holdrules rm ID", false},
		{[]string{"retired", "list", "-account", "mjl", "-n", "20"},
			&ipc.QueueRetired{Op: ipc.QueueRetiredOpList, Account: "mjl", Max: 20, NewestFirst: true}, "", false},
		{[]string{"retired", "list", "-oldest", "-start", "100"}, &ipc.QueueRetired{Op: ipc.QueueRetiredOpList, Start: 100}, "", false},
		{[]string{"retired", "print", "12"}, &ipc.QueueRetired{Op: ipc.QueueRetiredOpGet, Msg: 12, AnySeq: true}, "", false},
		{[]string{"retired", "print", "12", "3"}, &ipc.QueueRetired{Op: ipc.QueueRetiredOpGet, Msg: 12, Seq: 3}, "", false},
		{[]string{"retired", "print", "12", "x"}, nil, "not a number", false},
		{[]string{"suppress", "list", "mjl"}, &ipc.QueueSuppress{Op: ipc.QueueSuppressOpList, Account: "mjl"}, "", false},
		{[]string{"suppress", "add", "mjl", "a@example.net", "asked", "to", "stop"},
			&ipc.QueueSuppress{Op: ipc.QueueSuppressOpAdd, Account: "mjl", Address: "a@example.net", Reason: "asked to stop"}, "", true},
		{[]string{"suppress", "rm", "mjl", "a@example.net"}, &ipc.QueueSuppress{Op: ipc.QueueSuppressOpRm, Account: "mjl", Address: "a@example.net"}, "", true},
		{[]string{"suppress", "lookup", "mjl", "a@example.net"}, &ipc.QueueSuppress{Op: ipc.QueueSuppressOpLookup, Account: "mjl", Address: "a@example.net"}, "", false},
		{[]string{"suppress", "lookup", "mjl"}, nil, "usage: queue suppress lookup ACCOUNT ADDRESS", false},
		{[]string{"webhooks", "list"}, &ipc.QueueWebhooks{}, "", false},
		{[]string{"webhooks", "list", "mjl", "-start", "7"}, &ipc.QueueWebhooks{Account: "mjl", Start: 7}, "", false},
		{[]string{"webhooks", "list", "-n", "5"}, nil, "usage: queue webhooks list [ACCOUNT] [-start N]", false},
		{[]string{"webhooks", "list", "mjl", "other"}, nil, "usage: queue webhooks list", false},
		{[]string{"webhooks", "list", strings.Repeat("a", ipc.MaxAccountLen+1)}, nil, "account name longer than", false},
		{[]string{"webhooks", "retired", "-n", "20", "mjl"}, &ipc.QueueWebhooks{Retired: true, Account: "mjl", Max: 20}, "", false},
		{[]string{"webhooks", "retired", "-start", "100", "-n", "100000"},
			&ipc.QueueWebhooks{Retired: true, Start: 100, Max: ipc.MaxQueueWebhooks}, "", false},
		{[]string{"webhooks", "retired", "-oldest"}, nil, "usage: queue webhooks retired [ACCOUNT] [-start N] [-n N]", false},
	}
	for _, tc := range tests {
		// The command words as moxctl sends them: "queue holdrules add".
		words := 2
		if tc.args[0] == "holdrules" || tc.args[0] == "retired" || tc.args[0] == "suppress" || tc.args[0] == "webhooks" {
			words = 3
		}
		req := ctl.Request{Cmd: "queue " + strings.Join(tc.args[:words-1], " "), Args: tc.args[words-1:]}
		name := strings.Join(tc.args, " ")
		auditBefore := len(tm.auditLinesOrNone(t))
		var data json.RawMessage
		err := tm.call(t, req, &data)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: got %v, want error with %q", name, err, tc.wantErr)
			}
		} else if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		got := fq.requests()
		switch {
		case tc.want == nil && len(got) > 0:
			t.Errorf("%s: refused, but queue got %v", name, got)
		case tc.want != nil && (len(got) != 1 || !reflect.DeepEqual(got[0], tc.want)):
			t.Errorf("%s: queue got %#v, want %#v", name, got, tc.want)
		}
		lines := tm.auditLinesOrNone(t)
		if tc.audited != (len(lines) == auditBefore+1) {
			t.Errorf("%s: audited %v, want %v (%d lines before, %d after)", name, !tc.audited, tc.audited, auditBefore, len(lines))
		} else if tc.audited && !strings.Contains(lines[len(lines)-1], `cmd="`+req.Cmd+`"`) {
			t.Errorf("%s: audit line %q", name, lines[len(lines)-1])
		}
	}

	// The answer is queue's reply, as JSON.
	var count ipc.QueueCount
	if err := tm.call(t, ctl.Request{Cmd: "queue hold", Args: []string{"-id", "1"}}, &count); err != nil || count.N != 3 || count.DSNs != 1 {
		t.Errorf("hold answer %+v, %v", count, err)
	}
	if err := tm.call(t, ctl.Request{Cmd: "queue frobnicate"}, nil); err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Errorf("unknown queue command: %v", err)
	}
}

func (tm *testMaster) auditLinesOrNone(t *testing.T) []string {
	if _, err := os.Stat(tm.dir + "/data/" + AuditLogName); err != nil {
		return nil
	}
	return tm.auditLines(t)
}

// TestQueueAnswerFits: a listing whose JSON would not fit one answer line
// is cut, with More set, and a dump's text too.
func TestQueueAnswerFits(t *testing.T) {
	tm := newTestMaster(t, ackStore, keysFake)
	l := &ipc.QueueListing{Total: 500}
	// As many entries as queue puts in a frame; "<" takes six bytes in
	// JSON.
	for used := 0; ; {
		e := ipc.QueueEntry{Msg: uint64(len(l.Entries) + 1), LastError: strings.Repeat("<", ipc.MaxQueueError)}
		if used += e.WireSize(); used > ipc.QueueReplyBudget {
			break
		}
		l.Entries = append(l.Entries, e)
	}
	n := len(l.Entries)
	fq := &fakeQueueAdmin{listing: l}
	tm.queue = tm.connect(t, ipc.RoleQueue, fq.handle)
	var got ipc.QueueListing
	if err := tm.call(t, ctl.Request{Cmd: "queue list"}, &got); err != nil {
		t.Fatal(err)
	}
	if !got.More || len(got.Entries) == 0 || len(got.Entries) >= n || got.Entries[0].Msg != 1 {
		t.Errorf("cut listing: %d entries, more %v", len(got.Entries), got.More)
	}
	hooks := &ipc.QueueWebhookList{Total: 100}
	for used := 0; ; {
		h := ipc.QueueWebhook{ID: uint64(len(hooks.Entries) + 1), Payload: strings.Repeat("<", ipc.MaxQueueHookPayload)}
		if used += h.WireSize(); used > ipc.QueueReplyBudget {
			break
		}
		hooks.Entries = append(hooks.Entries, h)
	}
	nh := len(hooks.Entries)
	if cut := fitAnswer(hooks).(*ipc.QueueWebhookList); !cut.More || len(cut.Entries) == 0 || len(cut.Entries) >= nh {
		t.Errorf("cut webhook list: %d of %d entries, more %v", len(cut.Entries), nh, cut.More)
	} else if b, _ := json.Marshal(cut); len(b) > ctlAnswerBudget {
		t.Errorf("cut webhook list is %d bytes in JSON", len(b))
	}
	text := fitAnswer(&ipc.QueueText{Text: strings.Repeat("<&>", ipc.MaxQueueText/3)}).(*ipc.QueueText)
	if b, _ := json.Marshal(text); len(b) > ctlAnswerBudget || !strings.HasSuffix(text.Text, "answer]\n") {
		t.Errorf("dump text of %d bytes in JSON", len(b))
	}
}
