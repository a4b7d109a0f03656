package imapd

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"moxd/internal/config"
	"moxd/internal/ipc"
	"moxd/internal/storage/storetest"
)

var testSlice = config.StoreSlice{
	Domains:  []config.AddrDomain{{Name: "example.org"}},
	Accounts: []config.StoreAccount{{Name: "mjl", Addresses: []string{"mjl@example.org"}}},
}

func testTLSConfig(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		DNSNames:     []string{"mail.example.org"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

type env struct {
	st   *storetest.Store
	srv  *Server
	addr string
}

// newEnv starts a store and a server on a loopback listener; configure
// changes the server before it serves.
func newEnv(t *testing.T, configure ...func(*env)) *env {
	t.Helper()
	st := storetest.Start(t, testSlice)
	st.SetPassword(t, "mjl", "secret")
	e := &env{st: st, srv: &Server{Store: st.Peer(ipc.RoleIMAP), TLS: testTLSConfig(t), Hostname: "mail.example.org"}}
	for _, f := range configure {
		f(e)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	e.addr = l.Addr().String()
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			go e.srv.Serve(t.Context(), nc, false)
		}
	}()
	return e
}

type client struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
	n  int
}

func (e *env) dial(t *testing.T) (*client, string) {
	t.Helper()
	nc, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &client{t: t, nc: nc, br: bufio.NewReader(nc)}
	return c, c.line()
}

func (c *client) line() string {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	s, err := c.br.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (have %q)", err, s)
	}
	return strings.TrimSuffix(s, "\r\n")
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := c.nc.Write([]byte(s + "\r\n")); err != nil {
		c.t.Fatal(err)
	}
}

// cmd sends a command with a new tag and returns the untagged lines and
// the tagged response without the tag.
func (c *client) cmd(s string) ([]string, string) {
	c.t.Helper()
	c.n++
	tag := "a" + strconv.Itoa(c.n)
	c.send(tag + " " + s)
	var untagged []string
	for {
		l := c.line()
		if rest, ok := strings.CutPrefix(l, tag+" "); ok {
			return untagged, rest
		}
		untagged = append(untagged, l)
	}
}

func (c *client) ok(s string) []string {
	c.t.Helper()
	u, res := c.cmd(s)
	if !strings.HasPrefix(res, "OK") {
		c.t.Fatalf("%s: %s (untagged %q)", s, res, u)
	}
	return u
}

func (c *client) expect(s, prefix string) []string {
	c.t.Helper()
	u, res := c.cmd(s)
	if !strings.HasPrefix(res, prefix) {
		c.t.Fatalf("%s: %q, want %q", s, res, prefix)
	}
	return u
}

func (c *client) starttls() {
	c.t.Helper()
	c.ok("STARTTLS")
	tc := tls.Client(c.nc, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		c.t.Fatal(err)
	}
	c.nc, c.br = tc, bufio.NewReader(tc)
}

func (c *client) login() {
	c.t.Helper()
	c.starttls()
	c.ok("LOGIN mjl@example.org secret")
}

func TestCapabilitiesAndTLS(t *testing.T) {
	e := newEnv(t)
	c, greeting := e.dial(t)
	if !strings.HasPrefix(greeting, "* OK [CAPABILITY IMAP4rev1 ") || !strings.HasSuffix(greeting, "] moxd ready") {
		t.Fatalf("greeting %q", greeting)
	}
	for _, s := range []string{"STARTTLS", "LOGINDISABLED", "AUTH=SCRAM-SHA-256", "AUTH=CRAM-MD5"} {
		if !strings.Contains(greeting, " "+s) {
			t.Errorf("greeting lacks %s: %q", s, greeting)
		}
	}
	if strings.Contains(greeting, "AUTH=PLAIN") || strings.Contains(greeting, "-PLUS") {
		t.Errorf("greeting offers PLAIN or -PLUS without TLS: %q", greeting)
	}
	u := c.ok("CAPABILITY")
	if len(u) != 1 || !strings.HasPrefix(u[0], "* CAPABILITY IMAP4rev1") {
		t.Fatalf("CAPABILITY: %q", u)
	}
	c.expect("LOGIN mjl@example.org secret", "NO [PRIVACYREQUIRED]")
	c.expect("AUTHENTICATE PLAIN "+b64("\x00mjl@example.org\x00secret"), "NO [PRIVACYREQUIRED]")
	c.expect("SELECT INBOX", "BAD")
	c.expect("LIST \"\" *", "BAD")

	c.starttls()
	u = c.ok("CAPABILITY")
	caps := u[0]
	for _, s := range []string{"AUTH=PLAIN", "AUTH=SCRAM-SHA-256-PLUS", "AUTH=SCRAM-SHA-1-PLUS"} {
		if !strings.Contains(caps, " "+s) {
			t.Errorf("capabilities under TLS lack %s: %q", s, caps)
		}
	}
	for _, s := range []string{"STARTTLS", "LOGINDISABLED"} {
		if strings.Contains(caps, " "+s) {
			t.Errorf("capabilities under TLS have %s: %q", s, caps)
		}
	}
	c.expect("STARTTLS", "BAD")
	c.expect("LOGIN mjl@example.org wrong", "NO [AUTHENTICATIONFAILED]")
	_, res := c.cmd("LOGIN mjl@example.org secret")
	if !strings.HasPrefix(res, "OK [CAPABILITY IMAP4rev1 ") || strings.Contains(res, "AUTH=") {
		t.Fatalf("LOGIN: %q", res)
	}
	c.expect("LOGIN mjl@example.org secret", "BAD")
	c.expect("SELECT INBOX", "OK [READ-WRITE]")
	u = c.ok("ID (\"name\" \"test\")")
	if len(u) != 1 || u[0] != `* ID ("name" "moxd")` {
		t.Fatalf("ID: %q", u)
	}
	u = c.ok("NAMESPACE")
	if len(u) != 1 || u[0] != `* NAMESPACE (("" "/")) NIL NIL` {
		t.Fatalf("NAMESPACE: %q", u)
	}
	c.ok("NOOP")
	u, res = c.cmd("LOGOUT")
	if len(u) != 1 || !strings.HasPrefix(u[0], "* BYE") || !strings.HasPrefix(res, "OK") {
		t.Fatalf("LOGOUT: %q %q", u, res)
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestAuthenticatePlain(t *testing.T) {
	e := newEnv(t)
	c, _ := e.dial(t)
	c.starttls()
	// SASL-IR (RFC 4959).
	c.expect("AUTHENTICATE PLAIN "+b64("\x00mjl@example.org\x00wrong"), "NO [AUTHENTICATIONFAILED]")
	c.ok("AUTHENTICATE PLAIN " + b64("\x00mjl@example.org\x00secret"))

	// Without an initial response: an empty continuation first.
	c, _ = e.dial(t)
	c.starttls()
	c.send("p1 AUTHENTICATE PLAIN")
	if l := c.line(); l != "+ " {
		t.Fatalf("continuation %q", l)
	}
	c.send(b64("\x00mjl@example.org\x00secret"))
	if l := c.line(); !strings.HasPrefix(l, "p1 OK") {
		t.Fatalf("after response: %q", l)
	}

	// "*" cancels: BAD.
	c, _ = e.dial(t)
	c.starttls()
	c.send("p2 AUTHENTICATE PLAIN")
	c.line()
	c.send("*")
	if l := c.line(); !strings.HasPrefix(l, "p2 BAD") {
		t.Fatalf("after cancel: %q", l)
	}
	c.expect("AUTHENTICATE NOSUCH", "NO")
	c.ok("NOOP")
}

func TestAuthenticateSCRAM(t *testing.T) {
	e := newEnv(t)
	for _, mech := range []string{"SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"} {
		c, _ := e.dial(t)
		c.starttls()
		var cb []byte
		if strings.HasSuffix(mech, "-PLUS") {
			cs := c.nc.(*tls.Conn).ConnectionState()
			var err error
			if cb, err = cs.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32); err != nil {
				t.Fatal(err)
			}
		}
		sc := &scramClient{user: "mjl@example.org", pass: "secret", cb: cb}
		c.send("s1 AUTHENTICATE " + mech + " " + base64.StdEncoding.EncodeToString(sc.first()))
		l := c.line()
		chal, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(l, "+ "))
		if !strings.HasPrefix(l, "+ ") || err != nil {
			t.Fatalf("%s: server-first %q", mech, l)
		}
		c.send(base64.StdEncoding.EncodeToString(sc.final(t, chal)))
		l = c.line()
		fin, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(l, "+ "))
		if !strings.HasPrefix(l, "+ ") || err != nil {
			t.Fatalf("%s: server-final %q", mech, l)
		}
		if string(fin) != "v="+base64.StdEncoding.EncodeToString(sc.serverSig) {
			t.Fatalf("%s: server signature %q does not verify", mech, fin)
		}
		c.send("")
		if l := c.line(); !strings.HasPrefix(l, "s1 OK [CAPABILITY") {
			t.Fatalf("%s: %q", mech, l)
		}
		c.ok("LIST \"\" INBOX")
	}
}

// scramClient is a minimal SCRAM-SHA-256 client (RFC 5802, RFC 7677), with
// tls-exporter binding (RFC 9266) when cb is set.
type scramClient struct {
	user, pass       string
	cb               []byte
	nonce, gs2, bare string
	serverSig        []byte
}

func (s *scramClient) first() []byte {
	s.nonce = "rOprNGfwEbeRWgbNEkqO"
	s.gs2 = "n,,"
	if s.cb != nil {
		s.gs2 = "p=tls-exporter,,"
	}
	s.bare = "n=" + s.user + ",r=" + s.nonce
	return []byte(s.gs2 + s.bare)
}

func (s *scramClient) final(t *testing.T, msg []byte) []byte {
	attrs := strings.Split(string(msg), ",")
	if len(attrs) < 3 || !strings.HasPrefix(attrs[0], "r="+s.nonce) {
		t.Fatalf("server-first %q", msg)
	}
	salt, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(attrs[1], "s="))
	if err != nil {
		t.Fatal(err)
	}
	iter, err := strconv.Atoi(strings.TrimPrefix(attrs[2], "i="))
	if err != nil {
		t.Fatal(err)
	}
	salted, err := pbkdf2.Key(sha256.New, s.pass, salt, iter, 32)
	if err != nil {
		t.Fatal(err)
	}
	mac := func(key []byte, msg string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	without := "c=" + base64.StdEncoding.EncodeToString(append([]byte(s.gs2), s.cb...)) + "," + attrs[0]
	authMsg := s.bare + "," + string(msg) + "," + without
	clientKey := mac(salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	proof := make([]byte, 32)
	subtle.XORBytes(proof, clientKey, mac(stored[:], authMsg))
	s.serverSig = mac(mac(salted, "Server Key"), authMsg)
	return []byte(without + ",p=" + base64.StdEncoding.EncodeToString(proof))
}

func TestMailboxes(t *testing.T) {
	e := newEnv(t)
	c, _ := e.dial(t)
	c.login()
	u := c.ok(`LIST "" "*"`)
	want := []string{
		`* LIST (\HasNoChildren) "/" INBOX`,
		`* LIST (\HasNoChildren \Archive) "/" Archive`,
		`* LIST (\HasNoChildren \Drafts) "/" Drafts`,
		`* LIST (\HasNoChildren \Junk) "/" Junk`,
		`* LIST (\HasNoChildren \Sent) "/" Sent`,
		`* LIST (\HasNoChildren \Trash) "/" Trash`,
	}
	if strings.Join(u, "\n") != strings.Join(want, "\n") {
		t.Fatalf("LIST:\n%s\nwant:\n%s", strings.Join(u, "\n"), strings.Join(want, "\n"))
	}
	if u := c.ok(`LIST "" ""`); len(u) != 1 || u[0] != `* LIST (\Noselect) "/" ""` {
		t.Fatalf("LIST delimiter: %q", u)
	}
	if u := c.ok(`LIST "" inbox`); len(u) != 1 || !strings.HasSuffix(u[0], " INBOX") {
		t.Fatalf("LIST inbox: %q", u)
	}
	if u := c.ok(`LIST (SPECIAL-USE) "" "*"`); len(u) != 5 {
		t.Fatalf("LIST (SPECIAL-USE): %q", u)
	}

	c.ok(`CREATE "Work/Project"`)
	c.expect(`CREATE Work/Project`, "NO [ALREADYEXISTS]")
	c.ok(`CREATE "Sent Old" (USE (\Flagged))`)
	c.expect(`CREATE Bad (USE (\Nonsense))`, "NO [USEATTR]")
	c.ok(`CREATE "Caf&AOk-"`) // modified UTF-7 for "Café"
	u = c.ok(`LIST "" "%"`)
	joined := strings.Join(u, "\n")
	for _, s := range []string{`"/" Work`, `(\HasNoChildren \Flagged) "/" "Sent Old"`, `"/" Caf&AOk-`} {
		if !strings.Contains(joined, s) {
			t.Errorf("LIST %%: no %q in\n%s", s, joined)
		}
	}
	if strings.Contains(joined, "Work/Project") {
		t.Errorf("LIST %% shows a child:\n%s", joined)
	}
	u = c.ok(`LIST "Work/" "%"`)
	if len(u) != 1 || u[0] != `* LIST (\HasNoChildren) "/" Work/Project` {
		t.Fatalf("LIST Work/ %%: %q", u)
	}
	c.ok(`RENAME Work/Project Work/Done`)
	c.expect(`RENAME Nope Other`, "NO [NONEXISTENT]")
	c.expect(`RENAME INBOX Other`, "NO [CANNOT]")
	c.ok(`SUBSCRIBE Work/Done`)
	u = c.ok(`LSUB "" "*"`)
	if !strings.Contains(strings.Join(u, "\n"), `* LSUB () "/" Work/Done`) {
		t.Fatalf("LSUB: %q", u)
	}
	u = c.ok(`LIST (SUBSCRIBED) "" "Work*"`)
	if len(u) != 1 || u[0] != `* LIST (\HasNoChildren \Subscribed) "/" Work/Done` {
		t.Fatalf("LIST (SUBSCRIBED): %q", u)
	}
	u = c.ok(`LIST "" "Work*" RETURN (SUBSCRIBED CHILDREN)`)
	if strings.Join(u, "\n") != `* LIST (\HasChildren) "/" Work`+"\n"+`* LIST (\HasNoChildren \Subscribed) "/" Work/Done` {
		t.Fatalf("LIST RETURN: %q", u)
	}
	c.ok(`UNSUBSCRIBE Work/Done`)
	if u := c.ok(`LSUB "" "Work*"`); len(u) != 0 {
		t.Fatalf("LSUB after UNSUBSCRIBE: %q", u)
	}
	c.ok(`DELETE Work/Done`)
	c.expect(`DELETE Work/Done`, "NO [NONEXISTENT]")
	c.expect(`DELETE INBOX`, "NO [CANNOT]")
	c.expect(`LIST (BOGUS) "" "*"`, "BAD")

	// UTF8=ACCEPT: names in UTF-8.
	if u := c.ok("ENABLE UTF8=ACCEPT CONDSTORE"); len(u) != 1 || u[0] != "* ENABLED UTF8=ACCEPT CONDSTORE" {
		t.Fatalf("ENABLE: %q", u)
	}
	if u := c.ok(`LIST "" "Caf*"`); len(u) != 1 || u[0] != `* LIST (\HasNoChildren) "/" "Café"` {
		t.Fatalf("LIST with UTF8=ACCEPT: %q", u)
	}
}

func TestStatus(t *testing.T) {
	e := newEnv(t)
	for i := range 3 {
		e.st.Deliver(t, "mjl@example.org", fmt.Sprintf("From: a@example.net\r\nSubject: %d\r\n\r\nhi\r\n", i))
	}
	c, _ := e.dial(t)
	c.login()
	u := c.ok("STATUS inbox (MESSAGES UIDNEXT UNSEEN DELETED)")
	if len(u) != 1 || u[0] != "* STATUS INBOX (MESSAGES 3 UIDNEXT 4 UNSEEN 3 DELETED 0)" {
		t.Fatalf("STATUS: %q", u)
	}
	u = c.ok("STATUS Sent (MESSAGES SIZE UIDVALIDITY HIGHESTMODSEQ)")
	if len(u) != 1 || !strings.HasPrefix(u[0], "* STATUS Sent (MESSAGES 0 SIZE 0 UIDVALIDITY ") {
		t.Fatalf("STATUS Sent: %q", u)
	}
	c.expect("STATUS Nope (MESSAGES)", "NO [NONEXISTENT]")
	u = c.ok(`LIST "" "INBOX" RETURN (STATUS (MESSAGES))`)
	if len(u) != 2 || u[1] != "* STATUS INBOX (MESSAGES 3)" {
		t.Fatalf("LIST-STATUS: %q", u)
	}
}

func TestBadCommands(t *testing.T) {
	e := newEnv(t)
	c, _ := e.dial(t)
	c.send("garbage")
	if l := c.line(); !strings.HasPrefix(l, "* BAD") && !strings.HasPrefix(l, "garbage BAD") {
		t.Fatalf("garbage: %q", l)
	}
	c.expect("FROB", "BAD")
	c.ok("NOOP")
	for i := 3; i < 20; i++ {
		c.expect("FETCH 1 FLAGS", "BAD")
	}
	c.send("x BOGUS")
	c.line() // x BAD
	if l := c.line(); !strings.HasPrefix(l, "* BYE") {
		t.Fatalf("after 20 BAD: %q", l)
	}
}

func TestStoreRestart(t *testing.T) {
	var sc *ipc.Conn
	e := newEnv(t, func(e *env) {
		sc = e.st.Conn(t, ipc.RoleIMAP, nil)
		e.srv.Store = func() (*ipc.Conn, error) { return sc, nil }
	})
	c, _ := e.dial(t)
	c.login()
	c.ok("NOOP")
	sc.Close()
	if l := c.line(); l != "* BYE [UNAVAILABLE] store restarted; log in again" {
		t.Fatalf("after store channel closed: %q", l)
	}
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.br.ReadByte(); err == nil {
		t.Fatal("connection still open")
	}
}

func TestIdleTimeout(t *testing.T) {
	e := newEnv(t, func(e *env) { e.srv.IdleTimeout = 100 * time.Millisecond })
	c, _ := e.dial(t)
	if l := c.line(); !strings.HasPrefix(l, "* BYE") {
		t.Fatalf("idle: %q", l)
	}
}

func TestPythonImaplib(t *testing.T) {
	e := newEnv(t)
	script := `
print(M.login("mjl@example.org", "secret")[0])
typ, data = M.list()
print(typ, len(data))
for d in data:
    print(d.decode())
print(M.status("INBOX", "(MESSAGES UIDNEXT)")[1][0].decode())
print(M.logout()[0])
`
	out, err := imaplibCommand(t, e.addr, script).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	want := `OK
OK 6
(\HasNoChildren) "/" INBOX
(\HasNoChildren \Archive) "/" Archive
(\HasNoChildren \Drafts) "/" Drafts
(\HasNoChildren \Junk) "/" Junk
(\HasNoChildren \Sent) "/" Sent
(\HasNoChildren \Trash) "/" Trash
INBOX (MESSAGES 0 UIDNEXT 1)
BYE
`
	if string(out) != want {
		t.Fatalf("python output:\n%s\nwant:\n%s", out, want)
	}
}

func TestStartTLSInjection(t *testing.T) {
	e := newEnv(t)
	c, _ := e.dial(t)
	// RFC 9051 §6.2.1: what follows STARTTLS before the handshake must
	// not run as a command under TLS.
	c.send("a STARTTLS\r\nb NOOP")
	if l := c.line(); !strings.HasPrefix(l, "a BAD") {
		t.Fatalf("STARTTLS with data after it: %q", l)
	}
	if l := c.line(); !strings.HasPrefix(l, "* BYE") {
		t.Fatalf("after refused STARTTLS: %q", l)
	}
}

// imaplibPreamble connects Python imaplib's M to the test server (host and
// port are sys.argv[1] and [2]) and starts TLS without checking the test
// certificate.
const imaplibPreamble = `import imaplib, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
M = imaplib.IMAP4(sys.argv[1], int(sys.argv[2]))
M.starttls(ssl_context=ctx)
`

// imaplibCommand returns the command running script, after
// imaplibPreamble, against the server at addr; args follow host and port
// in sys.argv. Python's imaplib is the independent client of these tests:
// without /usr/bin/python3 the test is skipped, and fails in CI.
func imaplibCommand(t *testing.T, addr, script string, args ...string) *exec.Cmd {
	t.Helper()
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("python3 missing")
		}
		t.Skip("python3 missing")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return exec.Command("/usr/bin/python3", append([]string{"-c", imaplibPreamble + script, host, port}, args...)...)
}
