// Package queue is moxd-queue: it owns the queue database, the queued
// message files and the report databases in its data directory, and
// (from the next issue on) makes the outbound connections (DESIGN.md §2,
// §4).
//
// In this build queue accepts and records: submissions from submission
// and web (submit.go; it checks the session with store and enforces
// sender ownership and daily limits itself), DMARC evaluations from smtp
// (reports.go), and local retries from smtp (retry.go), which it delivers
// through store with backoff. Master asks it for its part of a backup
// (backup.go). Submitted messages stay queued: outbound
// delivery, DSNs, routes and DKIM signing come with the next issue, and
// nothing here sends them.
//
// The process talks to store (token checks, local deliveries), gets
// store's events about incoming deliveries (incoming webhooks, DSNs to a
// unique MAIL FROM; incoming.go), and is asked by submission, web and
// smtp. It never parses a message beyond its
// header, bounded (header.go).
//
// Implementation notes: every database write goes through the group
// commit of commit.go, on one goroutine, and no transaction is held across
// an IPC call: a delivery reads its records, ends the transaction, talks
// to store, then records the outcome in a new operation. A message is
// acknowledged only after its file (fsynced, in a synced directory) and
// its records are committed. Schema: db.go.
package queue

import (
	"context"
	"fmt"
	"time"

	"moxd/internal/config"
	"moxd/internal/datadir"
	"moxd/internal/ipc"
	"moxd/internal/worker"
)

// Run is the queue role.
func Run(ctx context.Context, w *worker.Worker) error {
	var slice config.Slice
	if err := w.Config(&slice); err != nil {
		return err
	}
	if err := datadir.Check(slice.Dir); err != nil {
		return fmt.Errorf("%s: %w", w.Role, err)
	}
	if slice.Queue == nil {
		return fmt.Errorf("config slice without queue section")
	}
	sv, err := newService(slice.Dir, w.Log, time.Now, *slice.Queue)
	if err != nil {
		return err
	}
	defer sv.close()
	sv.channel = w.Channel
	sv.hostname = slice.Hostname
	sv.storePeer = func() (*ipc.Conn, error) { return w.Peer(ipc.RoleStore) }
	sv.keysPeer = func() (*ipc.Conn, error) { return w.Peer(ipc.RoleKeys) }
	sv.retrier.storeChanged = func() <-chan struct{} { return w.PeerChanged(ipc.RoleStore) }
	w.OnReload(func(ctx context.Context) error {
		var slice config.Slice
		if err := w.Config(&slice); err != nil {
			return err
		}
		if slice.Queue == nil {
			return fmt.Errorf("config slice without queue section")
		}
		return sv.configure(*slice.Queue)
	})
	w.OnPeerClosed(sv.channelClosed)
	w.OnStatus(sv.counters)
	h := ipc.HandlerFunc(sv.serve)
	// Store's channel carries queue's calls to store and store's incoming
	// delivery events (incoming.go).
	for _, r := range []ipc.Role{ipc.RoleSubmission, ipc.RoleWeb, ipc.RoleSMTP, ipc.RoleStore} {
		w.Handle(r, h)
	}
	// Master's channel has a handler of its own: queue administration
	// (the backup) is served there only.
	w.Handle(ipc.RoleMaster, ipc.HandlerFunc(sv.serveMaster))
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		sv.run(ctx)
	}()
	w.Ready()
	<-ctx.Done()
	<-runDone
	return nil
}
