package imapd

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// totalSize sums RFC822.SIZE of the messages of the selected mailbox.
func (c *client) totalSize() int64 {
	c.t.Helper()
	var n int64
	for _, l := range c.ok("FETCH 1:* (RFC822.SIZE)") {
		m := regexp.MustCompile(`RFC822\.SIZE (\d+)`).FindStringSubmatch(l)
		if m == nil {
			c.t.Fatalf("FETCH RFC822.SIZE: %q", l)
		}
		v, _ := strconv.ParseInt(m[1], 10, 64)
		n += v
	}
	return n
}

func TestQuota(t *testing.T) {
	const quota = 10 * 1024
	e := newEnv(t, withQuota(t, quota))
	for _, m := range testMsgs {
		e.st.Deliver(t, "mjl@example.org", m)
	}
	c, _ := e.dial(t)
	c.login()
	if caps := c.ok("CAPABILITY")[0]; !strings.Contains(caps, " QUOTA ") || !strings.Contains(caps, " QUOTA=RES-STORAGE") {
		t.Fatalf("CAPABILITY: %q", caps)
	}
	c.ok("SELECT INBOX")
	inbox := c.totalSize()
	c.ok("COPY 1 Archive")
	c.ok("SELECT Archive")
	total := inbox + c.totalSize()
	// RFC 9208 §5.1: KiB, the usage rounded up.
	quotaLine := fmt.Sprintf(`* QUOTA "" (STORAGE %d %d)`, (total+1023)/1024, quota/1024)
	u := c.ok("GETQUOTAROOT inbox")
	if len(u) != 2 || u[0] != `* QUOTAROOT INBOX ""` || u[1] != quotaLine {
		t.Fatalf("GETQUOTAROOT: %q, want QUOTAROOT and %q (%d bytes in INBOX and Archive)", u, quotaLine, total)
	}
	if u := c.ok(`GETQUOTAROOT Archive`); len(u) != 2 || u[0] != `* QUOTAROOT Archive ""` || u[1] != quotaLine {
		t.Fatalf("GETQUOTAROOT Archive: %q", u)
	}
	if u := c.ok(`GETQUOTA ""`); len(u) != 1 || u[0] != quotaLine {
		t.Fatalf("GETQUOTA: %q, want %q", u, quotaLine)
	}
	c.expect(`GETQUOTA "other"`, "NO")
	c.expect("GETQUOTAROOT Nope", "NO [NONEXISTENT]")
}

func TestQuotaNone(t *testing.T) {
	_, c := selEnv(t)
	// No quota: no quota root (RFC 9208 §4.1.2).
	if u := c.ok("GETQUOTAROOT INBOX"); len(u) != 1 || u[0] != "* QUOTAROOT INBOX" {
		t.Fatalf("GETQUOTAROOT without a quota: %q", u)
	}
	c.expect(`GETQUOTA ""`, "NO")
}

// TestSetQuota: SETQUOTA is refused with NO saying where quotas are set,
// not BAD; the quota is unchanged.
func TestSetQuota(t *testing.T) {
	const quota = 100 << 10
	e := newEnv(t, withQuota(t, quota))
	c, _ := e.dial(t)
	c.login()
	_, res := c.cmd(`SETQUOTA "" (STORAGE 1)`)
	if !strings.HasPrefix(res, "NO [NOPERM] ") || !strings.Contains(res, "domains.conf") {
		t.Fatalf("SETQUOTA: %q", res)
	}
	if u := c.ok(`GETQUOTA ""`); len(u) != 1 || !strings.HasSuffix(u[0], " 100)") {
		t.Errorf("GETQUOTA after SETQUOTA: %q, want the configured 100 KiB", u)
	}
}
