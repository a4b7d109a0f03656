package master

import (
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"

	"moxd/internal/config"
	"moxd/internal/ctl"
	"moxd/internal/ipc"
)

// fakeDNSQueue answers dns checks with a fixed report and records them.
type fakeDNSQueue struct {
	mu  sync.Mutex
	got []*ipc.QueueDNSCheck
}

func (f *fakeDNSQueue) handle(req *ipc.Request) (ipc.Message, []*os.File, error) {
	closeAll(req.Files)
	m, ok := req.Msg.(*ipc.QueueDNSCheck)
	if !ok {
		return nil, nil, ipc.Errorf(ipc.CodeBadRequest, "unexpected %s", req.Msg.Type())
	}
	f.mu.Lock()
	f.got = append(f.got, m)
	f.mu.Unlock()
	return &ipc.QueueText{Text: "DNS check of " + m.Domain + ":\nWARN  SPF: no SPF record\n"}, nil, nil
}

func (f *fakeDNSQueue) requests() []*ipc.QueueDNSCheck {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.got
	f.got = nil
	return l
}

// TestDNSCheckCommand: "dns check" goes to queue with the DKIM records of
// keys, and queue's report comes back as it is; bad arguments never reach
// queue.
func TestDNSCheckCommand(t *testing.T) {
	tm := newTestMaster(t, ackStore, keysFake)
	if err := tm.call(t, ctl.Request{Cmd: "dns check", Args: []string{"example.com"}}, nil); err == nil || !strings.Contains(err.Error(), "queue unavailable") {
		t.Errorf("check without queue: %v", err)
	}
	fq := &fakeDNSQueue{}
	tm.queue = tm.connect(t, ipc.RoleQueue, fq.handle)

	for _, tc := range []struct {
		args    []string
		wantErr string
	}{
		{nil, "usage: dns check DOMAIN"},
		{[]string{"example.com", "x"}, "usage: dns check DOMAIN"},
		{[]string{"example.net"}, `domain "example.net" is not configured`},
		{[]string{"-bad-"}, "is not configured"},
	} {
		if err := tm.call(t, ctl.Request{Cmd: "dns check", Args: tc.args}, nil); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("dns check %q: %v, want error with %q", tc.args, err, tc.wantErr)
		}
	}
	if got := fq.requests(); len(got) > 0 {
		t.Errorf("refused checks reached queue: %+v", got)
	}

	var text ipc.QueueText
	if err := tm.call(t, ctl.Request{Cmd: "dns check", Args: []string{"Example.COM."}}, &text); err != nil {
		t.Fatal(err)
	}
	if text.Text != "DNS check of example.com:\nWARN  SPF: no SPF record\n" {
		t.Errorf("answer %q", text.Text)
	}
	want := &ipc.QueueDNSCheck{Domain: "example.com", DKIM: []ipc.QueueDNSCheckDKIM{{Selector: "s1", Record: "v=DKIM1; k=ed25519; p=" + strings.Repeat("E", 44)}}}
	if got := fq.requests(); len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Errorf("queue got %+v, want %+v", got, want)
	}
	if lines := tm.auditLinesOrNone(t); len(lines) > 0 {
		t.Errorf("a check was audited: %q", lines)
	}

	// With keys down queue still checks, without the expected keys.
	tm2 := newTestMaster(t, ackStore, nil)
	fq2 := &fakeDNSQueue{}
	tm2.queue = tm2.connect(t, ipc.RoleQueue, fq2.handle)
	if err := tm2.call(t, ctl.Request{Cmd: "dns check", Args: []string{"example.com"}}, &text); err != nil {
		t.Fatal(err)
	}
	want.DKIM[0].Record = ""
	if got := fq2.requests(); len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Errorf("queue got %+v with keys down, want %+v", got, want)
	}
}

// TestDNSRecordsCommand: the records of a domain, with its DKIM keys, and
// a warning when keys cannot give them.
func TestDNSRecordsCommand(t *testing.T) {
	tm := newTestMaster(t, ackStore, keysFake)
	var res ctl.DNSRecords
	if err := tm.call(t, ctl.Request{Cmd: "dns records", Args: []string{"example.com"}}, &res); err != nil {
		t.Fatal(err)
	}
	want := []ctl.DNSRecord{
		{Name: "example.com.", Type: "MX", Value: "10 mail.example.com."},
		{Name: "example.com.", Type: "TXT", Value: `"v=spf1 mx -all"`},
		{Name: "_dmarc.example.com.", Type: "TXT", Value: `"v=DMARC1;p=reject;rua=mailto:postmaster@example.com"`},
		{Name: "s1._domainkey.example.com.", Type: "TXT", Value: `"v=DKIM1; k=ed25519; p=` + strings.Repeat("E", 44) + `"`},
	}
	if res.Domain != "example.com" || res.Warning != "" || !reflect.DeepEqual(res.Records, want) {
		t.Errorf("records %+v, want %+v", res, want)
	}
	if err := tm.call(t, ctl.Request{Cmd: "dns records", Args: []string{"nope.example"}}, &res); err == nil || !strings.Contains(err.Error(), "not configured") {
		t.Errorf("records of an unknown domain: %v", err)
	}

	tm2 := newTestMaster(t, ackStore, nil)
	res = ctl.DNSRecords{}
	if err := tm2.call(t, ctl.Request{Cmd: "dns records", Args: []string{"example.com"}}, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Records) != 3 || !strings.Contains(res.Warning, "keys unavailable") {
		t.Errorf("records with keys down: %+v", res)
	}
}

// TestSPFAddresses: the SPF mechanisms for the addresses mail leaves
// from, each once.
func TestSPFAddresses(t *testing.T) {
	st := &config.Static{
		Queue: config.QueueSettings{SourceIPs: []string{"192.0.2.25", "2001:db8::25"}},
		Transports: []config.Transport{
			{Name: "proxy", Kind: config.TransportSocks, RemoteIPs: []string{"198.51.100.7", "::ffff:192.0.2.25"}},
			{Name: "relay", Kind: config.TransportSubmission, SourceIPs: []string{"203.0.113.1"}},
			{Name: "other", Kind: config.TransportDirect, SourceIPs: []string{"203.0.113.2"}},
		},
	}
	got := spfAddresses(st)
	want := []string{"ip4:192.0.2.25", "ip6:2001:db8::25", "ip4:198.51.100.7", "ip4:203.0.113.2"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
