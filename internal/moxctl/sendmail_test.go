package moxctl

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseSendmailArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want *sendmailOpts
		err  string
	}{
		{[]string{"a@example.org"}, &sendmailOpts{dotEnds: true, rcpts: []string{"a@example.org"}}, ""},
		{[]string{"-t", "-i"}, &sendmailOpts{headers: true}, ""},
		{[]string{"-oi", "-f", "me@example.org", "-FMe Myself", "x@example.org"}, &sendmailOpts{from: "me@example.org", fullName: "Me Myself", rcpts: []string{"x@example.org"}}, ""},
		{[]string{"-fme@example.org", "-odi", "-oem", "-bm", "--", "-x@example.org"}, &sendmailOpts{from: "me@example.org", dotEnds: true, rcpts: []string{"-x@example.org"}}, ""},
		{[]string{"-N", "never", "-v", "y@example.org"}, &sendmailOpts{dotEnds: true, rcpts: []string{"y@example.org"}}, ""},
		{[]string{"-i"}, nil, "no recipients"},
		{[]string{"-bs"}, nil, "not supported"},
		{[]string{"-q"}, nil, "not supported"},
		{[]string{"-Z", "a@b"}, nil, "unknown option -Z"},
		{[]string{"-f"}, nil, "needs a value"},
	} {
		got, err := parseSendmailArgs(tc.args)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err %v, want %q", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: %+v, %v; want %+v", tc.args, got, err, tc.want)
		}
	}
}

func TestReadSendmailMessage(t *testing.T) {
	in := "Subject: x\n\nline\n.\nafter\n"
	got, err := readSendmailMessage(strings.NewReader(in), true)
	if err != nil || string(got) != "Subject: x\r\n\r\nline\r\n" {
		t.Fatalf("with dot ending: %q, %v", got, err)
	}
	got, err = readSendmailMessage(strings.NewReader(in), false)
	if err != nil || string(got) != "Subject: x\r\n\r\nline\r\n.\r\nafter\r\n" {
		t.Fatalf("with -i: %q, %v", got, err)
	}
}

func TestPrepareMessage(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	o := &sendmailOpts{headers: true, fullName: "Cron Daemon", rcpts: []string{"extra@example.org"}}
	msg := "To: a@example.org, B <b@example.org>\r\nCc: c@example.org\r\nBcc: hidden@example.org,\r\n secret@example.org\r\nSubject: report\r\n\r\nbody\r\n"
	got, rcpts, err := prepareMessage([]byte(msg), o, "root@example.org", "host.example.org", now)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"extra@example.org", "a@example.org", "b@example.org", "c@example.org", "hidden@example.org", "secret@example.org"}
	if !reflect.DeepEqual(rcpts, want) {
		t.Errorf("recipients %q, want %q", rcpts, want)
	}
	s := string(got)
	for _, w := range []string{"From: \"Cron Daemon\" <root@example.org>\r\n", "Date: Tue, 01 Dec 2026 10:00:00 +0000\r\n", "Message-ID: <", "@host.example.org>\r\n", "To: a@example.org, B <b@example.org>\r\n", "\r\n\r\nbody\r\n"} {
		if !strings.Contains(s, w) {
			t.Errorf("message lacks %q:\n%s", w, s)
		}
	}
	if strings.Contains(s, "Bcc") || strings.Contains(s, "secret") {
		t.Errorf("Bcc not removed:\n%s", s)
	}

	// A message with From, Date and Message-ID keeps them and gets none.
	msg = "From: me@example.org\r\nDate: Mon, 30 Nov 2026 00:00:00 +0000\r\nMessage-ID: <x@y>\r\nBcc: z@example.org\r\n\r\nbody\r\n"
	got, rcpts, err = prepareMessage([]byte(msg), &sendmailOpts{rcpts: []string{"r@example.org"}}, "root@example.org", "h", now)
	if err != nil || string(got) != msg || !reflect.DeepEqual(rcpts, []string{"r@example.org"}) {
		t.Fatalf("without -t: %q %q %v", got, rcpts, err)
	}
	if _, _, err := prepareMessage([]byte("Subject: x\r\n\r\n"), &sendmailOpts{headers: true}, "a@b", "h", now); err == nil {
		t.Fatal("-t without recipients accepted")
	}
}

func TestDeadLetter(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	p, err := saveDeadLetter([]byte("Subject: x\r\n\r\nFrom here on\r\n"), "me@example.org")
	if err != nil || p != filepath.Join(home, "dead.letter") {
		t.Fatalf("%q, %v", p, err)
	}
	b, _ := os.ReadFile(p)
	if !strings.HasPrefix(string(b), "From me@example.org ") || !strings.Contains(string(b), "\n>From here on\n") {
		t.Fatalf("dead.letter:\n%s", b)
	}
}
