package auth

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// attempt is a login from an address for an account.
type attempt struct {
	ip      string
	account string
}

func (a attempt) addr(t testing.TB) netip.Addr {
	t.Helper()
	ip, err := netip.ParseAddr(a.ip)
	if err != nil {
		t.Fatalf("bad test address %q: %v", a.ip, err)
	}
	return ip
}

func TestLimiterDelay(t *testing.T) {
	cfg := LimiterConfig{PerPrefix: 1000, PerNetwork: 1000, PerPrefixAccount: 1000, BaseDelay: time.Second, MaxDelay: 8 * time.Second}
	tests := []struct {
		failures int
		want     time.Duration
	}{
		{0, 0},
		{1, time.Second},
		{2, 2 * time.Second},
		{3, 4 * time.Second},
		{4, 8 * time.Second},
		{5, 8 * time.Second},
		{200, 8 * time.Second},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.failures), func(t *testing.T) {
			l := NewLimiter(cfg, newFakeClock().now)
			a := attempt{"192.0.2.7", "alice"}
			for range tt.failures {
				l.Failure(a.addr(t), a.account)
			}
			delay, refused := l.Check(a.addr(t), a.account)
			if delay != tt.want || refused {
				t.Errorf("after %d failures: Check = %v, %v; want %v, false", tt.failures, delay, refused, tt.want)
			}
		})
	}
}

// TestLimiterDelayCap checks a MaxDelay that is not a power-of-two multiple
// of BaseDelay is still the cap.
func TestLimiterDelayCap(t *testing.T) {
	l := NewLimiter(LimiterConfig{PerPrefixAccount: 100, PerPrefix: 100, PerNetwork: 100, BaseDelay: 3 * time.Second, MaxDelay: 10 * time.Second}, newFakeClock().now)
	ip := netip.MustParseAddr("192.0.2.1")
	var got []time.Duration
	for range 4 {
		l.Failure(ip, "a")
		d, _ := l.Check(ip, "a")
		got = append(got, d)
	}
	want := []time.Duration{3 * time.Second, 6 * time.Second, 10 * time.Second, 10 * time.Second}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("delays %v, want %v", got, want)
	}
}

func TestLimiterRefusal(t *testing.T) {
	type check struct {
		attempt
		refused bool
	}
	tests := []struct {
		name     string
		cfg      LimiterConfig
		failures []attempt
		checks   []check
	}{
		{
			name:     "per prefix across accounts",
			cfg:      LimiterConfig{PerPrefix: 3, PerNetwork: 100, PerPrefixAccount: 10},
			failures: []attempt{{"192.0.2.1", "a"}, {"192.0.2.1", "b"}, {"192.0.2.1", "c"}},
			checks: []check{
				{attempt{"192.0.2.1", "d"}, true},
				{attempt{"192.0.2.1", "a"}, true},
				{attempt{"192.0.2.2", "a"}, false},
				{attempt{"198.51.100.1", "d"}, false},
			},
		},
		{
			name:     "below prefix limit",
			cfg:      LimiterConfig{PerPrefix: 3, PerNetwork: 100, PerPrefixAccount: 10},
			failures: []attempt{{"192.0.2.1", "a"}, {"192.0.2.1", "b"}},
			checks:   []check{{attempt{"192.0.2.1", "c"}, false}},
		},
		{
			name:     "per prefix and account, no account lockout",
			cfg:      LimiterConfig{PerPrefix: 100, PerNetwork: 100, PerPrefixAccount: 2},
			failures: []attempt{{"192.0.2.1", "alice"}, {"192.0.2.1", "Alice"}},
			checks: []check{
				{attempt{"192.0.2.1", "alice"}, true},
				{attempt{"192.0.2.1", "ALICE"}, true},
				{attempt{"192.0.2.1", "bob"}, false},
				{attempt{"203.0.113.5", "alice"}, false},
				{attempt{"2001:db8::1", "alice"}, false},
			},
		},
		{
			name:     "per network over hosts",
			cfg:      LimiterConfig{PerPrefix: 100, PerNetwork: 3, PerPrefixAccount: 100},
			failures: []attempt{{"192.0.2.1", "a"}, {"192.0.2.2", "b"}, {"192.0.2.3", "c"}},
			checks: []check{
				{attempt{"192.0.2.200", "d"}, true},
				{attempt{"192.0.3.1", "d"}, false},
			},
		},
		{
			name:     "IPv6 /64 counts as one host",
			cfg:      LimiterConfig{PerPrefix: 2, PerNetwork: 100, PerPrefixAccount: 100},
			failures: []attempt{{"2001:db8:1:2::1", "a"}, {"2001:db8:1:2:ffff:ffff:ffff:ffff", "b"}},
			checks: []check{
				{attempt{"2001:db8:1:2::77", "c"}, true},
				{attempt{"2001:db8:1:3::1", "c"}, false},
			},
		},
		{
			name:     "IPv6 /48 network",
			cfg:      LimiterConfig{PerPrefix: 100, PerNetwork: 2, PerPrefixAccount: 100},
			failures: []attempt{{"2001:db8:1:2::1", "a"}, {"2001:db8:1:3::1", "b"}},
			checks: []check{
				{attempt{"2001:db8:1:ffff::1", "c"}, true},
				{attempt{"2001:db8:2::1", "c"}, false},
			},
		},
		{
			name:     "IPv4-mapped IPv6 and zones count as the plain address",
			cfg:      LimiterConfig{PerPrefix: 2, PerNetwork: 100, PerPrefixAccount: 100},
			failures: []attempt{{"::ffff:192.0.2.9", "a"}, {"fe80::1%eth0", "a"}, {"fe80::2%eth1", "b"}},
			checks: []check{
				{attempt{"192.0.2.9", "b"}, false},
				{attempt{"fe80::3", "c"}, true},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLimiter(tt.cfg, newFakeClock().now)
			for _, f := range tt.failures {
				l.Failure(f.addr(t), f.account)
			}
			for _, c := range tt.checks {
				if _, refused := l.Check(c.addr(t), c.account); refused != c.refused {
					t.Errorf("Check(%s, %s) refused = %v, want %v", c.ip, c.account, refused, c.refused)
				}
			}
		})
	}
}

func TestLimiterMappedCountsAsIPv4(t *testing.T) {
	l := NewLimiter(LimiterConfig{PerPrefix: 2, PerNetwork: 100, PerPrefixAccount: 100}, newFakeClock().now)
	l.Failure(netip.MustParseAddr("::ffff:192.0.2.9"), "a")
	l.Failure(netip.MustParseAddr("192.0.2.9"), "b")
	if _, refused := l.Check(netip.MustParseAddr("192.0.2.9"), "c"); !refused {
		t.Errorf("IPv4-mapped failure not counted with the IPv4 address")
	}
}

func TestLimiterSuccess(t *testing.T) {
	l := NewLimiter(LimiterConfig{PerPrefix: 3, PerNetwork: 100, PerPrefixAccount: 2, BaseDelay: time.Second, MaxDelay: time.Minute}, newFakeClock().now)
	ip := netip.MustParseAddr("192.0.2.1")
	l.Failure(ip, "alice")
	l.Failure(ip, "alice")
	if _, refused := l.Check(ip, "alice"); !refused {
		t.Fatalf("alice not refused after reaching the per-account limit")
	}
	l.Success(ip, "ALICE")
	delay, refused := l.Check(ip, "alice")
	if refused {
		t.Errorf("alice still refused after a successful login")
	}
	// The prefix keeps its 2 failures, so the delay stays.
	if delay != 2*time.Second {
		t.Errorf("delay after success = %v, want 2s from the prefix's failures", delay)
	}
	l.Failure(ip, "bob")
	if _, refused := l.Check(ip, "carol"); !refused {
		t.Errorf("prefix not refused after its third failure: success must not clear the prefix counter")
	}
}

func TestLimiterWindow(t *testing.T) {
	clock := newFakeClock()
	l := NewLimiter(LimiterConfig{PerPrefix: 100, PerNetwork: 100, PerPrefixAccount: 2, Window: 10 * time.Minute}, clock.now)
	ip := netip.MustParseAddr("192.0.2.1")
	l.Failure(ip, "alice")
	clock.advance(8 * time.Minute)
	l.Failure(ip, "alice")

	steps := []struct {
		advance time.Duration
		refused bool
		delay   bool
	}{
		{0, true, true},
		{4 * time.Minute, true, true},   // 12 min after the first, 4 after the last failure
		{5 * time.Minute, true, true},   // 9 min after the last
		{1 * time.Minute, false, false}, // 10 min after the last: forgotten
	}
	for i, s := range steps {
		clock.advance(s.advance)
		delay, refused := l.Check(ip, "alice")
		if refused != s.refused || (delay > 0) != s.delay {
			t.Errorf("step %d: Check = %v, %v; want refused %v, delay %v", i, delay, refused, s.refused, s.delay)
		}
	}
	if n := l.Len(); n != 0 {
		t.Errorf("%d counters left after the window, want 0", n)
	}
}

func TestLimiterMemoryBound(t *testing.T) {
	const maxEntries = 30
	l := NewLimiter(LimiterConfig{MaxEntries: maxEntries}, newFakeClock().now)
	var first, last netip.Addr
	for i := range 200 {
		ip := netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 1})
		if i == 0 {
			first = ip
		}
		last = ip
		l.Failure(ip, fmt.Sprintf("user%d", i))
		if n := l.Len(); n > maxEntries {
			t.Fatalf("after %d failures: %d counters, want at most %d", i+1, n, maxEntries)
		}
	}
	if d, _ := l.Check(last, "user199"); d == 0 {
		t.Errorf("most recent failure was evicted")
	}
	if d, _ := l.Check(first, "user0"); d != 0 {
		t.Errorf("oldest failure still counted after %d newer ones", 199)
	}
}

func TestLimiterLongAccount(t *testing.T) {
	l := NewLimiter(LimiterConfig{}, newFakeClock().now)
	ip := netip.MustParseAddr("192.0.2.1")
	// Runes start at odd offsets, so the cut at 256 bytes falls inside one.
	long := "X" + strings.Repeat("É", 2000)
	l.Failure(ip, long)
	recs := l.TakeRecords()
	if len(recs) != 1 {
		t.Fatalf("got %d records, want 1", len(recs))
	}
	acct := recs[0].Account
	if len(acct) > maxRecordAccount || !utf8.ValidString(acct) || !strings.HasPrefix(acct, "xéé") {
		t.Errorf("record account %q (%d bytes): want a valid lower-cased UTF-8 prefix of at most %d bytes", acct, len(acct), maxRecordAccount)
	}
}

func TestLimiterTakeRecords(t *testing.T) {
	clock := newFakeClock()
	l := NewLimiter(LimiterConfig{}, clock.now)
	a := netip.MustParseAddr("192.0.2.1")
	b := netip.MustParseAddr("2001:db8:1:2::5")
	start := clock.now()
	l.Failure(a, "Alice")
	clock.advance(time.Second)
	l.Failure(b, "bob")
	clock.advance(time.Second)
	l.Failure(a, "alice")
	l.Success(a, "alice") // a success must not hide the failures before it

	got := l.TakeRecords()
	want := []FailureRecord{
		{Prefix: netip.MustParsePrefix("2001:db8:1:2::/64"), Account: "bob", Failures: 1, First: start.Add(time.Second), Last: start.Add(time.Second)},
		{Prefix: netip.MustParsePrefix("192.0.2.1/32"), Account: "alice", Failures: 2, First: start, Last: start.Add(2 * time.Second)},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("TakeRecords:\n got %v\nwant %v", got, want)
	}
	if again := l.TakeRecords(); len(again) != 0 {
		t.Errorf("second TakeRecords returned %v, want nothing", again)
	}
	l.Failure(b, "bob")
	if again := l.TakeRecords(); len(again) != 1 || again[0].Failures != 1 {
		t.Errorf("next batch = %v, want one failure of bob", again)
	}
}

func TestLimiterConfigDefaults(t *testing.T) {
	d := DefaultLimiterConfig()
	tests := []struct {
		name string
		in   LimiterConfig
		want LimiterConfig
	}{
		{"zero", LimiterConfig{}, d},
		{"negative", LimiterConfig{PerPrefix: -1, PerNetwork: -1, PerPrefixAccount: -1, Window: -1, BaseDelay: -1, MaxDelay: -1, MaxEntries: -1}, d},
		{"kept", LimiterConfig{PerPrefix: 1, PerNetwork: 2, PerPrefixAccount: 3, Window: 4, BaseDelay: 5, MaxDelay: 6, MaxEntries: 7},
			LimiterConfig{PerPrefix: 1, PerNetwork: 2, PerPrefixAccount: 3, Window: 4, BaseDelay: 5, MaxDelay: 6, MaxEntries: 7}},
		{"max below base", LimiterConfig{BaseDelay: time.Minute, MaxDelay: time.Second},
			func() LimiterConfig { c := d; c.BaseDelay, c.MaxDelay = time.Minute, time.Minute; return c }()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NewLimiter(tt.in, nil).Config(); got != tt.want {
				t.Errorf("Config() = %+v, want %+v", got, tt.want)
			}
		})
	}
	if d.PerPrefixAccount >= d.PerPrefix || d.PerPrefix >= d.PerNetwork {
		t.Errorf("defaults %+v: want per-account < per-prefix < per-network", d)
	}
}

func TestLimiterConcurrent(t *testing.T) {
	l := NewLimiter(LimiterConfig{PerPrefix: 1 << 20, PerNetwork: 1 << 20, PerPrefixAccount: 1 << 20}, newFakeClock().now)
	ip := netip.MustParseAddr("192.0.2.1")
	const workers, each = 8, 200
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			other := netip.AddrFrom4([4]byte{198, 51, 100, byte(w)})
			for range each {
				l.Check(ip, "alice")
				l.Failure(ip, "alice")
				l.Success(other, "bob")
				l.Check(other, "bob")
			}
		})
	}
	wg.Wait()
	recs := l.TakeRecords()
	if len(recs) != 1 || recs[0].Failures != workers*each {
		t.Errorf("records %v, want one with %d failures", recs, workers*each)
	}
}

func BenchmarkLimiterCheck(b *testing.B) {
	l := NewLimiter(LimiterConfig{}, nil)
	for i := range 10000 {
		l.Failure(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), "user")
	}
	ip := netip.MustParseAddr("10.0.1.1")
	for b.Loop() {
		l.Check(ip, "user")
	}
}

func BenchmarkLimiterFailure(b *testing.B) {
	l := NewLimiter(LimiterConfig{MaxEntries: 1000}, nil)
	i := 0
	for b.Loop() {
		i++
		l.Failure(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), "user")
	}
}
