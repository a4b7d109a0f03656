package imap

import (
	"fmt"
	"strings"
	"time"
)

// Dates in SEARCH (date) and APPEND and INTERNALDATE (date-time), RFC 9051 §9.

var months = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

// ParseDate parses date-text ("1-Feb-1994"), without quotes, to midnight UTC.
// The caller applies the mailbox's time zone if it wants one.
func ParseDate(s string) (time.Time, error) {
	d, m, y, rest, err := parseDayMonthYear(s, false)
	if err != nil {
		return time.Time{}, err
	}
	if rest != "" {
		return time.Time{}, fmt.Errorf("date %q: unexpected %q after year", s, rest)
	}
	return time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC), nil
}

// ParseDateTime parses date-time without its quotes:
// "01-Feb-1994 21:13:07 +0100" (the day may also be " 1" or "1").
func ParseDateTime(s string) (time.Time, error) {
	d, m, y, rest, err := parseDayMonthYear(s, true)
	if err != nil {
		return time.Time{}, err
	}
	// rest: SP time SP zone, time = 2DIGIT ":" 2DIGIT ":" 2DIGIT, zone = ("+" / "-") 4DIGIT.
	if len(rest) != 15 || rest[0] != ' ' || rest[3] != ':' || rest[6] != ':' || rest[9] != ' ' || (rest[10] != '+' && rest[10] != '-') {
		return time.Time{}, fmt.Errorf("date-time %q: want time and zone as \" HH:MM:SS +ZZZZ\" after the year", s)
	}
	var f [6]int
	for i, at := range []int{1, 4, 7, 11, 13} {
		if !isDigit(rest[at]) || !isDigit(rest[at+1]) {
			return time.Time{}, fmt.Errorf("date-time %q: time and zone must be digits", s)
		}
		f[i] = int(rest[at]-'0')*10 + int(rest[at+1]-'0')
	}
	hh, mm, ss, zh, zm := f[0], f[1], f[2], f[3], f[4]
	if hh > 23 || mm > 59 || ss > 60 || zm > 59 {
		return time.Time{}, fmt.Errorf("date-time %q: time or zone out of range", s)
	}
	if ss == 60 {
		ss = 59 // a leap second; time.Time has none
	}
	off := (zh*60 + zm) * 60
	if rest[10] == '-' {
		off = -off
	}
	return time.Date(y, time.Month(m), d, hh, mm, ss, 0, time.FixedZone("", off)), nil
}

// FormatDateTime formats t as date-time without the quotes:
// "01-Feb-1994 21:13:07 +0100".
func FormatDateTime(t time.Time) string {
	return t.Format("02-Jan-2006 15:04:05 -0700")
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// parseDayMonthYear parses date-day "-" date-month "-" date-year and returns
// what follows. With leadingSpace, the day may be " 1" (date-day-fixed).
func parseDayMonthYear(s string, leadingSpace bool) (day, month, year int, rest string, err error) {
	t := s
	if leadingSpace && strings.HasPrefix(t, " ") {
		t = t[1:]
	}
	i := 0
	for i < len(t) && i < 3 && isDigit(t[i]) {
		day = day*10 + int(t[i]-'0')
		i++
	}
	if i == 0 || i > 2 || day < 1 || day > 31 {
		return 0, 0, 0, "", fmt.Errorf("date %q: day must be 1 to 31", s)
	}
	t = t[i:]
	if len(t) < 9 || t[0] != '-' || t[4] != '-' {
		return 0, 0, 0, "", fmt.Errorf("date %q: want day-Mon-year, like 1-Feb-1994", s)
	}
	for m, name := range months {
		if strings.EqualFold(t[1:4], name) {
			month = m + 1
		}
	}
	if month == 0 {
		return 0, 0, 0, "", fmt.Errorf("date %q: unknown month %q", s, t[1:4])
	}
	for _, c := range []byte(t[5:9]) {
		if !isDigit(c) {
			return 0, 0, 0, "", fmt.Errorf("date %q: year must be 4 digits", s)
		}
		year = year*10 + int(c-'0')
	}
	if time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC).Day() != day {
		return 0, 0, 0, "", fmt.Errorf("date %q: %s %d has no day %d", s, months[month-1], year, day)
	}
	return day, month, year, t[9:], nil
}
