package ipc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestListenersWithFDs sends 0 to 4 fds in a ListenerBatch reply, as master
// does for a worker's listeners, and checks the worker gets the same files.
func TestListenersWithFDs(t *testing.T) {
	for n := 0; n <= MaxFDs; n++ {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			var originals []*os.File
			var ids []fileID
			for i := range n {
				f := tempFile(t, fmt.Sprintf("listener %d", i))
				originals = append(originals, f)
				ids = append(ids, idOf(t, f))
			}
			master := HandlerFunc(func(ctx context.Context, req *Request) (Message, []*os.File, error) {
				gl, ok := req.Msg.(*GetListeners)
				if !ok {
					return nil, nil, Errorf(CodeBadRequest, "unexpected %s", MessageName(req.Msg.Type()))
				}
				batch := &ListenerBatch{Total: uint16(n) + gl.Start}
				var files []*os.File
				for i, f := range originals {
					// Hand out duplicates: Conn closes what it sends.
					fd, err := unix.Dup(int(f.Fd()))
					if err != nil {
						return nil, nil, err
					}
					files = append(files, os.NewFile(uintptr(fd), "dup"))
					batch.Listeners = append(batch.Listeners, ListenerInfo{Kind: "smtp", Addr: fmt.Sprintf("127.0.0.1:%d", 2500+i)})
				}
				return batch, files, nil
			})
			worker, _ := connPair(t,
				Options{Local: RoleSMTP, Peer: RoleMaster},
				Options{Local: RoleMaster, Peer: RoleSMTP, Handler: master})
			reply, err := worker.Call(testContext(t), &GetListeners{Start: 7})
			if err != nil {
				t.Fatal(err)
			}
			defer closeFiles(reply.Files)
			batch := reply.Msg.(*ListenerBatch)
			if batch.Total != uint16(n)+7 || len(batch.Listeners) != n || len(reply.Files) != n {
				t.Fatalf("got %+v with %d files, want %d listeners", batch, len(reply.Files), n)
			}
			for i, f := range reply.Files {
				if got := idOf(t, f); got != ids[i] {
					t.Errorf("file %d is %v, want %v", i, got, ids[i])
				}
				if batch.Listeners[i].Addr != fmt.Sprintf("127.0.0.1:%d", 2500+i) {
					t.Errorf("listener %d: %+v", i, batch.Listeners[i])
				}
				// The received fd shares the file: read what was written
				// through the original.
				buf := make([]byte, 64)
				k, err := f.ReadAt(buf, 0)
				if err != nil && !errors.Is(err, io.EOF) {
					t.Fatal(err)
				}
				if want := fmt.Sprintf("listener %d", i); string(buf[:k]) != want {
					t.Errorf("file %d reads %q, want %q", i, buf[:k], want)
				}
			}
		})
	}
}

// TestPeerUp has master push a new channel to two workers, which then talk
// over it: the way every worker-worker edge is set up.
func TestPeerUp(t *testing.T) {
	got := make(chan *Conn, 2)
	worker := func(local Role, h Handler) HandlerFunc {
		return func(ctx context.Context, req *Request) (Message, []*os.File, error) {
			up, ok := req.Msg.(*PeerUp)
			if !ok || !req.Event || len(req.Files) != 1 {
				t.Errorf("%s got %#v with %d files", local, req.Msg, len(req.Files))
				closeFiles(req.Files)
				return nil, nil, nil
			}
			c, err := New(req.Files[0], Options{Local: local, Peer: up.Peer, Handler: h})
			if err != nil {
				t.Error(err)
				return nil, nil, nil
			}
			got <- c
			return nil, nil, nil
		}
	}
	keysHandler := HandlerFunc(func(ctx context.Context, req *Request) (Message, []*os.File, error) {
		s := req.Msg.(*Sign)
		return &Signature{Sig: append([]byte("sig:"), s.Digest...)}, nil, nil
	})
	toSMTP, _ := connPair(t, Options{Local: RoleMaster, Peer: RoleSMTP}, Options{Local: RoleSMTP, Peer: RoleMaster, Handler: worker(RoleSMTP, nil)})
	toKeys, _ := connPair(t, Options{Local: RoleMaster, Peer: RoleKeys}, Options{Local: RoleKeys, Peer: RoleMaster, Handler: worker(RoleKeys, keysHandler)})

	a, b, err := Socketpair()
	if err != nil {
		t.Fatal(err)
	}
	if err := toSMTP.Notify(&PeerUp{Peer: RoleKeys, Generation: 1}, a); err != nil {
		t.Fatal(err)
	}
	if err := toKeys.Notify(&PeerUp{Peer: RoleSMTP, Generation: 1}, b); err != nil {
		t.Fatal(err)
	}
	// Master closes its copies once handed over.
	a.Close()
	b.Close()

	var smtp *Conn
	for range 2 {
		select {
		case c := <-got:
			t.Cleanup(func() { c.Close() })
			if c.Peer() == RoleKeys {
				smtp = c
			}
		case <-time.After(testDeadline):
			t.Fatal("PeerUp not handled")
		}
	}
	if smtp == nil {
		t.Fatal("smtp did not get its channel to keys")
	}
	reply, err := smtp.Call(testContext(t), &Sign{KeyID: 1, Hash: 5, Digest: []byte("abc")})
	if err != nil {
		t.Fatal(err)
	}
	if s := string(reply.Msg.(*Signature).Sig); s != "sig:abc" {
		t.Errorf("signature %q", s)
	}
	// smtp may not ask keys for DKIM signatures over this channel.
	if _, err := smtp.Call(testContext(t), &DKIMSign{Domain: "example.org"}); err == nil {
		t.Errorf("smtp got to send DKIMSign to keys")
	}
}

// statusHandler answers GetStatus with Total = Start, after an optional wait.
func statusHandler(wait func(start uint16)) HandlerFunc {
	return func(ctx context.Context, req *Request) (Message, []*os.File, error) {
		gs := req.Msg.(*GetStatus)
		if wait != nil {
			wait(gs.Start)
		}
		return &StatusReply{Total: gs.Start, Counters: []Counter{{Name: fmt.Sprintf("c%d", gs.Start), Value: uint64(gs.Start)}}}, nil, nil
	}
}

func TestConcurrentCalls(t *testing.T) {
	var running, maxRunning atomic.Int32
	h := statusHandler(func(uint16) {
		n := running.Add(1)
		for {
			m := maxRunning.Load()
			if n <= m || maxRunning.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(time.Duration(rand.IntN(500)) * time.Microsecond)
		running.Add(-1)
	})
	const inFlight = 8
	master, _ := connPair(t,
		Options{Local: RoleMaster, Peer: RoleStore, MaxInFlight: inFlight},
		Options{Local: RoleStore, Peer: RoleMaster, Handler: h, MaxHandlers: 64})
	ctx := testContext(t)
	var wg sync.WaitGroup
	for g := range 40 {
		wg.Go(func() {
			for i := range 25 {
				start := uint16(g*100 + i)
				r, err := master.Call(ctx, &GetStatus{Start: start})
				if err != nil {
					t.Error(err)
					return
				}
				sr := r.Msg.(*StatusReply)
				if sr.Total != start || sr.Counters[0].Name != fmt.Sprintf("c%d", start) {
					t.Errorf("call %d got reply for %d", start, sr.Total)
				}
			}
		})
	}
	wg.Wait()
	if m := maxRunning.Load(); m > inFlight {
		t.Errorf("%d handlers ran at once, MaxInFlight is %d", m, inFlight)
	}
}

// TestOutOfOrder answers the first call only after the second was answered.
func TestOutOfOrder(t *testing.T) {
	release := make(chan struct{})
	master, _ := connPair(t,
		Options{Local: RoleMaster, Peer: RoleStore},
		Options{Local: RoleStore, Peer: RoleMaster, Handler: statusHandler(func(start uint16) {
			if start == 1 {
				<-release
			}
		})})
	ctx := testContext(t)
	first := make(chan error, 1)
	go func() {
		r, err := master.Call(ctx, &GetStatus{Start: 1})
		if err == nil && r.Msg.(*StatusReply).Total != 1 {
			err = fmt.Errorf("first call got reply %d", r.Msg.(*StatusReply).Total)
		}
		first <- err
	}()
	r, err := master.Call(ctx, &GetStatus{Start: 2})
	if err != nil || r.Msg.(*StatusReply).Total != 2 {
		t.Fatalf("second call: %v, %v", r, err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
}

// blockingHandler blocks GetStatus handlers until release is closed and
// reports each start on entered.
func blockingHandler(entered chan<- uint16, release <-chan struct{}) HandlerFunc {
	return statusHandler(func(start uint16) {
		entered <- start
		<-release
	})
}

func TestMaxInFlight(t *testing.T) {
	entered := make(chan uint16, 10)
	release := make(chan struct{})
	master, _ := connPair(t,
		Options{Local: RoleMaster, Peer: RoleQueue, MaxInFlight: 2},
		Options{Local: RoleQueue, Peer: RoleMaster, Handler: blockingHandler(entered, release)})
	ctx := testContext(t)
	errs := make(chan error, 2)
	for i := range 2 {
		go func() {
			_, err := master.Call(ctx, &GetStatus{Start: uint16(i)})
			errs <- err
		}()
	}
	<-entered
	<-entered
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err := master.Call(short, &GetStatus{Start: 3})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "in-flight slot") {
		t.Errorf("third call: %v; want a deadline waiting for a slot", err)
	}
	close(release)
	for range 2 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if len(entered) != 0 {
		t.Errorf("the third call reached the handler")
	}
	// With the slots free again, calls go through.
	if _, err := master.Call(ctx, &GetStatus{Start: 4}); err != nil {
		t.Error(err)
	}
}

func TestBusy(t *testing.T) {
	entered := make(chan uint16, 10)
	release := make(chan struct{})
	master, _ := connPair(t,
		Options{Local: RoleMaster, Peer: RoleWeb},
		Options{Local: RoleWeb, Peer: RoleMaster, Handler: blockingHandler(entered, release), MaxHandlers: 2})
	ctx := testContext(t)
	errs := make(chan error, 2)
	for i := range 2 {
		go func() {
			_, err := master.Call(ctx, &GetStatus{Start: uint16(i)})
			errs <- err
		}()
	}
	<-entered
	<-entered
	_, err := master.Call(ctx, &GetStatus{Start: 3})
	var re *RemoteError
	if !errors.As(err, &re) || re.Code != CodeBusy {
		t.Errorf("third call: %v; want CodeBusy", err)
	}
	close(release)
	for range 2 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if _, err := master.Call(ctx, &GetStatus{Start: 4}); err != nil {
		t.Errorf("after the handlers finished: %v", err)
	}
}

func TestHandlerErrors(t *testing.T) {
	tests := []struct {
		name string
		h    HandlerFunc
		code uint16
		msg  string
	}{
		{"remote error", func(context.Context, *Request) (Message, []*os.File, error) {
			return nil, nil, Errorf(CodeNotFound, "no certificate for key %d", 9)
		}, CodeNotFound, "no certificate for key 9"},
		{"wrapped remote error", func(context.Context, *Request) (Message, []*os.File, error) {
			return nil, nil, fmt.Errorf("sign: %w", Errorf(CodeDenied, "key 9 is not yours"))
		}, CodeDenied, "key 9 is not yours"},
		{"plain error", func(context.Context, *Request) (Message, []*os.File, error) {
			return nil, nil, errors.New("disk on fire")
		}, CodeFailed, "disk on fire"},
		{"panic", func(context.Context, *Request) (Message, []*os.File, error) {
			panic("bug")
		}, CodeFailed, "failed handling tls.Sign"},
		{"wrong reply type", func(context.Context, *Request) (Message, []*os.File, error) {
			return &DKIMSignature{}, nil, nil
		}, CodeFailed, "returned dkim.DKIMSignature"},
		{"nil reply", func(context.Context, *Request) (Message, []*os.File, error) {
			return nil, nil, nil
		}, CodeFailed, "no reply"},
		{"reply too large", func(context.Context, *Request) (Message, []*os.File, error) {
			return &Signature{Sig: make([]byte, MaxSignature+1)}, nil, nil
		}, CodeFailed, "exceeds its limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			smtp, keys := connPair(t,
				Options{Local: RoleSMTP, Peer: RoleKeys},
				Options{Local: RoleKeys, Peer: RoleSMTP, Handler: tc.h})
			_, err := smtp.Call(testContext(t), &Sign{KeyID: 9, Digest: []byte{1}})
			var re *RemoteError
			if !errors.As(err, &re) || re.Code != tc.code || !strings.Contains(re.Message, tc.msg) {
				t.Fatalf("got %v; want code %d with %q", err, tc.code, tc.msg)
			}
			// The channel stays up.
			select {
			case <-smtp.Done():
				t.Fatalf("channel went down: %v", smtp.Err())
			case <-keys.Done():
				t.Fatalf("channel went down: %v", keys.Err())
			default:
			}
		})
	}
}

// TestReplyFilesClosed checks that Conn closes the files a handler returns
// with its reply: the handler returns a pipe's write end, and once the
// caller closes its copy the pipe's read end sees EOF.
func TestReplyFilesClosed(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	master := HandlerFunc(func(ctx context.Context, req *Request) (Message, []*os.File, error) {
		return &ListenerBatch{Total: 1, Listeners: []ListenerInfo{{"imap", "[::]:143"}}}, []*os.File{pw}, nil
	})
	worker, _ := connPair(t,
		Options{Local: RoleIMAP, Peer: RoleMaster},
		Options{Local: RoleMaster, Peer: RoleIMAP, Handler: master})
	r, err := worker.Call(testContext(t), &GetListeners{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Files) != 1 {
		t.Fatalf("got %d files", len(r.Files))
	}
	if _, err := r.Files[0].Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	closeFiles(r.Files)
	if err := pr.SetReadDeadline(time.Now().Add(testDeadline)); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(pr)
	if err != nil {
		t.Fatalf("pipe: %v (the handler's write end was not closed)", err)
	}
	if string(b) != "hi" {
		t.Errorf("pipe carried %q", b)
	}
}

func TestCallDeadline(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	smtp, _ := connPair(t,
		Options{Local: RoleSMTP, Peer: RoleKeys},
		Options{Local: RoleKeys, Peer: RoleSMTP, Handler: HandlerFunc(func(ctx context.Context, req *Request) (Message, []*os.File, error) {
			<-release
			return &CertBatch{}, nil, nil
		})})
	ctx, cancel := context.WithTimeout(testContext(t), 300*time.Millisecond)
	defer cancel()
	_, err := smtp.Call(ctx, &GetCerts{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want context.DeadlineExceeded", err)
	}
	select {
	case <-smtp.Done():
		t.Fatalf("a timed-out call took the channel down: %v", smtp.Err())
	default:
	}
}

// TestCallTimeoutWithoutDeadline: a call whose context has no deadline is
// failed by the sweep after CallTimeout, and a later reply is dropped.
func TestCallTimeoutWithoutDeadline(t *testing.T) {
	release := make(chan struct{})
	smtp, _ := connPair(t,
		Options{Local: RoleSMTP, Peer: RoleKeys, CallTimeout: 200 * time.Millisecond},
		Options{Local: RoleKeys, Peer: RoleSMTP, Handler: HandlerFunc(func(ctx context.Context, req *Request) (Message, []*os.File, error) {
			<-release
			return &CertBatch{}, nil, nil
		})})
	t0 := time.Now()
	_, err := smtp.Call(context.Background(), &GetCerts{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(t0); d < 200*time.Millisecond || d > 200*time.Millisecond+sweepInterval+2*time.Second {
		t.Errorf("call failed after %s, want CallTimeout (200ms) plus at most one sweep interval", d)
	}
	close(release) // the late reply must be dropped without harm
	ctx, cancel := context.WithTimeout(testContext(t), 5*time.Second)
	defer cancel()
	if _, err := smtp.Call(ctx, &GetCerts{}); err != nil {
		t.Fatalf("call after a swept one: %v", err)
	}
}

// readFrame reads one frame from the raw end of a channel.
func readFrame(t *testing.T, raw *os.File) (Header, Message) {
	t.Helper()
	buf := make([]byte, MaxFrame)
	n, _, _, _, err := unix.Recvmsg(int(raw.Fd()), buf, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	h, m, err := DecodeFrame(buf[:n], 0)
	if err != nil {
		t.Fatal(err)
	}
	return h, m
}

func sendRaw(t *testing.T, raw *os.File, b []byte, files ...*os.File) {
	t.Helper()
	var oob []byte
	if len(files) > 0 {
		var fds []int
		for _, f := range files {
			fds = append(fds, int(f.Fd()))
		}
		oob = unix.UnixRights(fds...)
	}
	if err := unix.Sendmsg(int(raw.Fd()), b, oob, nil, 0); err != nil {
		t.Fatal(err)
	}
}

func mustFrame(t *testing.T, h Header, m Message) []byte {
	t.Helper()
	b, err := EncodeFrame(h, m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLateReply answers a call after the caller gave up, with an fd; the
// reply must be dropped and the fd closed.
func TestLateReply(t *testing.T) {
	f := tempFile(t, "late")
	id := idOf(t, f)
	worker, raw := rawPair(t, Options{Local: RoleSMTP, Peer: RoleMaster})
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := worker.Call(ctx, &GetListeners{})
		done <- err
	}()
	h, _ := readFrame(t, raw)
	cancel() // the caller gives up
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("call: %v, want context.Canceled", err)
	}
	sendRaw(t, raw, mustFrame(t, Header{Type: TypeListenerBatch, Flags: FlagReply, NFD: 1, ID: h.ID},
		&ListenerBatch{Total: 1, Listeners: []ListenerInfo{{"smtp", ":25"}}}), f)

	// A second call answered after the late reply: the reader has handled
	// the late one by the time this returns.
	go func() {
		_, err := worker.Call(testContext(t), &GetListeners{Start: 1})
		done <- err
	}()
	h2, _ := readFrame(t, raw)
	sendRaw(t, raw, mustFrame(t, Header{Type: TypeListenerBatch, Flags: FlagReply, ID: h2.ID}, &ListenerBatch{Total: 1}))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := openFDs(t, id); n != 1 {
		t.Errorf("%d fds refer to the late reply's file, want 1 (the test's own)", n)
	}
	select {
	case <-worker.Done():
		t.Errorf("late reply took the channel down: %v", worker.Err())
	default:
	}
}

func TestUnexpectedReplyType(t *testing.T) {
	worker, raw := rawPair(t, Options{Local: RoleSMTP, Peer: RoleMaster})
	done := make(chan error, 1)
	go func() {
		_, err := worker.Call(testContext(t), &GetListeners{})
		done <- err
	}()
	h, _ := readFrame(t, raw)
	sendRaw(t, raw, mustFrame(t, Header{Type: TypeHelloReply, Flags: FlagReply, ID: h.ID}, &HelloReply{}))
	if err := <-done; !isProtocolError(err) {
		t.Errorf("call: %v, want protocol error", err)
	}
	if err := waitDown(t, worker); !isProtocolError(err) {
		t.Errorf("Err() = %v, want protocol error", err)
	}
}

func TestClosed(t *testing.T) {
	entered := make(chan uint16, 1)
	release := make(chan struct{})
	defer close(release)
	master, store := connPair(t,
		Options{Local: RoleMaster, Peer: RoleStore},
		Options{Local: RoleStore, Peer: RoleMaster, Handler: blockingHandler(entered, release)})
	ctx := testContext(t)
	done := make(chan error, 1)
	go func() {
		_, err := master.Call(ctx, &GetStatus{})
		done <- err
	}()
	<-entered
	// The peer going away fails the waiting call.
	store.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Errorf("in-flight call: %v, want ErrClosed", err)
	}
	if err := waitDown(t, master); !errors.Is(err, io.EOF) {
		t.Errorf("Err() = %v, want io.EOF", err)
	}
	if err := store.Err(); err != nil {
		t.Errorf("Err() after Close = %v, want nil", err)
	}
	// Later calls and events fail at once.
	if _, err := master.Call(ctx, &GetStatus{}); !errors.Is(err, ErrClosed) {
		t.Errorf("call on a closed channel: %v, want ErrClosed", err)
	}
	if err := master.Notify(&Reload{}); !errors.Is(err, ErrClosed) {
		t.Errorf("notify on a closed channel: %v, want ErrClosed", err)
	}
}

func TestSendChecks(t *testing.T) {
	smtp, raw := rawPair(t, Options{Local: RoleSMTP, Peer: RoleQueue})
	ctx := testContext(t)
	f := tempFile(t, "")
	tests := []struct {
		name string
		send func() error
	}{
		{"tls to queue", func() error { _, err := smtp.Call(ctx, &GetCerts{}); return err }},
		{"dkim to queue", func() error { _, err := smtp.Call(ctx, &DKIMSign{}); return err }},
		{"event as call", func() error { _, err := smtp.Call(ctx, &Ready{}); return err }},
		{"request as event", func() error { return smtp.Notify(&GetCerts{}) }},
		{"reply as event", func() error { return smtp.Notify(&Ack{}) }},
		{"ready to queue", func() error { return smtp.Notify(&Ready{}) }},
		{"fd count", func() error { return smtp.Notify(&PeerUp{Peer: RoleKeys}, f, f) }},
		{"nil", func() error { return smtp.Notify(nil) }},
	}
	for _, tc := range tests {
		if err := tc.send(); err == nil || errors.Is(err, ErrClosed) {
			t.Errorf("%s: %v, want a refusal", tc.name, err)
		}
	}
	// Nothing reached the socket and the channel is still up.
	n, _, err := unix.Recvfrom(int(raw.Fd()), make([]byte, 16), unix.MSG_DONTWAIT)
	if err != unix.EAGAIN {
		t.Errorf("peer read %d bytes, %v; want nothing", n, err)
	}
	select {
	case <-smtp.Done():
		t.Errorf("channel went down: %v", smtp.Err())
	default:
	}
}

func TestNewChecks(t *testing.T) {
	a, b, err := Socketpair()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := New(a, Options{Local: RoleSMTP, Peer: RoleWeb}); err == nil || !strings.Contains(err.Error(), "no edge") {
		t.Errorf("smtp-web channel: %v", err)
	}
	var fds [2]int
	fds, err = unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[1])
	if _, err := New(os.NewFile(uintptr(fds[0]), "stream"), Options{Local: RoleSMTP, Peer: RoleMaster}); err == nil || !strings.Contains(err.Error(), "SOCK_SEQPACKET") {
		t.Errorf("stream socket: %v", err)
	}
}

// TestWriteTimeout fills the socket of a peer that never reads.
func TestWriteTimeout(t *testing.T) {
	worker, _ := rawPair(t, Options{Local: RoleSMTP, Peer: RoleMaster, WriteTimeout: 100 * time.Millisecond})
	var err error
	for i := 0; i < 1_000_000 && err == nil; i++ {
		err = worker.Notify(&Violation{Peer: RoleKeys, Reason: strings.Repeat("x", MaxTextLen)})
	}
	if !errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), "did not read") {
		t.Fatalf("got %v, want ErrClosed after the write timeout", err)
	}
	if err := waitDown(t, worker); err == nil || !strings.Contains(err.Error(), "did not read") {
		t.Errorf("Err() = %v", err)
	}
}

// TestBadInput writes broken frames by hand. Each must take the channel down
// with a protocol error, without calling the handler, and close every fd
// that came with the frame.
func TestBadInput(t *testing.T) {
	getCerts := []byte{0, 0}
	reserved := frame(TypeGetCerts, 0, 0, 1, getCerts...)
	reserved[5] = 0x80
	tests := []struct {
		name        string
		local, peer Role
		noHandler   bool
		frame       []byte
		nfd         int // fds sent with it
		want        string
	}{
		{"oversize frame", RoleKeys, RoleSMTP, false, append(frame(TypeGetCerts, 0, 0, 1, getCerts...), make([]byte, MaxPayload+1)...), 0, "truncated"},
		{"oversize frame with fd", RoleSMTP, RoleMaster, false, append(frame(TypePeerUp, FlagEvent, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 1), make([]byte, MaxFrame)...), 1, "truncated"},
		{"five fds", RoleSMTP, RoleMaster, false, frame(TypePeerUp, FlagEvent, 5, 0, 3, 0, 0, 0, 0, 0, 0, 0, 1), 5, "at most 4"},
		{"five fds, header one", RoleSMTP, RoleMaster, false, frame(TypePeerUp, FlagEvent, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 1), 5, "5 arrived"},
		{"seven fds", RoleSMTP, RoleMaster, false, frame(TypePeerUp, FlagEvent, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 1), 7, "control data truncated"},
		{"header nfd above received", RoleKeys, RoleMaster, false, frame(TypeLoadCertPair, 0, 2, 1, 0, 2, 'm', 'x'), 1, "2 fds, 1 arrived"},
		{"header nfd below received", RoleKeys, RoleMaster, false, frame(TypeLoadCertPair, 0, 1, 1, 0, 2, 'm', 'x'), 2, "1 fds, 2 arrived"},
		{"message needs other fd count", RoleKeys, RoleMaster, false, frame(TypeLoadCertPair, 0, 1, 1, 0, 2, 'm', 'x'), 1, "needs 2 fds"},
		{"unknown type", RoleKeys, RoleSMTP, false, frame(0x04ff, 0, 1, 1), 1, "unknown message type"},
		{"trailing bytes", RoleKeys, RoleSMTP, false, frame(TypeGetCerts, 0, 0, 1, 0, 0, 0), 0, "trailing"},
		{"truncated payload", RoleKeys, RoleSMTP, false, frame(TypeSign, 0, 0, 1, 0, 0, 0, 1, 5, 0, 0, 0, 0, 0, 0, 32, 1), 0, "truncated"},
		{"short frame", RoleKeys, RoleSMTP, false, []byte{4, 1, 0}, 0, "shorter"},
		{"reserved bytes", RoleKeys, RoleSMTP, false, reserved, 0, "reserved"},
		{"reply and event", RoleKeys, RoleSMTP, false, frame(TypeGetCerts, FlagReply|FlagEvent, 0, 1, getCerts...), 0, "both"},
		{"event with id", RoleSMTP, RoleMaster, false, frame(TypeReload, FlagEvent, 0, 5), 0, "id 5"},
		{"bad bool", RoleKeys, RoleSMTP, false, frame(TypeSign, 0, 0, 1, 0, 0, 0, 1, 5, 7, 0, 0, 0, 0, 0, 0), 0, "bool"},
		// Not on this edge: the port-25 instance asking queue for TLS, or
		// keys for DKIM signatures.
		{"tls from smtp to queue", RoleQueue, RoleSMTP, false, frame(TypeGetCerts, 0, 0, 1, getCerts...), 0, "may not send"},
		{"dkim from smtp to keys", RoleKeys, RoleSMTP, false, mustFrame(t, Header{Type: TypeDKIMSign, ID: 1}, &DKIMSign{Domain: "example.org"}), 0, "may not send"},
		{"peer channel from a worker", RoleMaster, RoleSMTP, false, frame(TypePeerUp, FlagEvent, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 1), 1, "may not send"},
		{"reply the wrong way", RoleKeys, RoleSMTP, false, frame(TypeCertBatch, FlagReply, 0, 1, 0, 0, 0, 0), 0, "may not reply"},
		{"listener fds in a request", RoleMaster, RoleSMTP, false, frame(TypeListenerBatch, 0, 1, 1, 0, 1, 0, 1, 0, 1, 'a', 0, 1, 'b'), 1, "sent as request"},
		{"no handler", RoleKeys, RoleSMTP, true, frame(TypeGetCerts, 0, 0, 1, getCerts...), 0, "serves no requests"},
		{"no handler, event with fd", RoleSMTP, RoleMaster, true, frame(TypePeerUp, FlagEvent, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 1), 1, "serves no requests"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := tempFile(t, "passed")
			id := idOf(t, f)
			var called atomic.Bool
			opts := Options{Local: tc.local, Peer: tc.peer}
			if !tc.noHandler {
				opts.Handler = HandlerFunc(func(ctx context.Context, req *Request) (Message, []*os.File, error) {
					called.Store(true)
					closeFiles(req.Files)
					return nil, nil, errors.New("handler called")
				})
			}
			c, raw := rawPair(t, opts)
			var files []*os.File
			for range tc.nfd {
				files = append(files, f)
			}
			sendRaw(t, raw, tc.frame, files...)
			err := waitDown(t, c)
			if _, ok := err.(*ProtocolError); !ok {
				t.Fatalf("Err() = %v (%T), want *ProtocolError", err, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Err() = %q, want it to mention %q", err, tc.want)
			}
			if called.Load() {
				t.Errorf("handler was called")
			}
			if n := openFDs(t, id); n != 1 {
				t.Errorf("%d fds refer to the passed file after the error, want 1 (the test's own)", n)
			}
		})
	}
}
