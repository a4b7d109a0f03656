package ipc

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

func TestRoles(t *testing.T) {
	for _, r := range append([]Role{RoleMaster}, WorkerRoles()...) {
		got, err := ParseRole(r.String())
		if err != nil || got != r {
			t.Errorf("ParseRole(%q) = %v, %v", r.String(), got, err)
		}
	}
	want := "keys store queue smtp submission imap web"
	var names []string
	for _, r := range WorkerRoles() {
		names = append(names, r.String())
	}
	if got := strings.Join(names, " "); got != want {
		t.Errorf("WorkerRoles = %s, want %s", got, want)
	}
	if _, err := ParseRole("root"); err == nil || !strings.Contains(err.Error(), "submission") {
		t.Errorf("ParseRole(root): %v; want an error listing the roles", err)
	}
	if s := Role(0).String(); s != "role(0)" {
		t.Errorf("Role(0) = %q", s)
	}
}

type ruleCase struct {
	from, to   Role
	fam        Family
	ok         bool
	reqFD, rFD bool
}

func TestMatrixRules(t *testing.T) {
	tests := []ruleCase{
		{RoleSMTP, RoleQueue, FamReports, true, false, false},
		// Local retries: smtp passes store's copy of the body.
		{RoleSMTP, RoleQueue, FamRetry, true, true, false},
		{RoleSubmission, RoleQueue, FamRetry, false, false, false},
		// The port-25 instance can never submit or administer the queue.
		{RoleSMTP, RoleQueue, FamSubmit, false, false, false},
		{RoleSMTP, RoleQueue, FamQueueAdmin, false, false, false},
		{RoleSMTP, RoleQueue, FamDeliver, false, false, false},
		{RoleSubmission, RoleQueue, FamSubmit, true, false, true},
		{RoleWeb, RoleQueue, FamSubmit, true, false, true},
		{RoleWeb, RoleQueue, FamQueueAdmin, true, false, false},
		{RoleMaster, RoleQueue, FamQueueAdmin, true, true, false},
		{RoleMaster, RoleQueue, FamStoreAdmin, false, false, false},
		// Only queue gets DKIM signatures.
		{RoleQueue, RoleKeys, FamDKIM, true, false, false},
		{RoleSMTP, RoleKeys, FamDKIM, false, false, false},
		{RoleSubmission, RoleKeys, FamDKIM, false, false, false},
		{RoleSMTP, RoleKeys, FamTLS, true, false, false},
		{RoleQueue, RoleKeys, FamTLS, false, false, false},
		{RoleMaster, RoleKeys, FamKeysAdmin, true, true, false},
		{RoleMaster, RoleStore, FamKeysAdmin, false, false, false},
		{RoleSMTP, RoleStore, FamDeliver, true, false, true},
		{RoleQueue, RoleStore, FamDeliver, true, true, true},
		{RoleIMAP, RoleStore, FamSession, true, true, true},
		{RoleSMTP, RoleStore, FamSession, true, false, false},
		{RoleStore, RoleQueue, FamDeliver, false, false, false},
		// Store tells queue about incoming deliveries, events only.
		{RoleStore, RoleQueue, FamIncoming, true, false, false},
		{RoleQueue, RoleStore, FamIncoming, false, false, false},
		{RoleSMTP, RoleQueue, FamIncoming, false, false, false},
		{RoleKeys, RoleStore, FamSession, false, false, false},
	}
	for _, w := range WorkerRoles() {
		tests = append(tests,
			ruleCase{w, RoleMaster, FamCtl, true, false, true},
			ruleCase{RoleMaster, w, FamSupervise, true, true, false})
	}
	for _, tc := range tests {
		r, ok := Lookup(tc.from, tc.to, tc.fam)
		if ok != tc.ok || r.RequestFDs != tc.reqFD || r.ReplyFDs != tc.rFD {
			t.Errorf("%s -> %s %s: rule %+v, %v; want present %v, request fds %v, reply fds %v", tc.from, tc.to, tc.fam, r, ok, tc.ok, tc.reqFD, tc.rFD)
		}
	}
	// Each (from, to, family) appears once.
	seen := map[Rule]bool{}
	for _, r := range Matrix() {
		k := Rule{From: r.From, To: r.To, Family: r.Family}
		if seen[k] {
			t.Errorf("duplicate rule %s -> %s %s", r.From, r.To, r.Family)
		}
		seen[k] = true
		if r.From == r.To || !r.From.Valid() || !r.To.Valid() || r.Family == FamAny {
			t.Errorf("bad rule %+v", r)
		}
	}
}

func TestEdges(t *testing.T) {
	var got []string
	for _, e := range Edges() {
		got = append(got, e[0].String()+"-"+e[1].String())
	}
	want := []string{
		"smtp-keys", "submission-keys", "imap-keys", "web-keys", "queue-keys",
		"smtp-store", "queue-store", "submission-store", "imap-store", "web-store",
		"submission-queue", "web-queue", "smtp-queue",
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("Edges:\n got %v\nwant %v", got, want)
	}
}

func TestAllowed(t *testing.T) {
	tests := []struct {
		from, to Role
		t        MsgType
		nfd      int
		ok       bool
	}{
		{RoleSMTP, RoleMaster, TypeHello, 0, true},
		{RoleMaster, RoleSMTP, TypeHelloReply, 0, true},
		{RoleMaster, RoleSMTP, TypeHello, 0, false},        // master does not greet workers
		{RoleSMTP, RoleMaster, TypeHelloReply, 0, false},   // reply in the wrong direction
		{RoleMaster, RoleSMTP, TypeListenerBatch, 4, true}, // listener fds in replies
		{RoleMaster, RoleSMTP, TypeListenerBatch, 5, false},
		{RoleSMTP, RoleMaster, TypeGetListeners, 1, false}, // no fds in ctl requests
		{RoleMaster, RoleIMAP, TypePeerUp, 1, true},
		{RoleIMAP, RoleMaster, TypePeerUp, 1, false},
		{RoleKeys, RoleMaster, TypeShutdownDone, 0, true},
		{RoleMaster, RoleKeys, TypeLoadCertPair, 2, true},
		{RoleKeys, RoleMaster, TypeCertLoaded, 0, true},
		{RoleMaster, RoleStore, TypeLoadCertPair, 2, false},
		{RoleSMTP, RoleKeys, TypeSign, 0, true},
		{RoleSMTP, RoleKeys, TypeSign, 1, false},
		{RoleKeys, RoleSMTP, TypeSignature, 0, true},
		{RoleKeys, RoleSMTP, TypeSignature, 1, false},
		{RoleSMTP, RoleKeys, TypeDKIMSign, 0, false},
		{RoleQueue, RoleKeys, TypeDKIMSign, 0, true},
		{RoleQueue, RoleKeys, TypeSign, 0, false},
		{RoleSMTP, RoleQueue, TypeGetCerts, 0, false},
		{RoleSMTP, RoleQueue, TypeLocalRetry, 1, true},
		{RoleSMTP, RoleQueue, TypeDMARCEval, 1, false},
		{RoleSMTP, RoleQueue, TypeSubmit, 0, false}, // the port-25 instance never submits
		{RoleQueue, RoleSMTP, TypeAck, 0, true},
		{RoleSubmission, RoleQueue, TypeSubmit, 0, true},
		{RoleQueue, RoleSubmission, TypeSpoolPipe, 1, true},
		{RoleSubmission, RoleQueue, TypeLocalRetry, 1, false},
		// The backup directory reaches queue from master only.
		{RoleMaster, RoleQueue, TypeQueueBackup, 1, true},
		{RoleQueue, RoleMaster, TypeQueueBackupResult, 0, true},
		{RoleWeb, RoleQueue, TypeQueueBackup, 1, false},
		{RoleWeb, RoleQueue, TypeQueueBackup, 0, true}, // a frame with no fd is refused by the message's FDs
		{RoleMaster, RoleStore, TypeQueueBackup, 1, false},
		// Queue administration comes from master and web, without fds.
		{RoleMaster, RoleQueue, TypeQueueAction, 0, true},
		{RoleQueue, RoleMaster, TypeQueueCount, 0, true},
		{RoleWeb, RoleQueue, TypeQueueList, 0, true},
		{RoleQueue, RoleWeb, TypeQueueListing, 0, true},
		{RoleWeb, RoleQueue, TypeQueueDump, 1, false},
		{RoleQueue, RoleWeb, TypeQueueText, 1, false},
		{RoleSubmission, RoleQueue, TypeQueueAction, 0, false},
		{RoleSMTP, RoleQueue, TypeQueueSuppress, 0, false},
		// Generic replies go wherever requests came from, without fds.
		{RoleKeys, RoleSMTP, TypeErrorReply, 0, true},
		{RoleStore, RoleQueue, TypeErrorReply, 0, true},
		{RoleQueue, RoleStore, TypeErrorReply, 0, false}, // store sends queue no requests
		{RoleStore, RoleQueue, TypeIncomingDelivery, 0, true},
		{RoleStore, RoleQueue, TypeIncomingDelivery, 1, false},
		{RoleSMTP, RoleQueue, TypeIncomingDelivery, 0, false},
		{RoleQueue, RoleStore, TypeIncomingDelivery, 0, false},
		{RoleIMAP, RoleStore, TypeErrorReply, 0, false}, // events to imap are never answered
		{RoleKeys, RoleMaster, TypeAck, 0, true},
		{RoleKeys, RoleSMTP, TypeErrorReply, 1, false},
		{RoleSMTP, RoleKeys, 0x04ff, 0, false},
		{RoleSMTP, RoleKeys, TypeSign, -1, false},
	}
	for _, tc := range tests {
		err := Allowed(tc.from, tc.to, tc.t, tc.nfd)
		if (err == nil) != tc.ok {
			t.Errorf("Allowed(%s, %s, %s, %d) = %v, want ok %v", tc.from, tc.to, MessageName(tc.t), tc.nfd, err, tc.ok)
		}
	}
	// smtp -> queue carries nothing but reports and local retries: no
	// defined request or event type of another family passes, whatever its
	// fds; a local retry carries exactly its one file.
	for _, typ := range MessageTypes() {
		fam, _ := TypeFamily(typ)
		if !IsRequest(typ) && !IsEvent(typ) || fam == FamReports || fam == FamRetry {
			continue
		}
		for nfd := 0; nfd <= MaxFDs; nfd++ {
			if err := Allowed(RoleSMTP, RoleQueue, typ, nfd); err == nil {
				t.Errorf("smtp may send %s to queue with %d fds", MessageName(typ), nfd)
			}
		}
	}
}

// TestStoreToQueue: store sends queue nothing but incoming delivery
// events, never with fds; the channel queue calls store on carries no
// other request or event from store.
func TestStoreToQueue(t *testing.T) {
	for _, typ := range MessageTypes() {
		if !IsRequest(typ) && !IsEvent(typ) {
			continue
		}
		for nfd := 0; nfd <= MaxFDs; nfd++ {
			err := Allowed(RoleStore, RoleQueue, typ, nfd)
			if want := typ == TypeIncomingDelivery && nfd == 0; (err == nil) != want {
				t.Errorf("Allowed(store, queue, %s, %d) = %v, want ok %v", MessageName(typ), nfd, err, want)
			}
		}
	}
}

func TestWriteMatrixDoc(t *testing.T) {
	var b bytes.Buffer
	if err := WriteMatrixDoc(&b); err != nil {
		t.Fatal(err)
	}
	doc := b.String()
	lines := strings.Split(doc, "\n")
	rows := 0
	for _, l := range lines {
		if strings.HasPrefix(l, "| ") && !strings.HasPrefix(l, "| from ") {
			rows++
		}
	}
	if rows != len(Matrix()) {
		t.Errorf("doc has %d rule rows, matrix has %d rules", rows, len(Matrix()))
	}
	yn := map[bool]string{true: "yes", false: "no"}
	for _, r := range Matrix() {
		prefix := fmt.Sprintf("| %s | %s | %s | %s | %s |", r.From, r.To, r.Family, yn[r.RequestFDs], yn[r.ReplyFDs])
		found := false
		for _, l := range lines {
			if strings.HasPrefix(l, prefix) {
				found = true
				out, back := familyTypes(r.Family)
				for _, n := range append(out, back...) {
					if !strings.Contains(l, n) {
						t.Errorf("row %q lacks message %s", l, n)
					}
				}
			}
		}
		if !found {
			t.Errorf("doc lacks rule %q", prefix)
		}
	}
	if !strings.Contains(doc, "| smtp | queue | reports | no | no | reports.DMARCEval | (none yet) |") {
		t.Errorf("doc lacks the smtp -> queue reports row:\n%s", doc)
	}
}
