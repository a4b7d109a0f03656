package auth

// Login-failure limits (DESIGN.md §6).
//
// Implementation notes:
//   - Failures are counted under three kinds of key: the client's host
//     prefix (IPv4 /32, IPv6 /64, the block one subscriber usually holds),
//     its network prefix (IPv4 /24, IPv6 /48, so an attacker cannot spread
//     over a whole allocation to multiply the per-host budget) and the pair
//     (host prefix, account). An account is never locked as such: a client
//     on another prefix has its own counters and can still log in.
//   - Each counter is forgotten Window after its most recent failure. A
//     refused attempt is not a failure (the password is not checked), so a
//     refused client is let in again Window after its last real failure.
//   - All counters live in one map and one list ordered by the time of their
//     last failure. Expired counters are dropped from the front of the list;
//     when more than MaxEntries exist, the least recently failed one is
//     dropped. Accounts are keyed by the SHA-256 of their lower-cased name,
//     so a long name a client sends does not cost memory per counter.
//   - One mutex guards everything; every operation is O(1) apart from
//     TakeRecords, which walks the counters once.

import (
	"container/list"
	"crypto/sha256"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Prefix lengths under which failures are counted.
const (
	hostBits4    = 32 // one IPv4 address
	networkBits4 = 24
	hostBits6    = 64 // one IPv6 subnet, what a single site or device gets
	networkBits6 = 48 // a typical IPv6 site allocation
)

// maxRecordAccount bounds the account name kept for TakeRecords, in bytes.
// RFC 5321 §4.5.3.1.3 limits a path to 256 octets, so real names fit.
const maxRecordAccount = 256

// LimiterConfig sets the login-failure limits. A field that is zero or
// negative takes its value from DefaultLimiterConfig.
type LimiterConfig struct {
	// PerPrefix is the number of failed logins allowed from one host
	// prefix (IPv4 /32, IPv6 /64) over all accounts before further logins
	// from it are refused.
	PerPrefix int
	// PerNetwork is the same for a network prefix (IPv4 /24, IPv6 /48).
	PerNetwork int
	// PerPrefixAccount is the number of failed logins allowed for one
	// account from one host prefix.
	PerPrefixAccount int
	// Window is how long a counter lasts after its most recent failure.
	Window time.Duration
	// BaseDelay is the delay after the first failure; it doubles with each
	// further failure of the host prefix or (prefix, account) pair.
	BaseDelay time.Duration
	// MaxDelay caps the delay.
	MaxDelay time.Duration
	// MaxEntries bounds the counters kept; beyond it the least recently
	// failed one is forgotten.
	MaxEntries int
}

// DefaultLimiterConfig returns the limits moxd uses unless configured
// otherwise:
//   - 10 failures per (host prefix, account): more than a user mistyping a
//     password, far fewer than a guessing attack needs.
//   - 50 failures per host prefix over all accounts: room for a NAT with
//     several users and an old client with a stale password.
//   - 200 failures per network prefix: 4 busy hosts' worth.
//   - 1 hour window: an attacker gets at most these numbers of guesses per
//     hour and prefix.
//   - 500 ms delay doubling up to 10 s: slows scripted guessing without
//     holding connections long.
//   - 100000 counters: a few tens of megabytes at most.
func DefaultLimiterConfig() LimiterConfig {
	return LimiterConfig{
		PerPrefix:        50,
		PerNetwork:       200,
		PerPrefixAccount: 10,
		Window:           time.Hour,
		BaseDelay:        500 * time.Millisecond,
		MaxDelay:         10 * time.Second,
		MaxEntries:       100000,
	}
}

// withDefaults fills fields that are zero or negative.
func (c LimiterConfig) withDefaults() LimiterConfig {
	d := DefaultLimiterConfig()
	if c.PerPrefix <= 0 {
		c.PerPrefix = d.PerPrefix
	}
	if c.PerNetwork <= 0 {
		c.PerNetwork = d.PerNetwork
	}
	if c.PerPrefixAccount <= 0 {
		c.PerPrefixAccount = d.PerPrefixAccount
	}
	if c.Window <= 0 {
		c.Window = d.Window
	}
	if c.BaseDelay <= 0 {
		c.BaseDelay = d.BaseDelay
	}
	if c.MaxDelay <= 0 {
		c.MaxDelay = d.MaxDelay
	}
	if c.MaxDelay < c.BaseDelay {
		c.MaxDelay = c.BaseDelay
	}
	if c.MaxEntries <= 0 {
		c.MaxEntries = d.MaxEntries
	}
	return c
}

type limitKind uint8

const (
	kindHost limitKind = iota
	kindNetwork
	kindPair
)

type limitKey struct {
	kind    limitKind
	prefix  netip.Prefix
	account [sha256.Size]byte // zero unless kind is kindPair
}

type limitEntry struct {
	key   limitKey
	count int
	last  time.Time
	elem  *list.Element

	// For TakeRecords, pair entries only.
	account      string
	pending      int
	pendingFirst time.Time
}

// FailureRecord sums the failed logins of one (host prefix, account) pair
// since the previous TakeRecords, for store to log or audit in batches
// instead of one line per failure.
type FailureRecord struct {
	Prefix   netip.Prefix
	Account  string // lower-cased, cut to 256 bytes
	Failures int
	First    time.Time
	Last     time.Time
}

// Limiter delays and refuses logins after failures. It is safe for
// concurrent use. The zero value is not usable; call NewLimiter.
type Limiter struct {
	cfg LimiterConfig
	now func() time.Time

	mu      sync.Mutex
	entries map[limitKey]*limitEntry
	order   *list.List // of *limitEntry, least recently failed first
}

// NewLimiter returns a Limiter with cfg (zero fields take defaults) reading
// time from now; a nil now means time.Now.
func NewLimiter(cfg LimiterConfig, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{
		cfg:     cfg.withDefaults(),
		now:     now,
		entries: map[limitKey]*limitEntry{},
		order:   list.New(),
	}
}

// Config returns the limits in use, with defaults filled in.
func (l *Limiter) Config() LimiterConfig { return l.cfg }

// prefixes returns the host and network prefixes of ip. IPv4-mapped IPv6
// addresses count as IPv4 and zones are ignored. All invalid addresses
// share the zero prefixes.
func prefixes(ip netip.Addr) (host, network netip.Prefix) {
	ip = ip.Unmap().WithZone("")
	if !ip.IsValid() {
		return netip.Prefix{}, netip.Prefix{}
	}
	hb, nb := hostBits6, networkBits6
	if ip.Is4() {
		hb, nb = hostBits4, networkBits4
	}
	// Prefix only fails for invalid addresses or bit counts, excluded above.
	host, _ = ip.Prefix(hb)
	network, _ = ip.Prefix(nb)
	return host, network
}

// normAccount returns the case-folded account name.
func normAccount(account string) string {
	return strings.ToLower(account)
}

func (l *Limiter) keys(ip netip.Addr, account string) (host, network, pair limitKey, norm string) {
	hp, np := prefixes(ip)
	norm = normAccount(account)
	host = limitKey{kind: kindHost, prefix: hp}
	network = limitKey{kind: kindNetwork, prefix: np}
	pair = limitKey{kind: kindPair, prefix: hp, account: sha256.Sum256([]byte(norm))}
	return
}

// expire drops counters whose last failure is Window or more ago. Callers
// hold l.mu.
func (l *Limiter) expire(now time.Time) {
	for e := l.order.Front(); e != nil; e = l.order.Front() {
		ent := e.Value.(*limitEntry)
		if now.Sub(ent.last) < l.cfg.Window {
			return
		}
		l.remove(ent)
	}
}

func (l *Limiter) remove(ent *limitEntry) {
	l.order.Remove(ent.elem)
	delete(l.entries, ent.key)
}

// count returns the live failure count for k. Callers hold l.mu and have
// called expire.
func (l *Limiter) count(k limitKey) int {
	if ent, ok := l.entries[k]; ok {
		return ent.count
	}
	return 0
}

// Check tells the caller how long to wait before answering a login attempt
// from ip for account, and whether to refuse it. When refused is true the
// caller answers "try later" after the delay without checking the password
// and does not call Failure. A failure from another prefix never refuses
// this one.
func (l *Limiter) Check(ip netip.Addr, account string) (delay time.Duration, refused bool) {
	host, network, pair, _ := l.keys(ip, account)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expire(l.now())
	hc, nc, pc := l.count(host), l.count(network), l.count(pair)
	refused = hc >= l.cfg.PerPrefix || nc >= l.cfg.PerNetwork || pc >= l.cfg.PerPrefixAccount
	return l.delay(max(hc, pc)), refused
}

// delay returns BaseDelay doubled for each failure after the first, capped
// at MaxDelay; zero without failures.
func (l *Limiter) delay(n int) time.Duration {
	if n <= 0 {
		return 0
	}
	d := l.cfg.BaseDelay
	for i := 1; i < n && d < l.cfg.MaxDelay; i++ {
		d *= 2
	}
	return min(d, l.cfg.MaxDelay)
}

// Failure records a failed login from ip for account.
func (l *Limiter) Failure(ip netip.Addr, account string) {
	host, network, pair, norm := l.keys(ip, account)
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.expire(now)
	l.bump(host, now)
	l.bump(network, now)
	ent := l.bump(pair, now)
	if ent.pending == 0 {
		ent.pendingFirst = now
		ent.account = cutAccount(norm)
	}
	ent.pending++
	for l.order.Len() > l.cfg.MaxEntries {
		l.remove(l.order.Front().Value.(*limitEntry))
	}
}

// cutAccount shortens s to at most maxRecordAccount bytes without splitting
// a UTF-8 sequence.
func cutAccount(s string) string {
	if len(s) <= maxRecordAccount {
		return s
	}
	n := maxRecordAccount
	for n > 0 && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n]
}

// bump counts one failure under k, now, and moves its counter to the back
// of the list. Callers hold l.mu.
func (l *Limiter) bump(k limitKey, now time.Time) *limitEntry {
	ent, ok := l.entries[k]
	if !ok {
		ent = &limitEntry{key: k}
		ent.elem = l.order.PushBack(ent)
		l.entries[k] = ent
	} else {
		l.order.MoveToBack(ent.elem)
	}
	ent.count++
	ent.last = now
	return ent
}

// Success clears the (host prefix, account) counter after a good login. The
// prefix counters stay: a success on one account does not give a client new
// guesses on others.
func (l *Limiter) Success(ip netip.Addr, account string) {
	_, _, pair, _ := l.keys(ip, account)
	l.mu.Lock()
	defer l.mu.Unlock()
	ent, ok := l.entries[pair]
	switch {
	case !ok:
	case ent.pending > 0:
		// Keep the entry until TakeRecords has reported its failures.
		ent.count = 0
	default:
		l.remove(ent)
	}
}

// TakeRecords returns the failures per (host prefix, account) recorded
// since the previous call, oldest first, and starts a new batch. Failures
// of counters that expired or were evicted in between are not reported.
func (l *Limiter) TakeRecords() []FailureRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	var recs []FailureRecord
	for e := l.order.Front(); e != nil; {
		ent := e.Value.(*limitEntry)
		e = e.Next()
		if ent.key.kind != kindPair || ent.pending == 0 {
			continue
		}
		recs = append(recs, FailureRecord{
			Prefix:   ent.key.prefix,
			Account:  ent.account,
			Failures: ent.pending,
			First:    ent.pendingFirst,
			Last:     ent.last,
		})
		ent.pending = 0
		ent.account = ""
		if ent.count == 0 {
			// Kept only for this report, after a Success.
			l.remove(ent)
		}
	}
	return recs
}

// Len returns the number of counters held, for metrics.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.order.Len()
}
