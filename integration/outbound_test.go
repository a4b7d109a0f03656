//go:build linux

package integration

// Outbound delivery by moxd-queue to real peers on loopback, each test
// with a moxd instance and an in-process DNS server of its own: Postfix's
// smtp-sink as a recording MX, a real Postfix as MX with STARTTLS and as a
// submission smarthost with Dovecot SASL, microsocks as a SOCKS5 proxy;
// the DKIM signatures of delivered mail are checked by dkimpy and
// mailauth. Direct delivery connects to [queue] port instead of 25.
// Helpers for the peers are in outpeers_test.go.

import (
	"context"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/smtp"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"moxd/internal/ctl"
	"moxd/internal/dns/dnstest"
)

// Base uids of the outbound tests' instances (each uses base..base+7).
const (
	outSinkUID       = 64800
	outPostfixMXUID  = 64810
	outSubmissionUID = 64820
	outSocksUID      = 64830
	outDSNUID        = 64840
	outKillUID       = 64850
	outUTF8UID       = 64860
	// 64870: incoming_test.go
)

// outPassword is the password of account mox in the outbound tests.
const outPassword = "integration-Outbound-1"

// outDomains: account mox sends From mox@localhost, whose domain has an
// ed25519 and an rsa2048 DKIM selector, and may use MAIL FROM addresses
// of other.test, which has none.
const outDomains = `[[domain]]
name = "localhost"
[[domain.dkim]]
selector = "sel-ed"
algorithm = "ed25519"
[[domain.dkim]]
selector = "sel-rsa"
algorithm = "rsa2048"

[[domain]]
name = "other.test"

[[account]]
name = "mox"
addresses = ["mox@localhost", "postmaster@localhost", "mox@other.test", "postmaster@other.test"]
`

// outEnv is a running moxd for an outbound test.
type outEnv struct {
	t   *testing.T
	in  *instance
	dns *dnstest.Server
}

type outOptions struct {
	records []string // DNS records
	port    int      // [queue] port: where direct delivery connects
	queue   string   // more [queue] settings
	tables  string   // more tables of moxd.conf ([[transport]])
	routes  string   // appended to domains.conf ([[route]])
}

// startOutbound starts moxd with base uids and its DNS server; the
// test's cleanup stops it (before the peers started earlier).
func startOutbound(t *testing.T, base uint32, o outOptions) *outEnv {
	t.Helper()
	return startOutboundDomains(t, base, outDomains+o.routes, o)
}

// startOutboundDomains is startOutbound with domains.conf of its own; it
// needs account mox.
func startOutboundDomains(t *testing.T, base uint32, domains string, o outOptions) *outEnv {
	t.Helper()
	needRoot(t)
	dns := dnstest.Start(t, o.records...)
	dir, conf := writeConfig(t, confOptions{
		baseUID:    base,
		domainsCfg: domains,
		dns:        fmt.Sprintf("nameservers = [%q]\n", dns.Addr()),
		extra:      fmt.Sprintf("\n[queue]\nport = %d\n%s\n%s", o.port, o.queue, o.tables),
	})
	in := start(t, dir, conf, base)
	t.Cleanup(func() {
		in.stop()
		waitNoProcs(t, base, base+7)
	})
	in.waitReady()
	if out, code := moxctlRun(t, conf, outPassword+"\n", "account", "password", "mox"); code != 0 {
		t.Fatalf("account password: exit %d\n%s", code, out)
	}
	return &outEnv{t: t, in: in, dns: dns}
}

// submit submits msg through the submission listener (STARTTLS verified
// with the local CA, AUTH PLAIN as mox) with MAIL FROM mailFrom.
func (e *outEnv) submit(mailFrom string, rcpts []string, msg string) {
	e.t.Helper()
	e.submitParams(mailFrom, "", rcpts, msg)
}

func (e *outEnv) submitParams(mailFrom, params string, rcpts []string, msg string) {
	e.t.Helper()
	if err := submitFrom(e.in.dir, listenerAddr(e.in.waitReady(), "submission"), outPassword, mailFrom, params, rcpts, msg); err != nil {
		e.t.Fatalf("submission: %v\nmoxd log:\n%s", err, e.in.stderr)
	}
}

// submitFrom submits msg as account mox with MAIL FROM mailFrom and the
// MAIL parameters params (" SMTPUTF8", or "").
func submitFrom(dir, addr, password, mailFrom, params string, rcpts []string, msg string) error {
	pem, err := os.ReadFile(filepath.Join(dir, "data", "localca.pem"))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("no certificate in localca.pem")
	}
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		return err
	}
	if err := c.StartTLS(&tls.Config{ServerName: "localhost", RootCAs: pool}); err != nil {
		return fmt.Errorf("starttls: %w", err)
	}
	host, _, _ := strings.Cut(addr, ":")
	if err := c.Auth(smtp.PlainAuth("", "mox", password, host)); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	// Not c.Mail: net/smtp adds SMTPUTF8 and BODY=8BITMIME whenever the
	// server offers them, and these tests choose the parameters.
	id, err := c.Text.Cmd("MAIL FROM:<%s>%s", mailFrom, params)
	if err != nil {
		return err
	}
	c.Text.StartResponse(id)
	_, _, err = c.Text.ReadResponse(250)
	c.Text.EndResponse(id)
	if err != nil {
		return fmt.Errorf("mail from: %w", err)
	}
	for _, r := range rcpts {
		if err := c.Rcpt(r); err != nil {
			return fmt.Errorf("rcpt to %s: %w", r, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("data: %w", err)
	}
	return c.Quit()
}

// waitQueueEmpty waits until queue holds no message.
func (e *outEnv) waitQueueEmpty(timeout time.Duration, peers ...func() string) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		n, _ := queued(e.t, e.in)
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			var more []string
			for _, p := range peers {
				more = append(more, p())
			}
			e.t.Fatalf("queue still holds %d messages after %s\nmoxd log:\n%s\npeers:\n%s", n, timeout, e.in.stderr, strings.Join(more, "\n----\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// outMessage is a message from mox@localhost with a line that needs dot
// stuffing, so a DKIM check also checks the transparency of the path.
func outMessage(id, to, subject string) string {
	return "From: Mox <mox@localhost>\r\nTo: " + to + "\r\nSubject: " + subject + "\r\nDate: " + time.Now().Format(time.RFC1123Z) +
		"\r\nMessage-ID: <" + id + ">\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
		"First line of " + subject + ".\r\n.A line that starts with a dot.\r\n..And one with two.\r\n\r\nLast line.\r\n"
}

// messageID returns the Message-ID field value of a message, "" if none.
func messageID(msg string) string {
	for _, line := range strings.Split(msg, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "Message-ID") {
			return strings.TrimSpace(v)
		}
		if strings.TrimSpace(line) == "" {
			break
		}
	}
	return ""
}

// TestOutboundSmtpSink: three messages, each to three recipients at one
// domain, reach smtp-sink as one transaction each (one MAIL, three RCPT,
// one copy of the data) over fewer connections than transactions, and
// carry DKIM signatures of both selectors of the From domain, which
// dkimpy and mailauth verify with the published keys.
func TestOutboundSmtpSink(t *testing.T) {
	sink := startSink(t)
	env := startOutbound(t, outSinkUID, outOptions{
		records: []string{"sink.test. 300 IN MX 10 mx.sink.test.", "mx.sink.test. 300 IN A 127.0.0.1"},
		port:    sink.port,
		// One delivery at a time to the destination: each next job finds
		// the previous one's session idle, whatever the timing.
		queue: "destination_concurrency = 1\n",
	})
	rcpts := []string{"a@sink.test", "b@sink.test", "c@sink.test"}
	ids := []string{"sink-1@outbound.test", "sink-2@outbound.test", "sink-3@outbound.test"}
	for i, id := range ids {
		env.submit("mox@other.test", rcpts, outMessage(id, strings.Join(rcpts, ", "), fmt.Sprintf("sink %d", i+1)))
	}
	env.waitQueueEmpty(60*time.Second, sink.output)

	// The dialogue: per transaction one MAIL, three RCPT, one DATA.
	type txn struct {
		mail        string
		rcpts, data int
	}
	var txns []*txn
	connects := 0
	for _, c := range sink.commands() {
		u := strings.ToUpper(c)
		switch {
		case c == "connect":
			connects++
		case strings.HasPrefix(u, "MAIL FROM:"):
			txns = append(txns, &txn{mail: c})
		case len(txns) == 0:
		case strings.HasPrefix(u, "RCPT TO:"):
			txns[len(txns)-1].rcpts++
		case u == "DATA":
			txns[len(txns)-1].data++
		}
	}
	if len(txns) != len(ids) {
		t.Fatalf("smtp-sink saw %d transactions, want %d (one per message)\n%s\nmoxd log:\n%s", len(txns), len(ids), sink.output(), env.in.stderr)
	}
	for i, x := range txns {
		if x.rcpts != 3 || x.data != 1 || !strings.Contains(x.mail, "<mox@other.test>") {
			t.Errorf("transaction %d: %q with %d RCPT and %d DATA, want MAIL FROM:<mox@other.test>, 3 RCPT, 1 DATA", i+1, x.mail, x.rcpts, x.data)
		}
	}
	if connects >= len(txns) {
		t.Errorf("%d connections for %d transactions: sessions are not reused\n%s", connects, len(txns), sink.output())
	}
	t.Logf("smtp-sink: %d transactions over %d connections", len(txns), connects)

	// The dumps: each message once, with its three recipients and both
	// signatures.
	dumps := sink.dumps(t)
	byID := map[string]sinkDump{}
	for _, d := range dumps {
		id := messageID(d.message)
		if _, dup := byID[id]; dup {
			t.Errorf("message %s dumped twice", id)
		}
		byID[id] = d
	}
	var files []string
	dir := t.TempDir()
	for _, id := range ids {
		d, ok := byID["<"+id+">"]
		if !ok {
			t.Fatalf("no dump of message %s; dumps: %d", id, len(dumps))
		}
		slices.Sort(d.rcpts)
		if want := []string{"<a@sink.test>", "<b@sink.test>", "<c@sink.test>"}; !slices.Equal(d.rcpts, want) {
			t.Errorf("message %s: recipients %q, want %q", id, d.rcpts, want)
		}
		if !strings.HasPrefix(d.mailFrom, "<mox@other.test>") {
			t.Errorf("message %s: MAIL FROM %q, want <mox@other.test>", id, d.mailFrom)
		}
		if n := strings.Count("\r\n"+d.message, "\r\nDKIM-Signature:"); n != 2 {
			t.Errorf("message %s has %d DKIM-Signature fields, want 2:\n%s", id, n, d.message)
		}
		if !strings.Contains(d.message, "\r\n.A line that starts with a dot.\r\n..And one with two.\r\n") {
			t.Errorf("message %s: the dot lines did not arrive intact:\n%s", id, d.message)
		}
		f := filepath.Join(dir, strings.TrimSuffix(id, "@outbound.test")+".eml")
		if err := os.WriteFile(f, []byte(d.message), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}

	// Publish the public keys of both selectors, read from keys' files,
	// in the DNS the verifiers ask.
	for _, sel := range []string{"sel-ed", "sel-rsa"} {
		txt := dkimTXT(t, filepath.Join(env.in.dir, "data", "keys", "dkim", "localhost", sel+".key"))
		if err := env.dns.Add(fmt.Sprintf("%s._domainkey.localhost. 300 IN TXT %s", sel, zoneTXT(txt))); err != nil {
			t.Fatal(err)
		}
	}
	// A copy with a changed body shows the verifiers can fail.
	tampered := filepath.Join(dir, "tampered.eml")
	b, _ := os.ReadFile(files[0])
	if err := os.WriteFile(tampered, []byte(strings.Replace(string(b), "Last line.", "Last line!", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	files = append(files, tampered)
	want := func(file string) []string {
		if file == tampered {
			return nil
		}
		return []string{"localhost/sel-ed", "localhost/sel-rsa"}
	}
	t.Run("dkimpy", func(t *testing.T) {
		for file, res := range dkimpyVerify(t, env.dns.Addr(), files) {
			if !slices.Equal(res, want(file)) {
				t.Errorf("dkimpy on %s: passing d=/s= %q, want %q", filepath.Base(file), res, want(file))
			}
		}
	})
	t.Run("mailauth", func(t *testing.T) {
		for file, res := range mailauthVerify(t, env.dns.Addr(), files) {
			if !slices.Equal(res, want(file)) {
				t.Errorf("mailauth on %s: passing and aligned d=/s= %q, want %q", filepath.Base(file), res, want(file))
			}
		}
	})
}

// dkimTXT returns the DKIM record (RFC 6376 §3.6.1, RFC 8463 §4.2) for
// the PKCS #8 private key in path.
func dkimTXT(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("DKIM key: %v", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		t.Fatalf("%s is not a PKCS #8 PEM file", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	switch k := k.(type) {
	case ed25519.PrivateKey:
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(k.Public().(ed25519.PublicKey))
	case *rsa.PrivateKey:
		der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
	}
	t.Fatalf("%s: key of type %T", path, k)
	return ""
}

// zoneTXT quotes a TXT value for zone-file syntax, in strings of at most
// 255 bytes.
func zoneTXT(s string) string {
	var l []string
	for len(s) > 200 {
		l = append(l, strconv.Quote(s[:200]))
		s = s[200:]
	}
	return strings.Join(append(l, strconv.Quote(s)), " ")
}

// dkimpyVerify verifies every DKIM signature of the files with dkimpy,
// asking the DNS server at addr, and returns per file the d/s of the
// signatures that pass.
func dkimpyVerify(t *testing.T, dnsAddr string, files []string) map[string][]string {
	t.Helper()
	py := needTool(t, "/usr/bin/python3")
	host, port, _ := net.SplitHostPort(dnsAddr)
	script := `
import sys, json, dkim, dns.resolver
r = dns.resolver.Resolver(configure=False)
r.nameservers = [sys.argv[1]]
r.port = int(sys.argv[2])
def txt(name, timeout=5):
    a = r.resolve(name.decode() if isinstance(name, bytes) else name, "TXT", lifetime=timeout)
    return b"".join(a[0].strings)
out = {}
for path in sys.argv[3:]:
    data = open(path, "rb").read()
    d = dkim.DKIM(data)
    n = len([h for h in d.headers if h[0].lower() == b"dkim-signature"])
    res = []
    for i in range(n):
        try:
            ok = d.verify(idx=i, dnsfunc=txt)
        except Exception as e:
            print("signature %d of %s: %r" % (i, path, e), file=sys.stderr)
            ok = False
        if ok:
            res.append(d.domain.decode() + "/" + d.selector.decode())
    out[path] = res
print(json.dumps(out))
`
	out, err := runTool(t, "", py, append([]string{"-c", script, host, port}, files...)...)
	if err != nil {
		t.Fatalf("dkimpy: %v\n%s", err, out)
	}
	res := map[string][]string{}
	if err := json.Unmarshal([]byte(lastLine(out)), &res); err != nil {
		t.Fatalf("dkimpy output: %v\n%s", err, out)
	}
	if len(res) != len(files) {
		t.Fatalf("dkimpy checked %d files, want %d\n%s", len(res), len(files), out)
	}
	return res
}

// mailauthVerify verifies the files with mailauth's dkimVerify (the npm
// module of integration/dnsbed), asking the DNS server at addr, and
// returns per file the d/s of the signatures that pass and are aligned
// with the From domain.
func mailauthVerify(t *testing.T, dnsAddr string, files []string) map[string][]string {
	t.Helper()
	node := needTool(t, "node")
	modDir, err := filepath.Abs("dnsbed")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(modDir, "node_modules", "mailauth")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("mailauth not installed in %s/node_modules; .ci/run installs it with npm ci", modDir)
		}
		t.Skipf("mailauth not installed (cd integration/dnsbed && npm ci)")
	}
	script := `
const fs = require('node:fs');
const dns = require('node:dns');
const { dkimVerify } = require('mailauth/lib/dkim/verify');
const [addr, ...files] = process.argv.slice(1);
const r = new dns.promises.Resolver({ timeout: 5000, tries: 2 });
r.setServers([addr]);
(async () => {
    const out = {};
    for (const f of files) {
        const res = await dkimVerify(fs.readFileSync(f), { resolver: (name, rr) => r.resolve(name, rr) });
        out[f] = [];
        for (const x of res.results) {
            if (x.status.result === 'pass' && x.status.aligned) {
                out[f].push(x.signingDomain + '/' + x.selector);
            } else {
                console.error(f, JSON.stringify(x.status), x.signingDomain, x.selector);
            }
        }
    }
    console.log(JSON.stringify(out));
})().catch(err => { console.error(err); process.exit(1); });
`
	cmdArgs := append([]string{"-e", script, dnsAddr}, files...)
	out, err := runToolIn(t, modDir, node, cmdArgs...)
	if err != nil {
		t.Fatalf("mailauth: %v\n%s", err, out)
	}
	res := map[string][]string{}
	if err := json.Unmarshal([]byte(lastLine(out)), &res); err != nil {
		t.Fatalf("mailauth output: %v\n%s", err, out)
	}
	if len(res) != len(files) {
		t.Fatalf("mailauth checked %d files, want %d\n%s", len(res), len(files), out)
	}
	return res
}

// runToolIn runs name in directory dir (node finds modules there), for
// at most a minute, and returns its output.
func runToolIn(t *testing.T, dir, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func lastLine(s string) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return l[len(l)-1]
}

// TestOutboundSMTPUTF8ASCII: a message submitted with the SMTPUTF8
// parameter (Go's net/smtp, for one, adds it whenever the server offers
// SMTPUTF8) but with only ASCII in its addresses and header is not an
// internationalized message, and goes to an MX without SMTPUTF8 (RFC 6531
// §3.4 forbids only sending internationalized addresses and headers
// there).
func TestOutboundSMTPUTF8ASCII(t *testing.T) {
	sink := startSink(t)
	env := startOutbound(t, outUTF8UID, outOptions{
		records: []string{"sink.test. 300 IN MX 10 mx.sink.test.", "mx.sink.test. 300 IN A 127.0.0.1"},
		port:    sink.port,
	})
	env.submitParams("mox@localhost", " SMTPUTF8", []string{"x@sink.test"}, outMessage("utf8-ascii@outbound.test", "x@sink.test", "ascii with smtputf8"))
	env.waitQueueEmpty(60*time.Second, sink.output)
	dumps := sink.dumps(t)
	if len(dumps) != 1 || messageID(dumps[0].message) != "<utf8-ascii@outbound.test>" {
		t.Fatalf("smtp-sink has %d dumps, want the message\n%s\nmoxd log:\n%s", len(dumps), sink.output(), env.in.stderr)
	}
}

// TestOutboundPostfixMX: direct delivery to a real Postfix as MX, with
// STARTTLS, into a virtual mailbox: Postfix records TLS in its Received
// header and its log.
func TestOutboundPostfixMX(t *testing.T) {
	needRoot(t)
	mailDir := peerDir(t, "moxd-vmail-")
	nobody, nogroup := nobodyIDs(t)
	os.Chown(mailDir, nobody, nogroup)
	tlsDir := peerDir(t, "moxd-mxtls-")
	ca := newTestCA(t)
	cert, key := filepath.Join(tlsDir, "cert.pem"), filepath.Join(tlsDir, "key.pem")
	issueLeaf(t, ca, []string{"mx.dest.test"}, nil, cert, key)
	pf := startPostfix(t, fmt.Sprintf(`myhostname = mx.dest.test
mydomain = dest.test
myorigin = dest.test
mynetworks = 127.0.0.0/8
virtual_mailbox_domains = dest.test
virtual_mailbox_base = %s
virtual_mailbox_maps = inline:{ user@dest.test=user/ }
virtual_uid_maps = static:%d
virtual_gid_maps = static:%d
smtpd_tls_cert_file = %s
smtpd_tls_key_file = %s
smtpd_tls_security_level = may
smtpd_tls_received_header = yes
smtpd_tls_loglevel = 1
`, mailDir, nobody, nogroup, cert, key))
	env := startOutbound(t, outPostfixMXUID, outOptions{
		records: []string{"dest.test. 300 IN MX 10 mx.dest.test.", "mx.dest.test. 300 IN A 127.0.0.1"},
		port:    pf.port,
	})
	env.submit("mox@localhost", []string{"user@dest.test"}, outMessage("postfix-mx@outbound.test", "user@dest.test", "to postfix"))
	msgs := maildirMessages(t, filepath.Join(mailDir, "user"), 1, 60*time.Second, func() string { return pf.log() + "\nmoxd log:\n" + env.in.stderr.String() })
	env.waitQueueEmpty(30 * time.Second)
	if len(msgs) != 1 {
		t.Fatalf("%d messages in the mailbox, want 1", len(msgs))
	}
	m := unfold(strings.ReplaceAll(msgs[0], "\n", "\r\n"))
	if messageID(msgs[0]) != "<postfix-mx@outbound.test>" {
		t.Errorf("delivered message has Message-ID %q", messageID(msgs[0]))
	}
	// The first Received is Postfix's.
	rcvd := m[strings.Index(m, "Received: "):]
	rcvd = rcvd[:strings.Index(rcvd, "\r\n")]
	if !strings.Contains(rcvd, "by mx.dest.test (Postfix) with ESMTPS") || !strings.Contains(rcvd, "(using TLSv1.") {
		t.Errorf("Postfix's Received header does not record TLS: %s", rcvd)
	}
	line := pf.waitLog(10*time.Second, "TLS connection established from", "TLSv1.")
	t.Logf("postfix: %s", line[strings.Index(line, "postfix/"):])
	pf.waitLog(10*time.Second, "to=<user@dest.test>", "status=sent")
}

func nobodyIDs(t *testing.T) (int, int) {
	t.Helper()
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	g, err := user.LookupGroup("nogroup")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(g.Gid)
	return uid, gid
}

// TestOutboundSubmissionTransport: a global route sends everything
// through a transport of kind submission: Postfix with STARTTLS required,
// its certificate checked against [queue] ca_file, and AUTH through
// Dovecot's SASL, once with SCRAM-SHA-256 and once with PLAIN.
func TestOutboundSubmissionTransport(t *testing.T) {
	needRoot(t)
	const saslUser, saslPassword = "moxrelay", "relay-Secret-1"
	sock := startDovecotAuth(t, saslUser, saslPassword)
	mailDir := peerDir(t, "moxd-vmail-")
	nobody, nogroup := nobodyIDs(t)
	os.Chown(mailDir, nobody, nogroup)
	tlsDir := peerDir(t, "moxd-subtls-")
	ca := newTestCA(t)
	caFile := filepath.Join(tlsDir, "ca.pem")
	writeCA(t, ca, caFile)
	cert, key := filepath.Join(tlsDir, "cert.pem"), filepath.Join(tlsDir, "key.pem")
	issueLeaf(t, ca, []string{"smarthost.test"}, []net.IP{net.IPv4(127, 0, 0, 1)}, cert, key)
	// Only authenticated clients may send, also to the local virtual
	// domain: an unauthenticated delivery would be refused.
	pf := startPostfix(t, fmt.Sprintf(`myhostname = smarthost.test
mydomain = smarthost.test
myorigin = smarthost.test
mynetworks =
virtual_mailbox_domains = far.test
virtual_mailbox_base = %s
virtual_mailbox_maps = inline:{ someone@far.test=someone/ }
virtual_uid_maps = static:%d
virtual_gid_maps = static:%d
smtpd_tls_cert_file = %s
smtpd_tls_key_file = %s
smtpd_tls_security_level = encrypt
smtpd_tls_loglevel = 1
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = %s
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions = permit_sasl_authenticated, reject
`, mailDir, nobody, nogroup, cert, key, sock))
	pwFile := filepath.Join(t.TempDir(), "relay.password")
	if err := os.WriteFile(pwFile, []byte(saslPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for i, mech := range []string{"SCRAM-SHA-256", "PLAIN"} {
		t.Run(mech, func(t *testing.T) {
			env := startOutbound(t, outSubmissionUID, outOptions{
				queue: fmt.Sprintf("ca_file = %q\n", caFile),
				tables: fmt.Sprintf("\n[[transport]]\nname = \"sub\"\nkind = \"submission\"\nhost = \"127.0.0.1\"\nport = %d\nusername = %q\npassword_file = %q\nmechanisms = [%q]\n",
					pf.port, saslUser, pwFile, mech),
				routes: "\n[[route]]\ntransport = \"sub\"\n",
			})
			id := fmt.Sprintf("submission-%d@outbound.test", i)
			env.submit("mox@localhost", []string{"someone@far.test"}, outMessage(id, "someone@far.test", "via "+mech))
			msgs := maildirMessages(t, filepath.Join(mailDir, "someone"), i+1, 60*time.Second, func() string { return pf.log() + "\nmoxd log:\n" + env.in.stderr.String() })
			found := false
			for _, m := range msgs {
				found = found || messageID(m) == "<"+id+">"
			}
			if !found {
				t.Fatalf("message %s not in the mailbox", id)
			}
			env.waitQueueEmpty(30 * time.Second)
			line := pf.waitLog(10*time.Second, "sasl_method="+mech+",", "sasl_username="+saslUser)
			t.Logf("postfix: %s", line[strings.Index(line, "postfix/"):])
			pf.waitLog(10*time.Second, "TLS connection established from", "TLSv1.")
		})
	}
	// Without ca_file the certificate does not verify: the delivery is
	// deferred before AUTH, so the password never reaches the server.
	t.Run("unverified", func(t *testing.T) {
		env := startOutbound(t, outSubmissionUID, outOptions{
			tables: fmt.Sprintf("\n[[transport]]\nname = \"sub\"\nkind = \"submission\"\nhost = \"127.0.0.1\"\nport = %d\nusername = %q\npassword_file = %q\nmechanisms = [\"PLAIN\"]\n",
				pf.port, saslUser, pwFile),
			routes: "\n[[route]]\ntransport = \"sub\"\n",
		})
		env.submit("mox@localhost", []string{"someone@far.test"}, outMessage("submission-untrusted@outbound.test", "someone@far.test", "untrusted"))
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(env.in.stderr.String(), `msg="delivery deferred"`) {
			if time.Now().After(deadline) {
				t.Fatalf("no deferred delivery within 30s\nmoxd log:\n%s", env.in.stderr)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if log := env.in.stderr.String(); !strings.Contains(log, "x509: certificate signed by unknown authority") {
			t.Errorf("the deferral does not name the certificate problem:\n%s", log)
		}
		if m, _ := queued(t, env.in); m != 1 {
			t.Errorf("queue holds %d messages, want the deferred one", m)
		}
	})
	if n := strings.Count(pf.log(), "sasl_method="); n != 2 {
		t.Errorf("postfix logged %d SASL logins, want 2 (none for the unverified server):\n%s", n, pf.log())
	}
}

// TestOutboundSocks: a route sends through a transport of kind socks:
// the connection goes through microsocks, which resolves the MX host
// name itself (moxd's DNS has no address for it), and moxd says EHLO with
// the transport's remote_hostname.
func TestOutboundSocks(t *testing.T) {
	needRoot(t)
	sink := startSink(t)
	socks, socksPort := startMicrosocks(t, map[string]string{"mx.socks.test": "127.0.0.1"})
	env := startOutbound(t, outSocksUID, outOptions{
		records: []string{"socks.test. 300 IN MX 10 mx.socks.test."},
		port:    sink.port,
		tables: fmt.Sprintf("\n[[transport]]\nname = \"proxy\"\nkind = \"socks\"\nsocks_address = \"127.0.0.1:%d\"\nremote_ips = [\"192.0.2.1\"]\nremote_hostname = \"relay.example.test\"\n",
			socksPort),
		routes: "\n[[route]]\nto_domains = [\"socks.test\"]\ntransport = \"proxy\"\n",
	})
	env.submit("mox@localhost", []string{"x@socks.test"}, outMessage("socks@outbound.test", "x@socks.test", "through socks"))
	env.waitQueueEmpty(60*time.Second, sink.output, socks.output)
	dumps := sink.dumps(t)
	if len(dumps) != 1 || messageID(dumps[0].message) != "<socks@outbound.test>" {
		t.Fatalf("smtp-sink has %d dumps, want the one message\n%s", len(dumps), sink.output())
	}
	if dumps[0].helo != "relay.example.test" {
		t.Errorf("EHLO %q, want the transport's remote_hostname relay.example.test", dumps[0].helo)
	}
	if n := sink.count("EHLO relay.example.test"); n == 0 {
		t.Errorf("smtp-sink log has no EHLO relay.example.test:\n%s", sink.output())
	}
	if want := fmt.Sprintf("connected to mx.socks.test:%d", sink.port); !strings.Contains(socks.output(), want) {
		t.Errorf("microsocks log lacks %q:\n%s", want, socks.output())
	}
}

// TestOutboundDSN: a recipient the MX refuses with 550 5.1.1 gets the
// sender a DSN in the Inbox (checked with Python's email package), and
// lands on the account's suppression list; a second message to it fails
// at once, without a connection, with a DSN naming the suppression list.
func TestOutboundDSN(t *testing.T) {
	needRoot(t)
	py := needTool(t, "/usr/bin/python3")
	sink := startSink(t, "-f", "RCPT", "-B", "550 5.1.1 Error: no such user here")
	env := startOutbound(t, outDSNUID, outOptions{
		records: []string{"sink.test. 300 IN MX 10 mx.sink.test.", "mx.sink.test. 300 IN A 127.0.0.1"},
		port:    sink.port,
	})
	const rcpt = "nobody@sink.test"
	env.submit("mox@localhost", []string{rcpt}, outMessage("dsn-1@outbound.test", rcpt, "first"))
	env.waitQueueEmpty(60*time.Second, sink.output)
	if n := sink.count("RCPT TO:<" + rcpt + ">"); n != 1 {
		t.Fatalf("smtp-sink saw %d RCPT TO:<%s>, want 1\n%s", n, rcpt, sink.output())
	}
	dsn1 := waitDSN(t, env, "dsn-1@outbound.test")
	checkDSN(t, py, dsn1, "dsn-1@outbound.test", rcpt, "5.1.1", "550 5.1.1")

	out, code := moxctlRun(t, env.in.conf, "", "queue", "suppress", "lookup", "mox", rcpt)
	if code != 0 || !strings.Contains(out, rcpt+" is suppressed for mox") {
		t.Errorf("moxctl queue suppress lookup: exit %d, want the address suppressed:\n%s", code, out)
	}

	connects, mails := sink.count("connect"), sink.count("MAIL FROM:")
	env.submit("mox@localhost", []string{rcpt}, outMessage("dsn-2@outbound.test", rcpt, "second"))
	env.waitQueueEmpty(60 * time.Second)
	dsn2 := waitDSN(t, env, "dsn-2@outbound.test")
	checkDSN(t, py, dsn2, "dsn-2@outbound.test", rcpt, "5.1.1", "suppression list")
	if c, m := sink.count("connect"), sink.count("MAIL FROM:"); c != connects || m != mails {
		t.Errorf("the second message reached the server (connections %d -> %d, MAIL %d -> %d)\n%s", connects, c, mails, m, sink.output())
	}
}

// waitDSN waits for the DSN about the message origID in mox's Inbox.
func waitDSN(t *testing.T, env *outEnv, origID string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var found []string
		for _, m := range exportMessages(t, env.in.conf, "mox", "INBOX") {
			if strings.Contains(unfold(m), "In-Reply-To: <"+origID+">") {
				found = append(found, m)
			}
		}
		if len(found) == 1 {
			return found[0]
		}
		if len(found) > 1 || time.Now().After(deadline) {
			t.Fatalf("%d DSNs about %s in the Inbox, want 1\nmoxd log:\n%s", len(found), origID, env.in.stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkDSN checks a DSN with Python's email package: a multipart/report
// of report-type delivery-status (RFC 6522) whose delivery-status part
// says the recipient failed with status, diagnostic containing diag, and
// a part with the original's header.
func checkDSN(t *testing.T, py, msg, origID, rcpt, status, diag string) {
	t.Helper()
	script := `
import sys, json, email
from email import policy
m = email.message_from_string(sys.stdin.read(), policy=policy.compat32)
parts = m.get_payload()
ds = [p for p in parts if p.get_content_type() == "message/delivery-status"]
orig = [p for p in parts if p.get_content_type() in ("message/rfc822", "text/rfc822-headers")]
per = ds[0].get_payload() if ds else []
rcpt = [dict((k.lower(), " ".join(str(v).split())) for k, v in b.items()) for b in per[1:]]
o = ""
if orig:
    p = orig[0]
    o = p.get_payload()[0]["Message-ID"] if p.get_content_type() == "message/rfc822" else p.get_payload(decode=True).decode()
print(json.dumps({
    "type": m.get_content_type(),
    "report_type": m.get_param("report-type"),
    "in_reply_to": m["In-Reply-To"],
    "from": m["From"],
    "first": parts[0].get_content_type() if parts else "",
    "reporting_mta": dict(per[0].items()).get("Reporting-MTA", "") if per else "",
    "recipients": rcpt,
    "original": o or "",
}))
`
	out, err := runTool(t, msg, py, "-c", script)
	if err != nil {
		t.Fatalf("python email: %v\n%s", err, out)
	}
	var r struct {
		Type         string `json:"type"`
		ReportType   string `json:"report_type"`
		InReplyTo    string `json:"in_reply_to"`
		From         string `json:"from"`
		First        string `json:"first"`
		ReportingMTA string `json:"reporting_mta"`
		Recipients   []map[string]string
		Original     string `json:"original"`
	}
	if err := json.Unmarshal([]byte(lastLine(out)), &r); err != nil {
		t.Fatalf("python output: %v\n%s", err, out)
	}
	if r.Type != "multipart/report" || r.ReportType != "delivery-status" || r.First != "text/plain" {
		t.Errorf("DSN is %s report-type=%s with first part %s, want multipart/report, delivery-status, text/plain", r.Type, r.ReportType, r.First)
	}
	if r.InReplyTo != "<"+origID+">" {
		t.Errorf("DSN In-Reply-To %q, want <%s>", r.InReplyTo, origID)
	}
	if !strings.Contains(r.ReportingMTA, "localhost") {
		t.Errorf("Reporting-MTA %q", r.ReportingMTA)
	}
	if len(r.Recipients) != 1 {
		t.Fatalf("DSN reports on %d recipients, want 1:\n%s", len(r.Recipients), msg)
	}
	rc := r.Recipients[0]
	if !strings.EqualFold(rc["final-recipient"], "rfc822; "+rcpt) && !strings.EqualFold(rc["final-recipient"], "rfc822;"+rcpt) {
		t.Errorf("Final-Recipient %q, want rfc822;%s", rc["final-recipient"], rcpt)
	}
	if rc["action"] != "failed" || rc["status"] != status || !strings.Contains(rc["diagnostic-code"], diag) {
		t.Errorf("Action %q, Status %q, Diagnostic-Code %q; want failed, %s, containing %q", rc["action"], rc["status"], rc["diagnostic-code"], status, diag)
	}
	if !strings.Contains(r.Original, origID) {
		t.Errorf("the DSN's copy of the original lacks its Message-ID: %q", r.Original)
	}
}

// TestOutboundKill9: moxd-queue is killed with SIGKILL while smtp-sink
// holds back its reply to the end of the data; master restarts queue,
// which delivers the message again: a message may go twice, never zero
// times, and the queue ends empty.
func TestOutboundKill9(t *testing.T) {
	needRoot(t)
	sink := startSink(t, "-W", ".:3")
	env := startOutbound(t, outKillUID, outOptions{
		records: []string{"sink.test. 300 IN MX 10 mx.sink.test.", "mx.sink.test. 300 IN A 127.0.0.1"},
		port:    sink.port,
	})
	env.submit("mox@localhost", []string{"x@sink.test"}, outMessage("kill9@outbound.test", "x@sink.test", "kill 9"))
	deadline := time.Now().Add(30 * time.Second)
	for sink.count(".") == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("smtp-sink never got the data\n%s\nmoxd log:\n%s", sink.output(), env.in.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	pid := pidOf(env.in, "queue")
	if pid == 0 {
		t.Fatal("no queue pid")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	env.in.waitStatus("queue restarted", func(st ctl.Status) bool { r := role(st, "queue"); return r.PID != pid && r.State == "ready" })
	env.waitQueueEmpty(60*time.Second, sink.output)
	if n := sink.count("."); n < 2 {
		t.Errorf("smtp-sink got the data %d times, want a second delivery after the kill\n%s", n, sink.output())
	}
	n := 0
	for _, d := range sink.dumps(t) {
		if messageID(d.message) == "<kill9@outbound.test>" {
			n++
		}
	}
	if n == 0 {
		t.Fatalf("the message was never delivered\n%s\nmoxd log:\n%s", sink.output(), env.in.stderr)
	}
	t.Logf("delivered %d times; smtp-sink got the data %d times", n, sink.count("."))
}
