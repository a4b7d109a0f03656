package moxctl

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"moxd/internal/ctl"
	"moxd/internal/ipc"
)

// TestDNSUsage: wrong arguments are refused without a running moxd.
func TestDNSUsage(t *testing.T) {
	for _, args := range [][]string{{"dns"}, {"dns", "check"}, {"dns", "check", "a.example", "b.example"}, {"dns", "frob", "a.example"}} {
		code, stdout, stderr := run(append([]string{"-f", "/nonexistent/moxd.conf"}, args...)...)
		if code != ExitUsage || stdout != "" || !strings.Contains(stderr, "usage: moxctl dns records DOMAIN") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
}

// TestDNSCommands: the requests moxctl sends, how it shows the answers,
// and its exit status.
func TestDNSCommands(t *testing.T) {
	report := "DNS check of example.org for this host mail.example.org, with moxd-queue's resolver:\nOK    MX: 10 mail.example.org\n"
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
		{name: "check ok", args: []string{"dns", "check", "example.org"}, resp: ipc.QueueText{Text: report + "INFO  MTA-STS: no record\n"},
			wantReq: ctl.Request{Cmd: "dns check", Args: []string{"example.org"}}, out: []string{report, "INFO  MTA-STS"}},
		{name: "check problems", args: []string{"dns", "check", "example.org"},
			resp:    ipc.QueueText{Text: report + "WARN  SPF: does not allow 198.51.100.7 of transport \"proxy\"\nERROR DKIM: \x1b[2Jwrong key"},
			wantReq: ctl.Request{Cmd: "dns check", Args: []string{"example.org"}}, code: ExitFailed,
			out: []string{"WARN  SPF: does not allow 198.51.100.7", "ERROR DKIM: ?[2Jwrong key\n"}, notOut: []string{"\x1b"}},
		{name: "check json", args: []string{"-j", "dns", "check", "example.org"}, resp: ipc.QueueText{Text: report + "ERROR DKIM: x\n"},
			wantReq: ctl.Request{Cmd: "dns check", Args: []string{"example.org"}}, code: ExitFailed,
			out: []string{`"text": "DNS check of example.org`, `"warnings": 0`, `"errors": 1`}},
		{name: "check refused", args: []string{"dns", "check", "example.net"}, refuse: `domain "example.net" is not configured`,
			wantReq: ctl.Request{Cmd: "dns check", Args: []string{"example.net"}}, code: ExitFailed, errOut: "not configured"},
		{name: "records", args: []string{"dns", "records", "example.org"}, resp: ctl.DNSRecords{Domain: "example.org", Records: []ctl.DNSRecord{
			{Name: "example.org.", Type: "MX", Value: "10 mail.example.org."},
			{Name: "s1._domainkey.example.org.", Type: "TXT", Value: `"v=DKIM1; k=ed25519; p=abc"`},
		}}, wantReq: ctl.Request{Cmd: "dns records", Args: []string{"example.org"}},
			out: []string{"example.org. IN MX 10 mail.example.org.\ns1._domainkey.example.org. IN TXT \"v=DKIM1; k=ed25519; p=abc\"\n"}},
		{name: "records without keys", args: []string{"dns", "records", "example.org"},
			resp:    ctl.DNSRecords{Domain: "example.org", Records: []ctl.DNSRecord{{Name: "example.org.", Type: "MX", Value: "10 mail.example.org."}}, Warning: "keys unavailable"},
			wantReq: ctl.Request{Cmd: "dns records", Args: []string{"example.org"}}, code: ExitFailed,
			out: []string{"example.org. IN MX"}, errOut: "warning: keys unavailable"},
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
			code, stdout, stderr := runIn(t, nil, append([]string{"-f", p}, tc.args...)...)
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
				t.Errorf("requests %+v, want [%+v]", reqs, tc.wantReq)
			}
		})
	}
}
