//go:build linux

package integration

// Incoming events from store to queue, through the real processes: a
// message sent with unique_mail_from is delivered to smtp-sink, then a
// DSN for it arrives on port 25 from the null sender at the unique MAIL
// FROM; store recognizes it and tells queue, which suppresses the failed
// address, notes the DSN in the retired record and posts an outgoing
// "failed" event, and the account's incoming webhook gets the delivery.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/smtp"
	"strings"
	"sync"
	"testing"
	"time"
)

// incomingUID is the base uid of the incoming events test's instance.
const incomingUID = 64870

const incomingDomains = `[[domain]]
name = "localhost"
localpart_separators = ["+"]

[[account]]
name = "mox"
addresses = ["mox@localhost", "postmaster@localhost"]
unique_mail_from = true

[[account.webhook]]
kind = "outgoing"
url = "%[1]s/out"
events = ["failed"]

[[account.webhook]]
kind = "incoming"
url = "%[1]s/in"
`

// webhookRecorder is an HTTP server recording the JSON posted to it.
type webhookRecorder struct {
	*httptest.Server
	mu  sync.Mutex
	got map[string][]map[string]any // by path
}

func startWebhookRecorder(t *testing.T) *webhookRecorder {
	wr := &webhookRecorder{got: map[string][]map[string]any{}}
	wr.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var p map[string]any
		if err := json.Unmarshal(b, &p); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		wr.mu.Lock()
		wr.got[r.URL.Path] = append(wr.got[r.URL.Path], p)
		wr.mu.Unlock()
	}))
	t.Cleanup(wr.Close)
	return wr
}

func (wr *webhookRecorder) posted(path string) []map[string]any {
	wr.mu.Lock()
	defer wr.mu.Unlock()
	return append([]map[string]any(nil), wr.got[path]...)
}

func TestIncomingDSNAndWebhook(t *testing.T) {
	needRoot(t)
	sink := startSink(t)
	hooks := startWebhookRecorder(t)
	env := startOutboundDomains(t, incomingUID, fmt.Sprintf(incomingDomains, hooks.URL), outOptions{
		records: []string{"sink.test. 300 IN MX 10 mx.sink.test.", "mx.sink.test. 300 IN A 127.0.0.1"},
		port:    sink.port,
		queue:   "webhook_allow_private = true\n",
	})
	const rcpt = "user@sink.test"
	env.submit("mox@localhost", []string{rcpt}, outMessage("incoming-1@outbound.test", rcpt, "later bounced"))
	env.waitQueueEmpty(60*time.Second, sink.output)

	// The MAIL FROM the sink got carries the unique id.
	var bounceTo string
	for _, c := range sink.commands() {
		if rest, ok := strings.CutPrefix(c, "MAIL FROM:<mox+"); ok {
			id, _, _ := strings.Cut(rest, "@")
			bounceTo = "mox+" + id + "@localhost"
		}
	}
	if bounceTo == "" {
		t.Fatalf("no MAIL FROM with a unique id\n%s", sink.output())
	}

	// The receiving side bounces later, from the null sender.
	dsn := "From: Mail Delivery System <MAILER-DAEMON@sink.test>\r\nTo: " + bounceTo + "\r\n" +
		"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <bounce-1@sink.test>\r\n" +
		"Date: " + time.Now().Format(time.RFC1123Z) + "\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain\r\n\r\nThe mailbox does not exist.\r\n" +
		"--b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.sink.test\r\n\r\n" +
		"Final-Recipient: rfc822; " + rcpt + "\r\nAction: failed\r\nStatus: 5.1.1\r\n" +
		"Diagnostic-Code: smtp; 550 5.1.1 <" + rcpt + ">: User unknown in local recipient table\r\n" +
		"--b1\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <incoming-1@outbound.test>\r\n" +
		"--b1--\r\n"
	c, err := smtp.Dial(listenerAddr(env.in.waitReady(), "smtp"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Hello("mx.sink.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail(""); err != nil {
		t.Fatalf("MAIL FROM:<>: %v", err)
	}
	if err := c.Rcpt(bounceTo); err != nil {
		t.Fatalf("RCPT TO:<%s>: %v", bounceTo, err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(dsn)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("data: %v", err)
	}
	c.Quit()

	// What a user checks: the address is suppressed, the retired record
	// says what the DSN said, and both webhooks were posted.
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, code := moxctlRun(t, env.in.conf, "", "queue", "suppress", "lookup", "mox", rcpt)
		if code == 0 && strings.Contains(out, rcpt+" is suppressed for mox") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("address not suppressed after the DSN: exit %d\n%s\nmoxd log:\n%s", code, out, env.in.stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}
	out, code := moxctlRun(t, env.in.conf, "", "-j", "queue", "retired", "list")
	if code != 0 || !strings.Contains(out, "remote DSN: failed 5.1.1: 550 5.1.1") {
		t.Errorf("moxctl queue retired list: exit %d, want the remote DSN in the history:\n%s", code, out)
	}
	for time.Now().Before(deadline) && (len(hooks.posted("/out")) == 0 || len(hooks.posted("/in")) == 0) {
		time.Sleep(200 * time.Millisecond)
	}
	if l := hooks.posted("/out"); len(l) != 1 || l[0]["event"] != "failed" || l[0]["recipient"] != rcpt || l[0]["suppressing"] != true {
		t.Errorf("outgoing webhook events %v", l)
	}
	l := hooks.posted("/in")
	if len(l) != 1 {
		t.Fatalf("incoming webhook events %v", l)
	}
	p := l[0]
	d, _ := p["dsn"].(map[string]any)
	if p["event"] != "incoming" || p["to"] != bounceTo || p["mailFrom"] != "" || p["messageID"] != "<bounce-1@sink.test>" ||
		p["from"] != "MAILER-DAEMON@sink.test" || d == nil || d["queueMsgID"] == nil || !strings.HasSuffix(bounceTo, "+"+fmt.Sprint(d["fromID"])+"@localhost") {
		t.Errorf("incoming webhook event %v", p)
	}
	st := env.in.waitReady()
	if n, _ := counter(st, "store", "incoming_events_sent"); n != 1 {
		t.Errorf("store sent %d incoming events, want 1", n)
	}
	if n, _ := counter(st, "queue", "dsns_matched"); n != 1 {
		t.Errorf("queue matched %d DSNs, want 1", n)
	}
}
