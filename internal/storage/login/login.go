// Package login authenticates users for moxd's network roles. moxd-store
// runs it: the store role routes the FamSession authentication messages
// (AuthStart, AuthContinue, AuthAbort, TokenCheck, TokenRevoke) from its
// channels to Service.Handle, so submission, imap and web never see
// credentials (DESIGN.md §6). The SASL mechanisms, failure limits and
// token table are internal/auth; this package keeps the exchanges between
// IPC calls, applies the limits and issues the session tokens.
//
// Implementation notes:
//   - Exchanges are kept per (peer role, channel generation, exchange id).
//     A role can only continue its own exchanges on its current channel;
//     an id from another role or generation is simply not found. Ids come
//     from one counter, so a finished id is never valid again.
//   - Each role may have MaxExchanges exchanges open; one idle for
//     IdleTimeout is dropped. Both bound what a misbehaving role can make
//     store hold.
//   - mu guards the exchange tables only. It is never held while a
//     mechanism runs (account lookups, password hashing behind the Hasher's
//     semaphore) nor during the failure delay. An exchange being stepped is
//     marked busy, so a second step on it is refused instead of racing.
//   - Failure delay: after a failed login the failure is counted and the
//     answer waits for the Limiter's delay. The exchange is removed from
//     its table first, so the wait holds no table slot, no lock and no
//     hashing slot; it does hold the IPC handler goroutine serving the
//     request, so the store role must give its session channels more
//     handler slots than concurrent delayed failures it wants to absorb.
//   - Failure limits are checked twice: for the client's prefixes when the
//     exchange starts, and for (prefix, account) when the mechanism looks
//     up the user name, so a refused pair costs no password hash. The
//     account is the one the name resolves to (an address or the account
//     name count together), or the name itself when no account has it.
//   - Only submission, imap and web may log in users: the port-25 smtp
//     instance has no authentication (DESIGN.md §2) and queue only checks
//     tokens. Queue may check tokens issued to submission and web, whose
//     submissions carry them (DESIGN.md §4); every role may check and
//     revoke its own.
package login

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"moxd/internal/auth"
	"moxd/internal/ipc"
)

// Defaults for Config fields left zero.
const (
	DefaultMaxExchanges   = 256
	DefaultIdleTimeout    = 60 * time.Second
	DefaultTokenLifetime  = 24 * time.Hour
	DefaultRecordInterval = 5 * time.Second
)

// Config configures a Service. Zero fields take defaults as documented.
type Config struct {
	// Lookup resolves a login name, an email address or an account name,
	// to the account and its credentials. For a name no account has it
	// returns an error wrapping auth.ErrUnknownUser; other errors fail the
	// exchange as an internal error. Nil: every lookup fails.
	Lookup func(ctx context.Context, name string) (account string, creds auth.Credentials, err error)
	// Hasher bounds concurrent password hashing. Nil: one sized to
	// runtime.NumCPU().
	Hasher *auth.Hasher
	// Limiter counts failed logins. Nil: one with auth's default limits.
	Limiter *auth.Limiter
	// Tokens is store's session token table, shared with the code that
	// opens sessions. Nil: a table of this service's own.
	Tokens *auth.Tokens
	// Log receives a line per login and failed login. Nil: discard.
	Log *slog.Logger
	// Now is the clock. Nil: time.Now.
	Now func() time.Time
	// Sleep waits d or until ctx ends, for the failure delay. Nil: a
	// timer. Tests substitute it.
	Sleep func(ctx context.Context, d time.Duration) error
	// RecordFailures is called by Run every RecordInterval with the failed
	// logins counted since the previous call (store persists them), and
	// once more when Run ends. Nil: the records are dropped.
	RecordFailures func([]auth.FailureRecord)
	// RecordInterval is how often Run reports failures and drops idle
	// exchanges. Default DefaultRecordInterval.
	RecordInterval time.Duration
	// MaxExchanges bounds the open exchanges per role. Default
	// DefaultMaxExchanges.
	MaxExchanges int
	// IdleTimeout drops an exchange whose client has not answered for
	// this long. Default DefaultIdleTimeout.
	IdleTimeout time.Duration
	// TokenLifetime is the validity of a session token; the role revokes
	// it earlier, when the session ends. Default DefaultTokenLifetime.
	TokenLifetime time.Duration
}

// authRoles may log users in.
var authRoles = map[ipc.Role]bool{
	ipc.RoleSubmission: true,
	ipc.RoleIMAP:       true,
	ipc.RoleWeb:        true,
}

// tokenReaders lists, per role, the other roles whose tokens it may check.
var tokenReaders = map[ipc.Role][]ipc.Role{
	ipc.RoleQueue: {ipc.RoleSubmission, ipc.RoleWeb},
}

// Handles reports whether Service.Handle serves message type t; the store
// role routes these to it.
func Handles(t ipc.MsgType) bool {
	switch t {
	case ipc.TypeAuthStart, ipc.TypeAuthContinue, ipc.TypeAuthAbort, ipc.TypeTokenCheck, ipc.TypeTokenRevoke:
		return true
	}
	return false
}

// Service runs authentication exchanges for store's peers. It is safe for
// concurrent use.
type Service struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	nextID uint64
	roles  map[ipc.Role]*roleState
}

// roleState is what the service holds for one peer role.
type roleState struct {
	gen       uint64 // newest channel generation seen; for TokenCheck by other roles
	exchanges map[exKey]*exchange
}

type exKey struct {
	gen, id uint64
}

// exchange is one SASL exchange in progress.
type exchange struct {
	mech     auth.Mechanism
	mechName string
	ip       netip.Addr
	busy     bool      // a step runs; guarded by Service.mu
	last     time.Time // end of the latest step; guarded by Service.mu

	// Written by the lookup, during a step, by the goroutine running it.
	name    string // the login name the client gave
	account string // the account it resolved to, "" if none
}

// limitName is the name the failure limits count under.
func (ex *exchange) limitName() string {
	if ex.account != "" {
		return ex.account
	}
	return ex.name
}

// errRefused is returned by the lookup when the (prefix, account) pair is
// refused by the Limiter.
var errRefused = errors.New("too many failed logins")

// New returns a Service for cfg, with defaults for zero fields.
func New(cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Lookup == nil {
		cfg.Lookup = func(ctx context.Context, name string) (string, auth.Credentials, error) {
			return "", auth.Credentials{}, errors.New("login: no account lookup configured")
		}
	}
	if cfg.Hasher == nil {
		cfg.Hasher = auth.NewHasher(runtime.NumCPU())
	}
	if cfg.Limiter == nil {
		cfg.Limiter = auth.NewLimiter(auth.LimiterConfig{}, cfg.Now)
	}
	if cfg.Tokens == nil {
		cfg.Tokens = auth.NewTokens(cfg.Now)
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleep
	}
	if cfg.RecordInterval <= 0 {
		cfg.RecordInterval = DefaultRecordInterval
	}
	if cfg.MaxExchanges <= 0 {
		cfg.MaxExchanges = DefaultMaxExchanges
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.TokenLifetime <= 0 {
		cfg.TokenLifetime = DefaultTokenLifetime
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, log: log, roles: map[ipc.Role]*roleState{}}
}

// sleep waits d unless ctx ends first.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// role returns the state of r, noting generation gen as seen. Callers
// hold s.mu.
func (s *Service) role(r ipc.Role, gen uint64) *roleState {
	rs := s.roles[r]
	if rs == nil {
		rs = &roleState{exchanges: map[exKey]*exchange{}}
		s.roles[r] = rs
	}
	rs.gen = max(rs.gen, gen)
	return rs
}

// Handle serves one authentication request or event from peer on its
// channel of generation gen. Requests get an ipc reply or an error that
// is an *ipc.RemoteError with the code the message docs name; an event
// (TokenRevoke) gets nil, nil.
func (s *Service) Handle(ctx context.Context, peer ipc.Role, gen uint64, req *ipc.Request) (ipc.Message, error) {
	switch m := req.Msg.(type) {
	case *ipc.AuthStart:
		return s.start(ctx, peer, gen, m)
	case *ipc.AuthContinue:
		return s.cont(ctx, peer, gen, m)
	case *ipc.AuthAbort:
		s.mu.Lock()
		rs := s.role(peer, gen)
		k := exKey{gen, m.Exchange}
		// A busy exchange ends when its step returns; dropping it here
		// makes that step's result count for nothing.
		delete(rs.exchanges, k)
		s.mu.Unlock()
		return &ipc.Ack{}, nil
	case *ipc.TokenCheck:
		return s.checkToken(peer, gen, m)
	case *ipc.TokenRevoke:
		tok := auth.Token(m.Token)
		if _, err := s.cfg.Tokens.Check(tok, peer.String(), gen); err != nil {
			s.log.Debug("token revoke ignored", "role", peer.String(), "err", err)
			return nil, nil
		}
		s.cfg.Tokens.Revoke(tok)
		return nil, nil
	}
	return nil, ipc.Errorf(ipc.CodeBadRequest, "login: %s is not an authentication message", ipc.MessageName(req.Msg.Type()))
}

func (s *Service) start(ctx context.Context, peer ipc.Role, gen uint64, m *ipc.AuthStart) (ipc.Message, error) {
	if !authRoles[peer] {
		return nil, ipc.Errorf(ipc.CodeDenied, "login: role %s may not log users in; only submission, imap and web have authentication", peer)
	}
	ip := m.RemoteIP.Unmap().WithZone("")
	if delay, refused := s.cfg.Limiter.Check(ip, ""); refused {
		return nil, s.refuse(ctx, delay, peer, ip, "")
	}

	ex := &exchange{mechName: m.Mechanism, ip: ip}
	cbs := make([]auth.ChannelBinding, 0, len(m.ChannelBindings))
	for _, cb := range m.ChannelBindings {
		cbs = append(cbs, auth.ChannelBinding{Type: cb.Type, Data: cb.Data})
	}
	mech, err := auth.NewServer(m.Mechanism, func(ctx context.Context, name string) (auth.Credentials, error) {
		return s.lookup(ctx, ex, name)
	}, s.cfg.Hasher, m.TLS, cbs)
	if err != nil {
		return nil, ipc.Errorf(ipc.CodeBadRequest, "login: %v", err)
	}
	ex.mech = mech

	now := s.cfg.Now()
	s.mu.Lock()
	rs := s.role(peer, gen)
	s.expireLocked(rs, now)
	if len(rs.exchanges) >= s.cfg.MaxExchanges {
		s.mu.Unlock()
		s.log.Warn("login refused: too many exchanges in progress", "role", peer.String(), "limit", s.cfg.MaxExchanges)
		return nil, ipc.Errorf(ipc.CodeBusy, "login: %s has %d authentication exchanges in progress, the limit; try again later", peer, s.cfg.MaxExchanges)
	}
	s.nextID++
	k := exKey{gen, s.nextID}
	ex.busy = true
	ex.last = now
	rs.exchanges[k] = ex
	s.mu.Unlock()

	resp := m.InitialResponse
	if !m.HasInitial {
		resp = nil
	} else if resp == nil {
		// An empty initial response travels as no bytes; to the
		// mechanism it is a response, unlike none at all.
		resp = []byte{}
	}
	return s.step(ctx, peer, k, ex, resp)
}

func (s *Service) cont(ctx context.Context, peer ipc.Role, gen uint64, m *ipc.AuthContinue) (ipc.Message, error) {
	k := exKey{gen, m.Exchange}
	now := s.cfg.Now()
	s.mu.Lock()
	rs := s.role(peer, gen)
	ex := rs.exchanges[k]
	switch {
	case ex == nil:
		s.mu.Unlock()
		return nil, ipc.Errorf(ipc.CodeNotFound, "login: no authentication exchange %d on this channel (finished, aborted or idle for %s)", m.Exchange, s.cfg.IdleTimeout)
	case ex.busy:
		s.mu.Unlock()
		return nil, ipc.Errorf(ipc.CodeBadRequest, "login: exchange %d is busy with another step; send one response at a time", m.Exchange)
	case now.Sub(ex.last) >= s.cfg.IdleTimeout:
		delete(rs.exchanges, k)
		s.mu.Unlock()
		return nil, ipc.Errorf(ipc.CodeNotFound, "login: authentication exchange %d was idle for %s and is gone; start again", m.Exchange, s.cfg.IdleTimeout)
	}
	ex.busy = true
	s.mu.Unlock()

	resp := m.Response
	if resp == nil {
		resp = []byte{}
	}
	return s.step(ctx, peer, k, ex, resp)
}

// lookup resolves name for ex's mechanism and applies the (prefix,
// account) limit before any password is checked.
func (s *Service) lookup(ctx context.Context, ex *exchange, name string) (auth.Credentials, error) {
	ex.name = name
	account, creds, err := s.cfg.Lookup(ctx, name)
	if err == nil {
		ex.account = account
	}
	if _, refused := s.cfg.Limiter.Check(ex.ip, ex.limitName()); refused {
		return auth.Credentials{}, errRefused
	}
	return creds, err
}

// take removes ex from the table and reports whether it was still there:
// it is not when it was aborted or its channel reset during the step.
func (s *Service) take(peer ipc.Role, k exKey, ex *exchange) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	rs := s.roles[peer]
	if rs == nil || rs.exchanges[k] != ex {
		return false
	}
	delete(rs.exchanges, k)
	return true
}

// step runs one mechanism step of exchange k, marked busy by the caller,
// and turns its outcome into the reply.
func (s *Service) step(ctx context.Context, peer ipc.Role, k exKey, ex *exchange, resp []byte) (ipc.Message, error) {
	challenge, done, err := ex.mech.Next(ctx, resp)
	if err == nil && !done {
		s.mu.Lock()
		defer s.mu.Unlock()
		rs := s.roles[peer]
		if rs == nil || rs.exchanges[k] != ex {
			return nil, ipc.Errorf(ipc.CodeNotFound, "login: authentication exchange %d was aborted", k.id)
		}
		ex.busy = false
		ex.last = s.cfg.Now()
		return &ipc.AuthStep{Exchange: k.id, Challenge: challenge}, nil
	}

	if !s.take(peer, k, ex) {
		return nil, ipc.Errorf(ipc.CodeNotFound, "login: authentication exchange %d was aborted", k.id)
	}
	log := s.log.With("role", peer.String(), "mech", ex.mechName, "ip", ex.ip.String())
	if err == nil {
		s.cfg.Limiter.Success(ex.ip, ex.limitName())
		if len(ex.account) > ipc.MaxAccountLen {
			log.Error("login succeeded for an account name too long for ipc", "account", ex.account, "limit", ipc.MaxAccountLen)
			return nil, ipc.Errorf(ipc.CodeFailed, "login: account name of %d bytes, ipc carries at most %d; rename the account", len(ex.account), ipc.MaxAccountLen)
		}
		tok, err := s.cfg.Tokens.Issue(auth.TokenInfo{
			Account:    ex.account,
			Role:       peer.String(),
			Generation: k.gen,
			Expires:    s.cfg.Now().Add(s.cfg.TokenLifetime),
		})
		if err != nil {
			log.Error("login succeeded but no session token", "account", ex.account, "err", err)
			return nil, ipc.Errorf(ipc.CodeFailed, "login: issuing a session token: %v", err)
		}
		log.Info("login", "account", ex.account, "name", ex.name)
		return &ipc.AuthStep{Exchange: k.id, Done: true, Account: ex.account, Token: tok}, nil
	}

	switch {
	case errors.Is(err, errRefused):
		delay, _ := s.cfg.Limiter.Check(ex.ip, ex.limitName())
		return nil, s.refuse(ctx, delay, peer, ex.ip, ex.name)
	case errors.Is(err, auth.ErrAuthFailed):
		name := ex.limitName()
		s.cfg.Limiter.Failure(ex.ip, name)
		delay, _ := s.cfg.Limiter.Check(ex.ip, name)
		log.Info("login failed", "name", ex.name, "account", ex.account, "delay", delay, "reason", err.Error())
		if err := s.cfg.Sleep(ctx, delay); err != nil {
			return nil, fmt.Errorf("login: failure delay: %w", err)
		}
		return nil, ipc.Errorf(ipc.CodeDenied, "authentication failed")
	case errors.Is(err, auth.ErrAborted):
		return nil, ipc.Errorf(ipc.CodeBadRequest, "login: %v", err)
	case errors.Is(err, auth.ErrMalformed):
		log.Debug("malformed sasl message", "err", err)
		return nil, ipc.Errorf(ipc.CodeBadRequest, "login: %v", err)
	case ctx.Err() != nil:
		return nil, fmt.Errorf("login: %w", err)
	}
	log.Error("login could not be checked", "name", ex.name, "err", err)
	return nil, ipc.Errorf(ipc.CodeFailed, "login: checking credentials failed; the store log has the cause")
}

// refuse answers a login the Limiter refuses, after its delay.
func (s *Service) refuse(ctx context.Context, delay time.Duration, peer ipc.Role, ip netip.Addr, name string) error {
	s.log.Info("login refused: too many failed logins", "role", peer.String(), "ip", ip.String(), "name", name, "delay", delay)
	if err := s.cfg.Sleep(ctx, delay); err != nil {
		return fmt.Errorf("login: refusal delay: %w", err)
	}
	return ipc.Errorf(ipc.CodeBusy, "too many failed logins from your network, try again later")
}

// checkToken answers TokenCheck.
func (s *Service) checkToken(peer ipc.Role, gen uint64, m *ipc.TokenCheck) (ipc.Message, error) {
	issuer := m.Issuer
	if issuer != peer {
		allowed := false
		for _, r := range tokenReaders[peer] {
			allowed = allowed || r == issuer
		}
		if !allowed {
			return nil, ipc.Errorf(ipc.CodeDenied, "login: %s may not check tokens issued to %s", peer, issuer)
		}
		s.mu.Lock()
		rs := s.roles[issuer]
		gen = 0
		if rs != nil {
			gen = rs.gen
		}
		s.mu.Unlock()
		if gen == 0 {
			return nil, ipc.Errorf(ipc.CodeDenied, "%v: %s has not logged anyone in since store started", auth.ErrTokenInvalid, issuer)
		}
	} else {
		s.mu.Lock()
		s.role(peer, gen)
		s.mu.Unlock()
	}
	info, err := s.cfg.Tokens.Check(auth.Token(m.Token), issuer.String(), gen)
	if err != nil {
		return nil, ipc.Errorf(ipc.CodeDenied, "%v", err)
	}
	return &ipc.TokenInfo{Account: info.Account, Expires: info.Expires.Unix()}, nil
}

// RevokeGeneration ends what role's channel of generation gen left: its
// session tokens and its exchanges in progress. The store role calls it
// when that channel goes down or is replaced.
func (s *Service) RevokeGeneration(role ipc.Role, gen uint64) {
	s.cfg.Tokens.RevokeGeneration(role.String(), gen)
	s.mu.Lock()
	defer s.mu.Unlock()
	if rs := s.roles[role]; rs != nil {
		for k := range rs.exchanges {
			if k.gen == gen {
				delete(rs.exchanges, k)
			}
		}
	}
}

// expireLocked drops rs's exchanges idle for IdleTimeout. Callers hold
// s.mu.
func (s *Service) expireLocked(rs *roleState, now time.Time) {
	for k, ex := range rs.exchanges {
		if !ex.busy && now.Sub(ex.last) >= s.cfg.IdleTimeout {
			delete(rs.exchanges, k)
		}
	}
}

// Exchanges returns the number of exchanges in progress, for metrics.
func (s *Service) Exchanges() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, rs := range s.roles {
		n += len(rs.exchanges)
	}
	return n
}

// Counters returns the service's counters for moxctl status.
func (s *Service) Counters() []ipc.Counter {
	return []ipc.Counter{
		{Name: "login_exchanges", Value: uint64(s.Exchanges())},
		{Name: "login_tokens", Value: uint64(s.cfg.Tokens.Len())},
		{Name: "login_failure_counters", Value: uint64(s.cfg.Limiter.Len())},
	}
}

// Run reports failed logins to RecordFailures and drops idle exchanges
// every RecordInterval until ctx ends, then reports once more.
func (s *Service) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.RecordInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.flush()
			return nil
		case <-t.C:
			s.flush()
			now := s.cfg.Now()
			s.mu.Lock()
			for _, rs := range s.roles {
				s.expireLocked(rs, now)
			}
			s.mu.Unlock()
		}
	}
}

// flush hands the pending failure records to RecordFailures.
func (s *Service) flush() {
	recs := s.cfg.Limiter.TakeRecords()
	if len(recs) == 0 || s.cfg.RecordFailures == nil {
		return
	}
	s.cfg.RecordFailures(recs)
}
