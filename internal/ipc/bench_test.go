package ipc

import (
	"context"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func benchPair(b *testing.B, h Handler) *Conn {
	client, _ := connPair(b,
		Options{Local: RoleSMTP, Peer: RoleMaster, MaxInFlight: 256},
		Options{Local: RoleMaster, Peer: RoleSMTP, Handler: h, MaxHandlers: 256})
	return client
}

func BenchmarkRoundTrip(b *testing.B) {
	c := benchPair(b, HandlerFunc(func(ctx context.Context, req *Request) (Message, []*os.File, error) {
		return &ConfigChunk{Total: 100, Data: []byte("0123456789")}, nil, nil
	}))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Call(ctx, &GetConfig{Offset: 1}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRoundTripFD(b *testing.B) {
	f := tempFile(b, "listener")
	c := benchPair(b, HandlerFunc(func(ctx context.Context, req *Request) (Message, []*os.File, error) {
		fd, err := unix.Dup(int(f.Fd()))
		if err != nil {
			return nil, nil, err
		}
		return &ListenerBatch{Total: 1, Listeners: []ListenerInfo{{"smtp", "[::]:25"}}}, []*os.File{os.NewFile(uintptr(fd), "dup")}, nil
	}))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		r, err := c.Call(ctx, &GetListeners{})
		if err != nil {
			b.Fatal(err)
		}
		closeFiles(r.Files)
	}
}

func BenchmarkRoundTripParallel(b *testing.B) {
	c := benchPair(b, HandlerFunc(func(ctx context.Context, req *Request) (Message, []*os.File, error) {
		return &ConfigChunk{Total: 100, Data: []byte("0123456789")}, nil, nil
	}))
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Call(ctx, &GetConfig{Offset: 1}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRoundTripInline is a round trip to a handler served on the
// reader, as moxd-keys serves signatures.
func BenchmarkRoundTripInline(b *testing.B) {
	client, _ := connPair(b,
		Options{Local: RoleSMTP, Peer: RoleKeys},
		Options{Local: RoleKeys, Peer: RoleSMTP, Inline: []MsgType{TypeSign}, Handler: HandlerFunc(func(ctx context.Context, req *Request) (Message, []*os.File, error) {
			return &Signature{Sig: []byte("0123456789")}, nil, nil
		})})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := client.Call(ctx, &Sign{KeyID: 1, Hash: 5, Digest: make([]byte, 32)}); err != nil {
			b.Fatal(err)
		}
	}
}
