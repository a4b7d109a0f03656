package account

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"

	"moxd/internal/mailproto/message"
)

// SearchOp is the operator of a SearchKey node (RFC 9051 §6.4.4); the
// values match the IPC search operators.
type SearchOp uint8

// Search operators.
const (
	SearchAll        SearchOp = 1
	SearchAnd        SearchOp = 2  // all of Sub
	SearchOr         SearchOp = 3  // any of Sub
	SearchNot        SearchOp = 4  // not Sub[0]
	SearchUIDs       SearchOp = 5  // uid in UIDs
	SearchFlag       SearchOp = 6  // all Flags and Keyword set; with Not: none of them set
	SearchLarger     SearchOp = 7  // size > Size
	SearchSmaller    SearchOp = 8  // size < Size
	SearchBefore     SearchOp = 9  // received date < Date (dates only, in Date's location)
	SearchOn         SearchOp = 10 // received date = Date
	SearchSince      SearchOp = 11 // received date >= Date
	SearchSentBefore SearchOp = 12 // Date header, dates only
	SearchSentOn     SearchOp = 13
	SearchSentSince  SearchOp = 14
	SearchHeader     SearchOp = 15 // header Name contains Value; Value "": header present
	SearchBody       SearchOp = 16 // text parts contain Value
	SearchText       SearchOp = 17 // header or text parts contain Value
	SearchModSeq     SearchOp = 18 // modseq >= ModSeq (RFC 7162 §3.1.5)
	// RFC 5032 OLDER and YOUNGER: the received time against the instant
	// Date, at second precision (the caller subtracts the interval from
	// its clock).
	SearchReceivedBefore SearchOp = 19 // received < Date
	SearchReceivedSince  SearchOp = 20 // received >= Date
	// RFC 8514 §4.3 SAVEDBEFORE, SAVEDON, SAVEDSINCE: the save date, as
	// SearchBefore, SearchOn and SearchSince compare the received date.
	SearchSavedBefore SearchOp = 21
	SearchSavedOn     SearchOp = 22
	SearchSavedSince  SearchOp = 23
)

// SearchKey is a node of a search criteria tree.
type SearchKey struct {
	Op      SearchOp
	Sub     []SearchKey
	UIDs    []UIDRange
	Flags   Flags
	Keyword string
	Not     bool // for SearchFlag: the flags/keyword must be unset
	Size    int64
	Date    time.Time
	Name    string
	Value   string
	ModSeq  uint64
}

// Search limits.
const (
	searchChunk    = 1000
	maxSearchDepth = 64
)

// tri is a three-valued truth: criteria on message content are unknown
// until the file is read.
type tri int8

const (
	triFalse tri = iota
	triTrue
	triUnknown
)

func triOf(b bool) tri {
	if b {
		return triTrue
	}
	return triFalse
}

// searchMsg is a message under evaluation.
type searchMsg struct {
	uid     uint32
	rec     msgRec
	kwFolds []string

	// Content, loaded when a criterion needs it.
	file    *fileRec
	loaded  bool
	fields  []hfield
	part    *message.Part
	f       *os.File
	loadErr error
}

// Search returns the uids in the mailbox matching key, ascending. Criteria
// on flags, uids, sizes, modseqs and received dates are evaluated from msgs
// first; headers and bodies are read only for messages they can still
// decide. BODY and TEXT decode base64 and quoted-printable text parts and
// match case-insensitively (ASCII folding).
func (a *Account) Search(ctx context.Context, mb, uidvalidity uint32, key SearchKey) ([]uint32, error) {
	if err := checkSearchKey(&key, 0); err != nil {
		return nil, err
	}
	var result []uint32
	from := uint32(1)
	last := maxUID(&key)
	for {
		if err := ctx.Err(); err != nil {
			return nil, ctxErr(ctx, "search")
		}
		var batch []*searchMsg
		next := uint32(0)
		err := a.db.View(func(tx *bolt.Tx) error {
			if _, err := checkMailbox(tx, mb, uidvalidity); err != nil {
				return err
			}
			prefix := key32(mb)
			c := tx.Bucket([]byte(bucketMsgs)).Cursor()
			files := tx.Bucket([]byte(bucketFiles))
			n := 0
			for k, v := c.Seek(msgKey(mb, from)); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
				if beU32(k[4:]) > last {
					break // no later message can match
				}
				if n >= searchChunk {
					next = beU32(k[4:])
					break
				}
				n++
				r, err := parseMsgRec(v)
				if err != nil {
					return fmt.Errorf("message uid %d: %w", beU32(k[4:]), err)
				}
				m := &searchMsg{uid: beU32(k[4:]), rec: r}
				for _, kw := range a.keywordNames(tx, r.Keywords) {
					m.kwFolds = append(m.kwFolds, foldKeyword(kw))
				}
				switch evalKey(&key, m) {
				case triTrue:
					result = append(result, m.uid)
				case triUnknown:
					fr, err := parseFileRec(files.Get(key64(r.FileID)))
					if err != nil {
						return fmt.Errorf("message uid %d file record: %w", m.uid, err)
					}
					m.file = &fr
					batch = append(batch, m)
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		for _, m := range batch {
			if err := ctx.Err(); err != nil {
				return nil, ctxErr(ctx, "search")
			}
			ok := evalFull(ctx, a, &key, m)
			m.close()
			if m.loadErr != nil && !errors.Is(m.loadErr, fs.ErrNotExist) {
				return nil, fmt.Errorf("search message uid %d: %w", m.uid, m.loadErr)
			}
			if ok {
				result = append(result, m.uid)
			}
		}
		if next == 0 {
			break
		}
		from = next
	}
	slices.Sort(result)
	return result, nil
}

// checkSearchKey refuses malformed trees before any work.
func checkSearchKey(k *SearchKey, depth int) error {
	if depth > maxSearchDepth {
		return fmt.Errorf("%w: search criteria nested deeper than %d", ErrBadName, maxSearchDepth)
	}
	switch k.Op {
	case SearchNot:
		if len(k.Sub) != 1 {
			return fmt.Errorf("%w: NOT needs exactly one criterion", ErrBadName)
		}
	case SearchAll, SearchAnd, SearchOr, SearchUIDs, SearchFlag, SearchLarger, SearchSmaller,
		SearchBefore, SearchOn, SearchSince, SearchSentBefore, SearchSentOn, SearchSentSince,
		SearchHeader, SearchBody, SearchText, SearchModSeq, SearchReceivedBefore, SearchReceivedSince,
		SearchSavedBefore, SearchSavedOn, SearchSavedSince:
	default:
		return fmt.Errorf("%w: unknown search operator %d", ErrBadName, k.Op)
	}
	for i := range k.Sub {
		if err := checkSearchKey(&k.Sub[i], depth+1); err != nil {
			return err
		}
	}
	return nil
}

// maxUID returns the highest UID key can match: the end of a UID set that
// the whole key (or one of the criteria of an AND at its root) requires.
func maxUID(k *SearchKey) uint32 {
	switch k.Op {
	case SearchUIDs:
		var m uint32
		for _, r := range k.UIDs {
			m = max(m, r.Last)
		}
		return m
	case SearchAnd:
		m := uint32(0xffffffff)
		for i := range k.Sub {
			m = min(m, maxUID(&k.Sub[i]))
		}
		return m
	}
	return 0xffffffff
}

// ymd is a calendar date as one comparable number.
func ymd(t time.Time) int {
	y, m, d := t.Date()
	return y*10000 + int(m)*100 + d
}

// evalKey evaluates what msgs alone can decide.
func evalKey(k *SearchKey, m *searchMsg) tri {
	switch k.Op {
	case SearchAll:
		return triTrue
	case SearchAnd:
		r := triTrue
		for i := range k.Sub {
			switch evalKey(&k.Sub[i], m) {
			case triFalse:
				return triFalse
			case triUnknown:
				r = triUnknown
			}
		}
		return r
	case SearchOr:
		r := triFalse
		for i := range k.Sub {
			switch evalKey(&k.Sub[i], m) {
			case triTrue:
				return triTrue
			case triUnknown:
				r = triUnknown
			}
		}
		return r
	case SearchNot:
		switch evalKey(&k.Sub[0], m) {
		case triTrue:
			return triFalse
		case triFalse:
			return triTrue
		}
		return triUnknown
	case SearchUIDs:
		for _, r := range k.UIDs {
			if m.uid >= r.First && m.uid <= r.Last {
				return triTrue
			}
		}
		return triFalse
	case SearchFlag:
		hasKw := k.Keyword != "" && slices.Contains(m.kwFolds, foldKeyword(k.Keyword))
		if k.Not {
			return triOf(m.rec.Flags&k.Flags == 0 && !hasKw)
		}
		return triOf(m.rec.Flags&k.Flags == k.Flags && (k.Keyword == "" || hasKw))
	case SearchLarger:
		return triOf(m.rec.Size > k.Size)
	case SearchSmaller:
		return triOf(m.rec.Size < k.Size)
	case SearchBefore, SearchOn, SearchSince:
		// RFC 9051 §6.4.4: internal date, disregarding time and timezone.
		got := ymd(time.Unix(m.rec.Received, 0).In(k.Date.Location()))
		return triOf(cmpDate(k.Op, got, ymd(k.Date)))
	case SearchSavedBefore, SearchSavedOn, SearchSavedSince:
		// RFC 8514 §4.3: the save date, disregarding time and timezone.
		got := ymd(time.Unix(m.rec.SaveDate, 0).In(k.Date.Location()))
		return triOf(cmpDate(k.Op, got, ymd(k.Date)))
	case SearchModSeq:
		return triOf(m.rec.ModSeq >= k.ModSeq)
	case SearchReceivedBefore:
		// RFC 5032 §3: OLDER, whole seconds (received is kept in seconds).
		return triOf(m.rec.Received < k.Date.Unix())
	case SearchReceivedSince:
		return triOf(m.rec.Received >= k.Date.Unix())
	}
	return triUnknown
}

// cmpDate applies a before/on/since operator to two dates.
func cmpDate(op SearchOp, got, want int) bool {
	switch op {
	case SearchBefore, SearchSentBefore, SearchSavedBefore:
		return got < want
	case SearchOn, SearchSentOn, SearchSavedOn:
		return got == want
	}
	return got >= want
}

// evalFull evaluates key with the message content.
func evalFull(ctx context.Context, a *Account, k *SearchKey, m *searchMsg) bool {
	switch k.Op {
	case SearchAnd:
		for i := range k.Sub {
			if !evalFull(ctx, a, &k.Sub[i], m) {
				return false
			}
		}
		return true
	case SearchOr:
		for i := range k.Sub {
			if evalFull(ctx, a, &k.Sub[i], m) {
				return true
			}
		}
		return false
	case SearchNot:
		return !evalFull(ctx, a, &k.Sub[0], m)
	case SearchSentBefore, SearchSentOn, SearchSentSince:
		if !m.load(a) || m.part.Envelope == nil {
			return false
		}
		t, err := mail.ParseDate(m.part.Envelope.Date)
		if err != nil {
			return false
		}
		// RFC 9051 §6.4.4: the Date header's date, disregarding time and
		// timezone.
		return cmpDate(k.Op, ymd(t), ymd(k.Date))
	case SearchHeader:
		if !m.load(a) {
			return false
		}
		return m.headerMatch(k.Name, k.Value)
	case SearchBody, SearchText:
		if !m.load(a) {
			return false
		}
		if k.Op == SearchText && m.headerMatch("", k.Value) {
			return true
		}
		return m.bodyMatch(ctx, k.Value)
	}
	return evalKey(k, m) == triTrue
}

// load reads the header and structure of the message once.
func (m *searchMsg) load(a *Account) bool {
	if m.loaded {
		return m.loadErr == nil
	}
	m.loaded = true
	part, err := message.UnmarshalPart(m.file.Tree)
	if err != nil {
		m.loadErr = fmt.Errorf("message structure: %w", err)
		return false
	}
	m.part = part
	f, err := os.OpenFile(a.filePath(m.rec.FileID), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		m.loadErr = err // expunged meanwhile: no match
		return false
	}
	m.f = f
	hdr := make([]byte, min(part.BodyStart-part.HeaderStart, maxThreadHeader))
	if _, err := f.ReadAt(hdr, part.HeaderStart); err != nil && err != io.EOF {
		m.loadErr = fmt.Errorf("read header: %w", err)
		return false
	}
	m.fields = append(parseFields(m.file.Prefix), parseFields(hdr)...)
	return true
}

func (m *searchMsg) close() {
	if m.f != nil {
		m.f.Close()
	}
}

// headerMatch tells whether a field named name ("" = any) contains value,
// raw or RFC 2047-decoded, case-insensitively; value "" asks for presence.
func (m *searchMsg) headerMatch(name, value string) bool {
	needle := foldASCII([]byte(value))
	for _, f := range m.fields {
		if name != "" && !strings.EqualFold(f.name, name) {
			continue
		}
		if value == "" {
			return true
		}
		if name == "" && bytes.Contains(foldASCII([]byte(f.name)), needle) {
			return true
		}
		if bytes.Contains(foldASCII([]byte(f.value)), needle) || bytes.Contains(foldASCII([]byte(decodeWords(f.value))), needle) {
			return true
		}
	}
	return false
}

// bodyMatch searches the decoded text parts for value.
func (m *searchMsg) bodyMatch(ctx context.Context, value string) bool {
	needle := foldASCII([]byte(value))
	var found bool
	var walk func(p *message.Part, depth int)
	walk = func(p *message.Part, depth int) {
		if found || depth > 64 || ctx.Err() != nil {
			return
		}
		if len(p.Parts) > 0 {
			for _, c := range p.Parts {
				walk(c, depth+1)
			}
			return
		}
		if p.MediaType != "text" {
			return
		}
		var r io.Reader = io.NewSectionReader(m.f, p.BodyStart, p.End-p.BodyStart)
		switch p.Encoding {
		case "base64":
			r = base64.NewDecoder(base64.StdEncoding, r)
		case "quoted-printable":
			r = quotedprintable.NewReader(r)
		}
		found = streamContains(r, needle)
	}
	walk(m.part, 0)
	return found
}

// streamContains reports whether the ASCII-folded stream contains needle
// (already folded), reading in bounded chunks.
func streamContains(r io.Reader, needle []byte) bool {
	if len(needle) == 0 {
		return true
	}
	br := bufio.NewReaderSize(r, 64<<10)
	buf := make([]byte, 0, 64<<10+len(needle))
	chunk := make([]byte, 64<<10)
	for {
		n, err := br.Read(chunk)
		if n > 0 {
			buf = append(buf, foldASCII(chunk[:n])...)
			if bytes.Contains(buf, needle) {
				return true
			}
			if keep := len(needle) - 1; len(buf) > keep {
				buf = append(buf[:0], buf[len(buf)-keep:]...)
			}
		}
		if err != nil {
			// A decoding error ends the part: what was decoded counts.
			return false
		}
	}
}

// foldASCII lower-cases ASCII letters in place and returns b.
func foldASCII(b []byte) []byte {
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return b
}
