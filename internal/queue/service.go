package queue

// The IPC service: submissions from submission and web, DMARC evaluations
// and local retries from smtp, incoming deliveries from store. The
// allow-matrix has already checked that a peer may send the family of
// each request.

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/idna"

	"moxd/internal/addrbook"
	"moxd/internal/config"
	"moxd/internal/dns"
	"moxd/internal/ipc"
)

// service is the running queue role.
type service struct {
	log     *slog.Logger
	now     func() time.Time
	q       *Queue
	spools  *spools
	reports *reports
	retrier *retrier
	out     *deliverer
	hooks   *hookRunner

	incomingStats incomingStats

	// hostname is this host's name, ASCII (EHLO, DSNs, Message-IDs).
	hostname string

	settings atomic.Pointer[settings]

	// channel returns the peer role and generation of a connection
	// (worker.Channel; replaced in tests).
	channel func(c *ipc.Conn) (ipc.Role, uint64, bool)
	// storePeer returns the current channel to store, keysPeer the one
	// to keys.
	storePeer func() (*ipc.Conn, error)
	keysPeer  func() (*ipc.Conn, error)

	submitted atomic.Uint64
	refused   atomic.Uint64
	retries   atomic.Uint64
}

// settings is what the config slice says, in the form the checks use.
type settings struct {
	accounts map[string]config.QueueAccount
	book     senderBook
	maxSize  int64

	// Outbound delivery.
	localserve   bool
	postmaster   string
	localDomains map[string]bool // lower-case, Unicode form
	separators   map[string][]string
	delivery     deliverySettings
	routes       *routeTable
	dkim         map[string][]config.QueueDKIM
	roots        *x509.CertPool

	clientOnce sync.Once
	client     *http.Client
}

// httpClient is the client of MTA-STS fetches, made once per settings.
func (st *settings) httpClient(r dns.Resolver) *http.Client {
	st.clientOnce.Do(func() { st.client = policyClient(st, r) })
	return st.client
}

// senderBook says which addresses an account may send as (package
// addrbook, shared with store's delivery rules).
type senderBook interface {
	MaySendAs(account, localpart, domain string) bool
}

func newSettings(s config.QueueSlice) (*settings, error) {
	st := &settings{accounts: map[string]config.QueueAccount{}, maxSize: s.MaxMessageSize}
	if st.maxSize <= 0 {
		st.maxSize = DefaultMaxMessage
	}
	var accts []addrbook.Account
	for _, a := range s.Accounts {
		st.accounts[a.Name] = a
		accts = append(accts, addrbook.Account{Name: a.Name, Addresses: a.Addresses})
	}
	book, err := addrbook.New(s.Domains, accts)
	if err != nil {
		return nil, fmt.Errorf("addresses in the queue's config slice: %w", err)
	}
	st.book = book
	st.localserve = s.Localserve
	st.postmaster = s.Postmaster
	st.localDomains = map[string]bool{}
	st.separators = map[string][]string{}
	for _, d := range s.Domains {
		name := strings.ToLower(d.Name)
		st.localDomains[name] = true
		st.separators[name] = d.LocalpartSeparators
		if ascii, err := idna.Lookup.ToASCII(name); err == nil {
			st.localDomains[ascii] = true
			st.separators[ascii] = d.LocalpartSeparators
		}
	}
	st.delivery = newDeliverySettings(s.Delivery)
	if st.routes, err = newRouteTable(s); err != nil {
		return nil, err
	}
	st.dkim = map[string][]config.QueueDKIM{}
	for d, l := range s.DKIM {
		st.dkim[strings.ToLower(d)] = l
	}
	if st.roots, err = rootPool(s.Delivery.TestCA); err != nil {
		return nil, err
	}
	return st, nil
}

// newService opens the queue in dir with the config slice.
func newService(dir string, log *slog.Logger, now func() time.Time, slice config.QueueSlice) (*service, error) {
	st, err := newSettings(slice)
	if err != nil {
		return nil, err
	}
	q, err := openQueue(dir, log, now)
	if err != nil {
		return nil, err
	}
	rep, err := openReports(dir, log)
	if err != nil {
		q.Close()
		return nil, err
	}
	sv := &service{
		log:     log,
		now:     now,
		q:       q,
		spools:  newSpools(log, q.tmpDir, now),
		reports: rep,
	}
	sv.settings.Store(st)
	sv.retrier = newRetrier(sv)
	sv.hostname = "localhost"
	sv.keysPeer = func() (*ipc.Conn, error) { return nil, errors.New("no channel to keys") }
	resolver, err := newResolver(slice.DNS, log)
	if err != nil {
		rep.close()
		q.Close()
		return nil, err
	}
	sv.out = newDeliverer(sv, resolver)
	sv.hooks = newHookRunner(sv, resolver)
	q.adminHook = func(m *Message, rc *Recipient, event string, now time.Time) *Hook {
		if m.Account == "" {
			return nil
		}
		return newOutgoingHook(sv.settings.Load(), m, rc, outcome{Seq: rc.Seq, Error: rc.LastError, Status: rc.LastStatus}, event, false, now)
	}
	return sv, nil
}

// newResolver is the DNS client of the config slice.
func newResolver(d config.DNSSlice, log *slog.Logger) (dns.Resolver, error) {
	if d.Offline {
		return dns.Offline(), nil
	}
	c, err := dns.New(dns.Config{Servers: d.Servers, TrustAD: d.TrustAD, Log: log})
	if err != nil {
		return nil, fmt.Errorf("dns: %w", err)
	}
	return c, nil
}

// configure applies a new config slice.
func (sv *service) configure(slice config.QueueSlice) error {
	st, err := newSettings(slice)
	if err != nil {
		return err
	}
	sv.settings.Store(st)
	return nil
}

// run does the background work until ctx ends: local retries, writing
// DMARC evaluations, expiring spools.
func (sv *service) run(ctx context.Context) {
	done := make(chan struct{}, 4)
	go func() { sv.retrier.run(ctx); done <- struct{}{} }()
	go func() { sv.reports.run(ctx); done <- struct{}{} }()
	go func() { sv.out.run(ctx); done <- struct{}{} }()
	go func() { sv.hooks.run(ctx); done <- struct{}{} }()
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			for range cap(done) {
				<-done
			}
			return
		case <-t.C:
			now := sv.now()
			sv.spools.releaseWhere(func(sp *spool) bool { return now.Sub(sp.created) > spoolLifetime })
			keep := sv.settings.Load().delivery.Keep
			if n, err := sv.q.expireRetired(now, keep, 1000); err != nil {
				sv.log.Error("expire retired messages", "err", err)
			} else if n > 0 {
				sv.log.Debug("retired messages expired", "count", n)
			}
			if _, err := sv.q.expireHooks(now, keep, 1000); err != nil {
				sv.log.Error("expire retired webhook events", "err", err)
			}
		}
	}
}

func (sv *service) close() {
	sv.spools.releaseWhere(func(*spool) bool { return true })
	sv.reports.close()
	sv.q.Close()
}

// serve dispatches one request or event by the family of its message.
func (sv *service) serve(ctx context.Context, req *ipc.Request) (ipc.Message, []*os.File, error) {
	role, gen, ok := sv.channel(req.Conn)
	if !ok {
		closeFiles(req.Files)
		return nil, nil, ipc.Errorf(ipc.CodeUnavailable, "channel is being replaced; try again")
	}
	ch := channelKey{role, gen}
	fam, _ := ipc.TypeFamily(req.Msg.Type())
	switch fam {
	case ipc.FamSubmit:
		return sv.serveSubmit(ctx, ch, req)
	case ipc.FamReports:
		if m, ok := req.Msg.(*ipc.DMARCEval); ok {
			sv.reports.add(m)
		}
		return nil, nil, nil
	case ipc.FamRetry:
		m := req.Msg.(*ipc.LocalRetry)
		defer closeFiles(req.Files)
		return sv.localRetry(ctx, m, req.Files[0])
	case ipc.FamIncoming:
		if m, ok := req.Msg.(*ipc.IncomingDelivery); ok {
			sv.incoming(m)
		}
		return nil, nil, nil
	}
	closeFiles(req.Files)
	return nil, nil, ipc.Errorf(ipc.CodeBadRequest, "queue does not serve %s", req.Msg.Type())
}

// serveSubmit handles FamSubmit from submission and web.
func (sv *service) serveSubmit(ctx context.Context, ch channelKey, req *ipc.Request) (ipc.Message, []*os.File, error) {
	switch m := req.Msg.(type) {
	case *ipc.NewSpool:
		max := sv.settings.Load().maxSize
		id, w, err := sv.spools.start(ch, m.Size, max)
		if err != nil {
			return nil, nil, err
		}
		return &ipc.SpoolPipe{Spool: id, MaxSize: max}, []*os.File{w}, nil
	case *ipc.AddRecipients:
		if err := sv.spools.addRecipients(ch, m.Spool, m.Recipients); err != nil {
			return nil, nil, err
		}
		return &ipc.Ack{}, nil, nil
	case *ipc.Submit:
		rep, err := sv.submit(ctx, ch, m)
		if err != nil {
			sv.refused.Add(1)
			return nil, nil, err
		}
		sv.submitted.Add(1)
		return rep, nil, nil
	}
	return nil, nil, ipc.Errorf(ipc.CodeBadRequest, "unexpected %s", req.Msg.Type())
}

// channelClosed drops the spools of a closed channel.
func (sv *service) channelClosed(role ipc.Role, gen uint64) {
	ch := channelKey{role, gen}
	sv.spools.releaseWhere(func(sp *spool) bool { return sp.owner == ch })
}

func (sv *service) counters() []ipc.Counter {
	return []ipc.Counter{
		{Name: "messages_queued", Value: uint64(max(0, sv.q.messages.Load()))},
		{Name: "recipients_queued", Value: uint64(max(0, sv.q.recipients.Load()))},
		{Name: "spools_pending", Value: uint64(sv.spools.count())},
		{Name: "submissions_accepted", Value: sv.submitted.Load()},
		{Name: "submissions_refused", Value: sv.refused.Load()},
		{Name: "local_retries_accepted", Value: sv.retries.Load()},
		{Name: "local_deliveries", Value: sv.retrier.delivered.Load()},
		{Name: "local_failures", Value: sv.retrier.failed.Load()},
		{Name: "outbound_delivered", Value: sv.out.delivered.Load()},
		{Name: "outbound_failed", Value: sv.out.failed.Load()},
		{Name: "outbound_deferred", Value: sv.out.deferred.Load()},
		{Name: "dsns_queued", Value: sv.out.dsns.Load()},
		{Name: "connections_reused", Value: uint64(sv.out.pool.reusedCount())},
		{Name: "webhooks_posted", Value: sv.hooks.posted.Load()},
		{Name: "webhooks_failed", Value: sv.hooks.failed.Load()},
		{Name: "incoming_events", Value: sv.incomingStats.events.Load()},
		{Name: "incoming_webhook_events", Value: sv.incomingStats.hooks.Load()},
		{Name: "dsns_matched", Value: sv.incomingStats.matched.Load()},
		{Name: "dsns_unmatched", Value: sv.incomingStats.unmatched.Load()},
		{Name: "dmarc_evaluations_stored", Value: sv.reports.stored.Load()},
		{Name: "dmarc_evaluations_dropped", Value: sv.reports.dropped.Load()},
	}
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		if f != nil {
			f.Close()
		}
	}
}

// remoteError turns an internal error into the reply's error: refusals
// with their codes keep them, anything else is a temporary failure.
func remoteError(what string, err error) error {
	var re *ipc.RemoteError
	if errors.As(err, &re) {
		return re
	}
	var le *LimitError
	if errors.As(err, &le) {
		return ipc.Errorf(ipc.CodeLimit, "%s", le.msg)
	}
	return ipc.Errorf(ipc.CodeFailed, "%s: %v; try again later", what, err)
}
