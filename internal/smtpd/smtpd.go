// Package smtpd is the role logic of moxd-smtp, run twice by master: as
// "smtp" (port 25, incoming mail: no AUTH, no channel to queue's submit
// service) and as "submission" (587 with STARTTLS, 465 with implicit TLS).
// It owns nothing: TLS signatures come from moxd-keys, recipients are
// checked with and messages delivered into moxd-store, submissions go to
// moxd-queue, and DNS goes to the resolvers master names in the config
// slice.
//
// The protocol is internal/mailproto/smtp; this package is the policy:
// which connections are served (limits.go), what the MX checks and where
// it delivers (mx.go, checks.go), how submission authenticates and hands
// over (submit.go), and what localserve simulates (localserve.go).
package smtpd

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"reflect"
	"sync/atomic"
	"time"

	"moxd/internal/config"
	"moxd/internal/connlimit"
	"moxd/internal/dns"
	"moxd/internal/ipc"
	"moxd/internal/keys/keyclient"
	"moxd/internal/mailproto/smtp"
	"moxd/internal/storage/storeclient"
	"moxd/internal/worker"
)

// server is what every session of one instance shares.
type server struct {
	hostname   string
	submission bool
	localserve bool
	log        *slog.Logger
	store      mailStore
	auth       authenticator
	queue      queueService
	limiter    *connlimit.Limiter
	now        func() time.Time
	connID     atomic.Uint64
	// settings change on reload; a connection keeps those it started
	// with.
	settings atomic.Pointer[settings]

	// Counters for moxctl status. delivered counts messages stored (smtp)
	// or queued (submission).
	accepted, refusedLimit, delivered atomic.Uint64
}

// settings are the parts of the slice a reload can change.
type settings struct {
	cfg      config.SMTPSlice
	resolver dns.Resolver
}

// newResolver returns the resolver the slice asks for.
func newResolver(d config.DNSSlice, log *slog.Logger) (dns.Resolver, error) {
	if d.Offline {
		return dns.Offline(), nil
	}
	c, err := dns.New(dns.Config{Servers: d.Servers, TrustAD: d.TrustAD, Log: log})
	if err != nil {
		return nil, fmt.Errorf("dns resolver (option [dns] in moxd.conf): %w", err)
	}
	return c, nil
}

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
	for _, l := range w.Listeners() {
		if w.Role == ipc.RoleSMTP && l.Kind != "smtp" || w.Role == ipc.RoleSubmission && l.Kind != "submission" && l.Kind != "submissions" {
			return fmt.Errorf("listener %s %s was handed to role %s", l.Kind, l.Addr, w.Role)
		}
	}
	srv, err := newServer(slice, w)
	if err != nil {
		return err
	}
	kc := keyclient.New(w)
	w.OnReload(func(ctx context.Context) error {
		kc.Invalidate()
		var s config.Slice
		if err := w.Config(&s); err != nil {
			return err
		}
		if s.SMTP == nil || s.SMTP.Submission != slice.SMTP.Submission {
			return fmt.Errorf("reloaded config slice is not for this smtp instance")
		}
		return srv.reconfigure(*s.SMTP, w.Log)
	})
	w.OnStatus(srv.counters)
	tlsConfig := kc.TLSConfig()

	go func() {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				srv.limiter.Sweep()
			}
		}
	}()

	wait := w.Accept(ctx, func(ctx context.Context, l worker.Listener, conn net.Conn) {
		srv.serve(ctx, conn, smtp.Config{
			Hostname:    srv.hostname,
			TLSConfig:   tlsConfig,
			ImplicitTLS: l.Kind == "submissions",
			Submission:  srv.submission,
		}, l.Kind)
	})
	w.Ready()
	// Sessions see ctx cancelled and answer 421; wait drains them (bounded
	// by the shutdown grace period of the worker runtime).
	wait()
	return nil
}

// newServer builds the shared state from the slice, wired to the peers.
func newServer(slice config.Slice, w *worker.Worker) (*server, error) {
	sc := *slice.SMTP
	storePeer := func() (*ipc.Conn, error) { return w.Peer(ipc.RoleStore) }
	queuePeer := func() (*ipc.Conn, error) { return w.Peer(ipc.RoleQueue) }
	srv := &server{
		hostname:   slice.Hostname,
		submission: sc.Submission,
		localserve: sc.Localserve,
		log:        w.Log,
		store:      storeAdapter{storeclient.NewDeliverer(storePeer)},
		auth:       storeclient.NewAuth(storePeer),
		queue:      newQueueAdapter(queuePeer, sc.Submission),
		limiter:    connlimit.New(nil, [3]int{}, [3]int{}, nil),
		now:        time.Now,
	}
	if err := srv.reconfigure(sc, w.Log); err != nil {
		return nil, err
	}
	return srv, nil
}

// reconfigure applies a (new) slice: limits, delays, DNS. Connections
// already open keep the settings they started with.
func (srv *server) reconfigure(sc config.SMTPSlice, log *slog.Logger) error {
	trusted, err := connlimit.ParseTrusted(sc.Limits.TrustedNetworks)
	if err != nil {
		return err
	}
	set := &settings{cfg: sc}
	if old := srv.settings.Load(); old != nil && reflect.DeepEqual(old.cfg.DNS, sc.DNS) {
		set.resolver = old.resolver // keep its cache
	} else if set.resolver, err = newResolver(sc.DNS, log); err != nil {
		return err
	}
	srv.limiter.SetLimits(trusted, sc.Limits.ConnectionsPerMinute, sc.Limits.ConcurrentConnections)
	srv.settings.Store(set)
	return nil
}

// serve runs one connection, after the connection limits.
func (srv *server) serve(ctx context.Context, conn net.Conn, cfg smtp.Config, kind string) {
	id := srv.connID.Add(1)
	log := srv.log.With("cid", id, "listener", kind)
	var ip netip.Addr
	if ta, ok := conn.RemoteAddr().(*net.TCPAddr); ok {
		ip = ta.AddrPort().Addr().Unmap()
	}
	release, err := srv.limiter.Acquire(ip)
	if err != nil {
		srv.refusedLimit.Add(1)
		log.Info("connection refused by limits", "remote", ip, "reason", err)
		// RFC 5321 §3.1: a server may refuse with 554 in the greeting;
		// a temporary limit is 421 (closing).
		conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(conn, "421 4.7.0 %s %s, try again later\r\n", srv.hostname, err)
		conn.Close()
		return
	}
	defer release()
	srv.accepted.Add(1)
	set := srv.settings.Load()
	cfg.MaxMessageSize = set.cfg.MaxMessageSize
	cfg.MaxRecipients = set.cfg.MaxRecipients
	cfg.RequireTLS = set.cfg.RequireTLS
	s := newSession(srv, set, ip, log)
	defer s.end()
	cfg.Session = s
	cfg.Log = log
	cfg.ConnID = id
	smtp.Serve(ctx, conn, cfg)
}

// counters reports the instance's counters in moxctl status.
func (srv *server) counters() []ipc.Counter {
	msgs := "messages_delivered"
	if srv.submission {
		msgs = "messages_submitted"
	}
	return []ipc.Counter{
		{Name: "connections", Value: srv.accepted.Load()},
		{Name: "connections_refused_by_limits", Value: srv.refusedLimit.Load()},
		{Name: msgs, Value: srv.delivered.Load()},
	}
}
