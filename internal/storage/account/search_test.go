package account

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSearch(t *testing.T) {
	a, tmp := newAccount(t, Options{})
	ctx := testCtx(t)
	day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
	msgs := []struct {
		text     string
		flags    Flags
		kw       []string
		received time.Time
		prefix   string
	}{
		// uid 1: plain text.
		{"From: alice@example.org\r\nSubject: Quarterly report\r\nDate: Tue, 5 Mar 2024 23:30:00 -0800\r\n\r\nThe numbers are IN.\r\n",
			FlagSeen, nil, day(2024, 3, 6).Add(10 * time.Hour), "Received: from relay.example\r\n"},
		// uid 2: base64 text part in a multipart, encoded subject.
		{"From: bob@example.com\r\nSubject: =?utf-8?q?Caf=C3=A9_meeting?=\r\nDate: Wed, 6 Mar 2024 09:00:00 +0000\r\n" +
			"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
			"U2VjcmV0IFBhc3N3b3JkIGluc2lkZQ==\r\n--b\r\nContent-Type: application/octet-stream\r\n\r\nbinaryneedle\r\n--b--\r\n",
			FlagFlagged, []string{"$Work"}, day(2024, 3, 7), ""},
		// uid 3: quoted-printable, soft line break in the middle of a word.
		{"From: carol@example.net\r\nSubject: hello\r\nX-Spam: yes\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
			"a long para=\r\ngraph with =C3=A9 accents\r\n",
			0, []string{"$work"}, day(2024, 3, 8), ""},
	}
	var mb Mailbox
	for _, m := range msgs {
		res := a.Deliver(ctx, []Delivery{{Body: newBody(t, tmp, m.text), Flags: m.flags, Keywords: m.kw, Received: m.received, Prefix: []byte(m.prefix)}})
		if res[0].Err != nil {
			t.Fatal(res[0].Err)
		}
	}
	mb = mustMailbox(t, a, "INBOX")
	flagged, _ := a.Store(ctx, mb.ID, mb.UIDValidity, []UIDRange{{2, 2}}, StoreAdd, FlagAnswered, nil, 0)

	tests := []struct {
		name string
		key  SearchKey
		want []uint32
	}{
		{"all", SearchKey{Op: SearchAll}, []uint32{1, 2, 3}},
		{"uids", SearchKey{Op: SearchUIDs, UIDs: []UIDRange{{2, 0xffffffff}}}, []uint32{2, 3}},
		{"seen", SearchKey{Op: SearchFlag, Flags: FlagSeen}, []uint32{1}},
		{"unseen", SearchKey{Op: SearchFlag, Flags: FlagSeen, Not: true}, []uint32{2, 3}},
		{"keyword any case", SearchKey{Op: SearchFlag, Keyword: "$WORK"}, []uint32{2, 3}},
		{"unkeyword", SearchKey{Op: SearchFlag, Keyword: "$work", Not: true}, []uint32{1}},
		{"unknown keyword", SearchKey{Op: SearchFlag, Keyword: "nope"}, nil},
		{"larger", SearchKey{Op: SearchLarger, Size: 200}, []uint32{2}},
		{"smaller", SearchKey{Op: SearchSmaller, Size: 200}, []uint32{1, 3}},
		{"before", SearchKey{Op: SearchBefore, Date: day(2024, 3, 7)}, []uint32{1}},
		{"on", SearchKey{Op: SearchOn, Date: day(2024, 3, 7)}, []uint32{2}},
		{"since", SearchKey{Op: SearchSince, Date: day(2024, 3, 7)}, []uint32{2, 3}},
		// The Date header's own date counts, not its UTC date.
		{"senton", SearchKey{Op: SearchSentOn, Date: day(2024, 3, 5)}, []uint32{1}},
		{"sentsince", SearchKey{Op: SearchSentSince, Date: day(2024, 3, 6)}, []uint32{2}},
		{"sentbefore", SearchKey{Op: SearchSentBefore, Date: day(2024, 3, 6)}, []uint32{1}},
		{"header value", SearchKey{Op: SearchHeader, Name: "subject", Value: "REPORT"}, []uint32{1}},
		{"header encoded word", SearchKey{Op: SearchHeader, Name: "Subject", Value: "café"}, []uint32{2}},
		{"header present", SearchKey{Op: SearchHeader, Name: "X-Spam"}, []uint32{3}},
		{"header in prefix", SearchKey{Op: SearchHeader, Name: "Received", Value: "relay"}, []uint32{1}},
		{"body plain", SearchKey{Op: SearchBody, Value: "numbers are in"}, []uint32{1}},
		{"body base64", SearchKey{Op: SearchBody, Value: "secret password"}, []uint32{2}},
		{"body qp soft break", SearchKey{Op: SearchBody, Value: "paragraph with é"}, []uint32{3}},
		{"body skips non-text parts", SearchKey{Op: SearchBody, Value: "binaryneedle"}, nil},
		{"body not header", SearchKey{Op: SearchBody, Value: "alice"}, nil},
		{"text header", SearchKey{Op: SearchText, Value: "alice"}, []uint32{1}},
		{"text body", SearchKey{Op: SearchText, Value: "accents"}, []uint32{3}},
		{"modseq", SearchKey{Op: SearchModSeq, ModSeq: flagged.ModSeq}, []uint32{2}},
		{"and", SearchKey{Op: SearchAnd, Sub: []SearchKey{{Op: SearchFlag, Keyword: "$work"}, {Op: SearchBody, Value: "accents"}}}, []uint32{3}},
		{"or", SearchKey{Op: SearchOr, Sub: []SearchKey{{Op: SearchFlag, Flags: FlagSeen}, {Op: SearchHeader, Name: "X-Spam"}}}, []uint32{1, 3}},
		{"not body", SearchKey{Op: SearchNot, Sub: []SearchKey{{Op: SearchBody, Value: "secret"}}}, []uint32{1, 3}},
		// RFC 5032 OLDER/YOUNGER: instants at second precision; a message
		// received exactly at the instant is not before it.
		{"received before", SearchKey{Op: SearchReceivedBefore, Date: day(2024, 3, 7)}, []uint32{1}},
		{"received since", SearchKey{Op: SearchReceivedSince, Date: day(2024, 3, 7)}, []uint32{2, 3}},
		{"received since a second later", SearchKey{Op: SearchReceivedSince, Date: day(2024, 3, 7).Add(time.Second)}, []uint32{3}},
		{"received before, exact second", SearchKey{Op: SearchReceivedBefore, Date: day(2024, 3, 6).Add(10 * time.Hour)}, nil},
		{"received before, one second after", SearchKey{Op: SearchReceivedBefore, Date: day(2024, 3, 6).Add(10*time.Hour + time.Second)}, []uint32{1}},
		{"not received before", SearchKey{Op: SearchNot, Sub: []SearchKey{{Op: SearchReceivedBefore, Date: day(2024, 3, 8)}}}, []uint32{3}},
		// A UID bound at the root ends the scan early; the result is the same.
		{"bounded uids and", SearchKey{Op: SearchAnd, Sub: []SearchKey{{Op: SearchUIDs, UIDs: []UIDRange{{1, 2}}}, {Op: SearchFlag, Flags: FlagSeen, Not: true}}}, []uint32{2}},
		{"empty uid set", SearchKey{Op: SearchUIDs}, nil},
	}
	for _, tc := range tests {
		got, err := a.Search(ctx, mb.ID, mb.UIDValidity, tc.key)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if _, err := a.Search(ctx, mb.ID, mb.UIDValidity, SearchKey{Op: SearchNot}); !errors.Is(err, ErrBadName) {
		t.Errorf("malformed key: %v", err)
	}
	if _, err := a.Search(ctx, mb.ID, mb.UIDValidity+1, SearchKey{Op: SearchAll}); !errors.Is(err, ErrUIDValidity) {
		t.Errorf("stale uidvalidity: %v", err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := a.Search(canceled, mb.ID, mb.UIDValidity, SearchKey{Op: SearchAll}); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled search: %v", err)
	}
}

func TestStreamContains(t *testing.T) {
	long := strings.Repeat("x", 200<<10) + "NeEdLe" + strings.Repeat("y", 10)
	tests := []struct {
		text, needle string
		want         bool
	}{
		{long, "needle", true},
		{long, "needlf", false},
		{strings.Repeat("x", 64<<10-3) + "needle", "NEEDLE", true}, // across a read boundary
		{"abc", "", true},
		{"ab", "abc", false},
	}
	for _, tc := range tests {
		if got := streamContains(strings.NewReader(tc.text), foldASCII([]byte(tc.needle))); got != tc.want {
			t.Errorf("streamContains(%d bytes, %q) = %v", len(tc.text), tc.needle, got)
		}
	}
}

// TestSearchSaveDate checks SAVEDBEFORE, SAVEDON and SAVEDSINCE (RFC 8514
// §4.3) against the save date, which COPY and APPEND set to the time of
// saving, not the internal date.
func TestSearchSaveDate(t *testing.T) {
	day := func(d int) time.Time { return time.Date(2025, 3, d, 0, 0, 0, 0, time.UTC) }
	clock := newTestClock(day(1).Add(23*time.Hour + 30*time.Minute))
	a, tmp := newAccount(t, clock.opts(Options{}))
	ctx := testCtx(t)
	deliver(t, a, tmp, "", msgText("one", "one"), 0)
	inbox := mustMailbox(t, a, "INBOX")

	// Archive: uid 1 a copy of the INBOX message, saved on the 3rd;
	// uid 2 appended on the 3rd with an old internal date; uid 3
	// appended on the 5th with an internal date of the 1st.
	clock.set(day(3).Add(time.Hour))
	if _, err := a.Copy(ctx, inbox.ID, inbox.UIDValidity, []UIDRange{{1, 1}}, "Archive"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Append(ctx, "Archive", newBody(t, tmp, msgText("two", "two")), 0, nil, time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	clock.set(day(5).Add(12 * time.Hour))
	if _, err := a.Append(ctx, "Archive", newBody(t, tmp, msgText("three", "three")), 0, nil, day(1).Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	archive := mustMailbox(t, a, "Archive")

	tests := []struct {
		name string
		mb   Mailbox
		key  SearchKey
		want []uint32
	}{
		{"saved on, late in the day", inbox, SearchKey{Op: SearchSavedOn, Date: day(1)}, []uint32{1}},
		{"saved on", archive, SearchKey{Op: SearchSavedOn, Date: day(3)}, []uint32{1, 2}},
		{"received on the same day", archive, SearchKey{Op: SearchOn, Date: day(3)}, nil},
		{"received on the 1st", archive, SearchKey{Op: SearchOn, Date: day(1)}, []uint32{1, 3}},
		{"saved before", archive, SearchKey{Op: SearchSavedBefore, Date: day(5)}, []uint32{1, 2}},
		{"saved before, nothing earlier", archive, SearchKey{Op: SearchSavedBefore, Date: day(3)}, nil},
		{"saved since", archive, SearchKey{Op: SearchSavedSince, Date: day(5)}, []uint32{3}},
		{"saved since, the whole day counts", archive, SearchKey{Op: SearchSavedSince, Date: day(3)}, []uint32{1, 2, 3}},
		{"not saved on", archive, SearchKey{Op: SearchNot, Sub: []SearchKey{{Op: SearchSavedOn, Date: day(3)}}}, []uint32{3}},
	}
	for _, tc := range tests {
		got, err := a.Search(ctx, tc.mb.ID, tc.mb.UIDValidity, tc.key)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
