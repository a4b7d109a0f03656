//go:build linux

package dnsbed

// Outbound delivery end to end: moxd-queue's TLS policy per MX host
// (internal/queue/transport.go: DANE, else MTA-STS, else opportunistic
// STARTTLS) against a real Postfix MX, everything in the bed's namespace.
//
//   - dane.test, signed: TLSA 3 1 1 of the MX certificate's key, a match.
//   - daneta.test, signed: TLSA 2 0 1 of the test CA's certificate, which
//     Postfix sends in its chain, a DANE-TA match.
//   - danebad.test, signed: TLSA 3 1 1 of another key: no match, so no
//     delivery, not even without TLS.
//   - sts.test, unsigned: MTA-STS enforce, mx: mx.sts.test, its MX; the
//     certificate is valid for it (PKIX, the test CA in queue.ca_file).
//   - sts2.test, unsigned: MTA-STS enforce, mx: mx.sts2.test, but its MX
//     is other.sts2.test: refused before any connection.
//
// Every MX host is 127.0.0.25, where one Postfix listens on port 25 with
// one certificate from the test CA naming all of them, and delivers each
// domain into a maildir of its own. The MTA-STS policies are served by
// openssl s_server -WWW on 127.0.0.26:443 (mta-sts.sts.test) and
// 127.0.0.27:443 (mta-sts.sts2.test). moxd gets each message through its
// submission port from swaks, with AUTH, and delivers it directly (port
// 25, the bed's unbound as resolver). posttls-finger and mta-sts-query
// check the DANE records and the policies independently.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	outMXIP   = "127.0.0.25" // the Postfix MX: every MX host of the cases
	outSTSIP  = "127.0.0.26" // https://mta-sts.sts.test
	outSTS2IP = "127.0.0.27" // https://mta-sts.sts2.test

	outAccount  = "bob" // the moxd account that submits, bob@moxd.test
	outPassword = "dnsbed-outbound-password"
	outRcpt     = "user" // localpart of every recipient
)

// outCase is one message submitted to moxd, to outRcpt@domain.
type outCase struct {
	name      string
	domain    string
	delivered bool     // it must reach Postfix's maildir of the domain
	reason    []string // else: substrings of the last error in moxctl queue dump
	// finger is what posttls-finger -l dane must say about the MX ("" to
	// not run it).
	finger string
}

func outCases() []outCase {
	return []outCase{
		{name: "dane-ee", domain: "dane.test", delivered: true, finger: "Verified TLS connection established"},
		{name: "dane-ta", domain: "daneta.test", delivered: true, finger: "Verified TLS connection established"},
		{name: "dane-mismatch", domain: "danebad.test", reason: []string{"mx.danebad.test", "dane", "no TLSA record matched"}, finger: "Untrusted TLS connection established"},
		{name: "mta-sts-enforce", domain: "sts.test", delivered: true},
		{name: "mta-sts-mx-not-listed", domain: "sts2.test", reason: []string{"other.sts2.test", "not allowed by the MTA-STS policy", "mx.sts2.test"}},
	}
}

// TestOutbound submits a message per case to moxd and checks, per case,
// that it was delivered to Postfix over TLS, or that it is still queued
// with a reason naming the failed policy and nothing reached Postfix.
func TestOutbound(t *testing.T) {
	needPeers(t, tool{"postfix", "postfix"}, tool{"posttls-finger", "postfix"}, tool{"openssl", "openssl"},
		tool{"mta-sts-query", "postfix-mta-sts-resolver"})
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	build := startBuild(t, ctx)

	// Postfix's processes run as user postfix: its files must be
	// reachable for it, which t.TempDir's parent is not.
	dir, err := os.MkdirTemp("", "moxd-dnsbed-out-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	pki := makeOutPKI(t, dir)

	mx := func(host string, extra ...string) []string {
		return append([]string{"@ MX 10 " + host, host + " A " + outMXIP}, extra...)
	}
	sts := func(ip string) []string {
		return []string{`_mta-sts TXT "v=STSv1; id=1"`, "mta-sts A " + ip}
	}
	zones := []*zone{
		{Name: "dane.test", Signed: true, Records: mx("mx", "_25._tcp.mx TLSA 3 1 1 "+sha256Hex(pki.mxSPKI))},
		{Name: "daneta.test", Signed: true, Records: mx("mx", "_25._tcp.mx TLSA 2 0 1 "+sha256Hex(pki.caDER))},
		{Name: "danebad.test", Signed: true, Records: mx("mx", "_25._tcp.mx TLSA 3 1 1 "+sha256Hex(pki.otherSPKI))},
		{Name: "sts.test", Records: append(mx("mx"), sts(outSTSIP)...)},
		{Name: "sts2.test", Records: append(mx("other"), sts(outSTS2IP)...)},
	}
	b := newBed(t, ctx, t.TempDir(), zones)
	for _, ip := range []string{outMXIP, outSTSIP, outSTS2IP} {
		b.host("ip", "-n", b.ns, "addr", "add", ip+"/32", "dev", "lo")
	}
	cases := outCases()
	var domains []string
	for _, c := range cases {
		domains = append(domains, c.domain)
	}
	pf := b.startPostfix(dir, pki, domains)
	var policyServers []*policyServer
	for _, s := range []struct{ ip, domain string }{{outSTSIP, "sts.test"}, {outSTS2IP, "sts2.test"}} {
		policyServers = append(policyServers, b.startPolicyServer(dir, pki, s.ip, s.domain))
	}
	t.Logf("bed, postfix and policy servers up after %s", time.Since(start).Round(time.Millisecond))

	// The bed as peers see it: posttls-finger's DANE verdict on each
	// signed MX, mta-sts-query's view of each policy.
	for _, c := range cases {
		if c.finger == "" {
			continue
		}
		out, stderr, code := b.run(nil, "posttls-finger", "-c", "-l", "dane", "[mx."+c.domain+"]:25")
		if !strings.Contains(out+stderr, c.finger) {
			t.Errorf("%s: posttls-finger -l dane [mx.%s]:25 (exit %d) does not say %q:\n%s%s", c.name, c.domain, code, c.finger, out, stderr)
		}
	}
	for _, p := range []struct{ domain, mx string }{{"sts.test", "mx.sts.test"}, {"sts2.test", "mx.sts2.test"}} {
		out, stderr, code := b.run(nil, "env", "SSL_CERT_FILE="+pki.caFile, "mta-sts-query", p.domain)
		// mta-sts-query exits 0 also on a failed fetch (PEERS.md §7).
		for _, want := range []string{"STSFetchResult.VALID", "'mode': 'enforce'", "'mx': ['" + p.mx + "']"} {
			if !strings.Contains(out, want) {
				t.Errorf("mta-sts-query %s (exit %d) does not say %s:\n%s%s", p.domain, code, want, out, stderr)
			}
		}
	}

	m := b.startMoxd(build.wait(t), moxdOptions{
		Top:    "role_log_levels = { queue = \"debug\" }\n",
		Tables: fmt.Sprintf("\n[queue]\nca_file = %q\n", pki.caFile),
	})
	t.Logf("moxd ready after %s", time.Since(start).Round(time.Millisecond))
	m.setPassword(t, ctx, outAccount, outPassword)

	ids := make([]uint64, len(cases))
	for i, c := range cases {
		ids[i] = b.submit(m, c)
	}

	// Wait for each message's first attempt: a file in Postfix's maildir,
	// or an attempt with an error in the queue.
	deadline := time.Now().Add(45 * time.Second)
	results := make([]outResult, len(cases))
	for {
		pending := 0
		queued := m.queueList(t, ctx)
		for i, c := range cases {
			r := &results[i]
			r.files = pf.mailbox(t, c.domain)
			r.entry, r.queued = queued[ids[i]]
			// A refused case that reached Postfix anyway is done too.
			if (c.delivered && len(r.files) == 0) || (!c.delivered && len(r.files) == 0 && (!r.queued || r.entry.Attempts == 0)) {
				pending++
			}
		}
		if pending == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for i, c := range cases {
		b.checkOutCase(m, pf, c, ids[i], results[i])
	}
	// Each policy server was asked once by mta-sts-query, then once by
	// moxd: the policy moxd applied is the one it fetched.
	for _, s := range policyServers {
		if n := s.fetches(); n != 2 {
			t.Errorf("https://mta-sts.%s served its policy %d times, want 2: once to mta-sts-query, once to moxd\n%s", s.domain, n, s.proc.log.String())
		}
	}
	t.Logf("total %s", time.Since(start).Round(time.Millisecond))
}

// outResult is what became of a case's message after its first attempt.
type outResult struct {
	files  []string // the domain's maildir files at Postfix
	queued bool
	entry  queueEntry
}

// queueEntry is one entry of moxctl -j queue list.
type queueEntry struct {
	Msg        uint64 `json:"msg"`
	Recipient  string `json:"recipient"`
	Attempts   uint32 `json:"attempts"`
	Failed     bool   `json:"failed"`
	LastError  string `json:"last_error"`
	LastHost   string `json:"last_host"`
	LastStatus string `json:"last_status"`
}

// checkOutCase checks one case: a delivered message in Postfix's maildir
// with Postfix's TLS trace, moxd's log naming its delivery; a refused one
// still queued (deferred, not failed) with the reason in queue dump and
// nothing at Postfix.
func (b *bed) checkOutCase(m *moxd, pf *postfix, c outCase, id uint64, r outResult) {
	t := b.t
	t.Helper()
	errorf := func(format string, args ...any) {
		t.Helper()
		t.Errorf("%s (message %d to %s@%s): "+format, append([]any{c.name, id, outRcpt, c.domain}, args...)...)
	}
	msgID := "<outbound-" + c.name + "@moxd.test>"
	log := m.master.log.String()
	if c.delivered {
		if len(r.files) != 1 {
			errorf("%d files in Postfix's maildir, want 1; queued %v, last error %q", len(r.files), r.queued, r.entry.LastError)
			return
		}
		data, err := os.ReadFile(r.files[0])
		if err != nil {
			t.Fatal(err)
		}
		msg := unfoldHeader(string(data))
		// Postfix's Received line (smtpd_tls_received_header) says the
		// session was TLS.
		if !regexp.MustCompile(`Received: from mx\.moxd\.test \(unknown \[127\.\d+\.\d+\.\d+\]\) \(using TLSv1\.[23] with cipher \S+`).MatchString(msg) ||
			!strings.Contains(msg, "by mx.peer.test (Postfix) with ESMTPS") {
			errorf("Postfix's Received header does not show delivery over TLS:\n%s", data)
		}
		if !strings.Contains(msg, "Message-Id: "+msgID) {
			errorf("maildir file is not the submitted message:\n%s", data)
		}
		if r.queued {
			errorf("delivered, but still in the queue: %+v", r.entry)
		}
		if !logHas(log, "delivered", fmt.Sprintf("msg=%d", id), "host=mx."+c.domain) {
			errorf("moxd's log has no \"delivered\" line for it with host=mx.%s", c.domain)
		}
		t.Logf("%s: delivered over TLS to mx.%s", c.name, c.domain)
		return
	}
	if len(r.files) != 0 {
		errorf("reached Postfix's maildir (%d files), want no delivery", len(r.files))
		return
	}
	if !r.queued {
		errorf("not in the queue any more, and not delivered")
		return
	}
	if r.entry.Attempts != 1 || r.entry.Failed || !strings.HasPrefix(r.entry.LastStatus, "4.") {
		errorf("queue entry %+v, want one attempt, deferred with a 4.x.x status", r.entry)
	}
	out, err := exec.CommandContext(b.ctx, filepath.Join(m.bin, "moxctl"), "-f", m.conf, "queue", "dump", strconv.FormatUint(id, 10)).CombinedOutput()
	if err != nil {
		t.Fatalf("moxctl queue dump %d: %v\n%s", id, err, out)
	}
	dump := string(out)
	lastErr := ""
	for _, l := range strings.Split(dump, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "last error:"); ok {
			lastErr = strings.TrimSpace(v)
		}
	}
	for _, w := range c.reason {
		if !strings.Contains(lastErr, w) {
			errorf("moxctl queue dump: last error %q lacks %q:\n%s", lastErr, w, dump)
		}
	}
	if !logHas(log, "delivery deferred", fmt.Sprintf("msg=%d", id)) {
		errorf("moxd's log has no \"delivery deferred\" line for it")
	}
	t.Logf("%s: deferred: %s", c.name, lastErr)
}

// logHas says whether a line of moxd's log has every one of words.
func logHas(log string, words ...string) bool {
	for _, l := range strings.Split(log, "\n") {
		all := true
		for _, w := range words {
			all = all && strings.Contains(l, w)
		}
		if all {
			return true
		}
	}
	return false
}

// unfoldHeader joins folded header lines (RFC 5322 §2.2.3).
func unfoldHeader(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return regexp.MustCompile(`\n[ \t]+`).ReplaceAllString(s, " ")
}

// setPassword sets the password of an account with moxctl.
func (m *moxd) setPassword(t *testing.T, ctx context.Context, account, password string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, filepath.Join(m.bin, "moxctl"), "-f", m.conf, "account", "password", account)
	cmd.Stdin = strings.NewReader(password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("moxctl account password %s: %v\n%s", account, err, out)
	}
}

// queueList returns moxctl -j queue list by message id (the cases have
// one recipient each).
func (m *moxd) queueList(t *testing.T, ctx context.Context) map[uint64]queueEntry {
	t.Helper()
	out, err := exec.CommandContext(ctx, filepath.Join(m.bin, "moxctl"), "-j", "-f", m.conf, "queue", "list").Output()
	if err != nil {
		t.Fatalf("moxctl -j queue list: %v\n%s", err, out)
	}
	var l struct {
		Entries []queueEntry `json:"entries"`
	}
	if err := json.Unmarshal(out, &l); err != nil {
		t.Fatalf("moxctl -j queue list: %v\n%s", err, out)
	}
	res := map[uint64]queueEntry{}
	for _, e := range l.Entries {
		res[e.Msg] = e
	}
	return res
}

// submit sends the case's message to moxd's submission port with swaks
// (STARTTLS, AUTH PLAIN) and returns the queue id from moxd's reply.
func (b *bed) submit(m *moxd, c outCase) uint64 {
	t := b.t
	t.Helper()
	host, port, err := net.SplitHostPort(m.addrs["submission"])
	if err != nil {
		t.Fatalf("moxd submission listener %q: %v", m.addrs["submission"], err)
	}
	from := outAccount + "@moxd.test"
	out, stderr, code := b.run(nil, "swaks", "--server", host, "--port", port, "--tls", "--auth", "PLAIN",
		"--auth-user", outAccount, "--auth-password", outPassword, "--from", from, "--to", outRcpt+"@"+c.domain,
		"--header", "From: <"+from+">", "--header", "Message-Id: <outbound-"+c.name+"@moxd.test>",
		"--header", "Subject: dnsbed outbound "+c.name, "--body", "Outbound case "+c.name+".", "--timeout", "20")
	mm := regexp.MustCompile(`<[-~] +250 2\.0\.0 message queued as (\d+)`).FindStringSubmatch(out)
	if mm == nil {
		t.Fatalf("%s: swaks (exit %d) got no \"message queued as\" reply:\n%s%s", c.name, code, out, stderr)
	}
	id, _ := strconv.ParseUint(mm[1], 10, 64)
	return id
}

// outPKI is the test CA and the certificates of the Postfix MX and the
// policy servers.
type outPKI struct {
	caFile    string // the CA certificate, PEM: moxd's queue.ca_file
	caDER     []byte
	mxKey     string // the MX's key, then its certificate and the CA's
	mxChain   string
	mxSPKI    []byte
	otherSPKI []byte // of a key no server has, for a TLSA that matches nothing
	webCert   string // mta-sts.sts.test and mta-sts.sts2.test
	webKey    string
}

// makeOutPKI makes the CA and the certificates in dir, valid for a day.
func makeOutPKI(t *testing.T, dir string) *outPKI {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	now := time.Now()
	serial := int64(1)
	caKey := newKey()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: "moxd dnsbed outbound test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leaf := func(key *ecdsa.PrivateKey, names ...string) []byte {
		serial++
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: names[0]},
			DNSNames:     names,
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	certPEM := func(der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}) }
	keyPEM := func(k *ecdsa.PrivateKey) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	spki := func(k *ecdsa.PrivateKey) []byte {
		der, err := x509.MarshalPKIXPublicKey(k.Public())
		if err != nil {
			t.Fatal(err)
		}
		return der
	}

	p := &outPKI{
		caFile:  filepath.Join(dir, "ca.pem"),
		caDER:   caDER,
		mxKey:   filepath.Join(dir, "mx.key"),
		mxChain: filepath.Join(dir, "mx-chain.pem"),
		webCert: filepath.Join(dir, "web.pem"),
		webKey:  filepath.Join(dir, "web.key"),
	}
	mxKey, webKey := newKey(), newKey()
	p.mxSPKI, p.otherSPKI = spki(mxKey), spki(newKey())
	mxDER := leaf(mxKey, "mx.dane.test", "mx.daneta.test", "mx.danebad.test", "mx.sts.test", "other.sts2.test")
	webDER := leaf(webKey, "mta-sts.sts.test", "mta-sts.sts2.test")
	for name, data := range map[string][]byte{
		p.caFile:  certPEM(caDER),
		p.mxKey:   keyPEM(mxKey),
		p.mxChain: append(certPEM(mxDER), certPEM(caDER)...),
		p.webCert: certPEM(webDER),
		p.webKey:  keyPEM(webKey),
	} {
		if err := os.WriteFile(name, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The CA is read by moxd-master (root) and mta-sts-query; world
	// readable is harmless.
	os.Chmod(p.caFile, 0o644)
	return p
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// postfix is the receiving MX.
type postfix struct {
	dir string
}

// mailbox returns the files delivered for domain.
func (pf *postfix) mailbox(t *testing.T, domain string) []string {
	t.Helper()
	l, err := filepath.Glob(filepath.Join(pf.dir, "mail", domain, "new", "*"))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// startPostfix runs Postfix's master in the namespace, in the foreground
// (stopped by its PID: SIGTERM makes it stop its process group), with a
// configuration directory of its own under dir: smtpd on outMXIP:25 with
// STARTTLS (the MX certificate and the CA's in its chain), and a virtual
// maildir per domain for outRcpt@domain.
func (b *bed) startPostfix(dir string, pki *outPKI, domains []string) *postfix {
	t := b.t
	t.Helper()
	pf := &postfix{dir: filepath.Join(dir, "postfix")}
	pu, err := user.Lookup("postfix")
	if err != nil {
		t.Fatalf("the postfix package creates user postfix: %v", err)
	}
	uid, _ := strconv.Atoi(pu.Uid)
	gid, _ := strconv.Atoi(pu.Gid)
	var boxes []string
	for _, d := range domains {
		boxes = append(boxes, fmt.Sprintf("%s@%s=%s/", outRcpt, d, d))
	}
	mainCF := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %[1]s/queue
data_directory = %[1]s/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.peer.test
mydomain = peer.test
myorigin = peer.test
mydestination =
inet_interfaces = %[2]s
inet_protocols = ipv4
mynetworks = %[2]s/32
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_peername_lookup = no
virtual_mailbox_domains = %[3]s
virtual_mailbox_base = %[1]s/mail
virtual_mailbox_maps = inline:{ %[4]s }
virtual_uid_maps = static:%[5]d
virtual_gid_maps = static:%[6]d
smtpd_tls_security_level = may
smtpd_tls_chain_files = %[7]s, %[8]s
smtpd_tls_received_header = yes
smtpd_tls_loglevel = 1
smtp_dns_support_level = disabled
maillog_file = /dev/stdout
alias_maps =
alias_database =
`, pf.dir, outMXIP, strings.Join(domains, " "), strings.Join(boxes, ", "), uid, gid, pki.mxKey, pki.mxChain)
	masterCF := fmt.Sprintf(`%s:25 inet n - n - - smtpd
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
tlsmgr unix - - n 1000? 1 tlsmgr
virtual unix - n n - - virtual
postlog unix-dgram n - n - 1 postlogd
`, outMXIP)
	for _, d := range []string{pf.dir, filepath.Join(pf.dir, "queue")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"data", "mail"} {
		if err := os.Mkdir(filepath.Join(pf.dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(filepath.Join(pf.dir, d), uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	for name, data := range map[string]string{"main.cf": mainCF, "master.cf": masterCF} {
		if err := os.WriteFile(filepath.Join(pf.dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// "postfix check" makes the queue's directories, as "postfix start"
	// would; master -s then runs in the foreground and leaves stdout open
	// for maillog_file.
	// In the namespace: inet_interfaces must be one of its addresses.
	if out, stderr, code := b.run(nil, "postfix", "-c", pf.dir, "check"); code != 0 {
		t.Fatalf("postfix -c %s check: exit %d\n%s%s", pf.dir, code, out, stderr)
	}
	daemonDir := strings.TrimSpace(b.host("postconf", "-c", pf.dir, "-h", "daemon_directory"))
	b.daemon(filepath.Join(daemonDir, "master"), "-c", pf.dir, "-s")
	b.waitPort(outMXIP + ":25")
	return pf
}

// policyServer is openssl s_server serving one domain's MTA-STS policy.
type policyServer struct {
	domain string
	proc   *proc
}

// fetches counts the requests for the policy file, which s_server logs
// as "FILE:<path>".
func (s *policyServer) fetches() int {
	return strings.Count(s.proc.log.String(), "FILE:.well-known/mta-sts.txt\n")
}

// startPolicyServer serves domain's MTA-STS policy (enforce, mx: the
// domain's mx host) from openssl s_server -WWW on ip:443.
func (b *bed) startPolicyServer(dir string, pki *outPKI, ip, domain string) *policyServer {
	b.t.Helper()
	www := filepath.Join(dir, "www-"+domain)
	if err := os.MkdirAll(filepath.Join(www, ".well-known"), 0o755); err != nil {
		b.t.Fatal(err)
	}
	policy := "version: STSv1\nmode: enforce\nmx: mx." + domain + "\nmax_age: 86400\n"
	if err := os.WriteFile(filepath.Join(www, ".well-known", "mta-sts.txt"), []byte(policy), 0o644); err != nil {
		b.t.Fatal(err)
	}
	p := b.daemonIn(www, "openssl", "s_server", "-WWW", "-accept", ip+":443", "-cert", pki.webCert, "-key", pki.webKey)
	b.waitPort(ip + ":443")
	return &policyServer{domain: domain, proc: p}
}

// waitPort waits until addr accepts TCP connections in the namespace.
func (b *bed) waitPort(addr string) {
	b.t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, _, code := b.run(nil, "bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/%s/%s", host, port))
		if code == 0 {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("nothing listens on %s in the namespace after 20s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
