package storage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"moxd/internal/durable"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"moxd/internal/addrbook"
	"moxd/internal/config"
	"moxd/internal/ipc"
	"moxd/internal/storage/account"
)

// Store is the set of accounts moxd-store keeps: which are configured,
// which addresses reach them, and the open account databases. Accounts are
// opened on first use and stay open; an account being removed refuses new
// work.
//
// Recipients are resolved with an addrbook.Book (aliases, catchalls,
// localpart separators, destinations); logins only by account name or one
// of an account's own addresses (Resolve), never through an alias,
// catchall or the fallback account.
type Store struct {
	dir    string // the store's data directory
	tmpDir string // dir/tmp: bodies being received
	log    *slog.Logger
	now    func() time.Time

	// OnChange receives every commit's changes (events.go).
	onChange func(acct string, ch account.Change)

	// openMu serializes creating and opening account databases, so an
	// account is never opened while it is being created.
	openMu sync.Mutex

	mu         sync.Mutex
	slice      config.StoreSlice
	addrs      map[string]string // normalized address -> account, for logins
	book       *addrbook.Book    // recipients
	fallback   string            // account for every address that resolves to nothing
	postmaster string            // account of the bare "postmaster" recipient
	quotas     map[string]int64
	junk       map[string]account.JunkRules
	hooks      map[string]bool // accounts with an incoming webhook; replaced, never changed
	open       map[string]*account.Account
	removing   map[string]bool // accounts between RemovePrepare and RemoveFinish/Cancel
	closed     bool
}

// Errors of account lookups, compared with errors.Is.
var (
	ErrNoAccount = errors.New("no such account")
	ErrRemoving  = errors.New("account is being removed")
)

// markerName is the file that marks an account directory being removed
// (docs/storage.md "Account removal").
const markerName = "removing"

// openStore prepares the store's directories. dir must exist (checked by
// the role); tmp and accounts are created here.
func openStore(dir string, log *slog.Logger, now func() time.Time) (*Store, error) {
	s := &Store{
		dir:      dir,
		tmpDir:   filepath.Join(dir, "tmp"),
		log:      log,
		now:      now,
		addrs:    map[string]string{},
		book:     &addrbook.Book{},
		quotas:   map[string]int64{},
		junk:     map[string]account.JunkRules{},
		open:     map[string]*account.Account{},
		removing: map[string]bool{},
	}
	for _, d := range []string{s.tmpDir, s.accountsDir()} {
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	// Bodies in tmp were never acknowledged: a delivery answers only
	// after its body was linked into an account.
	entries, err := os.ReadDir(s.tmpDir)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", s.tmpDir, err)
	}
	for _, e := range entries {
		os.RemoveAll(filepath.Join(s.tmpDir, e.Name()))
	}
	return s, nil
}

func (s *Store) accountsDir() string { return filepath.Join(s.dir, "accounts") }

func (s *Store) accountDir(name string) string { return filepath.Join(s.accountsDir(), name) }

// normAddress is the form addresses are compared in: the domain is
// case-insensitive (RFC 5321 §2.4), and so are localparts here, as every
// common server treats them.
func normAddress(addr string) string {
	return strings.ToLower(strings.TrimSpace(addr))
}

// configure applies a new config slice: it creates the directories of new
// accounts, settles removals left by a crash and reports directories
// without account. An address book that does not build (master validated
// the configuration, so only a bug gets here) keeps the previous one.
func (s *Store) configure(slice config.StoreSlice) error {
	addrs := map[string]string{}
	quotas := map[string]int64{}
	junk := map[string]account.JunkRules{}
	hooks := map[string]bool{}
	configured := map[string]bool{}
	var bookAccounts []addrbook.Account
	var errs []error
	for _, a := range slice.Accounts {
		configured[a.Name] = true
		quotas[a.Name] = a.Quota
		r, err := junkRules(a)
		if err != nil {
			errs = append(errs, err)
		}
		junk[a.Name] = r
		if a.IncomingWebhook {
			hooks[a.Name] = true
		}
		for _, addr := range a.Addresses {
			if !strings.HasPrefix(addr, "@") { // A catchall is no login name.
				addrs[normAddress(addr)] = a.Name
			}
		}
		bookAccounts = append(bookAccounts, addrbook.Account{Name: a.Name, Addresses: a.Addresses, Destinations: a.Destinations})
	}
	book, err := addrbook.New(slice.Domains, bookAccounts)
	if err != nil {
		errs = append(errs, fmt.Errorf("addresses: %w", err))
	}
	fallback := slice.FallbackAccount
	if _, ok := quotas[fallback]; fallback != "" && !ok {
		errs = append(errs, fmt.Errorf("fallback account %q is not configured", fallback))
		fallback = ""
	}
	postmaster := slice.Postmaster
	if _, ok := quotas[postmaster]; postmaster != "" && !ok {
		errs = append(errs, fmt.Errorf("postmaster account %q is not configured", postmaster))
		postmaster = ""
	}
	s.mu.Lock()
	s.slice = slice
	s.addrs = addrs
	if book != nil {
		s.book = book
	}
	s.fallback = fallback
	s.postmaster = postmaster
	s.quotas = quotas
	s.junk = junk
	s.hooks = hooks
	for name, a := range s.open {
		a.SetQuota(quotas[name])
		a.SetMaxMessage(maxMessage(slice))
		a.SetJunkRules(junk[name])
	}
	s.mu.Unlock()

	for _, a := range slice.Accounts {
		if err := s.settle(a.Name, true); err != nil {
			errs = append(errs, err)
		}
	}
	entries, err := os.ReadDir(s.accountsDir())
	if err != nil {
		return fmt.Errorf("read %s: %w", s.accountsDir(), err)
	}
	for _, e := range entries {
		name := e.Name()
		if configured[name] || strings.HasPrefix(name, ".") {
			if strings.HasPrefix(name, ".removed-") {
				os.RemoveAll(filepath.Join(s.accountsDir(), name))
			}
			continue
		}
		if err := s.settle(name, false); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// settle brings the directory of account name in line with whether it is
// configured: a configured account gets its database created, a pending
// removal is finished or rolled back.
func (s *Store) settle(name string, configured bool) error {
	dir := s.accountDir(name)
	_, err := os.Lstat(filepath.Join(dir, markerName))
	marked := err == nil
	s.mu.Lock()
	removing := s.removing[name]
	s.mu.Unlock()
	switch {
	case configured && marked && !removing:
		// The config write of a removal never happened: keep the account.
		if err := os.Remove(filepath.Join(dir, markerName)); err != nil {
			return fmt.Errorf("account %s: clear removal marker: %w", name, err)
		}
		s.log.Info("account removal was not completed, account kept", "account", name)
	case configured && !marked:
	case configured && removing:
		return nil
	case !configured && marked:
		return s.finishRemove(name)
	default:
		s.log.Warn("account directory has no account in domains.conf; add the account again or move the directory away", "dir", dir)
		return nil
	}
	s.openMu.Lock()
	defer s.openMu.Unlock()
	if _, err := os.Lstat(filepath.Join(dir, "index.db")); errors.Is(err, fs.ErrNotExist) {
		a, err := account.Create(dir, s.accountOptions(name))
		if err != nil {
			return fmt.Errorf("create account %s: %w", name, err)
		}
		s.mu.Lock()
		if s.open[name] == nil && !s.closed {
			s.open[name] = a
			a = nil
		}
		s.mu.Unlock()
		if a != nil {
			a.Close()
		}
		s.log.Info("account created", "account", name)
	}
	return nil
}

func (s *Store) accountOptions(name string) account.Options {
	s.mu.Lock()
	quota := s.quotas[name]
	junk := s.junk[name]
	max := maxMessage(s.slice)
	s.mu.Unlock()
	return account.Options{
		Log:        s.log.With("account", name),
		Now:        s.now,
		Quota:      quota,
		MaxMessage: max,
		Junk:       junk,
		OnChange: func(ch account.Change) {
			if s.onChange != nil {
				s.onChange(name, ch)
			}
		},
	}
}

// junkRules converts the automatic junk flag settings of an account,
// which config validated, for the account package. A rule that does not
// convert (a bug) turns the account's junk flags off rather than setting
// wrong ones.
func junkRules(a config.StoreAccount) (account.JunkRules, error) {
	if a.NoJunkFlags {
		return account.JunkRules{Off: true}, nil
	}
	var r account.JunkRules
	for i, jf := range a.JunkFlags {
		re, err := config.JunkFlagPattern(jf.Mailbox)
		if err != nil {
			return account.JunkRules{Off: true}, fmt.Errorf("account %s: junk_flag[%d].mailbox: %w; automatic junk flags are off", a.Name, i, err)
		}
		rule := account.JunkRule{Mailbox: re}
		switch jf.Flag {
		case config.JunkFlagJunk:
			rule.Flag = account.JunkFlagJunk
		case config.JunkFlagNotJunk:
			rule.Flag = account.JunkFlagNotJunk
		case config.JunkFlagNone:
			rule.Flag = account.JunkFlagNeither
		default:
			return account.JunkRules{Off: true}, fmt.Errorf("account %s: junk_flag[%d].flag: unknown flag %q; automatic junk flags are off", a.Name, i, jf.Flag)
		}
		r.Rules = append(r.Rules, rule)
	}
	return r, nil
}

// Account returns the open account name, opening it if needed.
func (s *Store) Account(name string) (*account.Account, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, account.ErrClosed
	}
	if s.removing[name] {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: %s", ErrRemoving, name)
	}
	if a := s.open[name]; a != nil {
		s.mu.Unlock()
		return a, nil
	}
	if _, ok := s.quotas[name]; !ok {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: %q", ErrNoAccount, name)
	}
	s.mu.Unlock()

	s.openMu.Lock()
	defer s.openMu.Unlock()
	s.mu.Lock()
	if a := s.open[name]; a != nil {
		s.mu.Unlock()
		return a, nil
	}
	s.mu.Unlock()
	a, err := account.Open(s.accountDir(name), s.accountOptions(name))
	if err != nil {
		return nil, fmt.Errorf("open account %s: %w", name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if other := s.open[name]; other != nil {
		a.Close()
		return other, nil
	}
	if s.closed || s.removing[name] {
		a.Close()
		return nil, fmt.Errorf("%w: %s", ErrRemoving, name)
	}
	s.open[name] = a
	return a, nil
}

// Resolve returns the account an account name or one of its addresses
// belongs to, for logins.
func (s *Store) Resolve(name string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if strings.Contains(name, "@") {
		acct, ok := s.addrs[normAddress(name)]
		return acct, ok
	}
	_, ok := s.quotas[name]
	return name, ok
}

// Recipient returns where mail for addr goes: the targets of the address
// book, or, when nothing matches and a fallback account is configured
// (localserve), that account's Inbox, for an address at any domain.
func (s *Store) Recipient(addr string) ([]addrbook.Target, bool) {
	s.mu.Lock()
	book, fallback, postmaster := s.book, s.fallback, s.postmaster
	s.mu.Unlock()
	if strings.EqualFold(addr, "postmaster") && postmaster != "" {
		// RFC 5321 §4.1.1.3: "<Postmaster>" without a domain must be
		// accepted.
		return []addrbook.Target{{Account: postmaster, Address: "postmaster"}}, true
	}
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return nil, false
	}
	if l, ok := book.Resolve(addr[:at], addr[at+1:]); ok {
		return l, true
	}
	if fallback != "" {
		return []addrbook.Target{{Account: fallback, Address: addr}}, true
	}
	return nil, false
}

// incoming returns the address book and the accounts with an incoming
// webhook, for the incoming events of a delivery (incoming.go); neither
// changes after it is returned.
func (s *Store) incoming() (*addrbook.Book, map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.book, s.hooks
}

// maxMessage is the body size limit of a slice: the SMTP limit plus room
// for header lines added at reception, which a message queue retries holds
// in its file; without a limit in the slice, DefaultMaxMessage.
func maxMessage(slice config.StoreSlice) int64 {
	if slice.MaxMessageSize <= 0 {
		return DefaultMaxMessage
	}
	return slice.MaxMessageSize + ipc.MaxPrefix
}

// limits returns the body size limit and the disk reserve.
func (s *Store) limits() (maxSize, reserve int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maxMessage(s.slice), s.slice.DiskReserve
}

// Accounts returns the configured account names, sorted.
func (s *Store) Accounts() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := make([]string, 0, len(s.quotas))
	for n := range s.quotas {
		l = append(l, n)
	}
	sort.Strings(l)
	return l
}

// prepareRemove is phase one of an account removal: the marker is written
// and the account closed; new work for it is refused.
func (s *Store) prepareRemove(name string) error {
	s.mu.Lock()
	if _, ok := s.quotas[name]; !ok {
		s.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrNoAccount, name)
	}
	s.removing[name] = true
	a := s.open[name]
	delete(s.open, name)
	s.mu.Unlock()
	if a != nil {
		if err := a.Close(); err != nil {
			s.log.Error("close account for removal", "account", name, "err", err)
		}
	}
	dir := s.accountDir(name)
	if err := writeSynced(filepath.Join(dir, markerName)); err != nil {
		s.cancelRemove(name)
		return fmt.Errorf("account %s: write removal marker: %w", name, err)
	}
	return nil
}

// cancelRemove rolls a prepared removal back.
func (s *Store) cancelRemove(name string) error {
	s.mu.Lock()
	delete(s.removing, name)
	s.mu.Unlock()
	err := os.Remove(filepath.Join(s.accountDir(name), markerName))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("account %s: clear removal marker: %w", name, err)
	}
	return nil
}

// finishRemove deletes a marked account directory: it is renamed away in
// one step (so a crash cannot leave half an account under its name), then
// deleted.
func (s *Store) finishRemove(name string) error {
	dir := s.accountDir(name)
	if _, err := os.Lstat(filepath.Join(dir, markerName)); err != nil {
		return fmt.Errorf("account %s: no removal in progress (prepare first): %w", name, err)
	}
	s.mu.Lock()
	a := s.open[name]
	delete(s.open, name)
	s.mu.Unlock()
	if a != nil {
		a.Close()
	}
	gone := filepath.Join(s.accountsDir(), fmt.Sprintf(".removed-%s-%d", name, s.now().UnixNano()))
	if err := os.Rename(dir, gone); err != nil {
		return fmt.Errorf("account %s: move directory away: %w", name, err)
	}
	if err := durable.SyncDir(s.accountsDir()); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.removing, name)
	s.mu.Unlock()
	if err := os.RemoveAll(gone); err != nil {
		s.log.Error("delete removed account directory", "dir", gone, "err", err)
	}
	s.log.Info("account removed", "account", name)
	return nil
}

// close closes every open account.
func (s *Store) close() {
	s.mu.Lock()
	s.closed = true
	open := s.open
	s.open = map[string]*account.Account{}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for name, a := range open {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.Close(); err != nil {
				s.log.Error("close account", "account", name, "err", err)
			}
		}()
	}
	wg.Wait()
}

// writeSynced creates an empty file and makes it and its directory entry
// durable.
func writeSynced(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return durable.SyncDir(filepath.Dir(path))
}

// withTimeout is the deadline for one store operation a peer asked for
// without one of its own.
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// quota returns the configured quota of account name, 0 for none.
func (s *Store) quota(name string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.quotas[name]
}

// overQuota reports whether account a (named name) has reached its quota.
func (s *Store) overQuota(name string, a *account.Account) bool {
	q := s.quota(name)
	if q <= 0 {
		return false
	}
	size, _ := a.Usage()
	return size >= q
}

func (s *Store) openCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.open)
}
