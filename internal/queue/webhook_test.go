package queue

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"moxd/internal/config"
	"moxd/internal/ipc"
	"moxd/internal/queue/queueclient"
)

// hookServer records the webhook requests it gets; fail makes it answer
// 503 to the first n.
type hookServer struct {
	*httptest.Server
	mu   sync.Mutex
	got  []hookPayload
	auth []string
	fail int
}

func newHookServer(t *testing.T, fail int) *hookServer {
	hs := &hookServer{fail: fail}
	hs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		hs.mu.Lock()
		defer hs.mu.Unlock()
		if hs.fail > 0 {
			hs.fail--
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		var p hookPayload
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &p) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		hs.got = append(hs.got, p)
		hs.auth = append(hs.auth, r.Header.Get("Authorization"))
	}))
	t.Cleanup(hs.Close)
	return hs
}

func (hs *hookServer) payloads() ([]hookPayload, []string) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return append([]hookPayload(nil), hs.got...), append([]string(nil), hs.auth...)
}

func hookSlice(url string, allowPrivate bool, events ...string) config.QueueSlice {
	s := testSlice()
	s.Delivery.WebhookAllowPrivate = allowPrivate
	s.Accounts[0].Webhooks = []config.QueueWebhook{{Kind: "outgoing", URL: url, Authorization: "Bearer secret", Events: events}}
	return s
}

func waitTick(t *testing.T, what string, tick func(), ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(testDeadline)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timeout waiting for %s", what)
		}
		if tick != nil {
			tick()
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWebhookDelivered: a delivery of an account with an outgoing webhook
// is posted as JSON with the message's details and extra data.
func TestWebhookDelivered(t *testing.T) {
	hs := newHookServer(t, 0)
	tq := openTestQueue(t, mkdir(t), hookSlice(hs.URL+"/events", true), newFakeStore(), nil)
	ctx := testContext(t)
	s := tq.submitter(ipc.RoleSubmission)
	env := queueclient.Envelope{Token: tq.store.token("mjl", ipc.RoleSubmission), MailFrom: "mjl@example.org"}
	msg := "From: <mjl@example.org>\r\nTo: <other@example.org>\r\nSubject: hooked\r\nMessage-ID: <hook1@example.org>\r\nX-Moxd-Extra-Order: 42\r\n\r\nbody\r\n"
	id, err := submit(ctx, s, env, msg, "other@example.org")
	if err != nil {
		t.Fatal(err)
	}
	waitTick(t, "webhook request", nil, func() bool { l, _ := hs.payloads(); return len(l) == 1 })
	l, auth := hs.payloads()
	p := l[0]
	if p.Event != "delivered" || p.QueueMsgID != id || p.Recipient != "other@example.org" || p.From != "mjl@example.org" ||
		p.MessageID != "<hook1@example.org>" || p.Subject != "hooked" || p.Extra["order"] != "42" || p.SMTPCode != 250 || auth[0] != "Bearer secret" {
		t.Fatalf("payload %+v, authorization %q", p, auth[0])
	}
	waitTick(t, "retired webhook event", nil, func() bool {
		r, _ := tq.sv.q.Hooks("mjl", true, 0)
		return len(r) == 1 && r[0].Posted
	})
}

// TestWebhookRetry: a failing target is tried again with backoff, and
// only the events the webhook names are posted.
func TestWebhookRetry(t *testing.T) {
	hs := newHookServer(t, 1)
	tq := openTestQueue(t, mkdir(t), hookSlice(hs.URL, true, "failed"), newFakeStore(), nil)
	tq.store.state = func(addr string) uint8 {
		if strings.HasPrefix(addr, "gone") {
			return ipc.RcptUnknown
		}
		return ipc.RcptOK
	}
	ctx := testContext(t)
	s := tq.submitter(ipc.RoleSubmission)
	env := queueclient.Envelope{Token: tq.store.token("mjl", ipc.RoleSubmission), MailFrom: "mjl@example.org"}
	if _, err := submit(ctx, s, env, testMessage("mjl@example.org"), "other@example.org", "gone@example.org"); err != nil {
		t.Fatal(err)
	}
	waitTick(t, "first, failing, post", nil, func() bool {
		q, _ := tq.sv.q.Hooks("mjl", false, 0)
		return len(q) == 1 && q[0].Attempts == 1
	})
	q, _ := tq.sv.q.Hooks("mjl", false, 0)
	if !strings.Contains(q[0].LastError, "503") || q[0].Event != "failed" {
		t.Fatalf("queued event after a 503: %+v", q[0])
	}
	waitTick(t, "retried post", func() { tq.advance(hookFirstRetry); tq.sv.q.notifyHooks() }, func() bool { l, _ := hs.payloads(); return len(l) == 1 })
	l, _ := hs.payloads()
	if l[0].Event != "failed" || l[0].Recipient != "gone@example.org" || !l[0].Suppressing {
		t.Fatalf("payload %+v", l[0])
	}
}

// TestWebhookPrivateRefused: without webhook_allow_private, a target on
// loopback is not contacted.
func TestWebhookPrivateRefused(t *testing.T) {
	hs := newHookServer(t, 0)
	tq := openTestQueue(t, mkdir(t), hookSlice(hs.URL, false), newFakeStore(), nil)
	ctx := testContext(t)
	s := tq.submitter(ipc.RoleSubmission)
	env := queueclient.Envelope{Token: tq.store.token("mjl", ipc.RoleSubmission), MailFrom: "mjl@example.org"}
	if _, err := submit(ctx, s, env, testMessage("mjl@example.org"), "other@example.org"); err != nil {
		t.Fatal(err)
	}
	waitTick(t, "refused post", nil, func() bool {
		q, _ := tq.sv.q.Hooks("mjl", false, 0)
		return len(q) == 1 && q[0].Attempts == 1
	})
	q, _ := tq.sv.q.Hooks("mjl", false, 0)
	if !strings.Contains(q[0].LastError, "webhook_allow_private") {
		t.Fatalf("last error %q, want it to name webhook_allow_private", q[0].LastError)
	}
	if l, _ := hs.payloads(); len(l) != 0 {
		t.Fatalf("server got %d requests", len(l))
	}
}
