package ipc

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testDeadline bounds every wait in the tests.
const testDeadline = 10 * time.Second

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	t.Cleanup(cancel)
	return ctx
}

// connPair returns two Conns on a fresh socketpair.
func connPair(t testing.TB, a, b Options) (*Conn, *Conn) {
	t.Helper()
	fa, fb, err := Socketpair()
	if err != nil {
		t.Fatal(err)
	}
	ca, err := New(fa, a)
	if err != nil {
		fb.Close()
		t.Fatal(err)
	}
	cb, err := New(fb, b)
	if err != nil {
		ca.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ca.Close()
		cb.Close()
	})
	return ca, cb
}

// rawPair returns a Conn and the raw other end of its socketpair, for tests
// that write frames by hand.
func rawPair(t testing.TB, opts Options) (*Conn, *os.File) {
	t.Helper()
	fa, fb, err := Socketpair()
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(fa, opts)
	if err != nil {
		fb.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		fb.Close()
	})
	// Reads on the raw end must not hang a broken test.
	tv := unix.NsecToTimeval(testDeadline.Nanoseconds())
	if err := unix.SetsockoptTimeval(int(fb.Fd()), unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	return c, fb
}

// tempFile creates a file with the given content, open for reading and
// writing.
func tempFile(t testing.TB, content string) *os.File {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(t.TempDir(), "f"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

type fileID struct {
	dev, ino uint64
}

func idOf(t testing.TB, f *os.File) fileID {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return fileID{uint64(st.Dev), uint64(st.Ino)}
}

// openFDs counts this process's fds that refer to the file id.
func openFDs(t testing.TB, id fileID) int {
	t.Helper()
	var fds []int
	for _, dir := range []string{"/proc/self/fd", "/dev/fd"} {
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if fd, err := strconv.Atoi(e.Name()); err == nil {
				fds = append(fds, fd)
			}
		}
		break
	}
	if fds == nil {
		for fd := 0; fd < 4096; fd++ {
			fds = append(fds, fd)
		}
	}
	n := 0
	for _, fd := range fds {
		var st unix.Stat_t
		if unix.Fstat(fd, &st) != nil {
			continue
		}
		if (fileID{uint64(st.Dev), uint64(st.Ino)}) == id {
			n++
		}
	}
	return n
}

// waitDown waits until c is down and returns its error.
func waitDown(t testing.TB, c *Conn) error {
	t.Helper()
	select {
	case <-c.Done():
		return c.Err()
	case <-time.After(testDeadline):
		t.Fatal("channel did not go down")
		return nil
	}
}

// sampleMessages returns one message of every defined type with every field
// set, plus variants for messages whose fd count depends on their fields.
func sampleMessages() []Message {
	return []Message{
		&ErrorReply{Code: CodeNotFound, Message: "no such certificate \"mail.example.org\" (ä)"},
		&Ack{},
		&Hello{Role: RoleSMTP, BuildID: "v0.1.0-abcdef", PID: 4242},
		&HelloReply{Generation: 7, ConfigSize: 123456},
		&GetConfig{Offset: 15360},
		&ConfigChunk{Total: 123456, Data: []byte("[smtp]\nhostname = \"mx.example.org\"\n")},
		&GetListeners{Start: 4},
		&ListenerBatch{Total: 0},
		&ListenerBatch{Total: 1, Listeners: []ListenerInfo{{"smtp", "0.0.0.0:25"}}},
		&ListenerBatch{Total: 2, Listeners: []ListenerInfo{{"smtp", "0.0.0.0:25"}, {"smtp", "[::]:25"}}},
		&ListenerBatch{Total: 3, Listeners: []ListenerInfo{{"imap", "0.0.0.0:143"}, {"imaps", "0.0.0.0:993"}, {"imaps", "[::]:993"}}},
		&ListenerBatch{Total: 9, Listeners: []ListenerInfo{{"https", "0.0.0.0:443"}, {"https", "[::]:443"}, {"http", "0.0.0.0:80"}, {"http", "[::]:80"}}},
		&Ready{},
		&Violation{Peer: RoleStore, Reason: "reply with unknown type"},
		&PeerUp{Peer: RoleKeys, Generation: 3},
		&SetLogLevel{Level: -4},
		&GetStatus{Start: 10},
		&StatusReply{Total: 12, Counters: []Counter{{"sessions", 3}, {"deliveries", 1 << 40}}},
		&Shutdown{GraceMillis: 5000},
		&ShutdownDone{},
		&Reload{},
		&LoadCertPair{Name: "mx"},
		&CertLoaded{Names: []string{"mx.example.org", "mail.example.org"}, NotAfter: 1893456000},
		&CommitCerts{Names: []string{"mx", "web"}},
		&EnsureDKIM{Domain: "example.org", Selector: "2025a", Algorithm: "ed25519"},
		&DKIMPublic{Domain: "example.org", Selector: "2025a", Algorithm: "ed25519", Record: "v=DKIM1; k=ed25519; p=MCowBQYDK2VwAyEA", Created: true},
		&GetLocalCA{},
		&LocalCA{CertDER: []byte{0x30, 0x82, 0x01, 0x0a, 0x02}},
		&GetCerts{Start: 1},
		&CertBatch{Total: 2, Certs: []CertInfo{
			{KeyID: 1, Names: []string{"mx.example.org"}, NotAfter: 1893456000, ChainSize: 2100, PublicKey: []byte{0x30, 0x2a, 0x30, 0x05}},
			{KeyID: 2, Names: []string{"*.example.org", "example.org"}, NotAfter: -1, ChainSize: 900, PublicKey: []byte{0x30}},
		}},
		&GetChain{KeyID: 1, Offset: 15360},
		&ChainChunk{Total: 2100, Data: []byte{0x30, 0x82, 0x08, 0x30}},
		&Sign{KeyID: 1, Hash: 5, PSS: true, SaltLength: -1, Digest: make([]byte, 32)},
		&Signature{Sig: []byte{1, 2, 3, 4}},
		&DKIMSign{Domain: "example.org", Selector: "2025a", Hash: 0, Digest: []byte("header hash")},
		&DKIMSignature{Sig: []byte{9, 8, 7}},
	}
}

// sampleHeader returns a header that suits m's kind.
func sampleHeader(m Message) Header {
	h := Header{Type: m.Type(), NFD: uint8(m.FDs()), ID: 0x0102030405060708}
	switch {
	case IsEvent(m.Type()):
		h.Flags, h.ID = FlagEvent, 0
	case !IsRequest(m.Type()):
		h.Flags = FlagReply
	}
	return h
}

// encodePayload encodes m without a header.
func encodePayload(m Message) ([]byte, error) {
	e := newEncoder(nil, MaxPayload)
	m.Encode(e)
	return e.buf, e.Err()
}
