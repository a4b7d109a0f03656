package bodycopy

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// body returns n bytes of text; above chunk it takes several reads.
func body(n int) []byte {
	return bytes.Repeat([]byte("0123456789abcde\n"), n/16+1)[:n]
}

// recorder is a destination that keeps what is written. first, if set, runs
// once after the first write: tests change the source file while it is
// copied. fail, if set, is the error of every write.
type recorder struct {
	bytes.Buffer
	first func()
	fail  error
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.fail != nil {
		return 0, r.fail
	}
	r.Buffer.Write(p)
	if f := r.first; f != nil {
		r.first = nil
		f()
	}
	return len(p), nil
}

// checkErr checks err against want (nil: success). Every refusal must be
// an *Error; want may also be a context error the refusal wraps.
func checkErr(t *testing.T, err error, want []error, text string) {
	t.Helper()
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("err %v, want none", err)
		}
		return
	}
	if !Refused(err) {
		t.Fatalf("err %v (%T), want a refusal", err, err)
	}
	for _, w := range want {
		if !errors.Is(err, w) {
			t.Errorf("err %q is not %v", err, w)
		}
	}
	if !strings.Contains(err.Error(), text) {
		t.Errorf("err %q does not say %q", err, text)
	}
}

func TestFromPipe(t *testing.T) {
	small := body(1000)
	large := body(3*chunk + 17)
	tests := []struct {
		name  string
		write []byte
		stall bool // the writer keeps the pipe open
		size  int64
		max   int64
		// ctx derives the call's context; nil: t.Context().
		ctx      func(ctx context.Context) (context.Context, context.CancelFunc)
		cancelIn bool // the writer cancels the context after writing
		want     []error
		text     string // the error says this
		wantN    int64  // bytes copied (on success: all of write)
	}{
		{name: "exact size", write: small, size: 1000, max: 1 << 20, wantN: 1000},
		{name: "exact size, several chunks", write: large, size: int64(len(large)), max: 1 << 22, wantN: int64(len(large))},
		{name: "to end of file", write: small, size: -1, max: 1 << 20, wantN: 1000},
		{name: "to end of file at the limit", write: small, size: -1, max: 1000, wantN: 1000},
		{name: "empty", size: 0, max: 1 << 20},
		{name: "empty, no limit left", size: -1, max: 0},
		{name: "short", write: small[:100], size: 1000, max: 1 << 20, want: []error{ErrSize}, text: "100 bytes received, 1000 declared", wantN: 100},
		{name: "excess", write: small, size: 999, max: 1 << 20, want: []error{ErrSize}, text: "more than the declared 999 bytes", wantN: 0},
		{name: "excess after several chunks", write: large, size: 2*chunk + 5, max: 1 << 22, want: []error{ErrSize}, text: "more than the declared", wantN: 2 * chunk},
		{name: "over limit with size -1", write: small, size: -1, max: 999, want: []error{ErrTooLarge}, text: "larger than the limit of 999 bytes", wantN: 0},
		{name: "over limit with size -1, several chunks", write: large, size: -1, max: 2*chunk + 5, want: []error{ErrTooLarge}, text: "larger than the limit", wantN: 2 * chunk},
		{name: "declared above limit", write: small, size: 1000, max: 999, want: []error{ErrTooLarge}, text: "1000 bytes declared, limit 999"},
		{name: "deadline via ctx", write: small[:10], stall: true, size: 1000, max: 1 << 20,
			ctx: func(ctx context.Context) (context.Context, context.CancelFunc) {
				return context.WithTimeout(ctx, 100*time.Millisecond)
			},
			want: []error{ErrDeadline, context.DeadlineExceeded}, text: "10 bytes received before the deadline", wantN: 10},
		{name: "deadline passed", write: small, size: 1000, max: 1 << 20,
			ctx: func(ctx context.Context) (context.Context, context.CancelFunc) {
				return context.WithDeadline(ctx, time.Now().Add(-time.Second))
			},
			want: []error{ErrDeadline, context.DeadlineExceeded}, text: "before the deadline"},
		{name: "canceled while blocked", write: small, stall: true, cancelIn: true, size: -1, max: 1 << 20,
			want: []error{ErrDeadline, context.Canceled}, text: "before the deadline", wantN: -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			if tc.ctx != nil {
				ctx, cancel = tc.ctx(t.Context())
			}
			defer cancel()
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			// Closing r also ends a writer blocked on a full pipe.
			t.Cleanup(func() { r.Close(); w.Close() })
			go func() {
				w.Write(tc.write)
				if tc.cancelIn {
					cancel()
				}
				if !tc.stall {
					w.Close()
				}
			}()
			var dst recorder
			n, err := FromPipe(ctx, r, &dst, tc.size, tc.max)
			checkErr(t, err, tc.want, tc.text)
			if tc.wantN >= 0 && n != tc.wantN {
				t.Errorf("copied %d bytes, want %d", n, tc.wantN)
			}
			if n != int64(dst.Len()) || !bytes.Equal(dst.Bytes(), tc.write[:dst.Len()]) {
				t.Errorf("returned %d, wrote %d bytes that are not the start of what was sent", n, dst.Len())
			}
		})
	}
}

// TestFromPipeEnds: a writer's failure is the owner's, not a refusal; a
// file without deadlines is refused; the deadline is cleared afterwards.
func TestFromPipeEnds(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	go func() {
		w.Write(body(100))
		w.Close()
	}()
	full := errors.New("disk full")
	_, err = FromPipe(t.Context(), r, &recorder{fail: full}, 100, 1000)
	if !errors.Is(err, full) || Refused(err) {
		t.Errorf("write failure: %v (refused %v), want the writer's error as it is", err, Refused(err))
	}

	reg, err := os.Create(filepath.Join(t.TempDir(), "regular"))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	_, err = FromPipe(t.Context(), reg, &recorder{}, -1, 1000)
	checkErr(t, err, []error{ErrDeadline}, "cannot be read under a deadline")

	// Once FromPipe returned, the end of its context no longer touches r.
	r2, w2, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	defer w2.Close()
	ctx, cancel := context.WithCancel(t.Context())
	w2.WriteString("xy")
	if _, err := FromPipe(ctx, r2, &recorder{}, 1, 10); !errors.Is(err, ErrSize) {
		t.Fatalf("err %v, want %v", err, ErrSize)
	}
	cancel()
	w2.WriteString("z")
	buf := make([]byte, 10)
	if n, err := r2.Read(buf); err != nil || string(buf[:n]) != "z" {
		t.Errorf("read after the copy: %q, %v", buf[:n], err)
	}
}

func TestFromFile(t *testing.T) {
	dir := t.TempDir()
	small := body(1000)
	large := body(2*chunk + 3)
	// file creates a regular file with data and opens it read-only.
	file := func(t *testing.T, data []byte) *os.File {
		p := filepath.Join(t.TempDir(), "body")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	openNonblock := func(p string) func(t *testing.T) *os.File {
		return func(t *testing.T) *os.File {
			f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	socket := func(t *testing.T) *os.File {
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		syscall.Close(fds[1])
		return os.NewFile(uintptr(fds[0]), "socket")
	}
	listener := func(t *testing.T) *os.File {
		ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "sock"))
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		f, err := ln.(*net.UnixListener).File()
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	writeOnly := func(t *testing.T) *os.File {
		p := filepath.Join(t.TempDir(), "body")
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		f.Write(small)
		return f
	}

	tests := []struct {
		name string
		data []byte // for a regular file; open says otherwise
		open func(t *testing.T) *os.File
		max  int64
		// during runs after the first chunk is copied, with the source's
		// path and context's cancel.
		during func(t *testing.T, path string, cancel context.CancelFunc)
		want   []error
		text   string
	}{
		{name: "unchanged file accepted", data: small, max: 1 << 20},
		{name: "several chunks", data: large, max: 1 << 22},
		{name: "at the limit", data: small, max: 1000},
		{name: "empty", data: []byte{}, max: 0},
		{name: "over limit", data: small, max: 999, want: []error{ErrTooLarge}, text: "1000 bytes, limit 999"},
		{name: "FIFO refused", open: openNonblock(fifo), max: 1 << 20, want: []error{ErrNotRegular}, text: "not a regular file (p"},
		{name: "socket refused", open: socket, max: 1 << 20, want: []error{ErrNotRegular}, text: "not a regular file (S"},
		{name: "listening socket refused", open: listener, max: 1 << 20, want: []error{ErrNotRegular}, text: "not a regular file"},
		{name: "directory refused", open: openNonblock(dir), max: 1 << 20, want: []error{ErrNotRegular}, text: "not a regular file (d"},
		{name: "device refused", open: openNonblock(os.DevNull), max: 1 << 20, want: []error{ErrNotRegular}, text: "not a regular file (D"},
		{name: "not readable", open: writeOnly, max: 1 << 20, want: []error{ErrRead}, text: "read"},
		{name: "growing file refused", data: small, max: 1 << 20,
			during: func(t *testing.T, p string, _ context.CancelFunc) { appendTo(t, p, "more\n") },
			want:   []error{ErrChanged}, text: "changed while it was read"},
		{name: "growing file refused, several chunks", data: large, max: 1 << 22,
			during: func(t *testing.T, p string, _ context.CancelFunc) { appendTo(t, p, "more\n") },
			want:   []error{ErrChanged}, text: "changed while it was read"},
		{name: "shrinking file refused", data: large, max: 1 << 22,
			during: func(t *testing.T, p string, _ context.CancelFunc) {
				if err := os.Truncate(p, chunk+1); err != nil {
					t.Fatal(err)
				}
			},
			want: []error{ErrChanged}, text: strconv.Itoa(chunk+1) + " of " + strconv.Itoa(2*chunk+3) + " bytes"},
		{name: "rewritten in place refused", data: small, max: 1 << 20,
			during: func(t *testing.T, p string, _ context.CancelFunc) {
				// Same size; the modification time is set apart
				// explicitly, as a timestamp's granularity could hide
				// a quick rewrite.
				if err := os.WriteFile(p, bytes.ToUpper(small), 0o600); err != nil {
					t.Fatal(err)
				}
				mtime := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
				if err := os.Chtimes(p, mtime, mtime); err != nil {
					t.Fatal(err)
				}
			},
			want: []error{ErrChanged}, text: "changed while it was read"},
		{name: "canceled between chunks", data: large, max: 1 << 22,
			during: func(t *testing.T, p string, cancel context.CancelFunc) { cancel() },
			want:   []error{ErrDeadline, context.Canceled}, text: strconv.Itoa(chunk) + " of " + strconv.Itoa(2*chunk+3) + " bytes read before the deadline"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var f *os.File
			if tc.open != nil {
				f = tc.open(t)
			} else {
				f = file(t, tc.data)
				// pread leaves the offset alone and ignores it.
				if _, err := f.Seek(7, 0); err != nil {
					t.Fatal(err)
				}
			}
			defer f.Close()
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var dst recorder
			if tc.during != nil {
				dst.first = func() { tc.during(t, f.Name(), cancel) }
			}
			n, err := FromFile(ctx, f, &dst, tc.max)
			checkErr(t, err, tc.want, tc.text)
			if n != int64(dst.Len()) {
				t.Errorf("returned %d, wrote %d bytes", n, dst.Len())
			}
			if tc.want != nil || tc.open != nil {
				return
			}
			if !bytes.Equal(dst.Bytes(), tc.data) {
				t.Errorf("copied %d bytes that differ from the file's %d", dst.Len(), len(tc.data))
			}
			if off, _ := f.Seek(0, 1); off != 7 {
				t.Errorf("file offset %d after the copy, want 7", off)
			}
		})
	}

	// A writer's failure is the owner's, not a refusal.
	f := file(t, small)
	defer f.Close()
	full := errors.New("disk full")
	if _, err := FromFile(t.Context(), f, &recorder{fail: full}, 1<<20); !errors.Is(err, full) || Refused(err) {
		t.Errorf("write failure: %v, want the writer's error as it is", err)
	}
}

func appendTo(t *testing.T, p, s string) {
	w, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.WriteString(s); err != nil {
		t.Fatal(err)
	}
}
