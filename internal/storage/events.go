package storage

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"moxd/internal/ipc"
	"moxd/internal/storage/account"
)

// Change events (DESIGN.md §4): every commit reports the mailboxes it
// touched; they are coalesced per (account, mailbox) into "changed up to
// modseq N" and sent to imap and web by one goroutine, so no commit ever
// waits for an event to be sent. When too many are pending, they are
// replaced by one "resync" for everyone.

const (
	// maxPendingEvents is the number of (account, mailbox) pairs kept
	// before the events are dropped for a resync.
	maxPendingEvents = 10000
	// eventDelay lets a burst of commits coalesce.
	eventDelay = 20 * time.Millisecond
)

type eventKey struct {
	account string
	mailbox uint32
}

// events coalesces and sends change events.
type events struct {
	log     *slog.Logger
	send    func(role ipc.Role, m ipc.Message) error
	watched func(acct string, role ipc.Role) bool

	mu      sync.Mutex
	pending map[eventKey]uint64
	resync  bool
	lost    map[ipc.Role]bool // run's own: an event to the role was not sent, it gets a resync
	kick    chan struct{}
}

func newEvents(log *slog.Logger, send func(ipc.Role, ipc.Message) error, watched func(string, ipc.Role) bool) *events {
	return &events{log: log, send: send, watched: watched, pending: map[eventKey]uint64{}, lost: map[ipc.Role]bool{}, kick: make(chan struct{}, 1)}
}

// add records a change; it never blocks.
func (ev *events) add(acct string, ch account.Change) {
	ev.mu.Lock()
	if !ev.resync {
		k := eventKey{acct, ch.MailboxID}
		if ch.ModSeq > ev.pending[k] {
			ev.pending[k] = ch.ModSeq
		}
		if len(ev.pending) > maxPendingEvents {
			ev.pending = map[eventKey]uint64{}
			ev.resync = true
		}
	}
	ev.mu.Unlock()
	select {
	case ev.kick <- struct{}{}:
	default:
	}
}

// run sends pending events until ctx ends.
func (ev *events) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-ev.kick:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(eventDelay):
		}
		ev.mu.Lock()
		pending, resync := ev.pending, ev.resync
		ev.pending, ev.resync = map[eventKey]uint64{}, false
		ev.mu.Unlock()
		for _, role := range []ipc.Role{ipc.RoleIMAP, ipc.RoleWeb} {
			if resync || ev.lost[role] {
				ev.lost[role] = !ev.emit(role, &ipc.Resync{})
				continue
			}
			for k, modseq := range pending {
				if !ev.watched(k.account, role) {
					continue
				}
				if !ev.emit(role, &ipc.MailboxChanged{Account: k.account, Mailbox: k.mailbox, ModSeq: modseq}) {
					ev.lost[role] = true
					break
				}
			}
		}
		if ev.lost[ipc.RoleIMAP] || ev.lost[ipc.RoleWeb] {
			select {
			case ev.kick <- struct{}{}:
			default:
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}
}

// emit sends one event; false when the role cannot take events now (its
// sessions resynchronize when its channel comes back).
func (ev *events) emit(role ipc.Role, m ipc.Message) bool {
	if err := ev.send(role, m); err != nil {
		ev.log.Debug("change event not sent", "role", role.String(), "err", err)
		return false
	}
	return true
}
