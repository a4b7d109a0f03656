package ipc

import (
	"strings"
	"testing"
)

// TestQueueAdminRefused: field combinations that make no sense are refused
// by the encoder (the sender gets an error, the channel stays up) and by
// the decoder.
func TestQueueAdminRefused(t *testing.T) {
	tests := []struct {
		name string
		m    Message
		want string
	}{
		{"unknown action", &QueueAction{Action: 99}, "unknown queue action"},
		{"hold with argument", &QueueAction{Action: QueueHold, Arg: "x"}, "takes no argument"},
		{"hold with time", &QueueAction{Action: QueueHold, At: 1}, "takes no time"},
		{"schedule at and delay", &QueueAction{Action: QueueSchedule, At: 1, Delay: 1}, "both"},
		{"requiretls value", &QueueAction{Action: QueueRequireTLS, Arg: "maybe"}, "yes, no or default"},
		{"held criterion", &QueueAction{Action: QueueDrop, Filter: QueueFilter{Held: 3}}, "held criterion"},
		{"too many ids", &QueueAction{Action: QueueDrop, Filter: QueueFilter{IDs: make([]uint64, MaxQueueIDs+1)}}, "exceeds its limit"},
		{"sort", &QueueList{Sort: "size"}, "sort"},
		{"list max", &QueueList{Max: MaxQueueEntries + 1}, "at most"},
		{"rule list with rule", &QueueHoldRules{Op: QueueRulesOpList, Rule: QueueHoldRule{Account: "mjl"}}, "takes no rule"},
		{"rule add with id", &QueueHoldRules{Op: QueueRulesOpAdd, Rule: QueueHoldRule{ID: 1}}, "no id"},
		{"rule rm without id", &QueueHoldRules{Op: QueueRulesOpRm}, "only the rule's id"},
		{"rule rm with fields", &QueueHoldRules{Op: QueueRulesOpRm, Rule: QueueHoldRule{ID: 1, Account: "mjl"}}, "only the rule's id"},
		{"rule op", &QueueHoldRules{Op: 9}, "unknown hold rule operation"},
		{"retired get without id", &QueueRetired{Op: QueueRetiredOpGet}, "needs a message id"},
		{"retired list with id", &QueueRetired{Op: QueueRetiredOpList, Msg: 3}, "takes no message id"},
		{"retired seq and any", &QueueRetired{Op: QueueRetiredOpGet, Msg: 3, Seq: 1, AnySeq: true}, "any recipient"},
		{"retired max", &QueueRetired{Op: QueueRetiredOpList, Max: MaxQueueRetired + 1}, "at most"},
		{"suppress add without address", &QueueSuppress{Op: QueueSuppressOpAdd, Account: "mjl"}, "needs an account and an address"},
		{"suppress rm with reason", &QueueSuppress{Op: QueueSuppressOpRm, Account: "mjl", Address: "a@b", Reason: "x"}, "only a suppression add"},
		{"suppress list with address", &QueueSuppress{Op: QueueSuppressOpList, Address: "a@b"}, "takes no address"},
		{"webhooks max", &QueueWebhooks{Max: MaxQueueWebhooks + 1}, "at most"},
		{"webhook payload too long", &QueueWebhookList{Entries: []QueueWebhook{{Payload: strings.Repeat("x", MaxQueueHookPayload+1)}}}, "exceeds its limit"},
		{"entry requiretls", &QueueListing{Entries: []QueueEntry{{RequireTLS: 3}}}, "requiretls"},
		{"error too long", &QueueListing{Entries: []QueueEntry{{LastError: strings.Repeat("x", MaxQueueError+1)}}}, "exceeds its limit"},
		{"text too long", &QueueText{Text: strings.Repeat("x", MaxQueueText+1)}, "exceeds its limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := encodePayload(tc.m); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("encode: got %v, want error with %q", err, tc.want)
			}
			// Encode without the checks to see the decoder refuse it
			// too: the fields are written as the encoder would.
			b := rawQueueAdmin(tc.m)
			if b == nil {
				return
			}
			m := messageTable[tc.m.Type()].new()
			d := NewDecoder(b)
			m.Decode(d)
			if err := d.Done(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("decode: got %v, want error with %q", err, tc.want)
			}
		})
	}
}

// rawQueueAdmin encodes the request messages field by field, skipping
// their checks; nil for the others.
func rawQueueAdmin(m Message) []byte {
	e := newEncoder(nil, MaxPayload)
	rawFilter := func(f QueueFilter) {
		e.Count(len(f.IDs))
		for _, id := range f.IDs {
			e.Uint64(id)
		}
		e.String(f.Account)
		e.String(f.From)
		e.String(f.To)
		e.String(f.Transport)
		e.Uint8(f.Held)
	}
	switch m := m.(type) {
	case *QueueAction:
		e.Uint8(m.Action)
		rawFilter(m.Filter)
		e.Bool(m.All)
		e.String(m.Arg)
		e.Int64(m.At)
		e.Int64(m.Delay)
	case *QueueList:
		rawFilter(m.Filter)
		e.String(m.Sort)
		e.Uint32(m.Start)
		e.Uint16(m.Max)
	case *QueueHoldRules:
		e.Uint8(m.Op)
		e.Uint64(m.Rule.ID)
		e.String(m.Rule.Account)
		e.String(m.Rule.SenderDomain)
		e.String(m.Rule.RecipientDomain)
		e.Uint32(m.Start)
	case *QueueRetired:
		e.Uint8(m.Op)
		e.String(m.Account)
		e.Uint32(m.Start)
		e.Uint16(m.Max)
		e.Bool(m.NewestFirst)
		e.Uint64(m.Msg)
		e.Uint32(m.Seq)
		e.Bool(m.AnySeq)
	case *QueueSuppress:
		e.Uint8(m.Op)
		e.String(m.Account)
		e.String(m.Address)
		e.String(m.Reason)
		e.Uint32(m.Start)
	case *QueueWebhooks:
		e.Bool(m.Retired)
		e.String(m.Account)
		e.Uint32(m.Start)
		e.Uint16(m.Max)
	default:
		return nil
	}
	if e.Err() != nil {
		panic(e.Err())
	}
	return e.buf
}

// TestQueueAdminWireSize: WireSize is exact, so a reply filled up to
// QueueReplyBudget always fits a frame.
func TestQueueAdminWireSize(t *testing.T) {
	long := func(n int) string { return strings.Repeat("é", n/2) }
	entry := QueueEntry{Msg: 1, Account: long(MaxAccountLen), MailFrom: long(MaxAddressLen), Recipient: long(MaxAddressLen),
		LastError: long(MaxQueueError), LastHost: long(MaxNameLen), LastStatus: "5.7.1", Transport: long(MaxNameLen)}
	retired := QueueRetiredEntry{Msg: 1, Account: long(MaxAccountLen), MailFrom: long(MaxAddressLen), Address: long(MaxAddressLen),
		MessageID: long(MaxNameLen), Subject: long(MaxNameLen), LastError: long(MaxTextLen), LastHost: long(MaxNameLen), Transport: "x"}
	rule := QueueHoldRule{ID: 1, Account: long(MaxAccountLen), SenderDomain: long(MaxNameLen), RecipientDomain: "x"}
	supp := QueueSuppression{Account: "mjl", Address: long(MaxAddressLen), Reason: long(MaxTextLen)}
	hook := QueueWebhook{ID: 1, Account: long(MaxAccountLen), URL: long(MaxTextLen), Event: long(MaxNameLen),
		LastError: long(MaxQueueError), Posted: true, Payload: long(MaxQueueHookPayload)}

	fill := func(size int, max int) int {
		n := 0
		for used := 0; n < max && used+size <= QueueReplyBudget; n++ {
			used += size
		}
		return n
	}
	cases := []struct {
		name  string
		size  int
		empty Message
		full  func(n int) Message
		max   int
	}{
		{"entry", entry.WireSize(), &QueueListing{}, func(n int) Message {
			l := &QueueListing{Total: 1 << 20, More: true}
			for range n {
				l.Entries = append(l.Entries, entry)
			}
			return l
		}, MaxQueueEntries},
		{"retired", retired.WireSize(), &QueueRetiredList{}, func(n int) Message {
			l := &QueueRetiredList{Total: 1, More: true}
			for range n {
				l.Entries = append(l.Entries, retired)
			}
			return l
		}, MaxQueueRetired},
		{"rule", rule.WireSize(), &QueueHoldRuleList{}, func(n int) Message {
			l := &QueueHoldRuleList{Total: 1, Held: 1}
			for range n {
				l.Rules = append(l.Rules, rule)
			}
			return l
		}, MaxQueueRules},
		{"suppression", supp.WireSize(), &QueueSuppressionList{}, func(n int) Message {
			l := &QueueSuppressionList{Total: 1}
			for range n {
				l.Entries = append(l.Entries, supp)
			}
			return l
		}, MaxQueueSuppressions},
		{"webhook", hook.WireSize(), &QueueWebhookList{}, func(n int) Message {
			l := &QueueWebhookList{Total: 1, More: true}
			for range n {
				l.Entries = append(l.Entries, hook)
			}
			return l
		}, MaxQueueWebhooks},
	}
	for _, tc := range cases {
		empty, err := encodePayload(tc.empty)
		if err != nil {
			t.Fatal(err)
		}
		one, err := encodePayload(tc.full(1))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := len(one) - len(empty); got != tc.size {
			t.Errorf("%s: encodes to %d bytes, WireSize says %d", tc.name, got, tc.size)
		}
		n := fill(tc.size, tc.max)
		if b, err := encodePayload(tc.full(n)); err != nil {
			t.Errorf("%s: %d entries within the budget do not encode: %v", tc.name, n, err)
		} else if len(b) > MaxPayload {
			t.Errorf("%s: %d bytes", tc.name, len(b))
		}
	}
}
