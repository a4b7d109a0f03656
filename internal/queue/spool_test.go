package queue

import (
	"io"
	"os"
	"strings"
	"testing"

	"moxd/internal/ipc"
	"moxd/internal/queue/queueclient"
)

// TestSpool covers the ways a spooled message can go wrong; each spoils
// only that message.
func TestSpool(t *testing.T) {
	slice := testSlice()
	slice.MaxMessageSize = 1000
	tq := newTestQueue(t, slice)
	ctx := testContext(t)
	s := tq.submitter(ipc.RoleSubmission)
	env := queueclient.Envelope{Token: tq.store.token("mjl", ipc.RoleSubmission), MailFrom: "mjl@example.org"}
	msg := testMessage("mjl@example.org")
	rcpts := []queueclient.Recipient{{Address: "you@example.net"}}

	// Declared size above the limit: refused at once.
	_, err := s.NewSpool(ctx, 1001)
	wantError(t, err, queueclient.ErrBadRequest, "exceeds the limit of 1000 bytes")

	// Short: fewer bytes than declared.
	sp, err := s.NewSpool(ctx, int64(len(msg)+10))
	if err != nil {
		t.Fatal(err)
	}
	if sp.MaxSize != 1000 {
		t.Errorf("spool max size %d", sp.MaxSize)
	}
	io.WriteString(sp, msg)
	_, err = s.Submit(ctx, sp, env, rcpts)
	wantError(t, err, queueclient.ErrBadRequest, "declared")

	// Long: more bytes than declared.
	sp, err = s.NewSpool(ctx, int64(len(msg)-1))
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(sp, msg)
	_, err = s.Submit(ctx, sp, env, rcpts)
	wantError(t, err, queueclient.ErrBadRequest, "more than the declared")

	// Unknown size, but beyond the limit.
	sp, err = s.NewSpool(ctx, -1)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(sp, msg+strings.Repeat("x", 1000))
	_, err = s.Submit(ctx, sp, env, rcpts)
	wantError(t, err, queueclient.ErrBadRequest, "larger than the limit of 1000 bytes")

	// Another channel cannot see a spool, whatever its role; the owner
	// still submits it afterwards.
	sp, err = s.NewSpool(ctx, int64(len(msg)))
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(sp, msg)
	sp.Close()
	thief := tq.submitter(ipc.RoleSubmission)
	_, err = thief.Submit(ctx, &queueclient.Spool{File: devNull(t), ID: sp.ID}, env, rcpts)
	wantError(t, err, queueclient.ErrBadRequest, "no spooled message")
	web := tq.submitter(ipc.RoleWeb)
	_, err = web.Submit(ctx, &queueclient.Spool{File: devNull(t), ID: sp.ID}, queueclient.Envelope{Token: tq.store.token("mjl", ipc.RoleWeb), MailFrom: "mjl@example.org"}, rcpts)
	wantError(t, err, queueclient.ErrBadRequest, "no spooled message")
	if _, err := s.Submit(ctx, sp, env, rcpts); err != nil {
		t.Fatal(err)
	}
	// A spool is consumed by its Submit.
	_, err = s.Submit(ctx, &queueclient.Spool{File: devNull(t), ID: sp.ID}, env, rcpts)
	wantError(t, err, queueclient.ErrBadRequest, "no spooled message")

	// Nothing is left in tmp/: refused spools and written files are gone.
	waitFor(t, "empty tmp", func() bool {
		ents, _ := os.ReadDir(tq.sv.q.tmpDir)
		return len(ents) == 0
	})
}

// TestSpoolChannelClosed drops the spools of a closed channel.
func TestSpoolChannelClosed(t *testing.T) {
	tq := newTestQueue(t, testSlice())
	ctx := testContext(t)
	c := tq.conn(ipc.RoleSubmission)
	s := queueclient.NewSubmitter(func() (*ipc.Conn, error) { return c, nil })
	for range 3 {
		sp, err := s.NewSpool(ctx, -1)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(sp, "From: mjl@example.org\r\n\r\nx")
		sp.Close()
	}
	if n := tq.sv.spools.count(); n != 3 {
		t.Fatalf("%d spools, want 3", n)
	}
	c.Close()
	waitFor(t, "spools dropped", func() bool { return tq.sv.spools.count() == 0 })
	waitFor(t, "empty tmp", func() bool {
		ents, _ := os.ReadDir(tq.sv.q.tmpDir)
		return len(ents) == 0
	})
}

func devNull(t testing.TB) *os.File {
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
