package storetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"moxd/internal/config"
	"moxd/internal/ipc"
	"moxd/internal/storage/storeclient"
)

var slice = config.StoreSlice{
	Domains:  []config.AddrDomain{{Name: "example.org"}},
	Accounts: []config.StoreAccount{{Name: "mjl", Addresses: []string{"mjl@example.org"}}},
}

func testMessage(i int) string {
	return fmt.Sprintf("From: sender@example.net\r\nTo: mjl@example.org\r\nSubject: test %d\r\n\r\nHello %d.\r\n", i, i)
}

func TestSession(t *testing.T) {
	st := Start(t, slice)
	st.SetPassword(t, "mjl", "secret")
	ctx, cancel := context.WithTimeout(t.Context(), Timeout)
	defer cancel()

	// A wrong password fails like it would for a user.
	a := storeclient.NewAuth(st.Peer(ipc.RoleIMAP))
	if _, err := a.Start(ctx, "PLAIN", netip.MustParseAddr("192.0.2.1"), true, nil, []byte("\x00mjl@example.org\x00wrong"), true); !errors.Is(err, storeclient.ErrAuthFailed) {
		t.Fatalf("wrong password: %v, want ErrAuthFailed", err)
	}

	tok := st.Login(t, ipc.RoleIMAP, "mjl@example.org", "secret")
	s, err := storeclient.OpenSession(ctx, st.Peer(ipc.RoleIMAP), tok)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Account != "mjl" {
		t.Fatalf("session account %q, want mjl", s.Account)
	}
	// The token is for imap's channel only.
	if _, err := storeclient.OpenSession(ctx, st.Peer(ipc.RoleWeb), tok); err == nil {
		t.Fatal("imap's token opened a session on web's channel")
	}

	// A new account has INBOX and the special-use mailboxes.
	mbs, err := s.Mailboxes(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mb := range mbs {
		names = append(names, mb.Name)
	}
	slices.Sort(names)
	if got, want := fmt.Sprint(names), "[Archive Drafts INBOX Junk Sent Trash]"; got != want {
		t.Fatalf("mailboxes %s, want %s", got, want)
	}

	// Three deliveries, read back.
	for i := 1; i <= 3; i++ {
		if uid := st.Deliver(t, "mjl@example.org", testMessage(i)); uid != uint32(i) {
			t.Fatalf("delivery %d got uid %d", i, uid)
		}
	}
	inbox, err := s.Mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if inbox.Messages != 3 || inbox.Unseen != 3 || inbox.UIDNext != 4 {
		t.Fatalf("INBOX %+v, want 3 unseen messages, uidnext 4", inbox)
	}
	ref := s.Ref(inbox)
	var uids []uint32
	err = s.Messages(ctx, ref, 1, func(_ []string, l []ipc.MessageMeta) bool {
		for _, m := range l {
			uids = append(uids, m.UID)
		}
		return true
	})
	if err != nil || fmt.Sprint(uids) != "[1 2 3]" {
		t.Fatalf("messages %v, %v; want [1 2 3]", uids, err)
	}
	for i := 1; i <= 3; i++ {
		if got := readMessage(t, s, ref, uint32(i)); got != testMessage(i) {
			t.Errorf("message %d reads %q, want %q", i, got, testMessage(i))
		}
	}

	// \Seen on 2, then only 2 changed since the modseq before.
	before := inbox.HighestModSeq
	stored, err := s.Store(ctx, ref, []ipc.UIDRange{{First: 2, Last: 2}}, ipc.StoreAdd, ipc.FlagSeen, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Changed != 1 || stored.ToModSeq <= before {
		t.Fatalf("store flags: %+v, want 1 changed after modseq %d", stored, before)
	}
	var changed []ipc.MessageMeta
	highest, err := s.Changes(ctx, ref, before, func(r *ipc.ChangesReply) bool {
		changed = append(changed, r.Changed...)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(changed) != 1 || changed[0].UID != 2 || changed[0].Flags&ipc.FlagSeen == 0 {
		t.Fatalf("changes since %d: %+v, want uid 2 with \\Seen", before, changed)
	}
	if highest != stored.ToModSeq {
		t.Errorf("highest modseq %d, want %d", highest, stored.ToModSeq)
	}
	if inbox, err = s.Mailbox(ctx, "INBOX"); err != nil || inbox.Unseen != 2 {
		t.Errorf("INBOX after \\Seen: %+v %v, want 2 unseen", inbox, err)
	}
}

func readMessage(t *testing.T, s *storeclient.Session, ref ipc.MailboxRef, uid uint32) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), Timeout)
	defer cancel()
	m, err := s.Open(ctx, ref, uid, true)
	if err != nil {
		t.Fatalf("open message %d: %v", uid, err)
	}
	defer m.File.Close()
	data, err := io.ReadAll(m.File)
	if err != nil {
		t.Fatalf("read message %d: %v", uid, err)
	}
	if int64(len(data)) != m.FileSize {
		t.Errorf("message %d: read %d bytes, store says %d", uid, len(data), m.FileSize)
	}
	return string(m.Prefix) + string(data)
}

// TestEvents: a role's newest channel gets the change events of its
// sessions' accounts.
func TestEvents(t *testing.T) {
	st := Start(t, slice)
	st.SetPassword(t, "mjl", "pw")
	events := make(chan ipc.Message, 100)
	c := st.Conn(t, ipc.RoleIMAP, ipc.HandlerFunc(func(_ context.Context, req *ipc.Request) (ipc.Message, []*os.File, error) {
		select {
		case events <- req.Msg:
		default:
		}
		return nil, nil, nil
	}))
	ctx, cancel := context.WithTimeout(t.Context(), Timeout)
	defer cancel()
	peer := func() (*ipc.Conn, error) { return c, nil }
	step, err := storeclient.NewAuth(peer).Start(ctx, "PLAIN", netip.MustParseAddr("192.0.2.1"), true, nil, []byte("\x00mjl\x00pw"), true)
	if err != nil || !step.Done {
		t.Fatalf("login: %+v %v", step, err)
	}
	s, err := storeclient.OpenSession(ctx, peer, step.Token)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	inbox, err := s.Mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}

	st.Deliver(t, "mjl@example.org", testMessage(1))
	deadline := time.After(Timeout)
	for {
		select {
		case m := <-events:
			if mc, ok := m.(*ipc.MailboxChanged); ok && mc.Account == "mjl" && mc.Mailbox == inbox.ID && mc.ModSeq > inbox.HighestModSeq {
				return
			}
		case <-deadline:
			t.Fatal("no change event for INBOX after a delivery")
		}
	}
}

// TestClose: Close ends the channels, and a second Close is harmless.
func TestClose(t *testing.T) {
	st := Start(t, slice)
	c, err := st.Peer(ipc.RoleSMTP)()
	if err != nil {
		t.Fatal(err)
	}
	st.TS.Close()
	select {
	case <-c.Done():
	case <-time.After(Timeout):
		t.Fatal("channel still up after Close")
	}
	if _, err := st.TS.Conn(ipc.RoleSMTP, nil); err == nil {
		t.Fatal("Conn after Close made a channel")
	}
}
