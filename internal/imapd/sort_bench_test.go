package imapd

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"moxd/internal/ipc"
	"moxd/internal/storage/storeclient"
	"moxd/internal/storage/storetest"
)

// benchMessages is the mailbox size of BenchmarkSortThread;
// MOXD_BENCH_MESSAGES changes it.
func benchMessages(b *testing.B) int {
	if s := os.Getenv("MOXD_BENCH_MESSAGES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("MOXD_BENCH_MESSAGES %q: want a positive number", s)
		}
		return n
	}
	return 10000
}

// benchMessage is message i of the benchmark mailbox: threads of ten
// messages, each replying to the one before, from fifty senders.
func benchMessage(i int) string {
	root := i / 10 * 10
	var refs []string
	for j := root; j < i; j++ {
		refs = append(refs, fmt.Sprintf("<%d@bench.example>", j))
	}
	subject := fmt.Sprintf("topic %d", i/10)
	if i != root {
		subject = "Re: " + subject
	}
	h := fmt.Sprintf("From: User %d <user%d@example.net>\r\nTo: mjl@example.org\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%d@bench.example>\r\n",
		i%50, i%50, subject, benchDate(i).Format(time.RFC1123Z), i)
	if len(refs) > 0 {
		h += "In-Reply-To: " + refs[len(refs)-1] + "\r\nReferences: " + strings.Join(refs, " ") + "\r\n"
	}
	return h + "\r\n" + strings.Repeat("body text\r\n", 20)
}

// benchDate is the Date of message i: scattered over 70 days.
func benchDate(i int) time.Time {
	return time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i*7919%100000) * time.Minute)
}

// fillBenchMailbox appends n messages to INBOX, a hundred per call.
func fillBenchMailbox(b testing.TB, st *storetest.Store, n int) {
	ctx, cancel := context.WithTimeout(b.Context(), 10*time.Minute)
	defer cancel()
	tok := st.Login(b, ipc.RoleIMAP, "mjl@example.org", "secret")
	s, err := storeclient.OpenSession(ctx, st.Peer(ipc.RoleIMAP), tok)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for start := 0; start < n; start += ipc.MaxAppendMessages {
		f, err := os.Create(filepath.Join(b.TempDir(), "batch"))
		if err != nil {
			b.Fatal(err)
		}
		var msgs []storeclient.AppendMessage
		for i := start; i < min(n, start+ipc.MaxAppendMessages); i++ {
			text := benchMessage(i)
			if _, err := f.WriteString(text); err != nil {
				b.Fatal(err)
			}
			msgs = append(msgs, storeclient.AppendMessage{Size: int64(len(text))})
		}
		if _, err := s.AppendAll(ctx, "INBOX", f, 0, msgs); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}

// benchConn starts a server on st for the benchmark and returns a client
// connection to it; plain-text LOGIN works (loopback).
func benchConn(b *testing.B, st *storetest.Store) net.Conn {
	srv := &Server{Store: st.Peer(ipc.RoleIMAP), Hostname: "mail.example.org", PlaintextLoopback: true}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			go srv.Serve(b.Context(), nc, false)
		}
	}()
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { nc.Close() })
	return nc
}

// BenchmarkSortThread measures SORT and THREAD over a whole mailbox,
// through the IMAP server and a real store:
//
//	go test -p 2 ./internal/imapd/ -run '^$' -bench SortThread -benchtime 3x
func BenchmarkSortThread(b *testing.B) {
	n := benchMessages(b)
	st := storetest.Start(b, testSlice)
	st.SetPassword(b, "mjl", "secret")
	fillBenchMailbox(b, st, n)

	nc := benchConn(b, st)
	br := bufio.NewReaderSize(nc, 64<<10)
	tag := 0
	// cmd sends a command and returns its untagged lines.
	cmd := func(s string) []string {
		tag++
		t := "b" + strconv.Itoa(tag)
		if _, err := fmt.Fprintf(nc, "%s %s\r\n", t, s); err != nil {
			b.Fatal(err)
		}
		var untagged []string
		for {
			nc.SetReadDeadline(time.Now().Add(5 * time.Minute))
			line, err := br.ReadString('\n')
			if err != nil {
				b.Fatalf("%s: %v", s, err)
			}
			line = strings.TrimSuffix(line, "\r\n")
			if rest, ok := strings.CutPrefix(line, t+" "); ok {
				if !strings.HasPrefix(rest, "OK") {
					b.Fatalf("%s: %s", s, rest)
				}
				return untagged
			}
			untagged = append(untagged, line)
		}
	}
	br.ReadString('\n') // greeting
	cmd("LOGIN mjl@example.org secret")
	cmd("SELECT INBOX")

	for _, bc := range []struct{ name, cmd, resp string }{
		{"SORT-ARRIVAL", "SORT (ARRIVAL) UTF-8 ALL", "* SORT "},
		{"SORT-SUBJECT", "SORT (SUBJECT) UTF-8 ALL", "* SORT "},
		{"SORT-FROM-DATE", "SORT (FROM DATE) UTF-8 ALL", "* SORT "},
		{"THREAD-REFERENCES", "THREAD REFERENCES UTF-8 ALL", "* THREAD "},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				u := cmd(bc.cmd)
				if len(u) != 1 || !strings.HasPrefix(u[0], bc.resp) {
					b.Fatalf("%s: unexpected response %.200q", bc.cmd, u)
				}
				// Every message is in the answer once.
				nums := strings.FieldsFunc(u[0][len(bc.resp):], func(r rune) bool { return r < '0' || r > '9' })
				if got := len(nums); got != n {
					b.Fatalf("%s: %d numbers, want %d", bc.cmd, got, n)
				}
			}
		})
	}
}
