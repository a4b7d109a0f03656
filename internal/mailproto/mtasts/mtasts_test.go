package mtasts

import (
	"context"
	"errors"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"moxd/internal/dns"
)

func TestParseRecord(t *testing.T) {
	tests := []struct {
		in   string
		want *Record
		err  string
	}{
		{"v=STSv1; id=20160831085700Z;", &Record{ID: "20160831085700Z"}, ""},
		{"v=STSv1; id=20160831085700Z", &Record{ID: "20160831085700Z"}, ""},
		{"v=STSv1;id=abc", &Record{ID: "abc"}, ""},
		{"v=STSv1 \t;\t id=abc \t; ", &Record{ID: "abc"}, ""},
		{"v=STSv1; id=" + strings.Repeat("a", 32), &Record{ID: strings.Repeat("a", 32)}, ""},
		{"v=STSv1; ext-1=x; id=1; a.b_c=!\"#:<>~", &Record{ID: "1", Extensions: []string{"ext-1=x", "a.b_c=!\"#:<>~"}}, ""},
		{"v=STSv1; id=" + strings.Repeat("a", 33), nil, "invalid id"},
		{"v=STSv1; id=", nil, "invalid id"},
		{"v=STSv1; id=2016-08-31", nil, "invalid id"},
		{"v=STSv1;", nil, "no id"},
		{"v=STSv1", nil, "no id"},
		{"v=STSv1; x=y", nil, "no id"},
		{"v=STSv1; id=a; id=b", nil, "more than one id"},
		{"v=STSv1; v=STSv1; id=a", nil, "more than one version"},
		{"v=STSv1;; id=a", nil, "empty field"},
		{"v=STSv1; id=a;;", nil, "empty field"},
		{"v=STSv1; id", nil, "without ="},
		{"v=STSv1 id=a", nil, "junk"},
		{"v=STSv1; id=a; _x=1", nil, "invalid field name"},
		{"v=STSv1; id=a; x=", nil, "invalid value"},
		{"v=STSv1; id=a; x=a b", nil, "invalid value"},
		{"v=STSv1; id=a; x=a=b", nil, "invalid value"},
		{"v=stsv1; id=a", nil, "does not start"},
		{" v=STSv1; id=a", nil, "does not start"},
		{"v=STSv10; id=a", nil, "does not start"},
		{"", nil, "does not start"},
	}
	for _, tt := range tests {
		got, err := ParseRecord(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseRecord(%q): %v, %v; want error with %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseRecord(%q): %v", tt.in, err)
		} else if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseRecord(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestRecordString(t *testing.T) {
	r := &Record{ID: "abc", Extensions: []string{"x=1"}}
	if s := r.String(); s != "v=STSv1; id=abc; x=1;" {
		t.Errorf("String = %q", s)
	}
}

// txtResolver answers TXT lookups from a map; names in fail return that
// error.
type txtResolver struct {
	dns.Resolver // nil: other lookups panic, and none is expected
	txt          map[string][]string
	fail         map[string]error
	queries      []string
}

func (r *txtResolver) LookupTXT(ctx context.Context, name string) ([]string, dns.Result, error) {
	r.queries = append(r.queries, name)
	if err := r.fail[name]; err != nil {
		return nil, dns.Result{}, err
	}
	l, ok := r.txt[name]
	if !ok {
		return nil, dns.Result{}, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	return l, dns.Result{}, nil
}

func TestLookupRecord(t *testing.T) {
	servfail := &net.DNSError{Err: "server failure (SERVFAIL)", Name: "_mta-sts.flaky.example", IsTemporary: true}
	r := &txtResolver{
		txt: map[string][]string{
			"_mta-sts.example.com":   {"v=spf1 -all", "v=STSv1; id=20190429T010101;", "other"},
			"_mta-sts.two.example":   {"v=STSv1; id=a", "v=STSv1; id=b"},
			"_mta-sts.other.example": {"v=spf1 -all", "v=STSv10; id=x"},
			"_mta-sts.bad.example":   {"v=STSv1; id=not-valid"},
			"_mta-sts.empty.example": {},
		},
		fail: map[string]error{"_mta-sts.flaky.example": servfail},
	}
	tests := []struct {
		domain string
		id     string // the record's id, or "" for an error
		noRec  bool   // the error is ErrNoRecord
		err    string
	}{
		{"example.com", "20190429T010101", false, ""},
		{"Example.COM.", "20190429T010101", false, ""},
		{"two.example", "", true, "2 STSv1 records"},
		{"other.example", "", true, "2 other TXT records"},
		{"bad.example", "", true, "invalid id"},
		{"empty.example", "", true, "no MTA-STS record"},
		{"none.example", "", true, "no MTA-STS record at _mta-sts.none.example"},
		{"flaky.example", "", false, "SERVFAIL"},
		{"bad domain", "", false, "invalid domain"},
	}
	for _, tt := range tests {
		rec, err := LookupRecord(context.Background(), r, tt.domain)
		if tt.id != "" {
			if err != nil || rec.ID != tt.id {
				t.Errorf("LookupRecord(%q) = %v, %v; want id %s", tt.domain, rec, err, tt.id)
			}
			continue
		}
		if err == nil {
			t.Errorf("LookupRecord(%q) = %v, want an error", tt.domain, rec)
			continue
		}
		if errors.Is(err, ErrNoRecord) != tt.noRec {
			t.Errorf("LookupRecord(%q): error %v, ErrNoRecord %v, want %v", tt.domain, err, !tt.noRec, tt.noRec)
		}
		if !strings.Contains(err.Error(), tt.err) {
			t.Errorf("LookupRecord(%q): error %q does not contain %q", tt.domain, err, tt.err)
		}
	}
	var de *net.DNSError
	if _, err := LookupRecord(context.Background(), r, "flaky.example"); !errors.As(err, &de) || !de.IsTemporary {
		t.Errorf("temporary failure %v does not unwrap to a temporary *net.DNSError", err)
	}
}

func TestParsePolicy(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want *Policy
		err  string
	}{
		{"RFC example", "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n",
			&Policy{Mode: ModeEnforce, MX: []string{"mail.example.com", "*.example.net", "backupmx.example.com"}, MaxAge: 604800 * time.Second}, ""},
		{"LF, no final newline", "version: STSv1\nmode: testing\nmx: MX.Example.COM.\nmax_age: 86400",
			&Policy{Mode: ModeTesting, MX: []string{"mx.example.com"}, MaxAge: 86400 * time.Second}, ""},
		{"any order, odd spacing", "max_age:0 \t\nmx:\tmx.example.com\nmode:  enforce\n\nversion: STSv1\r\n\r\n",
			&Policy{Mode: ModeEnforce, MX: []string{"mx.example.com"}}, ""},
		{"mode none without mx", "version: STSv1\nmode: none\nmax_age: 31557600\n",
			&Policy{Mode: ModeNone, MaxAge: 31557600 * time.Second}, ""},
		{"extensions kept", "version: STSv1\nmode: none\nmax_age: 1\nx-note: hello  world \nMode: enforce\n",
			&Policy{Mode: ModeNone, MaxAge: time.Second, Extensions: []string{"x-note: hello  world", "Mode: enforce"}}, ""},
		{"missing version", "mode: enforce\nmx: a.example\nmax_age: 1\n", nil, "no version"},
		{"missing mode", "version: STSv1\nmx: a.example\nmax_age: 1\n", nil, "no mode"},
		{"missing max_age", "version: STSv1\nmode: enforce\nmx: a.example\n", nil, "no max_age"},
		{"missing mx", "version: STSv1\nmode: enforce\nmax_age: 1\n", nil, "no mx"},
		{"missing mx testing", "version: STSv1\nmode: testing\nmax_age: 1\n", nil, "no mx"},
		{"wrong version", "version: STSv2\nmode: none\nmax_age: 1\n", nil, "version"},
		{"wrong mode", "version: STSv1\nmode: Enforce\nmx: a.example\nmax_age: 1\n", nil, "line 2: mode"},
		{"max_age too large", "version: STSv1\nmode: none\nmax_age: 31557601\n", nil, "max_age"},
		{"max_age 11 digits", "version: STSv1\nmode: none\nmax_age: 00000000001\n", nil, "max_age"},
		{"max_age huge", "version: STSv1\nmode: none\nmax_age: 9999999999\n", nil, "max_age"},
		{"max_age negative", "version: STSv1\nmode: none\nmax_age: -1\n", nil, "max_age"},
		{"max_age signed", "version: STSv1\nmode: none\nmax_age: +1\n", nil, "max_age"},
		{"max_age empty", "version: STSv1\nmode: none\nmax_age:\n", nil, "max_age"},
		{"max_age fraction", "version: STSv1\nmode: none\nmax_age: 1.5\n", nil, "max_age"},
		{"duplicate mode", "version: STSv1\nmode: enforce\nmode: none\nmx: a.example\nmax_age: 1\n", nil, "line 3: mode given more than once"},
		{"duplicate version", "version: STSv1\nversion: STSv1\nmode: none\nmax_age: 1\n", nil, "more than once"},
		{"duplicate max_age", "version: STSv1\nmode: none\nmax_age: 1\nmax_age: 1\n", nil, "more than once"},
		{"bad mx", "version: STSv1\nmode: enforce\nmx: mail_1.example\nmax_age: 1\n", nil, "mx"},
		{"wildcard inside", "version: STSv1\nmode: enforce\nmx: mail.*.example\nmax_age: 1\n", nil, "mx"},
		{"bare wildcard", "version: STSv1\nmode: enforce\nmx: *\nmax_age: 1\n", nil, "mx"},
		{"double wildcard", "version: STSv1\nmode: enforce\nmx: *.*.example\nmax_age: 1\n", nil, "mx"},
		{"empty mx", "version: STSv1\nmode: enforce\nmx:\nmax_age: 1\n", nil, "mx"},
		{"mx with port", "version: STSv1\nmode: enforce\nmx: a.example:25\nmax_age: 1\n", nil, "mx"},
		{"no colon", "version: STSv1\nmode none\nmax_age: 1\n", nil, "line 2: no colon"},
		{"space before colon", "version : STSv1\nmode: none\nmax_age: 1\n", nil, "invalid key"},
		{"control character", "version: STSv1\nmode: none\nmax_age: 1\nx: a\x01b\n", nil, "control character"},
		{"HTML", "<html><body>Not here</body></html>\n", nil, "no colon"},
		{"not UTF-8", "version: STSv1\nmode: none\nmax_age: 1\nx: \xff\n", nil, "UTF-8"},
		{"too large", "version: STSv1\nmode: none\nmax_age: 1\nx: " + strings.Repeat("a", MaxPolicySize) + "\n", nil, "more than the 65536 allowed"},
		{"empty", "", nil, "no version"},
	}
	for _, tt := range tests {
		got, err := ParsePolicy([]byte(tt.in))
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: %v, %v; want error with %q", tt.name, got, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
		} else if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: got %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestPolicyString(t *testing.T) {
	p := &Policy{Mode: ModeEnforce, MX: []string{"mx.example.com", "*.example.net"}, MaxAge: 604800 * time.Second, Extensions: []string{"x: y"}}
	want := "version: STSv1\nmode: enforce\nmx: mx.example.com\nmx: *.example.net\nmax_age: 604800\nx: y\n"
	if s := p.String(); s != want {
		t.Errorf("String = %q, want %q", s, want)
	}
	again, err := ParsePolicy([]byte(p.String()))
	if err != nil || !reflect.DeepEqual(again, p) {
		t.Errorf("reparse: %+v, %v", again, err)
	}
}

func TestMatches(t *testing.T) {
	p := &Policy{Mode: ModeEnforce, MX: []string{"mail.example.com", "*.example.net", "*.Upper.Example"}}
	tests := []struct {
		host string
		want bool
	}{
		{"mail.example.com", true},
		{"MAIL.Example.Com", true},
		{"mail.example.com.", true},
		{"mail.example.com..", false},
		{"example.com", false},
		{"a.mail.example.com", false},
		{"mail.example.co", false},
		{"mx1.example.net", true},
		{"MX1.EXAMPLE.NET.", true},
		{"example.net", false},
		{".example.net", false},
		{"a.b.example.net", false},
		{"mx1.example.network", false},
		{"mx1example.net", false},
		{"x.upper.example", true},
		{"", false},
		{".", false},
	}
	for _, tt := range tests {
		if got := p.Matches(tt.host); got != tt.want {
			t.Errorf("Matches(%q) = %v, want %v", tt.host, got, tt.want)
		}
	}
	if (&Policy{Mode: ModeNone}).Matches("mail.example.com") {
		t.Errorf("policy without mx matches")
	}
}
