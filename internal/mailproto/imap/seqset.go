package imap

import (
	"errors"
	"fmt"
	"iter"
	"slices"
	"strconv"
	"strings"
)

// NumRange is one element of a sequence set: a single number when Start ==
// End, otherwise an inclusive range. The value 0 stands for "*", the highest
// message sequence number or UID in use (RFC 9051 §9, seq-number).
//
// ParseNumSet normalizes ranges so that Start <= End, with "*" ordered after
// every number: "5:1" becomes {1, 5} and "*:3" becomes {3, 0}.
type NumRange struct{ Start, End uint32 }

// NumSet is a parsed sequence-set (RFC 9051 §9) or the "$" marker that
// stands for the result saved by SEARCH RETURN (SAVE) (RFC 5182 §2).
type NumSet struct {
	Ranges []NumRange
	Dollar bool // "$": the caller substitutes the saved search result
}

// ParseNumSet parses a sequence-set: "1", "1:5", "5:1", "*", "3:*",
// "1,3:4,9", or "$" alone.
func ParseNumSet(s string) (NumSet, error) {
	if s == "" {
		return NumSet{}, errors.New("empty sequence set")
	}
	if s == "$" {
		return NumSet{Dollar: true}, nil
	}
	var set NumSet
	for elem := range strings.SplitSeq(s, ",") {
		if elem == "" {
			return NumSet{}, fmt.Errorf("sequence set %q: empty element", s)
		}
		a, b, isRange := strings.Cut(elem, ":")
		start, err := parseSeqNumber(a)
		if err != nil {
			return NumSet{}, fmt.Errorf("sequence set %q: %v", s, err)
		}
		end := start
		if isRange {
			if end, err = parseSeqNumber(b); err != nil {
				return NumSet{}, fmt.Errorf("sequence set %q: %v", s, err)
			}
		}
		set.Ranges = append(set.Ranges, normRange(start, end))
	}
	return set, nil
}

// parseSeqNumber parses seq-number = nz-number / "*", returning 0 for "*".
func parseSeqNumber(s string) (uint32, error) {
	if s == "*" {
		return 0, nil
	}
	if s == "" {
		return 0, errors.New("missing number")
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not a number or \"*\"", s)
		}
	}
	if s[0] == '0' {
		// RFC 9051 §9: nz-number = digit-nz *DIGIT.
		return 0, fmt.Errorf("%q: numbers start at 1 and have no leading zeros", s)
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is larger than 4294967295", s)
	}
	return uint32(v), nil
}

// normRange orders a range so that Start <= End, "*" (0) being highest.
func normRange(a, b uint32) NumRange {
	if a == 0 || (b != 0 && a > b) {
		a, b = b, a
	}
	return NumRange{a, b}
}

// resolve returns the range with "*" replaced by max, lowest first.
func (r NumRange) resolve(max uint32) (lo, hi uint32) {
	lo, hi = r.Start, r.End
	if lo == 0 {
		lo = max
	}
	if hi == 0 {
		hi = max
	}
	if lo > hi {
		lo, hi = hi, lo
	}
	return lo, hi
}

// Contains reports whether n is in the set, "*" standing for max (the highest
// sequence number or UID in the mailbox). A "$" set contains nothing: the
// caller substitutes the saved result first.
func (s NumSet) Contains(n, max uint32) bool {
	for _, r := range s.Ranges {
		lo, hi := r.resolve(max)
		if n >= lo && n <= hi {
			return true
		}
	}
	return false
}

// Expand yields the ranges of s with "*" resolved against max, each with
// 1 <= Start <= End. Ranges are yielded in the client's order and may
// overlap. With max 0 (an empty mailbox) "*" matches nothing, so "*" and
// "1:*" yield at most "1".
func (s NumSet) Expand(max uint32) iter.Seq[NumRange] {
	return func(yield func(NumRange) bool) {
		for _, r := range s.Ranges {
			lo, hi := r.resolve(max)
			if lo == 0 {
				lo = 1
			}
			if hi == 0 || lo > hi {
				continue
			}
			if !yield(NumRange{lo, hi}) {
				return
			}
		}
	}
}

// String returns the set in sequence-set syntax.
func (s NumSet) String() string {
	if s.Dollar {
		return "$"
	}
	var b []byte
	for i, r := range s.Ranges {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendSeqNumber(b, r.Start)
		if r.End != r.Start {
			b = append(b, ':')
			b = appendSeqNumber(b, r.End)
		}
	}
	return string(b)
}

func appendSeqNumber(b []byte, n uint32) []byte {
	if n == 0 {
		return append(b, '*')
	}
	return strconv.AppendUint(b, uint64(n), 10)
}

// FormatUIDSet returns uids as a compact uid-set: sorted, duplicates removed,
// consecutive numbers joined into ranges ("1:3,7"). It is used for COPYUID
// and APPENDUID (RFC 4315 §3) and VANISHED (RFC 7162 §3.2.10). For COPYUID,
// sorting both sides keeps them corresponding as long as destination UIDs
// were assigned in increasing order of source UID. An empty input gives "".
func FormatUIDSet(uids []uint32) string {
	sorted := slices.Clone(uids)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	var b []byte
	for i := 0; i < len(sorted); {
		j := i
		for j+1 < len(sorted) && sorted[j+1] == sorted[j]+1 {
			j++
		}
		if len(b) > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, uint64(sorted[i]), 10)
		if j > i {
			b = append(b, ':')
			b = strconv.AppendUint(b, uint64(sorted[j]), 10)
		}
		i = j + 1
	}
	return string(b)
}
