// Package imapd is the role logic of moxd-imap (ports 143 with STARTTLS and
// 993 with implicit TLS): the IMAP server. It owns nothing: logins and
// mailbox data come from moxd-store over IPC (message bodies as read-only
// file descriptors store hands over), TLS signatures from moxd-keys.
//
// The protocol syntax is internal/mailproto/imap; this package is the
// session: conn.go (states, verb table, responses), commands_auth.go
// (commands before SELECT), selected.go (the selected mailbox), and one
// file per extension.
package imapd

import (
	"context"
	"fmt"
	"net"
	"time"

	"moxd/internal/config"
	"moxd/internal/connlimit"
	"moxd/internal/ipc"
	"moxd/internal/keys/keyclient"
	"moxd/internal/worker"
)

// Run serves the imap role.
func Run(ctx context.Context, w *worker.Worker) error {
	var slice config.Slice
	if err := w.Config(&slice); err != nil {
		return err
	}
	if slice.IMAP == nil {
		return fmt.Errorf("config slice lacks the imap section")
	}
	for _, l := range w.Listeners() {
		if l.Kind != "imap" && l.Kind != "imaps" {
			return fmt.Errorf("listener %s %s was handed to role imap", l.Kind, l.Addr)
		}
	}
	limiter := connlimit.New(nil, [3]int{}, [3]int{}, nil)
	srv := &Server{
		Store:             func() (*ipc.Conn, error) { return w.Peer(ipc.RoleStore) },
		Hostname:          slice.Hostname,
		Log:               w.Log,
		Limiter:           limiter,
		PlaintextLoopback: slice.IMAP.Localserve,
		MaxAppendSize:     slice.IMAP.MaxMessageSize,
	}
	if err := setLimits(srv, *slice.IMAP); err != nil {
		return err
	}
	kc := keyclient.New(w)
	w.OnReload(func(ctx context.Context) error {
		kc.Invalidate()
		var s config.Slice
		if err := w.Config(&s); err != nil {
			return err
		}
		if s.IMAP == nil {
			return fmt.Errorf("reloaded config slice lacks the imap section")
		}
		return setLimits(srv, *s.IMAP)
	})
	// Store's change events keep the shared mailbox caches current.
	w.Handle(ipc.RoleStore, srv)
	w.OnStatus(srv.Counters)
	srv.TLS = kc.TLSConfig()

	go func() {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				limiter.Sweep()
			}
		}
	}()
	wait := w.Accept(ctx, func(ctx context.Context, l worker.Listener, conn net.Conn) {
		srv.Serve(ctx, conn, l.Kind == "imaps")
	})
	w.Ready()
	// Sessions see ctx cancelled and end with BYE; wait drains them.
	wait()
	return nil
}

// setLimits applies the [limits] of the slice: connection limits and
// login failure delays, at start and on reload.
func setLimits(srv *Server, s config.IMAPSlice) error {
	trusted, err := connlimit.ParseTrusted(s.Limits.TrustedNetworks)
	if err != nil {
		return err
	}
	srv.Limiter.SetLimits(trusted, s.Limits.ConnectionsPerMinute, s.Limits.ConcurrentConnections)
	srv.SetAuthLimits(s.Limits.AuthFailureDelay, s.Limits.MaxAuthFailures)
	return nil
}
