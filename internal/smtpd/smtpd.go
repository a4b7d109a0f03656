// Package smtpd is the role logic of moxd-smtp, run twice by master: as
// "smtp" (port 25, incoming mail: no AUTH, no channel to queue's submit
// service) and as "submission" (587 with STARTTLS, 465 with implicit TLS).
// It owns nothing: TLS signatures come from moxd-keys, and (in later issues)
// mail goes to moxd-store and moxd-queue over IPC.
//
// This build serves the SMTP session up to TLS (greeting, EHLO, STARTTLS,
// implicit TLS, QUIT); it does not accept mail yet and says so on MAIL.
package smtpd

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"

	"moxd/internal/config"
	"moxd/internal/ipc"
	"moxd/internal/keys/keyclient"
	"moxd/internal/mailproto/smtp"
	"moxd/internal/worker"
)

// Run serves the smtp or submission role.
func Run(ctx context.Context, w *worker.Worker) error {
	var slice config.Slice
	if err := w.Config(&slice); err != nil {
		return err
	}
	if slice.SMTP == nil {
		return fmt.Errorf("config slice lacks the smtp section")
	}
	if slice.SMTP.Submission != (w.Role == ipc.RoleSubmission) {
		return fmt.Errorf("config slice is for the other smtp instance")
	}
	kc := keyclient.New(w)
	w.OnReload(func(ctx context.Context) error {
		kc.Invalidate()
		return nil
	})
	tlsConfig := kc.TLSConfig()

	for _, l := range w.Listeners() {
		if w.Role == ipc.RoleSMTP && l.Kind != "smtp" || w.Role == ipc.RoleSubmission && l.Kind != "submission" && l.Kind != "submissions" {
			return fmt.Errorf("listener %s %s was handed to role %s", l.Kind, l.Addr, w.Role)
		}
	}
	var connID atomic.Uint64
	wait := w.Accept(ctx, func(ctx context.Context, l worker.Listener, conn net.Conn) {
		id := connID.Add(1)
		smtp.Serve(ctx, conn, smtp.Config{
			Hostname:    slice.Hostname,
			TLSConfig:   tlsConfig,
			ImplicitTLS: l.Kind == "submissions",
			Submission:  w.Role == ipc.RoleSubmission,
			ConnID:      id,
			Log:         w.Log.With("cid", id, "listener", l.Kind),
		})
	})
	w.Ready()
	// Sessions see ctx cancelled and answer 421; wait drains them (bounded
	// by the shutdown grace period of the worker runtime).
	wait()
	return nil
}
