package ctl

import (
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

func pair(t *testing.T) (*Conn, *Conn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var cs [2]*Conn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "ctl")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		cs[i] = NewConn(c.(*net.UnixConn))
		cs[i].SetDeadline(time.Now().Add(10 * time.Second))
	}
	t.Cleanup(func() { cs[0].Close(); cs[1].Close() })
	return cs[0], cs[1]
}

// TestLinesWithFDs: fds arrive with the line they were sent with, also when
// several lines arrive in one read and when a line is longer than a read.
func TestLinesWithFDs(t *testing.T) {
	a, b := pair(t)
	long := strings.Repeat("x", 40000)
	lines := []struct {
		text string
		nfd  int
	}{
		{"one", 0},
		{"two", 2},
		{"three", 0},
		{long, 1},
		{"five", 0},
	}
	// All lines are written before any is read, so reads can merge them.
	for _, l := range lines {
		var files []*os.File
		for range l.nfd {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			w.Close()
			files = append(files, r)
		}
		if err := a.WriteLine([]byte(l.text), files...); err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			f.Close()
		}
	}
	for _, l := range lines {
		got, files, err := b.ReadLine(MaxRequest)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != l.text || len(files) != l.nfd {
			t.Errorf("line %.10q with %d fds, want %.10q with %d", got, len(files), l.text, l.nfd)
		}
		for _, f := range files {
			// A received pipe end works.
			if n, err := f.Read(make([]byte, 1)); n != 0 || err == nil {
				t.Errorf("received fd: %d, %v", n, err)
			}
			f.Close()
		}
	}
}

func TestReadRequestFDCount(t *testing.T) {
	a, b := pair(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// The line claims no fds but carries one: refused, the fd closed.
	if err := a.WriteLine([]byte(`{"cmd":"status"}`), w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if _, _, err := b.ReadRequest(); err == nil || !strings.Contains(err.Error(), "it says 0 file descriptors, 1 came with it") {
		t.Fatalf("got %v", err)
	}
	r.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := r.Read(make([]byte, 1)); n != 0 || err == nil || strings.Contains(err.Error(), "timeout") {
		t.Errorf("fd not closed: %d, %v", n, err)
	}
	// Unknown fields are refused.
	a.WriteLine([]byte(`{"cmd":"status","bogus":1}`))
	if _, _, err := b.ReadRequest(); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("unknown field: %v", err)
	}
	// A line longer than the limit is an error, not a memory sink.
	a.WriteLine([]byte(strings.Repeat("y", MaxRequest+10)))
	if _, _, err := b.ReadLine(MaxRequest); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("long line: %v", err)
	}
}
