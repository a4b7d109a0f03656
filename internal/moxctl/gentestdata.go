package moxctl

// gentestdata: an offline data directory. Its store part has accounts,
// nested mailboxes, messages with flags and keywords, expunged messages
// (tombstones), a copy and a move, built with package account exactly as
// moxd-store would; its queue part has submitted messages and a local
// retry, built with package queue (queue.GenTestData). The content is
// deterministic (a seeded generator and a fixed clock), so tests and
// verifydata can rely on it; it is small, so it is built in well under
// two seconds.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"moxd/internal/queue"
	"moxd/internal/storage/account"
)

// testdataAccounts are the accounts gentestdata writes.
var testdataAccounts = [...]string{"alice", "bob"}

// testdataMessages is the number of messages delivered per account.
const testdataMessages = 60

func (c *cli) gentestdata(args []string) int {
	if len(args) != 1 {
		return c.usage()
	}
	if err := newOrEmptyDir(args[0]); err != nil {
		return c.failf("%v", err)
	}
	sum, err := genTestData(args[0], c.stdout)
	if err != nil {
		return c.failf("gentestdata: %v", err)
	}
	fmt.Fprintf(c.stdout, "%s\nverify with: moxctl verifydata %s\n", sum, args[0])
	return ExitOK
}

// genTestData writes DIR/store/accounts/<name> for each test account and
// DIR/queue, and returns a summary line.
func genTestData(dir string, log io.Writer) (string, error) {
	store := filepath.Join(dir, "store")
	tmp := filepath.Join(store, "tmp")
	for _, d := range []string{store, tmp, filepath.Join(store, "accounts")} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return "", err
		}
	}
	clock := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	total := 0
	for i, name := range testdataAccounts {
		rng := rand.New(rand.NewPCG(uint64(i)+1, 0x6d6f7864))
		n, err := genAccount(filepath.Join(store, "accounts", name), tmp, name, rng, now)
		if err != nil {
			return "", fmt.Errorf("account %s: %w", name, err)
		}
		fmt.Fprintf(log, "account %s: %d messages\n", name, n)
		total += n
	}
	qdir := filepath.Join(dir, "queue")
	if err := os.Mkdir(qdir, 0o700); err != nil {
		return "", err
	}
	td, err := queue.GenTestData(qdir, clock)
	if err != nil {
		return "", fmt.Errorf("queue: %w", err)
	}
	fmt.Fprintf(log, "queue: %d messages, %d recipients, %d retired, %d webhook events, %d DMARC evaluations\n", td.Messages, td.Recipients, td.Retired, td.Hooks, td.Evaluations)
	return fmt.Sprintf("wrote %d accounts with %d messages to %s, and a queue with %d messages to %s", len(testdataAccounts), total, store, td.Messages, qdir), nil
}

// Words for generated subjects and bodies.
var testdataWords = strings.Fields("mail server imap smtp queue store keys domain account mailbox flag keyword " +
	"message header body test data backup restore verify import export deliver postmaster dkim spf dmarc")

func genAccount(dir, tmp, name string, rng *rand.Rand, now func() time.Time) (int, error) {
	ctx := context.Background()
	a, err := account.Create(dir, account.Options{Log: slog.New(slog.DiscardHandler), Now: now})
	if err != nil {
		return 0, err
	}
	defer a.Close()
	for _, mb := range []string{"Lists/Go/Announce", "Archive/2025"} {
		if _, err := a.CreateMailbox(ctx, mb, account.SpecialNone); err != nil {
			return 0, fmt.Errorf("create mailbox %s: %w", mb, err)
		}
	}
	mailboxes := []string{"INBOX", "INBOX", "INBOX", "Lists/Go", "Lists/Go/Announce", "Sent"}
	keywords := []string{"$Forwarded", "$Junk", "$NotJunk", "todo", "$label1"}
	flags := []account.Flags{account.FlagSeen, account.FlagAnswered, account.FlagFlagged, account.FlagDraft}

	var ds []account.Delivery
	var bodies []*account.Body
	defer func() {
		for _, b := range bodies {
			b.Remove()
		}
	}()
	for i := range testdataMessages {
		var subject, body []string
		for range 2 + rng.IntN(5) {
			subject = append(subject, testdataWords[rng.IntN(len(testdataWords))])
		}
		for range 10 + rng.IntN(200) {
			body = append(body, testdataWords[rng.IntN(len(testdataWords))])
		}
		received := now().Add(-time.Duration(testdataMessages-i) * time.Hour)
		msg := fmt.Sprintf("From: sender%d@example.org\r\nTo: %s@example.com\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s.%d@example.org>\r\n\r\n%s\r\n",
			rng.IntN(10), name, strings.Join(subject, " "), received.Format(time.RFC1123Z), name, i, strings.Join(body, " "))
		b, err := account.BodyFromBytes(tmp, []byte(msg), false)
		if err != nil {
			return 0, err
		}
		bodies = append(bodies, b)
		d := account.Delivery{Body: b, Mailbox: mailboxes[rng.IntN(len(mailboxes))], Received: received}
		for _, f := range flags {
			if rng.IntN(3) == 0 {
				d.Flags |= f
			}
		}
		for _, k := range keywords {
			if rng.IntN(5) == 0 {
				d.Keywords = append(d.Keywords, k)
			}
		}
		ds = append(ds, d)
	}
	for i, r := range a.Deliver(ctx, ds) {
		if r.Err != nil {
			return 0, fmt.Errorf("delivery %d: %w", i, r.Err)
		}
	}

	inbox, err := a.Mailbox("INBOX")
	if err != nil {
		return 0, err
	}
	uids, err := a.UIDs(inbox.ID, inbox.UIDValidity)
	if err != nil {
		return 0, err
	}
	if len(uids) < 6 {
		return 0, fmt.Errorf("only %d messages in INBOX", len(uids))
	}
	one := func(uid uint32) []account.UIDRange { return []account.UIDRange{{First: uid, Last: uid}} }
	// A copy and a move out of INBOX.
	if _, err := a.Copy(ctx, inbox.ID, inbox.UIDValidity, one(uids[0]), "Archive/2025"); err != nil {
		return 0, fmt.Errorf("copy: %w", err)
	}
	if _, err := a.Move(ctx, inbox.ID, inbox.UIDValidity, one(uids[1]), "Archive/2025"); err != nil {
		return 0, fmt.Errorf("move: %w", err)
	}
	// Two expunged messages leave tombstones.
	del := []account.UIDRange{{First: uids[2], Last: uids[3]}}
	if _, err := a.Store(ctx, inbox.ID, inbox.UIDValidity, del, account.StoreAdd, account.FlagDeleted, nil, 0); err != nil {
		return 0, fmt.Errorf("store \\Deleted: %w", err)
	}
	if _, _, err := a.Expunge(ctx, inbox.ID, inbox.UIDValidity, del); err != nil {
		return 0, fmt.Errorf("expunge: %w", err)
	}
	_, n := a.Usage()
	return int(n), nil
}
