package mtasts

import (
	"reflect"
	"strings"
	"testing"
)

// FuzzParseRecord checks that parsing never panics and that a parsed
// record formats back into one that parses to the same record.
func FuzzParseRecord(f *testing.F) {
	for _, s := range []string{
		"v=STSv1; id=20160831085700Z;",
		"v=STSv1;id=a",
		"v=STSv1 ; id=abc ; ext=1; a.b-c_d=!~",
		"v=STSv1; id=a; id=b",
		"v=STSv1;;",
		"v=STSv1",
		"v=STSv10; id=x",
		"v=STSv1; id=" + strings.Repeat("9", 33),
		"v=STSv1; x=a=b",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRecord(s)
		if err != nil {
			return
		}
		if !validID(r.ID) {
			t.Fatalf("invalid id %q accepted from %q", r.ID, s)
		}
		again, err := ParseRecord(r.String())
		if err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("reparse of %q (from %q): %+v, %v; want %+v", r.String(), s, again, err, r)
		}
	})
}

// FuzzParsePolicy checks that parsing never panics, that accepted
// policies satisfy the RFC 8461 §3.2 constraints, and that String gives a
// file that parses to the same policy.
func FuzzParsePolicy(f *testing.F) {
	for _, s := range []string{
		goodPolicy,
		"version: STSv1\nmode: none\nmax_age: 0\n",
		"version: STSv1\nmode: testing\nmx: a.example\nmx: *.b.example\nmax_age: 31557600\nx-ext: some value\n",
		"version: STSv1\r\nmode: enforce\r\nmx: a.example\r\nmax_age: 31557601\r\n",
		"version: STSv1\nmode: enforce\nmode: enforce\nmx: a.example\nmax_age: 1\n",
		"max_age:1\nmode:none\nversion:STSv1",
		"version: STSv1\nmode: enforce\nmx: *.*.example\nmax_age: 1\n",
		"<html>\n",
		"\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePolicy(b)
		if err != nil {
			return
		}
		switch p.Mode {
		case ModeEnforce, ModeTesting:
			if len(p.MX) == 0 {
				t.Fatalf("mode %s without mx accepted", p.Mode)
			}
		case ModeNone:
		default:
			t.Fatalf("mode %q accepted", p.Mode)
		}
		if p.MaxAge < 0 || p.MaxAge > MaxMaxAge {
			t.Fatalf("max_age %v accepted", p.MaxAge)
		}
		for _, mx := range p.MX {
			if !validDomain(strings.TrimPrefix(mx, "*.")) || mx != strings.ToLower(mx) {
				t.Fatalf("mx %q accepted", mx)
			}
		}
		again, err := ParsePolicy([]byte(p.String()))
		if err != nil || !reflect.DeepEqual(again, p) {
			t.Fatalf("reparse of %q: %+v, %v; want %+v", p.String(), again, err, p)
		}
	})
}
