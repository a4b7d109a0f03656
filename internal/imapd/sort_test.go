package imapd

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"moxd/internal/ipc"
)

func TestSort(t *testing.T) {
	_, c, msgs := searchEnv(t)
	// SIZE: the order of the messages' lengths, ties by sequence number.
	bySize := make([]int, len(msgs))
	for i := range bySize {
		bySize[i] = i
	}
	size := func(i int) int { return len(msgs[i].hdr) + 2 + len(msgs[i].body) }
	slices.SortStableFunc(bySize, func(a, b int) int { return size(a) - size(b) })
	var sizeOrder []string
	for _, i := range bySize {
		sizeOrder = append(sizeOrder, strconv.Itoa(i+1))
	}

	tests := []struct {
		sort, want string
	}{
		// By the first From address's local part; no From sorts first.
		{"(FROM) UTF-8 ALL", "17 1 7 11 16 2 6 15 19 3 18 5 20 8 9 13 14 12 10 4"},
		// REVERSE turns the key around, but ties stay in mailbox order.
		{"(REVERSE FROM) UTF-8 ALL", "4 10 12 13 14 9 8 5 20 3 18 2 6 15 19 1 7 11 16 17"},
		// RFC 5957: the decoded display name, or the address.
		{"(DISPLAYFROM) UTF-8 ALL", "17 1 7 11 16 2 15 19 6 18 3 5 20 8 9 13 14 12 10 4"},
		{"(TO) UTF-8 ALL", "2 3 1 4 " + seqRange(5, 20)},
		{"(DISPLAYTO) US-ASCII ALL", "2 3 1 4 " + seqRange(5, 20)},
		{"(CC) UTF-8 ALL", "2 " + seqRange(4, 20) + " 1 3"},
		// Base subjects: Re:, Fwd:, [list] and (fwd) removed, encoded
		// words decoded, case ignored.
		{"(SUBJECT) UTF-8 ALL", "17 13 14 19 10 11 12 15 16 5 6 20 8 9 18 1 2 3 4 7"},
		{"(SUBJECT REVERSE DATE) UTF-8 ALL", "17 14 13 19 11 10 12 16 15 20 6 5 9 8 18 7 3 4 2 1"},
		// Sent dates in UTC (3 and 4 swap by zone); no Date: the
		// internal date.
		{"(DATE) UTF-8 ALL", "1 2 4 3 " + seqRange(5, 17) + " 19 20 18"},
		{"(ARRIVAL) UTF-8 ALL", "5 4 3 2 1 10 9 8 7 6 15 14 13 12 11 18 17 16 19 20"},
		{"(REVERSE ARRIVAL) UTF-8 ALL", "20 19 16 17 18 11 12 13 14 15 6 7 8 9 10 1 2 3 4 5"},
		{"(SIZE) UTF-8 ALL", strings.Join(sizeOrder, " ")},
		{"(FROM REVERSE SUBJECT) UTF-8 ALL", "17 1 7 16 11 2 6 15 19 3 18 5 20 8 9 13 14 12 10 4"},
		{"(FROM) UTF-8 SEEN", "1 7 2 6 3 5 8 9 10 4"},
		{"(DATE) UTF-8 KEYWORD nosuch", ""},
	}
	for _, tc := range tests {
		u, res := c.cmd("SORT " + tc.sort)
		if !strings.HasPrefix(res, "OK") {
			t.Errorf("SORT %s: %s", tc.sort, res)
			continue
		}
		if got := nums(t, u, "SORT"); got != tc.want {
			t.Errorf("SORT %s:\n got %s\nwant %s", tc.sort, got, tc.want)
		}
	}

	// ESORT (RFC 5267): ESEARCH in sort order, ranges only ascending.
	u := c.ok("SORT RETURN (MIN MAX COUNT ALL) (FROM) UTF-8 ALL")
	want := `* ESEARCH (TAG "a` + strconv.Itoa(c.n) + `") MIN 17 MAX 4 ALL 17,1,7,11,16,2,6,15,19,3,18,5,20,8:9,13:14,12,10,4 COUNT 20`
	if len(u) != 1 || u[0] != want {
		t.Errorf("ESORT: %q\nwant %q", u, want)
	}
	u = c.ok("UID SORT RETURN () (REVERSE ARRIVAL) UTF-8 1:5")
	if want := `* ESEARCH (TAG "a` + strconv.Itoa(c.n) + `") UID ALL 1:5`; len(u) != 1 || u[0] != want {
		t.Errorf("UID ESORT: %q, want %q", u, want)
	}
	// RFC 7162: (MODSEQ n) on SORT too.
	if got := nums(t, c.ok("SORT (REVERSE ARRIVAL) UTF-8 MODSEQ 1 1:3"), "SORT"); !regexp.MustCompile(`^1 2 3 \(MODSEQ \d+\)$`).MatchString(got) {
		t.Errorf("SORT with MODSEQ: %q", got)
	}
	c.expect("SORT (FROM) KOI8-R ALL", "NO [BADCHARSET (US-ASCII UTF-8)]")
	c.expect("SORT (NOSUCH) UTF-8 ALL", "BAD")

	// UID SORT answers UIDs; after an expunge they differ.
	c.ok("UID EXPUNGE 13")
	if got := nums(t, c.ok("UID SORT (FROM) UTF-8 ALL"), "SORT"); got != "17 1 7 11 16 2 6 15 19 3 18 5 20 8 9 14 12 10 4" {
		t.Errorf("UID SORT after expunge: %s", got)
	}
	if got := nums(t, c.ok("SORT (FROM) UTF-8 ALL"), "SORT"); got != "16 1 7 11 15 2 6 14 18 3 17 5 19 8 9 13 12 10 4" {
		t.Errorf("SORT after expunge: %s", got)
	}
	if got := c.ok("CAPABILITY")[0]; !strings.Contains(got, " SORT ") || !strings.Contains(got, " SORT=DISPLAY") || !strings.Contains(got, " ESORT") {
		t.Errorf("capabilities: %q", got)
	}
}

func TestNormID(t *testing.T) {
	for in, want := range map[string]string{
		`<"01KF8JCEOCBS0045PS"@xxx.yyy.com>`: "<01KF8JCEOCBS0045PS@xxx.yyy.com>",
		`<"a\"b"@x>`:                         `<a"b@x>`,
		"<plain@x>":                          "<plain@x>",
	} {
		if got := normID(in); got != want {
			t.Errorf("normID(%s) = %s, want %s", in, got, want)
		}
	}
}

// TestSortThreadPages sorts and threads a mailbox whose keys take many
// store pages, and a selection of scattered UIDs that takes more than one
// request's ranges, against orders computed from the messages.
func TestSortThreadPages(t *testing.T) {
	const n = 2*ipc.MaxRanges + 52
	e := newEnv(t)
	fillBenchMailbox(t, e.st, n)
	c, _ := e.dial(t)
	c.login()
	c.ok("SELECT INBOX")
	// Every other message flagged: each its own UID range.
	var odd []string
	for seq := 1; seq <= n; seq += 2 {
		odd = append(odd, strconv.Itoa(seq))
	}
	c.ok(`STORE ` + strings.Join(odd, ",") + ` +FLAGS.SILENT (\Flagged)`)

	seqs := func(keep func(i int) bool) []int {
		var l []int
		for i := range n {
			if keep(i) {
				l = append(l, i)
			}
		}
		return l
	}
	join := func(l []int) string {
		var s []string
		for _, i := range l {
			s = append(s, strconv.Itoa(i+1))
		}
		return strings.Join(s, " ")
	}
	byDate := func(a, b int) int { return benchDate(a).Compare(benchDate(b)) }
	all := seqs(func(int) bool { return true })
	flagged := seqs(func(i int) bool { return i%2 == 0 })

	dates := slices.SortedFunc(slices.Values(flagged), byDate)
	if got := nums(t, c.ok("SORT (DATE) UTF-8 FLAGGED"), "SORT"); got != join(dates) {
		t.Errorf("SORT (DATE) FLAGGED:\n got %.300s\nwant %.300s", got, join(dates))
	}
	// Base subjects "TOPIC <thread>", compared as strings; ties by
	// sequence number.
	subjects := slices.SortedStableFunc(slices.Values(all), func(a, b int) int {
		return strings.Compare("TOPIC "+strconv.Itoa(a/10), "TOPIC "+strconv.Itoa(b/10))
	})
	if got := nums(t, c.ok("SORT (SUBJECT) UTF-8 ALL"), "SORT"); got != join(subjects) {
		t.Errorf("SORT (SUBJECT):\n got %.300s\nwant %.300s", got, join(subjects))
	}
	// REFERENCES: every thread a chain of ten, threads by their first
	// message's date.
	roots := slices.SortedFunc(slices.Values(seqs(func(i int) bool { return i%10 == 0 })), byDate)
	var want strings.Builder
	for _, r := range roots {
		var chain []int
		for i := r; i < min(n, r+10); i++ {
			chain = append(chain, i)
		}
		want.WriteString("(" + join(chain) + ")")
	}
	if got := nums(t, c.ok("THREAD REFERENCES UTF-8 ALL"), "THREAD"); got != want.String() {
		t.Errorf("THREAD REFERENCES:\n got %.300s\nwant %.300s", got, want.String())
	}
	// ORDEREDSUBJECT of the flagged half: per thread the earliest
	// message, the others its children by date.
	groups := map[int][]int{}
	for _, i := range flagged {
		groups[i/10] = append(groups[i/10], i)
	}
	var firsts [][]int
	for _, g := range groups {
		firsts = append(firsts, slices.SortedFunc(slices.Values(g), byDate))
	}
	slices.SortFunc(firsts, func(a, b []int) int { return byDate(a[0], b[0]) })
	want.Reset()
	for _, g := range firsts {
		want.WriteString("(" + strconv.Itoa(g[0]+1))
		if len(g) == 2 {
			want.WriteString(" " + strconv.Itoa(g[1]+1))
		} else if len(g) > 2 {
			want.WriteString(" ")
			for _, i := range g[1:] {
				want.WriteString("(" + strconv.Itoa(i+1) + ")")
			}
		}
		want.WriteString(")")
	}
	if got := nums(t, c.ok("THREAD ORDEREDSUBJECT UTF-8 FLAGGED"), "THREAD"); got != want.String() {
		t.Errorf("THREAD ORDEREDSUBJECT FLAGGED:\n got %.300s\nwant %.300s", got, want.String())
	}
}
