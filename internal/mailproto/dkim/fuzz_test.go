package dkim

import (
	"context"
	"sort"
	"strings"
	"testing"
)

func TestParseTags(t *testing.T) {
	tests := []struct {
		in   string
		want map[string]string
		err  string
	}{
		{"v=1; a=rsa-sha256; d=example.com", map[string]string{"v": "1", "a": "rsa-sha256", "d": "example.com"}, ""},
		{" v = 1 ;\r\n\ts=sel;", map[string]string{"v": "1", "s": "sel"}, ""},
		{"b=abc\r\n def ghi; h=from : to", map[string]string{"b": "abc\r\n def ghi", "h": "from : to"}, ""},
		{"a=1;;b=2", map[string]string{"a": "1", "b": "2"}, ""},
		{"k=", map[string]string{"k": ""}, ""},
		{"", map[string]string{}, ""},
		{"i=üser@example.com", map[string]string{"i": "üser@example.com"}, ""},
		{"A=1; a=2", map[string]string{"A": "1", "a": "2"}, ""},
		{"a=1; a=2", nil, "duplicate"},
		{"novalue", nil, "without"},
		{"1a=2", nil, "invalid tag name"},
		{"a-b=2", nil, "invalid tag name"},
		{"=2", nil, "invalid tag name"},
		{"a=b\x00c", nil, "control"},
	}
	for _, tt := range tests {
		got, err := parseTags(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("parseTags(%q): err %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseTags(%q): %v", tt.in, err)
			continue
		}
		if len(got) != len(tt.want) {
			t.Errorf("parseTags(%q) = %q, want %q", tt.in, got, tt.want)
		}
		for k, v := range tt.want {
			if got[k] != v {
				t.Errorf("parseTags(%q)[%q] = %q, want %q", tt.in, k, got[k], v)
			}
		}
	}
}

// FuzzParseTags checks that parsing never panics and that a parsed list
// formats back into one that parses to the same tags.
func FuzzParseTags(f *testing.F) {
	for _, s := range []string{
		"v=1; a=rsa-sha256; c=relaxed/simple; d=example.com; s=sel;\r\n\th=from:to:subject; bh=AAAA; b=BB\r\n BB",
		"v=DKIM1; k=ed25519; t=y:s; p=abc=",
		"a=1;;b=2;", " x = y ", "a=1; a=2", "=", ";", "a=\x01",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tags, err := parseTags(s)
		if err != nil {
			return
		}
		names := make([]string, 0, len(tags))
		for k := range tags {
			if !validTagName(k) {
				t.Fatalf("invalid name %q accepted", k)
			}
			names = append(names, k)
		}
		sort.Strings(names)
		var b strings.Builder
		for _, k := range names {
			v := tags[k]
			if strings.Contains(v, ";") || v != trimFWS(v) {
				t.Fatalf("value %q of %q not trimmed or has ;", v, k)
			}
			b.WriteString(k + "=" + v + ";")
		}
		again, err := parseTags(b.String())
		if err != nil || len(again) != len(tags) {
			t.Fatalf("reparse of %q: %v, %q", b.String(), err, again)
		}
		for k, v := range tags {
			if again[k] != v {
				t.Fatalf("reparse changed %q: %q to %q", k, v, again[k])
			}
		}
	})
}

// FuzzVerify runs hostile messages through Verify (with a resolver that
// knows no keys): it must not panic, and results must be consistent.
func FuzzVerify(f *testing.F) {
	f.Add("DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=sel; h=from; bh=AAAA; b=BBBB\r\nFrom: a@example.com\r\n\r\nbody\r\n")
	f.Add("DKIM-Signature: v=1; d=x; s=y\r\nDKIM-Signature: v=1; a=ed25519-sha256; d=example.com; s=s; h=from:from; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA\r\n\r\n")
	f.Add("dkim-signature : v=1; l=3\r\n \r\n\r\n\r\n")
	f.Add("From: a\n DKIM-Signature: a=b\n\n")
	f.Fuzz(func(t *testing.T, msg string) {
		r := &fakeResolver{}
		res, err := Verify(context.Background(), r, strings.NewReader(msg), VerifyOptions{MaxHeaderBytes: 4096})
		if err != nil {
			return
		}
		if len(res) > defaultMaxSignatures || len(r.queries) > len(res) {
			t.Fatalf("%d results, %d queries", len(res), len(r.queries))
		}
		for _, x := range res {
			if x.Status == StatusPass || x.Status == "" || (x.Err == nil) {
				t.Fatalf("unexpected result %+v", x)
			}
		}
	})
}
