//go:build linux

package imapdiff

// The moxd target: the IMAP server of moxd-imap (internal/imapd) in this
// test process, with a real store (storetest) holding one account per
// script, on a loopback listener. Plain-text LOGIN is allowed on loopback,
// as in localserve, because the scripts (like Dovecot's test config) log
// in without TLS.
//
// Each account starts as Dovecot's test users do, with INBOX alone and no
// subscriptions: a new moxd account also has the special-use mailboxes
// (Archive, Drafts, Junk, Sent, Trash), subscribed, which is provisioning
// policy (tested in internal/storage),
// not protocol behaviour, and would show in every LIST and CREATE of the
// scripts. moxd stores messages as received, so sizes are compared as
// they are (Norm.Sizes stays off).

import (
	"context"
	"net"
	"testing"

	"moxd/internal/config"
	"moxd/internal/imapd"
	"moxd/internal/ipc"
	"moxd/internal/storage/storeclient"
	"moxd/internal/storage/storetest"
)

const moxdPassword = "imapdiff-secret"

func init() {
	otherTargets = append(otherTargets, struct {
		name  string
		start func(t *testing.T) (Target, func(t *testing.T, user string) (string, string))
	}{"moxd", startMoxd})
}

func startMoxd(t *testing.T) (Target, func(t *testing.T, user string) (string, string)) {
	t.Helper()
	scripts, err := LoadScripts("testdata")
	if err != nil {
		t.Fatal(err)
	}
	slice := config.StoreSlice{Domains: []config.AddrDomain{{Name: "example.org"}}}
	for _, s := range scripts {
		// No automatic junk flags: they are moxd policy (tested in
		// internal/storage), not protocol behaviour to compare.
		slice.Accounts = append(slice.Accounts, config.StoreAccount{Name: s.Name, Addresses: []string{s.Name + "@example.org"}, NoJunkFlags: true})
	}
	st := storetest.Start(t, slice)
	for _, s := range scripts {
		st.SetPassword(t, s.Name, moxdPassword)
		onlyInbox(t, st, s.Name)
	}
	srv := &imapd.Server{Store: st.Peer(ipc.RoleIMAP), Hostname: "mail.example.org", PlaintextLoopback: true}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		l.Close()
	})
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			go srv.Serve(ctx, nc, false)
		}
	}()
	tg := Target{Name: "moxd", Addr: l.Addr().String()}
	return tg, func(t *testing.T, script string) (string, string) { return script, moxdPassword }
}

// onlyInbox deletes the mailboxes a new account has besides INBOX, and
// its subscriptions.
func onlyInbox(t *testing.T, st *storetest.Store, account string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), storetest.Timeout)
	defer cancel()
	tok := st.Login(t, ipc.RoleIMAP, account, moxdPassword)
	sess, err := storeclient.OpenSession(ctx, st.Peer(ipc.RoleIMAP), tok)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	mbs, err := sess.Mailboxes(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, mb := range mbs {
		if mb.Name == "INBOX" {
			continue
		}
		if _, err := sess.ChangeMailbox(ctx, ipc.MailboxDelete, mb.Name, "", 0); err != nil {
			t.Fatalf("account %s: delete %s: %v", account, mb.Name, err)
		}
	}
	// Nor subscriptions (Dovecot's users have none, INBOX included).
	subs, err := sess.Mailboxes(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, mb := range subs {
		if _, err := sess.ChangeMailbox(ctx, ipc.MailboxUnsubscribe, mb.Name, "", 0); err != nil {
			t.Fatalf("account %s: unsubscribe %s: %v", account, mb.Name, err)
		}
	}
}
