package ipc

import (
	"fmt"
	"io"
	"strings"
)

// Rule permits one role to send the requests and events of one family to
// another role; the other role sends the replies.
type Rule struct {
	From, To   Role
	Family     Family
	RequestFDs bool // requests and events From -> To may carry fds
	ReplyFDs   bool // replies To -> From may carry fds
}

// yes and no keep the matrix literal readable.
const (
	yes = true
	no  = false
)

// matrix is THE allow-matrix: every edge, family and direction that exists.
// Anything not listed is refused by Conn in both directions.
var matrix = [...]Rule{
	// From            To          Family        RequestFDs ReplyFDs
	// Workers ask master; listener fds come back in ListenerBatch replies.
	{RoleKeys, RoleMaster, FamCtl, no, yes},
	{RoleStore, RoleMaster, FamCtl, no, yes},
	{RoleQueue, RoleMaster, FamCtl, no, yes},
	{RoleSMTP, RoleMaster, FamCtl, no, yes},
	{RoleSubmission, RoleMaster, FamCtl, no, yes},
	{RoleIMAP, RoleMaster, FamCtl, no, yes},
	{RoleWeb, RoleMaster, FamCtl, no, yes},

	// Master supervises every worker; PeerUp pushes channel fds.
	{RoleMaster, RoleKeys, FamSupervise, yes, no},
	{RoleMaster, RoleStore, FamSupervise, yes, no},
	{RoleMaster, RoleQueue, FamSupervise, yes, no},
	{RoleMaster, RoleSMTP, FamSupervise, yes, no},
	{RoleMaster, RoleSubmission, FamSupervise, yes, no},
	{RoleMaster, RoleIMAP, FamSupervise, yes, no},
	{RoleMaster, RoleWeb, FamSupervise, yes, no},

	// Master hands keys the certificate and key files it may not parse.
	{RoleMaster, RoleKeys, FamKeysAdmin, yes, no},

	// TLS roles fetch certificates and handshake signatures.
	{RoleSMTP, RoleKeys, FamTLS, no, no},
	{RoleSubmission, RoleKeys, FamTLS, no, no},
	{RoleIMAP, RoleKeys, FamTLS, no, no},
	{RoleWeb, RoleKeys, FamTLS, no, no},

	// Only queue gets DKIM signatures: it signs what it sends.
	{RoleQueue, RoleKeys, FamDKIM, no, no},

	// Deliveries: store hands out a pipe's write end (DESIGN §4); queue may
	// also pass a body it holds.
	{RoleSMTP, RoleStore, FamDeliver, no, yes},
	{RoleQueue, RoleStore, FamDeliver, yes, yes},

	// Sessions with store: imap and web pass APPEND/upload files and get
	// read-only message fds back.
	{RoleSMTP, RoleStore, FamSession, no, no},
	{RoleSubmission, RoleStore, FamSession, no, no},
	{RoleIMAP, RoleStore, FamSession, yes, yes},
	{RoleWeb, RoleStore, FamSession, yes, yes},
	{RoleQueue, RoleStore, FamSession, no, no},

	// Store tells imap and web what changed, as events only.
	{RoleStore, RoleIMAP, FamEvents, no, no},
	{RoleStore, RoleWeb, FamEvents, no, no},

	// Submission. The port-25 instance (smtp) has no submit edge.
	{RoleSubmission, RoleQueue, FamSubmit, no, yes},
	{RoleWeb, RoleQueue, FamSubmit, no, yes},

	// smtp gives queue DMARC evaluations for aggregate reports.
	{RoleSMTP, RoleQueue, FamReports, no, no},
	// smtp hands queue the recipients whose local delivery failed
	// temporarily while others were committed, with store's read-only copy
	// of the body. Queue delivers them only locally, through store, never
	// outbound: this grants smtp nothing it could not already do.
	{RoleSMTP, RoleQueue, FamRetry, yes, no},
	// Store tells queue about committed incoming deliveries it must act
	// on (incoming webhooks, DSNs matching a unique MAIL FROM), as events
	// only, after the commit: store never waits for queue, and it is the
	// only role that parses message content, so it is the one that
	// recognizes a DSN. This adds no channel: queue and store share one.
	{RoleStore, RoleQueue, FamIncoming, no, no},

	{RoleWeb, RoleQueue, FamQueueAdmin, no, no},
	// Master relays moxctl's queue administration (the backup, with the
	// directory queue writes into) in the same family rather than one of
	// its own: it is the same service, and what only master may ask for
	// needs an fd, which web's rule does not carry; queue also serves
	// master's channel with its own handler.
	{RoleMaster, RoleQueue, FamQueueAdmin, yes, no},

	// Master relays moxctl's account administration to store, with the
	// files moxctl opened (imports, local delivery) and the pipe or backup
	// directory store writes into.
	{RoleMaster, RoleStore, FamStoreAdmin, yes, no},
}

// Matrix returns the allow-matrix, one rule per edge, family and direction.
func Matrix() []Rule {
	return append([]Rule(nil), matrix[:]...)
}

// Lookup returns the rule that lets from send requests and events of family
// f to to.
func Lookup(from, to Role, f Family) (Rule, bool) {
	for _, r := range matrix {
		if r.From == from && r.To == to && r.Family == f {
			return r, true
		}
	}
	return Rule{}, false
}

// linked reports whether any rule connects a and b, in either direction.
func linked(a, b Role) bool {
	for _, r := range matrix {
		if (r.From == a && r.To == b) || (r.From == b && r.To == a) {
			return true
		}
	}
	return false
}

// Edges returns the worker pairs that need a channel of their own, each pair
// once, the From role of its first rule first, in matrix order. Edges with
// master are not included: every worker has one channel to master.
func Edges() [][2]Role {
	var l [][2]Role
	seen := map[[2]Role]bool{}
	for _, r := range matrix {
		if r.From == RoleMaster || r.To == RoleMaster {
			continue
		}
		if seen[[2]Role{r.From, r.To}] || seen[[2]Role{r.To, r.From}] {
			continue
		}
		seen[[2]Role{r.From, r.To}] = true
		l = append(l, [2]Role{r.From, r.To})
	}
	return l
}

// Allowed returns nil if the matrix lets from send message type t with nfd
// fds to to. A request or event of family F needs a rule from -> to for F; a
// reply of F needs the rule to -> from (from answers to's request). The
// generic replies (FamAny) are allowed wherever to may send requests (not
// only events) to from, without fds.
func Allowed(from, to Role, t MsgType, nfd int) error {
	info, ok := lookupType(t)
	if !ok {
		return fmt.Errorf("ipc: unknown message type %s", MessageName(t))
	}
	if nfd < 0 || nfd > MaxFDs {
		return fmt.Errorf("ipc: %s with %d fds: at most %d fit a frame", info.name, nfd, MaxFDs)
	}
	if info.kind != kindReply {
		r, ok := Lookup(from, to, info.fam)
		if !ok {
			return fmt.Errorf("ipc: %s may not send %s %s to %s (no %s rule in the allow-matrix)", from, info.kind, info.name, to, info.fam)
		}
		if nfd > 0 && !r.RequestFDs {
			return fmt.Errorf("ipc: %s may not pass fds to %s with %s", from, to, info.name)
		}
		return nil
	}
	if info.fam == FamAny {
		for _, r := range matrix {
			if r.From == to && r.To == from && requestFamilies[r.Family] {
				if nfd > 0 {
					return fmt.Errorf("ipc: %s carries no fds", info.name)
				}
				return nil
			}
		}
		return fmt.Errorf("ipc: %s may not reply %s to %s: %s sends it no requests", from, info.name, to, to)
	}
	r, ok := Lookup(to, from, info.fam)
	if !ok {
		return fmt.Errorf("ipc: %s may not reply %s to %s (no %s rule %s -> %s in the allow-matrix)", from, info.name, to, info.fam, to, from)
	}
	if nfd > 0 && !r.ReplyFDs {
		return fmt.Errorf("ipc: %s may not pass fds to %s in reply %s", from, to, info.name)
	}
	return nil
}

// requestFamilies are the families with request types: only their rules
// let generic replies travel back (an event is never answered).
var requestFamilies = func() map[Family]bool {
	m := map[Family]bool{}
	for _, info := range messageTable {
		if info.kind == kindRequest {
			m[info.fam] = true
		}
	}
	return m
}()

// familyTypes returns the names of the family's request/event types and of
// its reply types.
func familyTypes(f Family) (out, back []string) {
	for _, t := range MessageTypes() {
		info := messageTable[t]
		if info.fam != f {
			continue
		}
		if info.kind == kindReply {
			back = append(back, info.name)
		} else {
			out = append(out, info.name)
		}
	}
	return out, back
}

// WriteMatrixDoc writes the allow-matrix as a Markdown table: one row per
// rule, with the message types each direction carries.
func WriteMatrixDoc(w io.Writer) error {
	var b strings.Builder
	b.WriteString("| from | to | family | fds in requests/events | fds in replies | requests and events (from → to) | replies (to → from) |\n")
	b.WriteString("|---|---|---|---|---|---|---|\n")
	yn := func(v bool) string {
		if v {
			return "yes"
		}
		return "no"
	}
	list := func(l []string) string {
		if len(l) == 0 {
			return "(none yet)"
		}
		return strings.Join(l, ", ")
	}
	for _, r := range matrix {
		out, back := familyTypes(r.Family)
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", r.From, r.To, r.Family, yn(r.RequestFDs), yn(r.ReplyFDs), list(out), list(back))
	}
	b.WriteString("\nErrorReply and Ack answer a request of any family, never with fds. An edge or family not in this table is refused in both directions.\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write allow-matrix doc: %w", err)
	}
	return nil
}
