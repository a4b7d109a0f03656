package queue

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"moxd/internal/ipc"
)

// TestAdminWebhooks: queued and retired webhook events as master gets
// them: every field but the Authorization value, which appears nowhere in
// a reply, long texts clipped, and pages that each fit a frame.
func TestAdminWebhooks(t *testing.T) {
	aq := newAdminQueue(t, testSlice())
	const auth = "Bearer s3cret-token"
	hooks := []*Hook{
		{Account: "mjl", URL: "https://hooks.example.net/moxd", Auth: auth, Event: "delivered",
			Payload: []byte(`{"event":"delivered","recipient":"a@example.net"}`), Queued: adminNow, NextAttempt: adminNow.Add(time.Minute),
			Attempts: 1, LastError: "hooks.example.net answered 401 Unauthorized: bad token " + auth},
		{Account: "other", URL: "https://other.example.net/", Auth: "Basic b3RoZXI6cGFzc3dvcmQ=", Event: "failed",
			Payload: []byte(`{"event":"failed","error":"` + strings.Repeat("ö", 1000) + `"}`), Queued: adminNow.Add(time.Second),
			NextAttempt: adminNow.Add(time.Second), LastError: strings.Repeat("x", 2000)},
	}
	err := aq.q.do(func(w *wtx) error {
		for _, h := range hooks {
			if err := w.insertHook(h); err != nil {
				return err
			}
		}
		// A retired event, posted: retired time · id.
		rb, err := w.tx.CreateBucketIfNotExists([]byte(bucketHookRetired))
		if err != nil {
			return err
		}
		r := &Hook{ID: 99, Account: "mjl", URL: "https://hooks.example.net/moxd", Auth: auth, Event: "delayed",
			Payload: []byte(`{"event":"delayed"}`), Queued: adminNow.Add(-time.Hour), NextAttempt: adminNow.Add(-time.Hour),
			Attempts: 2, LastError: "200 OK", Posted: true}
		k := binary.BigEndian.AppendUint64(nil, uint64(adminNow.UnixNano()))
		return rb.Put(binary.BigEndian.AppendUint64(k, r.ID), r.marshal())
	})
	if err != nil {
		t.Fatal(err)
	}

	call := func(m *ipc.QueueWebhooks) *ipc.QueueWebhookList {
		t.Helper()
		return adminHooks(t, aq, m, "s3cret-token", "b3RoZXI6cGFzc3dvcmQ=")
	}

	l := call(&ipc.QueueWebhooks{})
	if l.Total != 2 || l.More || len(l.Entries) != 2 {
		t.Fatalf("queued: %+v", l)
	}
	e := l.Entries[0]
	want := ipc.QueueWebhook{ID: hooks[0].ID, Account: "mjl", URL: "https://hooks.example.net/moxd", Event: "delivered",
		Queued: adminNow.UnixNano(), Attempts: 1, NextAttempt: adminNow.Add(time.Minute).UnixNano(),
		LastError: "hooks.example.net answered 401 Unauthorized: bad token [authorization]",
		Payload:   `{"event":"delivered","recipient":"a@example.net"}`}
	if e != want {
		t.Errorf("entry\n%+v, want\n%+v", e, want)
	}
	if e := l.Entries[1]; e.ID != hooks[1].ID || len(e.LastError) != ipc.MaxQueueError || len(e.Payload) > ipc.MaxQueueHookPayload ||
		len(e.Payload) < ipc.MaxQueueHookPayload-1 || !strings.HasPrefix(e.Payload, `{"event":"failed","error":"ööö`) {
		t.Errorf("clipped entry: error of %d bytes, payload of %d: %.40q", len(e.LastError), len(e.Payload), e.Payload)
	}

	l = call(&ipc.QueueWebhooks{Account: "other"})
	if l.Total != 1 || len(l.Entries) != 1 || l.Entries[0].Account != "other" {
		t.Errorf("queued of other: %+v", l)
	}
	l = call(&ipc.QueueWebhooks{Start: 1, Max: 1})
	if l.Total != 2 || l.More || len(l.Entries) != 1 || l.Entries[0].ID != hooks[1].ID {
		t.Errorf("from 1: %+v", l)
	}
	l = call(&ipc.QueueWebhooks{Max: 1})
	if l.Total != 2 || !l.More || len(l.Entries) != 1 || l.Entries[0].ID != hooks[0].ID {
		t.Errorf("at most 1: %+v", l)
	}
	l = call(&ipc.QueueWebhooks{Start: 10})
	if l.Total != 2 || l.More || len(l.Entries) != 0 {
		t.Errorf("past the end: %+v", l)
	}

	l = call(&ipc.QueueWebhooks{Retired: true, Account: "mjl"})
	want = ipc.QueueWebhook{ID: 99, Account: "mjl", URL: "https://hooks.example.net/moxd", Event: "delayed",
		Queued: adminNow.Add(-time.Hour).UnixNano(), Attempts: 2, NextAttempt: adminNow.Add(-time.Hour).UnixNano(),
		LastError: "200 OK", Posted: true, Payload: `{"event":"delayed"}`}
	if l.Total != 1 || len(l.Entries) != 1 || l.Entries[0] != want {
		t.Errorf("retired: %+v", l)
	}
	if l := call(&ipc.QueueWebhooks{Retired: true, Account: "other"}); l.Total != 0 || len(l.Entries) != 0 {
		t.Errorf("retired of other: %+v", l)
	}
}

// TestAdminWebhookPages: many events with large payloads come in pages
// that each fit a frame.
func TestAdminWebhookPages(t *testing.T) {
	aq := newAdminQueue(t, testSlice())
	const n = 150
	err := aq.q.do(func(w *wtx) error {
		for range n {
			h := &Hook{Account: "mjl", URL: "https://hooks.example.net/" + strings.Repeat("p", 500), Auth: "Bearer x", Event: "failed",
				Payload: []byte(strings.Repeat("<", 3000)), Queued: adminNow, NextAttempt: adminNow, LastError: strings.Repeat("e", 500)}
			if err := w.insertHook(h); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []ipc.QueueWebhook
	pages := 0
	for {
		l := adminHooks(t, aq, &ipc.QueueWebhooks{Start: uint32(len(got))}, "Bearer x")
		pages++
		if l.Total != n || len(l.Entries) == 0 {
			t.Fatalf("page %d: total %d, %d entries", pages, l.Total, len(l.Entries))
		}
		got = append(got, l.Entries...)
		if !l.More {
			break
		}
	}
	if len(got) != n || pages < 3 {
		t.Errorf("%d events in %d pages", len(got), pages)
	}
	for i, e := range got {
		if e.ID != got[0].ID+uint64(i) {
			t.Errorf("event %d has id %d", i, e.ID)
		}
	}
}

// adminHooks is queue's reply to m as master gets it: encoded in one
// frame and decoded. None of secrets may be in the frame.
func adminHooks(t *testing.T, aq *adminQueue, m *ipc.QueueWebhooks, secrets ...string) *ipc.QueueWebhookList {
	t.Helper()
	rep, err := aq.sv.serveAdmin(m)
	if err != nil {
		t.Fatalf("%+v: %v", m, err)
	}
	b, err := ipc.EncodeFrame(ipc.Header{Type: rep.Type(), Flags: ipc.FlagReply, ID: 1}, rep)
	if err != nil {
		t.Fatalf("%+v: reply does not encode: %v", m, err)
	}
	for _, s := range secrets {
		if bytes.Contains(b, []byte(s)) {
			t.Errorf("%+v: reply has the authorization %q", m, s)
		}
	}
	_, dec, err := ipc.DecodeFrame(b, 0)
	if err != nil {
		t.Fatalf("%+v: reply does not decode: %v", m, err)
	}
	return dec.(*ipc.QueueWebhookList)
}
