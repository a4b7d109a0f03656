package imap

import (
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseNumSet(t *testing.T) {
	good := []struct {
		in, out string
		ranges  []NumRange
	}{
		{"1", "1", []NumRange{{1, 1}}},
		{"1:5", "1:5", []NumRange{{1, 5}}},
		{"5:1", "1:5", []NumRange{{1, 5}}},
		{"*", "*", []NumRange{{0, 0}}},
		{"3:*", "3:*", []NumRange{{3, 0}}},
		{"*:3", "3:*", []NumRange{{3, 0}}},
		{"1,3:4,9", "1,3:4,9", []NumRange{{1, 1}, {3, 4}, {9, 9}}},
		{"4294967295", "4294967295", []NumRange{{4294967295, 4294967295}}},
	}
	for _, tc := range good {
		s, err := ParseNumSet(tc.in)
		if err != nil || !reflect.DeepEqual(s.Ranges, tc.ranges) || s.String() != tc.out {
			t.Errorf("ParseNumSet(%q) = %v %q, %v; want %v %q", tc.in, s.Ranges, s.String(), err, tc.ranges, tc.out)
		}
	}
	if s, err := ParseNumSet("$"); err != nil || !s.Dollar || s.String() != "$" {
		t.Errorf("ParseNumSet($) = %+v, %v", s, err)
	}
	bad := map[string]string{
		"": "empty", "0": "start at 1", "1,": "empty element", "1:": "missing number",
		"a": "not a number", "4294967296": "larger", "1,$": "not a number", "01": "leading zeros", "1::2": "not a number",
	}
	for in, want := range bad {
		if _, err := ParseNumSet(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseNumSet(%q) error %v, want it to mention %q", in, err, want)
		}
	}
}

func TestNumSetContainsExpand(t *testing.T) {
	s, _ := ParseNumSet("2:4,*,10:*")
	for n, want := range map[uint32]bool{1: false, 2: true, 4: true, 5: false, 7: true} {
		if got := s.Contains(n, 7); got != want {
			t.Errorf("Contains(%d, max 7) = %v", n, got)
		}
	}
	// With max 7, "10:*" is 7:10.
	got := slices.Collect(s.Expand(7))
	want := []NumRange{{2, 4}, {7, 7}, {7, 10}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Expand(7) = %v, want %v", got, want)
	}
	if got := slices.Collect(s.Expand(0)); !reflect.DeepEqual(got, []NumRange{{2, 4}, {1, 10}}) {
		t.Errorf("Expand(0) = %v", got)
	}
}

func TestFormatUIDSet(t *testing.T) {
	for _, tc := range []struct {
		in   []uint32
		want string
	}{
		{nil, ""}, {[]uint32{5}, "5"}, {[]uint32{3, 1, 2, 2, 7, 9, 8, 20}, "1:3,7:9,20"},
	} {
		if got := FormatUIDSet(tc.in); got != tc.want {
			t.Errorf("FormatUIDSet(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestMailboxUTF7(t *testing.T) {
	pairs := [][2]string{
		{"INBOX", "INBOX"}, {"Entwürfe", "Entw&APw-rfe"}, {"a&b", "a&-b"}, {"&", "&-"},
		{"😀", "&2D3eAA-"}, {"~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"},
		{"ä-", "&AOQ--"}, {"\x01", "&AAE-"},
	}
	for _, p := range pairs {
		if got := EncodeMailboxUTF7(p[0]); got != p[1] {
			t.Errorf("Encode(%q) = %q, want %q", p[0], got, p[1])
		}
		if got, err := DecodeMailboxUTF7(p[1]); got != p[0] || err != nil {
			t.Errorf("Decode(%q) = %q, %v; want %q", p[1], got, err, p[0])
		}
	}
	bad := map[string]string{
		"&":                "not closed",
		"a&Jjo":            "not closed",
		"&AGE-":            "printable US-ASCII",
		"&AOQ-&AOQ-":       "not merged",
		"&AOQA-":           "extra characters",
		"&AOR-":            "nonzero padding",
		"&2D0-":            "surrogate",
		"&3gA-":            "surrogate",
		"&AO!-":            "not a modified base64",
		"Entwürfe":         "must be encoded",
		"tab\there":        "must be encoded",
		"&AOQ/AOQ-":        "not a modified base64",
		"&U,BTF2XlZyyKng-": "",
	}
	for in, want := range bad {
		_, err := DecodeMailboxUTF7(in)
		if want == "" {
			if err != nil {
				t.Errorf("Decode(%q): %v", in, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Decode(%q) error %v, want it to mention %q", in, err, want)
		}
	}
	// Random strings from a mixed alphabet round trip.
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []rune("a&-Z ~é€😀\u0000\u007f\uffff𝄞台")
	for range 2000 {
		var b strings.Builder
		for range rng.IntN(12) {
			b.WriteRune(alphabet[rng.IntN(len(alphabet))])
		}
		s := b.String()
		enc := EncodeMailboxUTF7(s)
		if dec, err := DecodeMailboxUTF7(enc); dec != s || err != nil {
			t.Fatalf("round trip %q -> %q -> %q, %v", s, enc, dec, err)
		}
	}
}

// TestMailboxUTF7Dovecot compares with Dovecot's encoder and decoder.
func TestMailboxUTF7Dovecot(t *testing.T) {
	if _, err := exec.LookPath("doveadm"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("doveadm not found in CI (install dovecot-core): %v", err)
		}
		t.Skip("doveadm not installed")
	}
	names := []string{"Entwürfe", "a&b", "😀 x", "~peter/mail/台北/日本語", "Ärger&Ölung", "\u00e9\u20ac-"}
	for _, name := range names {
		out, err := exec.Command("doveadm", "mailbox", "mutf7", name).Output()
		if err != nil {
			t.Fatalf("doveadm mailbox mutf7 %q: %v", name, err)
		}
		want := strings.TrimSuffix(string(out), "\n")
		if got := EncodeMailboxUTF7(name); got != want {
			t.Errorf("Encode(%q) = %q, Dovecot says %q", name, got, want)
		}
		out, err = exec.Command("doveadm", "mailbox", "mutf7", "-7", want).Output()
		if err != nil {
			t.Fatalf("doveadm mailbox mutf7 -7 %q: %v", want, err)
		}
		if got := strings.TrimSuffix(string(out), "\n"); got != name {
			t.Errorf("Dovecot decodes %q to %q", want, got)
		}
	}
	// Dovecot agrees that merged runs are required.
	if err := exec.Command("doveadm", "mailbox", "mutf7", "-7", "&AOQ-&AOQ-").Run(); err == nil {
		t.Errorf("Dovecot accepts &AOQ-&AOQ-; our decoder rejects it")
	}
}

func TestDates(t *testing.T) {
	d, err := ParseDate("1-Feb-1994")
	if err != nil || !d.Equal(time.Date(1994, 2, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("ParseDate = %v, %v", d, err)
	}
	for in, want := range map[string]string{
		"1-Foo-1994": "unknown month", "32-Jan-1994": "day must be", "30-Feb-2000": "no day 30",
		"1-Feb-94": "want day-Mon-year", "1-Feb-1994x": "unexpected", "-Feb-1994": "day must be",
	} {
		if _, err := ParseDate(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseDate(%q) error %v, want %q", in, err, want)
		}
	}
	for _, in := range []string{"01-Feb-1994 21:13:07 +0100", " 1-feb-1994 21:13:07 +0100", "1-Feb-1994 21:13:07 +0100"} {
		dt, err := ParseDateTime(in)
		if err != nil || dt.Unix() != time.Date(1994, 2, 1, 20, 13, 7, 0, time.UTC).Unix() {
			t.Errorf("ParseDateTime(%q) = %v, %v", in, dt, err)
		}
		if got := FormatDateTime(dt); got != "01-Feb-1994 21:13:07 +0100" {
			t.Errorf("FormatDateTime = %q", got)
		}
	}
	for _, in := range []string{"01-Feb-1994 21:13:07", "01-Feb-1994 24:00:00 +0000", "01-Feb-1994 21:13:07 0100", "01-Feb-1994 2a:13:07 +0100"} {
		if _, err := ParseDateTime(in); err == nil {
			t.Errorf("ParseDateTime(%q) accepted", in)
		}
	}
}

func TestResponse(t *testing.T) {
	for in, want := range map[string]string{
		"abc": "abc", "": `""`, "a b": `"a b"`, `a"b\`: `"a\"b\\"`, "nil": `"nil"`,
		"a\r\nb": "{4}\r\na\r\nb", "ä": "{2}\r\nä", "x]": "x]", "a*": `"a*"`,
	} {
		if got := Quote(in); got != want {
			t.Errorf("Quote(%q) = %q, want %q", in, got, want)
		}
	}
	if got := string(AppendAString(nil, "ä", true)); got != `"ä"` {
		t.Errorf("utf8 astring = %q", got)
	}
	if got := string(AppendNString(nil, nil, false)); got != "NIL" {
		t.Errorf("nstring nil = %q", got)
	}
	if got := string(AppendMailbox(nil, "Entwürfe", false)); got != "Entw&APw-rfe" {
		t.Errorf("mailbox = %q", got)
	}
	if got := string(AppendMailbox(nil, "Entwürfe x", true)); got != `"Entwürfe x"` {
		t.Errorf("utf8 mailbox = %q", got)
	}
	got := string(AppendStatus(nil, "a1", OK, CodeCopyUID(7, []uint32{3, 1, 2}, []uint32{10, 11, 12}), "copied\r\n"))
	if got != "a1 OK [COPYUID 7 1:3 10:12] copied  \r\n" {
		t.Errorf("status = %q", got)
	}
	if got := string(AppendStatus(nil, "", BYE, "", "")); got != "* BYE BYE\r\n" {
		t.Errorf("status = %q", got)
	}
}

// readAll parses every command in input, as a session would.
func readAll(r *Reader) (cmds []*Command, errs []error) {
	for {
		cmd, err := ReadCommand(r)
		if err == io.EOF {
			return
		}
		cmds, errs = append(cmds, cmd), append(errs, err)
		var se *SyntaxError
		var re *RefusedError
		if err != nil && !errors.As(err, &se) && !errors.As(err, &re) {
			return
		}
	}
}

func parseOne(t *testing.T, line string, utf8 bool) (*Command, error) {
	t.Helper()
	r := NewReader(strings.NewReader(line))
	r.UTF8 = utf8
	return ReadCommand(r)
}

func TestReadCommandArgs(t *testing.T) {
	str := func(s string) *string { return &s }
	set := func(s string) NumSet { n, _ := ParseNumSet(s); return n }
	pset := func(s string) *NumSet { n := set(s); return &n }
	key := func(ks ...SearchKey) SearchKey { return SearchKey{Op: "AND", Children: ks} }
	tests := []struct {
		line string
		want Command
	}{
		{"a1 noop\r\n", Command{Tag: "a1", Name: "NOOP"}},
		{"a1 LOGIN fred \"se cr\\\"et\"\r\n", Command{Tag: "a1", Name: "LOGIN", Args: &LoginArgs{"fred", `se cr"et`}}},
		{"a1 LOGIN {4+}\r\nfred {2+}\r\npw\r\n", Command{Tag: "a1", Name: "LOGIN", Args: &LoginArgs{"fred", "pw"}}},
		{"a AUTHENTICATE plain AGZyZWQAcHc=\n", Command{Tag: "a", Name: "AUTHENTICATE", Args: &AuthenticateArgs{"PLAIN", []byte("\x00fred\x00pw"), true}}},
		{"a AUTHENTICATE EXTERNAL =\r\n", Command{Tag: "a", Name: "AUTHENTICATE", Args: &AuthenticateArgs{"EXTERNAL", []byte{}, true}}},
		{"a AUTHENTICATE SCRAM-SHA-256\r\n", Command{Tag: "a", Name: "AUTHENTICATE", Args: &AuthenticateArgs{Mechanism: "SCRAM-SHA-256"}}},
		{"a ENABLE utf8=accept CONDSTORE\r\n", Command{Tag: "a", Name: "ENABLE", Args: &EnableArgs{[]string{"UTF8=ACCEPT", "CONDSTORE"}}}},
		{"a SELECT Entw&APw-rfe (CONDSTORE)\r\n", Command{Tag: "a", Name: "SELECT", Args: &SelectArgs{Mailbox: "Entwürfe", CondStore: true}}},
		{"a EXAMINE inbox (QRESYNC (67890007 20050715194045000 41,43:211,214:541 (1,3:5 41,43:45)))\r\n", Command{Tag: "a", Name: "EXAMINE", Args: &SelectArgs{Mailbox: "inbox", QResync: &QResyncParams{67890007, 20050715194045000, pset("41,43:211,214:541"), pset("1,3:5"), pset("41,43:45")}}}},
		{"a SELECT x (QRESYNC (1 2))\r\n", Command{Tag: "a", Name: "SELECT", Args: &SelectArgs{Mailbox: "x", QResync: &QResyncParams{UIDValidity: 1, ModSeq: 2}}}},
		{"a SELECT x (QRESYNC (1 2 (1 5)))\r\n", Command{Tag: "a", Name: "SELECT", Args: &SelectArgs{Mailbox: "x", QResync: &QResyncParams{UIDValidity: 1, ModSeq: 2, KnownSeqs: pset("1"), KnownSeqUIDs: pset("5")}}}},
		{"a CREATE Sent (USE (\\Sent \\Archive))\r\n", Command{Tag: "a", Name: "CREATE", Args: &CreateArgs{"Sent", []string{`\Sent`, `\Archive`}}}},
		{"a RENAME a \"b c\"\r\n", Command{Tag: "a", Name: "RENAME", Args: &RenameArgs{"a", "b c"}}},
		{"a LIST \"\" %\r\n", Command{Tag: "a", Name: "LIST", Args: &ListArgs{Patterns: []string{"%"}}}},
		{"a LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (% Entw&APw-rfe/*) RETURN (CHILDREN STATUS (MESSAGES UNSEEN))\r\n", Command{Tag: "a", Name: "LIST", Args: &ListArgs{Selection: []string{"SUBSCRIBED", "RECURSIVEMATCH"}, Patterns: []string{"%", "Entwürfe/*"}, Return: []string{"CHILDREN", "STATUS"}, ReturnStatus: []string{"MESSAGES", "UNSEEN"}}}},
		{"a LSUB \"#news.\" comp.mail.*\r\n", Command{Tag: "a", Name: "LSUB", Args: &ListArgs{Reference: "#news.", Patterns: []string{"comp.mail.*"}}}},
		{"a STATUS Entw&APw-rfe (MESSAGES SIZE appendlimit)\r\n", Command{Tag: "a", Name: "STATUS", Args: &StatusArgs{"Entwürfe", []string{"MESSAGES", "SIZE", "APPENDLIMIT"}}}},
		{"a uid expunge 1:3\r\n", Command{Tag: "a", Name: "EXPUNGE", UID: true, Args: &ExpungeArgs{set("1:3")}}},
		{"a UID MOVE 1:* Trash\r\n", Command{Tag: "a", Name: "MOVE", UID: true, Args: &CopyArgs{set("1:*"), "Trash"}}},
		{"a STORE 1 +FLAGS.SILENT (\\Seen $Junk)\r\n", Command{Tag: "a", Name: "STORE", Args: &StoreArgs{Set: set("1"), Op: StoreAdd, Silent: true, Flags: []string{`\Seen`, "$Junk"}}}},
		{"a UID STORE 1 (UNCHANGEDSINCE 12) -FLAGS \\Deleted x\r\n", Command{Tag: "a", Name: "STORE", UID: true, Args: &StoreArgs{Set: set("1"), HasUnchangedSince: true, UnchangedSince: 12, Op: StoreRemove, Flags: []string{`\Deleted`, "x"}}}},
		{"a STORE $ FLAGS ()\r\n", Command{Tag: "a", Name: "STORE", Args: &StoreArgs{Set: set("$"), Flags: []string{}}}},
		{"a GETQUOTAROOT INBOX\r\n", Command{Tag: "a", Name: "GETQUOTAROOT", Args: &MailboxArgs{"INBOX"}}},
		{"a GETQUOTA \"\"\r\n", Command{Tag: "a", Name: "GETQUOTA", Args: &GetQuotaArgs{""}}},
		{"a SETQUOTA \"\" (storage 512 MESSAGE 1000)\r\n", Command{Tag: "a", Name: "SETQUOTA", Args: &SetQuotaArgs{Root: "", Limits: []QuotaLimit{{"STORAGE", 512}, {"MESSAGE", 1000}}}}},
		{"a SETQUOTA \"\" ()\r\n", Command{Tag: "a", Name: "SETQUOTA", Args: &SetQuotaArgs{Root: ""}}},
		{"a ID nil\r\n", Command{Tag: "a", Name: "ID", Args: &IDArgs{Nil: true}}},
		{"a ID (\"name\" \"x\" \"os\" NIL)\r\n", Command{Tag: "a", Name: "ID", Args: &IDArgs{Fields: []IDField{{"name", str("x")}, {"os", nil}}}}},
		{"a COMPRESS deflate\r\n", Command{Tag: "a", Name: "COMPRESS", Args: &CompressArgs{"DEFLATE"}}},
		{"a SEARCH RETURN () CHARSET utf-8 UNSEEN OR FROM \"a b\" (TO c NOT 2:4) SINCE 1-Feb-1994 HEADER X-Y {1+}\r\nz UID $ MODSEQ \"/flags/\\\\draft\" all 620162338 LARGER 5 YOUNGER 60 SAVEDON \"3-Mar-2020\" KEYWORD $Fwd\r\n",
			Command{Tag: "a", Name: "SEARCH", Args: &SearchArgs{Return: []string{"ALL"}, Charset: "UTF-8", Key: key(
				SearchKey{Op: "UNSEEN"},
				SearchKey{Op: "OR", Children: []SearchKey{{Op: "FROM", Value: "a b"}, key(SearchKey{Op: "TO", Value: "c"}, SearchKey{Op: "NOT", Children: []SearchKey{{Op: "SEQSET", Set: set("2:4")}}})}},
				SearchKey{Op: "SINCE", Date: Date{1994, 2, 1}},
				SearchKey{Op: "HEADER", Field: "X-Y", Value: "z"},
				SearchKey{Op: "UID", Set: set("$")},
				SearchKey{Op: "MODSEQ", Field: `/flags/\draft`, Value: "all", Number: 620162338},
				SearchKey{Op: "LARGER", Number: 5},
				SearchKey{Op: "YOUNGER", Number: 60},
				SearchKey{Op: "SAVEDON", Date: Date{2020, 3, 3}},
				SearchKey{Op: "KEYWORD", Value: "$Fwd"},
			)}}},
		{"a UID SEARCH RETURN (MIN COUNT SAVE) 1:*\r\n", Command{Tag: "a", Name: "SEARCH", UID: true, Args: &SearchArgs{Return: []string{"MIN", "COUNT", "SAVE"}, Key: key(SearchKey{Op: "SEQSET", Set: set("1:*")})}}},
		{"a UID SORT (REVERSE ARRIVAL subject) UTF-8 ALL\r\n", Command{Tag: "a", Name: "SORT", UID: true, Args: &SortArgs{Criteria: []SortCriterion{{"ARRIVAL", true}, {"SUBJECT", false}}, Charset: "UTF-8", Key: key(SearchKey{Op: "ALL"})}}},
		{"a THREAD references US-ASCII SEEN\r\n", Command{Tag: "a", Name: "THREAD", Args: &ThreadArgs{"REFERENCES", "US-ASCII", key(SearchKey{Op: "SEEN"})}}},
		{"a FETCH 1:* fast\r\n", Command{Tag: "a", Name: "FETCH", Args: &FetchArgs{Set: set("1:*"), Items: []FetchItem{{Name: "FLAGS"}, {Name: "INTERNALDATE"}, {Name: "RFC822.SIZE"}}}}},
		{"a UID FETCH 1 (UID BODY BODY.PEEK[1.2.HEADER.FIELDS.NOT (From \"To\")]<0.100> BINARY.PEEK[1]<5.5> BINARY.SIZE[] body[] BODY[2.MIME] RFC822.HEADER MODSEQ SAVEDATE) (CHANGEDSINCE 5 VANISHED)\r\n",
			Command{Tag: "a", Name: "FETCH", UID: true, Args: &FetchArgs{Set: set("1"), ChangedSince: 5, Vanished: true, Items: []FetchItem{
				{Name: "UID"}, {Name: "BODY"},
				{Name: "BODY", Peek: true, Section: &Section{Part: []uint32{1, 2}, Specifier: "HEADER.FIELDS.NOT", Fields: []string{"From", "To"}}, Partial: &Partial{0, 100}},
				{Name: "BINARY", Peek: true, Section: &Section{Part: []uint32{1}}, Partial: &Partial{5, 5}},
				{Name: "BINARY.SIZE", Section: &Section{}},
				{Name: "BODY", Section: &Section{}},
				{Name: "BODY", Section: &Section{Part: []uint32{2}, Specifier: "MIME"}},
				{Name: "RFC822.HEADER"}, {Name: "MODSEQ"}, {Name: "SAVEDATE"},
			}}}},
		{"a FETCH 2 BODY[TEXT]\r\n", Command{Tag: "a", Name: "FETCH", Args: &FetchArgs{Set: set("2"), Items: []FetchItem{{Name: "BODY", Section: &Section{Specifier: "TEXT"}}}}}},
	}
	for _, tc := range tests {
		cmd, err := parseOne(t, tc.line, false)
		if err != nil {
			t.Errorf("%q: %v", tc.line, err)
			continue
		}
		if !reflect.DeepEqual(*cmd, tc.want) {
			t.Errorf("%q:\n got %#v\nwant %#v", tc.line, cmd.Args, tc.want.Args)
		}
	}
	// With UTF8=ACCEPT, names are not modified UTF-7.
	cmd, err := parseOne(t, "a SELECT Entw&APw-rfe\r\n", true)
	if err != nil || cmd.Args.(*SelectArgs).Mailbox != "Entw&APw-rfe" {
		t.Errorf("UTF8 select: %+v, %v", cmd, err)
	}
	if !IsInbox("iNbOx") || IsInbox("INBOX/x") {
		t.Errorf("IsInbox")
	}
	it := FetchItem{Name: "BODY", Peek: true, Section: &Section{Part: []uint32{1}, Specifier: "HEADER.FIELDS", Fields: []string{"From", "X Y"}}, Partial: &Partial{3, 9}}
	if got := it.ResponseName(); got != `BODY[1.HEADER.FIELDS (From "X Y")]<3>` {
		t.Errorf("ResponseName = %q", got)
	}
}

func TestReadCommandErrors(t *testing.T) {
	tests := []struct{ line, tag, msg string }{
		{"\r\n", "", "expected a tag"},
		{"a\r\n", "a", "expected space"},
		{"a FOO\r\n", "a", "unknown command FOO"},
		{"a UID NOOP\r\n", "a", "UID NOOP is not a command"},
		{"a NOOP x\r\n", "a", "unexpected"},
		{"a LOGIN fred\r\n", "a", "expected space at end of line"},
		{"a LOGIN \"fred\r\n", "a", "not terminated"},
		{"a LOGIN \"a\\b\" x\r\n", "a", "backslash"},
		{"a AUTHENTICATE PLAIN !!\r\n", "a", "not base64"},
		{"a SELECT &Jjo\r\n", "a", "modified UTF-7"},
		{"a SELECT x (FOO)\r\n", "a", "unknown select parameter FOO"},
		{"a SELECT x (QRESYNC (0 1))\r\n", "a", "must not be 0"},
		{"a STATUS x (BOGUS)\r\n", "a", "unknown STATUS item BOGUS"},
		{"a STORE 1 FLAGS (\\Recent)\r\n", "a", `\Recent cannot be set`},
		{"a STORE 1 XFLAGS (x)\r\n", "a", "expected FLAGS"},
		{"a STORE 0 FLAGS (x)\r\n", "a", "numbers start at 1"},
		{"a FETCH 1 (BODY[HEADER.FIELDS ()])\r\n", "a", "must not be empty"},
		{"a FETCH 1 (BODY[MIME])\r\n", "a", "MIME section needs a part"},
		{"a FETCH 1 (BODY[1.])\r\n", "a", "ends with a dot"},
		{"a FETCH 1 (BODY.PEEK)\r\n", "a", "needs a section"},
		{"a FETCH 1 (ALL)\r\n", "a", "cannot be used in a list"},
		{"a FETCH 1 BODY[]<1.0>\r\n", "a", "must not be 0"},
		{"a FETCH 1 FLAGS (VANISHED)\r\n", "a", "VANISHED needs CHANGEDSINCE"},
		{"a SEARCH FOO\r\n", "a", "unknown search key FOO"},
		{"a SEARCH SINCE 1-Bad-2000\r\n", "a", "unknown month"},
		{"a SEARCH RETURN (BOGUS) ALL\r\n", "a", "unknown SEARCH RETURN option BOGUS"},
		{"a SEARCH OR SEEN\r\n", "a", "OR needs two search keys"},
		{"a SEARCH FROM\r\n", "a", "needs an argument"},
		{"a SEARCH " + strings.Repeat("NOT ", 200) + "ALL\r\n", "a", "nested deeper"},
		{"a SORT (FOO) UTF-8 ALL\r\n", "a", "unknown sort key FOO"},
		{"a NOTIFY NONE\r\n", "a", "NOTIFY is not supported"},
		{"a LOGIN ~{2}\r\n", "a", "literal8"},
		{"a LOGIN {2} x\r\n", "a", "must end the line"},
		{"a LOGIN {99999999999999999999}\r\n", "a", "too large"},
		{"a LOGIN {70000}\r\n", "a", "over the command limit"},
		{"a LOGIN {4294967295}\r\n", "a", "over the command limit"},
		{"a ID (" + strings.Repeat("\"k\" NIL ", 31) + ")\r\n", "a", "at most 30"},
	}
	for _, tc := range tests {
		_, err := parseOne(t, tc.line, false)
		var se *SyntaxError
		if !errors.As(err, &se) || se.Tag != tc.tag || !strings.Contains(se.Msg, tc.msg) {
			t.Errorf("%q: error %#v, want SyntaxError tag %q containing %q", tc.line, err, tc.tag, tc.msg)
		}
	}
	// A line over the limit ends the session.
	r := NewReader(strings.NewReader("a NOOP " + strings.Repeat("x", 200) + "\r\nb NOOP\r\n"))
	r.MaxLine = 100
	var bye *ByeError
	if _, err := ReadCommand(r); !errors.As(err, &bye) || !strings.Contains(bye.Msg, "too long") {
		t.Errorf("long line: %v", err)
	}
	// Truncated input is an I/O error, not a syntax error.
	if _, err := ReadCommand(NewReader(strings.NewReader("a LOGIN {5}\r\nab"))); err != io.ErrUnexpectedEOF {
		t.Errorf("truncated literal: %v", err)
	}
}

func TestLiterals(t *testing.T) {
	var calls []int64
	r := NewReader(strings.NewReader("a LOGIN {4}\r\nfred {2+}\r\npw\r\nb NOOP\r\n"))
	r.Continue = func(n int64) error { calls = append(calls, n); return nil }
	cmds, errs := readAll(r)
	if len(cmds) != 2 || errs[0] != nil || errs[1] != nil || cmds[1].Name != "NOOP" {
		t.Fatalf("cmds %v errs %v", cmds, errs)
	}
	if !slices.Equal(calls, []int64{4}) {
		t.Errorf("Continue calls %v, want only the synchronizing {4}", calls)
	}

	// Continue is called before the data is read: the data is only
	// available after it.
	pr, pw := io.Pipe()
	r = NewReader(pr)
	r.Continue = func(n int64) error {
		go func() { io.WriteString(pw, "fred x\r\n"); pw.Close() }()
		return nil
	}
	go io.WriteString(pw, "a LOGIN {4}\r\n")
	if cmd, err := ReadCommand(r); err != nil || cmd.Args.(*LoginArgs).Username != "fred" {
		t.Errorf("split login: %v %v", cmd, err)
	}

	// A refused literal: the client sends nothing more for that command.
	r = NewReader(strings.NewReader("a LOGIN {4000}\r\nb NOOP\r\n"))
	r.Continue = func(n int64) error { return errors.New("no thanks") }
	cmds, errs = readAll(r)
	var re *RefusedError
	if len(cmds) != 2 || !errors.As(errs[0], &re) || re.Tag != "a" || errs[1] != nil || cmds[1].Tag != "b" {
		t.Errorf("refused: %v %v", cmds, errs)
	}

	// LITERAL-: non-synchronizing literals over 4096 end the session.
	r = NewReader(strings.NewReader("a LOGIN {4097+}\r\n" + strings.Repeat("x", 4097) + " y\r\n"))
	var bye *ByeError
	if _, err := ReadCommand(r); !errors.As(err, &bye) || bye.Tag != "a" {
		t.Errorf("LITERAL- over 4096: %v", err)
	}
	r = NewReader(strings.NewReader("a LOGIN {4096+}\r\n" + strings.Repeat("x", 4096) + " y\r\n"))
	if _, err := ReadCommand(r); err != nil {
		t.Errorf("LITERAL- 4096: %v", err)
	}

	// After a syntax error, a non-synchronizing literal on the bad line is
	// skipped, so its data is not taken for a command.
	r = NewReader(strings.NewReader("a BOGUS {11+}\r\nb LOGOUT\r\n\r\nc NOOP\r\n"))
	cmds, errs = readAll(r)
	if len(cmds) != 2 || errs[1] != nil || cmds[1].Tag != "c" {
		t.Errorf("resync: %v %v", cmds, errs)
	}
	// NUL is not allowed in a literal (only literal8).
	if _, err := parseOne(t, "a LOGIN {3+}\r\na\x00b x\r\n", false); err == nil || !strings.Contains(err.Error(), "NUL") {
		t.Errorf("NUL literal: %v", err)
	}
}

func TestAppend(t *testing.T) {
	in := "a APPEND Drafts (\\Seen \\Draft) \"05-Mar-2024 10:00:00 +0000\" {5}\r\nhello ~{3+}\r\n\x00\x01\x02 (x) {2}\r\nab\r\nb NOOP\r\n"
	var got []string
	var conts []int64
	r := NewReader(strings.NewReader(in))
	r.MaxLine = 100 // the messages do not count against the command limit
	r.Continue = func(n int64) error { conts = append(conts, n); return nil }
	r.Literal = func(n int64, lr io.Reader) error {
		b, err := io.ReadAll(lr)
		got = append(got, string(b))
		return err
	}
	cmd, err := ReadCommand(r)
	if err != nil {
		t.Fatal(err)
	}
	a := cmd.Args.(*AppendArgs)
	want := []AppendMessage{
		{Flags: []string{`\Seen`, `\Draft`}, Date: time.Date(2024, 3, 5, 10, 0, 0, 0, time.FixedZone("", 0)), Size: 5},
		{Size: 3, Binary: true},
		{Flags: []string{"x"}, Size: 2},
	}
	if a.Mailbox != "Drafts" || !reflect.DeepEqual(a.Messages, want) {
		t.Errorf("append args %+v", a)
	}
	if !slices.Equal(got, []string{"hello", "\x00\x01\x02", "ab"}) || !slices.Equal(conts, []int64{5, 2}) {
		t.Errorf("literals %q continues %v", got, conts)
	}
	if cmd, err := ReadCommand(r); err != nil || cmd.Tag != "b" {
		t.Errorf("after append: %v %v", cmd, err)
	}

	// A hook that reads only part, then fails: the rest is discarded and
	// the command refused.
	r = NewReader(strings.NewReader("a APPEND x {5}\r\nhello\r\nb NOOP\r\n"))
	r.Literal = func(n int64, lr io.Reader) error { lr.Read(make([]byte, 2)); return errors.New("disk full") }
	cmds, errs := readAll(r)
	var re *RefusedError
	if len(cmds) != 2 || !errors.As(errs[0], &re) || re.Err.Error() != "disk full" || cmds[1].Tag != "b" {
		t.Errorf("hook error: %v %v", cmds, errs)
	}

	// MaxAppend: a synchronizing literal is refused before Continue.
	r = NewReader(strings.NewReader("a APPEND x {4294967295}\r\nb NOOP\r\n"))
	r.MaxAppend = 1 << 20
	r.Continue = func(n int64) error { t.Errorf("Continue(%d) for a literal over MaxAppend", n); return nil }
	r.Literal = func(n int64, lr io.Reader) error { t.Errorf("Literal called"); return nil }
	cmds, errs = readAll(r)
	if len(cmds) != 2 || !errors.Is(errs[0], ErrLiteralTooBig) || cmds[1].Tag != "b" {
		t.Errorf("MaxAppend: %v %v", cmds, errs)
	}
	// Without a hook, data is in memory and bounded by MaxLine.
	cmd, err = parseOne(t, "a APPEND x {2+}\r\nhi\r\n", false)
	if err != nil || string(cmd.Args.(*AppendArgs).Messages[0].Data) != "hi" {
		t.Errorf("in-memory append: %v %v", cmd, err)
	}
}

// oneByteReader returns input one byte per Read, as a slow network would.
type oneByteReader struct{ s string }

func (o *oneByteReader) Read(b []byte) (int, error) {
	if o.s == "" {
		return 0, io.EOF
	}
	b[0] = o.s[0]
	o.s = o.s[1:]
	return 1, nil
}

func TestPipelinedAndSplit(t *testing.T) {
	in := "a NOOP\r\nb LOGIN {3+}\r\nabc def\r\nc FETCH 1 (FLAGS)\r\nd LOGOUT\r\n"
	for name, src := range map[string]io.Reader{"one buffer": strings.NewReader(in), "byte by byte": &oneByteReader{in}} {
		cmds, errs := readAll(NewReader(src))
		var tags []string
		for i, c := range cmds {
			if errs[i] != nil {
				t.Fatalf("%s: %v", name, errs[i])
			}
			tags = append(tags, c.Tag+" "+c.Name)
		}
		if want := []string{"a NOOP", "b LOGIN", "c FETCH", "d LOGOUT"}; !slices.Equal(tags, want) {
			t.Errorf("%s: %v, want %v", name, tags, want)
		}
	}
	r := NewReader(strings.NewReader("DONE\r\n"))
	if l, err := r.ReadLine(); l != "DONE" || err != nil {
		t.Errorf("ReadLine %q %v", l, err)
	}
}
