package account

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestBodyFromReader(t *testing.T) {
	tmp := testDir(t)
	text := msgText("pipe", strings.Repeat("line\r\n", 1000))
	tests := []struct {
		name    string
		write   string
		close   bool // writer closes after writing
		size    int64
		max     int64
		wantErr error
	}{
		{"exact", text, true, int64(len(text)), 1 << 20, nil},
		{"until EOF", text, true, -1, 1 << 20, nil},
		{"empty", "", true, 0, 1 << 20, nil},
		{"too much", text + "extra", true, int64(len(text)), 1 << 20, ErrBadBody},
		{"too little", text[:100], true, int64(len(text)), 1 << 20, ErrBadBody},
		{"declared too large", text, true, int64(len(text)), 100, ErrTooLarge},
		{"until EOF too large", text, true, -1, 100, ErrTooLarge},
		{"writer never closes", text, false, int64(len(text)), 1 << 20, ErrBadBody},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			ctx, cancel := context.WithCancel(testCtx(t))
			defer cancel()
			go func() {
				io.WriteString(w, tc.write)
				if tc.close {
					w.Close()
					return
				}
				// The peer stalls: the caller's context ends the wait.
				cancel()
				<-ctx.Done()
				w.Close()
			}()
			b, err := BodyFromReader(ctx, tmp, r, tc.size, tc.max)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
				if l, _ := os.ReadDir(tmp); len(l) != 0 {
					t.Errorf("temp files left: %v", l)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer b.Remove()
			got, _ := os.ReadFile(b.path)
			if string(got) != tc.write || b.Size() != int64(len(tc.write)) {
				t.Errorf("body %d bytes, size %d, want %d", len(got), b.Size(), len(tc.write))
			}
			if st, _ := os.Stat(b.path); st.Mode().Perm() != 0o600 || filepath.Dir(b.path) != tmp {
				t.Errorf("body file %s mode %v", b.path, st.Mode())
			}
			if b.Part() == nil || b.Part().End != int64(len(tc.write)) {
				t.Errorf("part %+v", b.Part())
			}
		})
	}
}

func TestBodyFromFile(t *testing.T) {
	dir := testDir(t)
	tmp := filepath.Join(dir, "tmp")
	os.Mkdir(tmp, 0o700)
	text := msgText("file", "hello")
	regular := filepath.Join(dir, "regular")
	os.WriteFile(regular, []byte(text), 0o600)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lnFile, err := ln.(*net.UnixListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer lnFile.Close()

	open := func(p string) func(t *testing.T) *os.File {
		return func(t *testing.T) *os.File {
			f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	tests := []struct {
		name      string
		file      func(t *testing.T) *os.File
		max       int64
		afterRead func(f *os.File)
		wantErr   error
	}{
		{"regular", open(regular), 1 << 20, nil, nil},
		{"fifo", open(fifo), 1 << 20, nil, ErrBadBody},
		{"socket", func(t *testing.T) *os.File { return lnFile }, 1 << 20, nil, ErrBadBody},
		{"device", open(os.DevNull), 1 << 20, nil, ErrBadBody},
		{"directory", open(dir), 1 << 20, nil, ErrBadBody},
		{"too large", open(regular), 10, nil, ErrTooLarge},
		{"grows while read", open(regular), 1 << 20, func(f *os.File) {
			w, _ := os.OpenFile(regular, os.O_WRONLY|os.O_APPEND, 0)
			w.WriteString("more\r\n")
			w.Close()
		}, ErrBadBody},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.file(t)
			var hook func()
			if tc.afterRead != nil {
				hook = func() { tc.afterRead(f) }
			}
			b, err := bodyFromFile(testCtx(t), tmp, f, tc.max, hook)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
				if l, _ := os.ReadDir(tmp); len(l) != 0 {
					t.Errorf("temp files left: %v", l)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer b.Remove()
			got, _ := os.ReadFile(b.path)
			if string(got) != text {
				t.Errorf("copied %q", got)
			}
		})
	}
	// The exported function behaves the same for a regular file.
	f, _ := os.Open(regular)
	defer f.Close()
	b, err := BodyFromFile(testCtx(t), tmp, f, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	b.Remove()
}

func TestBodyNoTempDir(t *testing.T) {
	if _, err := BodyFromBytes("", []byte("x"), false); err == nil {
		t.Fatal("body without temp dir accepted; $TMPDIR must never be used")
	}
}
