// Package ipc is moxd's channel between its processes: every process (master,
// keys, store, queue, smtp, submission, imap, web) links it.
//
// Master creates one AF_UNIX SOCK_SEQPACKET socketpair per allowed edge and
// hands each end to the worker that owns it; there is no routing through
// master, and a channel's identity is the fd it arrives on, never anything a
// peer claims in-band. On a channel every sendmsg carries exactly one frame: a
// 16-byte header (type, flags, fd count, request id) and a payload, at most
// MaxFrame bytes in all, plus up to MaxFDs file descriptors as SCM_RIGHTS.
// Results larger than a frame are pulled by the receiver in batches.
//
// Messages are typed structs with a strict codec: an unknown type, a short or
// long payload, a bool that is not 0 or 1, an fd count that differs from what
// the message needs, or a truncated frame or control message is a protocol
// error. A Conn that sees one closes every fd received with that frame, closes
// the channel and reports the error, so master can restart the sender.
//
// The allow-matrix (Matrix) says which role may send which message family to
// which other role, and whether fds may travel with requests or replies. Conn
// checks it for every message in both directions.
//
// Why our own code: moxd needs fd passing, a fixed frame bound that fits every
// target OS's seqpacket limits and a per-edge matrix; the general RPC packages
// (net/rpc, gRPC) carry none of that and bring framing we would then need to
// police, so this package is small and written for moxd.
package ipc

import (
	"fmt"
)

// Role is one of moxd's processes. Its value travels on the wire as a uint8.
type Role uint8

// The roles, in this order on the wire. RoleSMTP is the port-25 instance of
// moxd-smtp, RoleSubmission its second instance (587/465).
const (
	RoleMaster Role = iota + 1
	RoleKeys
	RoleStore
	RoleQueue
	RoleSMTP
	RoleSubmission
	RoleIMAP
	RoleWeb
)

// roleNames is indexed by Role; index 0 is not a role.
var roleNames = [...]string{
	RoleMaster:     "master",
	RoleKeys:       "keys",
	RoleStore:      "store",
	RoleQueue:      "queue",
	RoleSMTP:       "smtp",
	RoleSubmission: "submission",
	RoleIMAP:       "imap",
	RoleWeb:        "web",
}

// Valid reports whether r is one of the defined roles.
func (r Role) Valid() bool {
	return r >= RoleMaster && r <= RoleWeb
}

// String returns the role's name as used in config files and logs.
func (r Role) String() string {
	if !r.Valid() {
		return fmt.Sprintf("role(%d)", uint8(r))
	}
	return roleNames[r]
}

// ParseRole returns the role named s ("master", "keys", ...).
func ParseRole(s string) (Role, error) {
	for r := RoleMaster; r <= RoleWeb; r++ {
		if roleNames[r] == s {
			return r, nil
		}
	}
	return 0, fmt.Errorf("unknown role %q: use one of master, keys, store, queue, smtp, submission, imap, web", s)
}

// WorkerRoles returns every role except master, in start order: keys, store
// and queue before the network roles that depend on them.
func WorkerRoles() []Role {
	return []Role{RoleKeys, RoleStore, RoleQueue, RoleSMTP, RoleSubmission, RoleIMAP, RoleWeb}
}

// Family groups message types that belong to one service on one kind of edge.
// It is the high byte of a MsgType, except for the reply types marked
// FamAny that answer requests of every family.
type Family uint8

// The families. FamAny is not a family on any edge: it marks reply types that
// may answer a request of any family (ErrorReply, Ack).
const (
	FamAny        Family = 0
	FamCtl        Family = 1  // worker -> master: hello, config, listeners, ready, protocol violations
	FamSupervise  Family = 2  // master -> worker: peer channels, log level, status, shutdown, reload
	FamKeysAdmin  Family = 3  // master -> keys: certificate files, DKIM key generation, local CA
	FamTLS        Family = 4  // smtp, submission, imap, web -> keys: certificates, TLS signatures
	FamDKIM       Family = 5  // queue -> keys: DKIM signatures
	FamDeliver    Family = 6  // smtp -> store, queue -> store: deliveries
	FamSession    Family = 7  // imap, web, submission, smtp, queue -> store: account sessions
	FamSubmit     Family = 8  // submission -> queue, web -> queue: message submission
	FamReports    Family = 9  // smtp -> queue: DMARC evaluations
	FamQueueAdmin Family = 10 // master, web -> queue: queue administration (backup, moxctl queue)
	FamStoreAdmin Family = 11 // master -> store: passwords, account removal, import, export, backup, local delivery
	FamEvents     Family = 12 // store -> imap, web: coalesced mailbox change events
	FamRetry      Family = 13 // smtp -> queue: local retries of recipients store could not take yet
	FamIncoming   Family = 14 // store -> queue: committed incoming deliveries (incoming webhooks, DSN matching)
)

var familyNames = [...]string{
	FamAny:        "any",
	FamCtl:        "ctl",
	FamSupervise:  "supervise",
	FamKeysAdmin:  "keysadmin",
	FamTLS:        "tls",
	FamDKIM:       "dkim",
	FamDeliver:    "deliver",
	FamSession:    "session",
	FamSubmit:     "submit",
	FamReports:    "reports",
	FamQueueAdmin: "queueadmin",
	FamStoreAdmin: "storeadmin",
	FamEvents:     "events",
	FamRetry:      "localretry",
	FamIncoming:   "incoming",
}

// String returns the family's short name, used in message names and docs.
func (f Family) String() string {
	if int(f) >= len(familyNames) {
		return fmt.Sprintf("family(%d)", uint8(f))
	}
	return familyNames[f]
}
