package ipc

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testDeadline bounds every wait in the tests.
const testDeadline = 10 * time.Second

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	t.Cleanup(cancel)
	return ctx
}

// connPair returns two Conns on a fresh socketpair.
func connPair(t testing.TB, a, b Options) (*Conn, *Conn) {
	t.Helper()
	fa, fb, err := Socketpair()
	if err != nil {
		t.Fatal(err)
	}
	ca, err := New(fa, a)
	if err != nil {
		fb.Close()
		t.Fatal(err)
	}
	cb, err := New(fb, b)
	if err != nil {
		ca.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ca.Close()
		cb.Close()
	})
	return ca, cb
}

// rawPair returns a Conn and the raw other end of its socketpair, for tests
// that write frames by hand.
func rawPair(t testing.TB, opts Options) (*Conn, *os.File) {
	t.Helper()
	fa, fb, err := Socketpair()
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(fa, opts)
	if err != nil {
		fb.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		fb.Close()
	})
	// Reads on the raw end must not hang a broken test.
	tv := unix.NsecToTimeval(testDeadline.Nanoseconds())
	if err := unix.SetsockoptTimeval(int(fb.Fd()), unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	return c, fb
}

// tempFile creates a file with the given content, open for reading and
// writing.
func tempFile(t testing.TB, content string) *os.File {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(t.TempDir(), "f"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

type fileID struct {
	dev, ino uint64
}

func idOf(t testing.TB, f *os.File) fileID {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return fileID{uint64(st.Dev), uint64(st.Ino)}
}

// openFDs counts this process's fds that refer to the file id.
func openFDs(t testing.TB, id fileID) int {
	t.Helper()
	var fds []int
	for _, dir := range []string{"/proc/self/fd", "/dev/fd"} {
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if fd, err := strconv.Atoi(e.Name()); err == nil {
				fds = append(fds, fd)
			}
		}
		break
	}
	if fds == nil {
		for fd := 0; fd < 4096; fd++ {
			fds = append(fds, fd)
		}
	}
	n := 0
	for _, fd := range fds {
		var st unix.Stat_t
		if unix.Fstat(fd, &st) != nil {
			continue
		}
		if (fileID{uint64(st.Dev), uint64(st.Ino)}) == id {
			n++
		}
	}
	return n
}

// waitDown waits until c is down and returns its error.
func waitDown(t testing.TB, c *Conn) error {
	t.Helper()
	select {
	case <-c.Done():
		return c.Err()
	case <-time.After(testDeadline):
		t.Fatal("channel did not go down")
		return nil
	}
}

// sampleMessages returns one message of every defined type with every field
// set, plus variants for messages whose fd count depends on their fields.
func sampleMessages() []Message {
	return []Message{
		&ErrorReply{Code: CodeNotFound, Message: "no such certificate \"mail.example.org\" (ä)"},
		&Ack{},
		&Hello{Role: RoleSMTP, BuildID: "v0.1.0-abcdef", PID: 4242},
		&HelloReply{Generation: 7, ConfigSize: 123456},
		&GetConfig{Offset: 15360},
		&ConfigChunk{Total: 123456, Data: []byte("[smtp]\nhostname = \"mx.example.org\"\n")},
		&GetListeners{Start: 4},
		&ListenerBatch{Total: 0},
		&ListenerBatch{Total: 1, Listeners: []ListenerInfo{{"smtp", "0.0.0.0:25"}}},
		&ListenerBatch{Total: 2, Listeners: []ListenerInfo{{"smtp", "0.0.0.0:25"}, {"smtp", "[::]:25"}}},
		&ListenerBatch{Total: 3, Listeners: []ListenerInfo{{"imap", "0.0.0.0:143"}, {"imaps", "0.0.0.0:993"}, {"imaps", "[::]:993"}}},
		&ListenerBatch{Total: 9, Listeners: []ListenerInfo{{"https", "0.0.0.0:443"}, {"https", "[::]:443"}, {"http", "0.0.0.0:80"}, {"http", "[::]:80"}}},
		&Ready{},
		&Violation{Peer: RoleStore, Reason: "reply with unknown type"},
		&PeerUp{Peer: RoleKeys, Generation: 3},
		&SetLogLevel{Level: -4},
		&GetStatus{Start: 10},
		&StatusReply{Total: 12, Counters: []Counter{{"sessions", 3}, {"deliveries", 1 << 40}}},
		&Shutdown{GraceMillis: 5000},
		&ShutdownDone{},
		&Reload{},
		&LoadCertPair{Name: "mx"},
		&CertLoaded{Names: []string{"mx.example.org", "mail.example.org"}, NotAfter: 1893456000},
		&CommitCerts{Names: []string{"mx", "web"}},
		&EnsureDKIM{Domain: "example.org", Selector: "2025a", Algorithm: "ed25519"},
		&DKIMPublic{Domain: "example.org", Selector: "2025a", Algorithm: "ed25519", Record: "v=DKIM1; k=ed25519; p=MCowBQYDK2VwAyEA", Created: true},
		&GetLocalCA{},
		&LocalCA{CertDER: []byte{0x30, 0x82, 0x01, 0x0a, 0x02}},
		&GetCerts{Start: 1},
		&CertBatch{Total: 2, Certs: []CertInfo{
			{KeyID: 1, Names: []string{"mx.example.org"}, NotAfter: 1893456000, ChainSize: 2100, PublicKey: []byte{0x30, 0x2a, 0x30, 0x05}},
			{KeyID: 2, Names: []string{"*.example.org", "example.org"}, NotAfter: -1, ChainSize: 900, PublicKey: []byte{0x30}},
		}},
		&GetChain{KeyID: 1, Offset: 15360},
		&ChainChunk{Total: 2100, Data: []byte{0x30, 0x82, 0x08, 0x30}},
		&Sign{KeyID: 1, Hash: 5, PSS: true, SaltLength: -1, Digest: make([]byte, 32)},
		&Signature{Sig: []byte{1, 2, 3, 4}},
		&DKIMSign{Domain: "example.org", Selector: "2025a", Hash: 0, Digest: []byte("header hash")},
		&DKIMSignature{Sig: []byte{9, 8, 7}},
		&Progress{Job: 7, Messages: 5000, Bytes: 1 << 26},
		&AccountPassword{Account: "mjl", Password: "correct horse"},
		&AccountRemove{Account: "mjl", Phase: RemoveFinish},
		&AccountUsage{Account: "mjl"},
		&AccountUsageReply{Size: 1 << 40, Messages: 12345, Quota: 1 << 30, Mailboxes: 6, HasPassword: true},
		&MailboxList{Account: "mjl", Start: 200},
		&MailboxNames{Total: 3, Names: []string{"INBOX", "Archive/2025", "Résumé"}},
		&ImportBegin{Job: 7, Account: "mjl", Mailbox: "Old/mail"},
		&ImportMbox{Job: 7},
		&ImportFiles{Job: 7, Files: []ImportFile{
			{Name: "cur/1.host:2,S", Flags: FlagSeen, Received: 1700000000},
			{Name: "cur/2.host:2,FRa", Flags: FlagFlagged | FlagAnswered, Keywords: []string{"$Forwarded", "work"}},
		}},
		&ImportEnd{Job: 7, Abort: true},
		&ImportResult{Imported: 99, Skipped: 2, Problems: []ImportProblem{{"offset 1234", "no header"}}, MoreProblems: 1},
		&Export{Account: "mjl", Mailbox: "INBOX"},
		&ExportResult{Messages: 10, Bytes: 10240},
		&Backup{Path: "/var/backups/moxd-20261122/store"},
		&BackupResult{Accounts: 2, Messages: 100, Bytes: 1 << 20},
		&QueueBackup{Path: "/var/backups/moxd-20261122/queue"},
		&QueueBackupResult{Messages: 3, Recipients: 5, Files: 3},
		&QueueList{Filter: QueueFilter{IDs: []uint64{12, 13}, Account: "mjl", From: "MJL@", To: "example.net", Transport: "submit", Held: QueueHeldNo},
			Sort: "-next", Start: 200, Max: MaxQueueEntries},
		&QueueList{Max: 1},
		&QueueListing{Total: 3, More: true, Entries: []QueueEntry{
			{Msg: 12, Seq: 1, Account: "mjl", MailFrom: "mjl@example.org", Recipient: "ø@example.net", Queued: 1700000000123456789,
				NextAttempt: 1700000900000000000, LastAttempt: 1700000300000000000, Attempts: 2, Held: true,
				LastError: "dane: no usable TLSA record for mx.example.net", LastHost: "mx.example.net", LastStatus: "4.7.5",
				Transport: "submit", Size: 10240, RequireTLS: 1, DSN: true},
			{Msg: 14, Account: "", Recipient: "other@example.org", Failed: true, LocalOnly: true, RequireTLS: 2},
		}},
		&QueueDump{ID: 12},
		&QueueText{Text: "message 12\n  from: <mjl@example.org>\n\tcontinued ä\n"},
		&QueueAction{Action: QueueHold, Filter: QueueFilter{Account: "mjl"}},
		&QueueAction{Action: QueueSchedule, All: true, Delay: -int64(time.Hour)},
		&QueueAction{Action: QueueSchedule, Filter: QueueFilter{IDs: []uint64{7}}, At: 1700000000123456789},
		&QueueAction{Action: QueueTransport, Filter: QueueFilter{To: "@example.net"}, Arg: "smarthost"},
		&QueueAction{Action: QueueRequireTLS, Filter: QueueFilter{Held: QueueHeldYes}, Arg: "default"},
		&QueueAction{Action: QueueDrop, Filter: QueueFilter{From: "spam"}},
		&QueueCount{N: 42, DSNs: 3},
		&QueueHoldRules{Op: QueueRulesOpList, Start: 5},
		&QueueHoldRules{Op: QueueRulesOpAdd, Rule: QueueHoldRule{Account: "mjl", SenderDomain: "example.org", RecipientDomain: "example.net"}},
		&QueueHoldRules{Op: QueueRulesOpRm, Rule: QueueHoldRule{ID: 3}},
		&QueueHoldRuleList{Total: 2, More: false, Held: 7, Rules: []QueueHoldRule{{ID: 1}, {ID: 3, Account: "mjl", RecipientDomain: "example.net"}}},
		&QueueRetired{Op: QueueRetiredOpList, Account: "mjl", Start: 100, Max: MaxQueueRetired, NewestFirst: true},
		&QueueRetired{Op: QueueRetiredOpGet, Msg: 12, Seq: 3},
		&QueueRetired{Op: QueueRetiredOpGet, Msg: 12, AnySeq: true},
		&QueueRetiredList{Total: 1, Entries: []QueueRetiredEntry{{Msg: 12, Seq: 3, Account: "mjl", MailFrom: "mjl@example.org",
			Address: "you@example.net", MessageID: "<1@example.org>", Subject: "grüße", Size: 2048, Queued: 1700000000000000000,
			Retired: 1700000600000000000, Delivered: true, Attempts: 1, LastError: "250 2.0.0 ok", LastHost: "mx.example.net",
			LastStatus: "2.0.0", Transport: "direct"}}},
		&QueueSuppress{Op: QueueSuppressOpList, Account: "mjl", Start: 10},
		&QueueSuppress{Op: QueueSuppressOpAdd, Account: "mjl", Address: "gone@example.net", Reason: "asked to be removed"},
		&QueueSuppress{Op: QueueSuppressOpLookup, Account: "mjl", Address: "gone@example.net"},
		&QueueSuppressionList{Total: 2, More: true, Entries: []QueueSuppression{
			{Account: "mjl", Address: "gone@example.net", Reason: "550 5.1.1 no such user", Added: 1700000000000000000},
			{Account: "mjl", Address: "x@example.net", Manual: true},
		}},
		&QueueWebhooks{Account: "mjl", Start: 5},
		&QueueWebhooks{Retired: true, Max: MaxQueueWebhooks},
		&QueueSendmail{Account: "mjl", UID: 1000, MailFrom: "mjl@example.org", Recipients: []string{"a@example.net", "b@example.net"}},
		&QueueSendmailResult{Message: 12, Recipients: 2},
		&QueueDNSCheck{Domain: "example.org"},
		&QueueDNSCheck{Domain: "bücher.example", DKIM: []QueueDNSCheckDKIM{
			{Selector: "2026a-ed", Record: "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="},
			{Selector: "2026a-rsa"},
		}},
		&QueueWebhookList{Total: 3, More: true, Entries: []QueueWebhook{
			{ID: 7, Account: "mjl", URL: "https://hooks.example.net/moxd?x=1", Event: "delivered", Queued: 1700000000123456789,
				Attempts: 2, NextAttempt: 1700000120000000000, LastError: "200 OK", Posted: true,
				Payload: `{"version":0,"event":"delivered","subject":"grüße"}`},
			{ID: 8, Account: "mjl", URL: "http://192.0.2.1/", Event: "failed", LastError: "post to 192.0.2.1: connection refused"},
		}},
		&LocalDeliver{Address: "mjl@example.org"},
		&LocalDelivered{Account: "mjl", Mailbox: "INBOX", UID: 42},
		&RcptCheck{Address: "mjl@example.org"},
		&RcptResult{State: RcptOK, Account: "mjl"},
		&NewBody{Size: 10240},
		&BodyPipe{Body: 3, MaxSize: 100 << 20},
		&Deliver{Body: 3, Release: true, MailFrom: "sender@example.net", Received: 1700000000123456789,
			Prefix: []byte("Received: from x\r\n"), Recipients: []DeliverRcpt{
				{Address: "mjl@example.org"},
				{Address: "other@example.org", Mailbox: "Lists/moxd", Flags: FlagSeen, Keywords: []string{"$label1"}},
			}},
		&DeliverResult{Results: []RcptDelivered{
			{State: RcptOK, Account: "mjl", Mailbox: "INBOX", UID: 7},
			{State: RcptOverQuota, Account: "other", Text: "account over quota"},
			{State: RcptFailed, Account: "mjl", Mailbox: "INBOX", UID: 8, Text: "disk full", Retry: []string{"other@example.org", "third@example.org"}},
		}},
		&ReleaseBody{Body: 3},
		&BodyFile{Body: 3},
		&BodyFileReply{Size: 10240},
		&SessionOpen{Token: [32]byte{1, 2, 3, 31: 9}},
		&SessionInfo{Session: 11, Account: "mjl"},
		&SessionClose{Session: 11},
		&MailboxGet{Session: 11, Name: "INBOX"},
		&MailboxReply{Mailbox: MailboxInfo{ID: 1, UIDValidity: 1, Name: "INBOX", Subscribed: true, Messages: 3,
			Unseen: 1, Deleted: 1, Size: 12345, DeletedSize: 2345, UIDNext: 4, HighestModSeq: 9, Keywords: []string{"$Forwarded"}}},
		&MailboxPageReq{Session: 11, Start: 100, Subscriptions: true},
		&MailboxPage{Total: 2, Mailboxes: []MailboxInfo{{ID: 1, Name: "INBOX"}, {ID: 2, Name: "Sent", SpecialUse: 1}}},
		&MailboxChange{Session: 11, Op: MailboxRename, Name: "Old", NewName: "Archive/Old"},
		&MessagesReq{Ref: MailboxRef{11, 1, 1}, FromUID: 1, Max: 400},
		&MessageBatch{Keywords: []string{"$Junk", "work"}, Messages: []MessageMeta{
			{UID: 1, ModSeq: 5, CreateSeq: 2, Flags: FlagSeen, Keywords: []uint16{1}, Size: 2000, Received: 1700000000, SaveDate: 1700000360},
			{UID: 3, ModSeq: 6, CreateSeq: 6, Keywords: []uint16{0, 1}, Size: 1000},
		}, Next: 4},
		&MessageOpen{Ref: MailboxRef{11, 1, 1}, UID: 3, DetailOffset: 14336},
		&MessageFile{File: true, FileSize: 1000, Prefix: []byte("Received: x\r\n"), DetailSize: 300, Detail: []byte{1, 2, 3}},
		&FlagsStore{Ref: MailboxRef{11, 1, 1}, UIDs: []UIDRange{{1, 3}, {7, 0xffffffff}}, Mode: StoreAdd,
			Flags: FlagDeleted, Keywords: []string{"done"}, UnchangedSince: 12},
		&FlagsStored{Changed: 3, FromModSeq: 12, ToModSeq: 13, Modified: []UIDRange{{2, 2}}},
		&CopyMessages{Ref: MailboxRef{11, 1, 1}, UIDs: []UIDRange{{1, 5}}, Dest: "Archive", Move: true},
		&CopyResult{UIDValidity: 4, From: []UIDRange{{1, 5}}, To: []UIDRange{{10, 14}}, ModSeq: 20},
		&Expunge{Ref: MailboxRef{11, 1, 1}},
		&Expunged{UIDs: []UIDRange{{2, 4}}, ModSeq: 21},
		&AppendMessages{Session: 11, Name: "Drafts", Offset: 512, Keywords: []string{"$MDNSent", "work"}, Messages: []AppendEntry{
			{Size: 1200, Flags: FlagSeen, Keywords: []uint16{1}, Received: 1700000000},
			{Size: 0, Keywords: []uint16{0, 1}},
		}},
		&AppendedMessages{UIDValidity: 5, UIDs: []UIDRange{{99, 100}}, ModSeq: 23},
		&QuotaGet{Session: 11},
		&QuotaInfo{Used: 123456, Messages: 17, Limit: 1 << 30},
		&SortKeysReq{Ref: MailboxRef{11, 1, 1}, UIDs: []UIDRange{{1, 40}, {52, 0xffffffff}}, FromUID: 7, Fields: SortKeyDate | SortKeySubject | SortKeyThread},
		&SortKeys{Fields: SortKeyDate | SortKeySubject | SortKeyFrom | SortKeyTo | SortKeyCc | SortKeyThread, Keys: []SortKey{
			{UID: 7, Sent: 1700000000, Subject: "héllo", Reply: true, From: SortAddress{Name: "Mechiel", Mailbox: "mjl", Host: "example.org"},
				To: SortAddress{Mailbox: "a", Host: "example.net"}, MessageID: "<2@example.org>", InReplyTo: "<1@example.net>",
				References: []string{"<0@example.net>", "<1@example.net>"}},
			{UID: 9, Sent: -86400},
		}, Next: 10},
		&SortKeys{Fields: SortKeySubject, Keys: []SortKey{{UID: 3, Subject: "report"}}},
		&ChangesReq{Ref: MailboxRef{11, 1, 1}, Since: 5, AfterModSeq: 7, AfterUID: 3, Max: 400},
		&ChangesReply{Keywords: []string{"a"}, Changed: []MessageMeta{{UID: 1, ModSeq: 6, Keywords: []uint16{0}}},
			Vanished: []UIDRange{{2, 3}}, LastModSeq: 9, LastUID: 2, More: true, HighestModSeq: 30},
		&Search{Ref: MailboxRef{11, 1, 1}, FromUID: 1, Key: SearchNode{Op: SearchAnd, Sub: []SearchNode{
			{Op: SearchNot, Sub: []SearchNode{{Op: SearchFlag, Flags: FlagSeen}}},
			{Op: SearchHeader, Name: "subject", Text: "report"},
			{Op: SearchUIDs, UIDs: []UIDRange{{1, 100}}},
		}}},
		&SearchResult{UIDs: []UIDRange{{4, 4}, {8, 9}}, Next: 10},
		&MailboxChanged{Account: "mjl", Mailbox: 1, ModSeq: 40},
		&Resync{Account: "mjl"},
		// session: authentication
		&AuthStart{Mechanism: "SCRAM-SHA-256-PLUS", RemoteIP: netip.MustParseAddr("2001:db8::25"), TLS: true,
			ChannelBindings: []ChannelBinding{{"tls-exporter", []byte{1, 2, 3, 31: 4}}, {"tls-server-end-point", []byte{5, 63: 6}}},
			InitialResponse: []byte("p=tls-exporter,,n=mjl,r=abc"), HasInitial: true},
		&AuthStart{Mechanism: "PLAIN", RemoteIP: netip.MustParseAddr("192.0.2.7")},
		&AuthContinue{Exchange: 12, Response: []byte("c=biws,r=abcdef,p=AAAA")},
		&AuthStep{Exchange: 12, Challenge: []byte("r=abcdef,s=c2FsdA==,i=4096")},
		&AuthStep{Exchange: 12, Done: true, Account: "mjl", Token: [32]byte{7, 31: 8}},
		&AuthAbort{Exchange: 12},
		&TokenCheck{Token: [32]byte{7, 31: 8}, Issuer: RoleSubmission},
		&TokenInfo{Account: "mjl", Expires: 1700086400},
		&TokenRevoke{Token: [32]byte{7, 31: 8}},
		// submit, reports, localretry
		&NewSpool{Size: -1},
		&NewSpool{Size: 4096},
		&SpoolPipe{Spool: 5, MaxSize: 100 << 20},
		&AddRecipients{Spool: 5, Recipients: []SubmitRcpt{
			{Address: "a@example.net"},
			{Address: "b@example.net", Notify: NotifySuccess | NotifyFailure, ORcpt: "rfc822;b+x2Bb@example.net"},
		}},
		&Submit{Token: [32]byte{7, 31: 8}, Spool: 5, MailFrom: "mjl@example.org",
			Recipients: []SubmitRcpt{{Address: "ø@example.net", Notify: NotifyNever}},
			RequireTLS: true, SMTPUTF8: true, EightBit: true, Ret: RetHdrs, EnvID: "QQ314159",
			Prefix: []byte("Received: from client\r\n"), FutureRelease: 1700000000123456789},
		&Submitted{Message: 77, Recipients: 101},
		&DMARCEval{PolicyDomain: "example.net", HeaderFrom: "example.net", EnvelopeFrom: "bounces.example.net",
			EnvelopeTo: "example.org", SourceIP: "2001:db8::25", Time: 1700000000, Disposition: "quarantine",
			P: "quarantine", SP: "reject", ADKIM: "r", ASPF: "s", Pct: 100, FO: "1", HasRUA: true, Result: "fail",
			SPFAligned: true, SPFResult: "pass", SPFDomain: "bounces.example.net", SPFScope: "mfrom",
			DKIM:    []DMARCDKIM{{"example.net", "2025a", "fail"}, {"esp.example", "s1", "pass"}},
			Reasons: []DMARCReason{{"forwarded", "list"}}},
		&DMARCEval{PolicyDomain: "example.com", HeaderFrom: "example.com", SourceIP: "192.0.2.1", Disposition: "none",
			P: "none", Result: "pass", DKIMAligned: true},
		&LocalRetry{MailFrom: "", Recipients: []string{"mjl@example.org", "other@example.org"},
			Prefix: []byte("Received: x\r\n"), Received: 1700000000123456789},
		// incoming
		&IncomingDelivery{Account: "mjl", Mailbox: "INBOX", MailFrom: "sender@example.net", Rcpt: "mjl@example.org",
			MessageID: "<1@example.net>", Subject: "héllo", From: "sender@example.net", Size: 1234, Received: 1700000000123456789},
		&IncomingDelivery{Account: "mjl", Mailbox: "Bounces", Rcpt: "mjl+abcdefghijklmnop@example.org", Size: 4096,
			DSN: &IncomingDSN{FromID: "abcdefghijklmnop", Results: []DSNResult{
				{FinalRecipient: "gone@example.net", Action: "failed", Status: "5.1.1", Diagnostic: "550 5.1.1 no such user"},
				{FinalRecipient: "slow@example.net", Action: "delayed", Status: "4.4.1"},
			}}},
		&IncomingDelivery{Account: "mjl", Mailbox: "INBOX", DSN: &IncomingDSN{}},
	}
}

// sampleHeader returns a header that suits m's kind.
func sampleHeader(m Message) Header {
	h := Header{Type: m.Type(), NFD: uint8(m.FDs()), ID: 0x0102030405060708}
	switch {
	case IsEvent(m.Type()):
		h.Flags, h.ID = FlagEvent, 0
	case !IsRequest(m.Type()):
		h.Flags = FlagReply
	}
	return h
}

// encodePayload encodes m without a header.
func encodePayload(m Message) ([]byte, error) {
	e := newEncoder(nil, MaxPayload)
	m.Encode(e)
	return e.buf, e.Err()
}
