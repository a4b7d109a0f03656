package imapd

import (
	"bufio"
	"fmt"
	"strings"
	"testing"
	"time"

	"moxd/internal/storage/storetest"
)

// BenchmarkSelect measures a repeated plain SELECT of a mailbox of
// benchMessages messages on one connection (P4's select case, without
// TLS and in one process):
//
//	go test -p 2 ./internal/imapd/ -run '^$' -bench Select
func BenchmarkSelect(b *testing.B) {
	st := storetest.Start(b, testSlice)
	st.SetPassword(b, "mjl", "secret")
	fillBenchMailbox(b, st, benchMessages(b))
	nc := benchConn(b, st)
	br := bufio.NewReader(nc)
	n := 0
	cmd := func(s string) {
		n++
		tag := fmt.Sprintf("s%d", n)
		fmt.Fprintf(nc, "%s %s\r\n", tag, s)
		for {
			nc.SetReadDeadline(time.Now().Add(time.Minute))
			line, err := br.ReadString('\n')
			if err != nil {
				b.Fatal(err)
			}
			if strings.HasPrefix(line, tag+" ") {
				if !strings.HasPrefix(line, tag+" OK") {
					b.Fatalf("%s: %s", s, line)
				}
				return
			}
		}
	}
	br.ReadString('\n')
	cmd("LOGIN mjl@example.org secret")
	cmd("SELECT INBOX")
	b.ResetTimer()
	for range b.N {
		cmd("SELECT INBOX")
	}
}
