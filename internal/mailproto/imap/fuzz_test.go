package imap

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"unicode/utf8"
)

func FuzzReadCommand(f *testing.F) {
	for _, s := range []string{
		"a NOOP\r\n", "a LOGIN {4294967295}\r\n", "a LOGIN {4294967295+}\r\n", "a APPEND x {4294967295+}\r\n",
		"a APPEND x (\\Seen) ~{3}\r\n\x00\x00\x00\r\n", "a SEARCH OR (FROM x) NOT UID 1:* MODSEQ 5\r\n",
		"a UID FETCH 1:* (BODY.PEEK[1.2.HEADER.FIELDS (a b)]<0.5>) (CHANGEDSINCE 1 VANISHED)\r\n",
		"a LIST (SUBSCRIBED) \"\" (a b) RETURN (STATUS (MESSAGES))\r\n", "a BOGUS {3+}\r\nabc\r\n",
		"a SELECT x (QRESYNC (1 2 1:3 (1 2)))\r\n", "a STORE 1 +FLAGS x y\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data))
		r.MaxLine = 1024
		r.MaxAppend = 4096
		var total int64
		r.Literal = func(n int64, lr io.Reader) error {
			if n > r.MaxAppend {
				t.Fatalf("Literal(%d) over MaxAppend", n)
			}
			k, err := io.Copy(io.Discard, lr)
			total += k
			return err
		}
		for i := 0; i < 100; i++ {
			_, err := ReadCommand(r)
			var se *SyntaxError
			var re *RefusedError
			var bye *ByeError
			switch {
			case err == nil, errors.As(err, &se), errors.As(err, &re):
				continue
			case errors.As(err, &bye), err == io.EOF, err == io.ErrUnexpectedEOF:
			default:
				t.Fatalf("unexpected error type %T: %v", err, err)
			}
			break
		}
		if total > int64(len(data)) {
			t.Fatalf("read %d octets of literals from %d of input", total, len(data))
		}
	})
}

func FuzzUTF7(f *testing.F) {
	for _, s := range []string{"", "Entwürfe", "a&b", "😀", "&-", "&AOQ-", "&AOQ-&AOQ-", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if utf8.ValidString(s) {
			enc := EncodeMailboxUTF7(s)
			if dec, err := DecodeMailboxUTF7(enc); err != nil || dec != s {
				t.Fatalf("%q -> %q -> %q, %v", s, enc, dec, err)
			}
		}
		// Strictness: whatever decodes has exactly one encoding.
		if dec, err := DecodeMailboxUTF7(s); err == nil {
			if enc := EncodeMailboxUTF7(dec); enc != s {
				t.Fatalf("%q decodes to %q which encodes to %q", s, dec, enc)
			}
		}
	})
}

func FuzzNumSet(f *testing.F) {
	for _, s := range []string{"1", "1:5", "5:1", "*", "3:*", "1,3:4,9", "$", "0", "1,,2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		set, err := ParseNumSet(s)
		if err != nil {
			return
		}
		again, err := ParseNumSet(set.String())
		if err != nil || again.String() != set.String() {
			t.Fatalf("%q -> %q -> %q, %v", s, set.String(), again.String(), err)
		}
		for r := range set.Expand(100) {
			if r.Start == 0 || r.Start > r.End || !set.Contains(r.Start, 100) || !set.Contains(r.End, 100) {
				t.Fatalf("%q: Expand gave %v", s, r)
			}
		}
	})
}
