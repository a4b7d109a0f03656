package imap

import "strings"

// SEARCH (RFC 9051 §6.4.4, ESEARCH RFC 4731, SEARCHRES RFC 5182, CONDSTORE
// RFC 7162, WITHIN RFC 5032, SAVEDATE RFC 8514), SORT and THREAD (RFC 5256).

// SearchKey is one node of a search program.
//
//   - "AND": Children all match; a parenthesized group and the program itself.
//   - "NOT" (1 child), "OR" (2 children).
//   - "SEQSET": Set holds message sequence numbers; "UID": Set holds UIDs.
//     Either may be "$" (Set.Dollar).
//   - BCC BODY CC FROM SUBJECT TEXT TO: Value.
//   - HEADER: Field and Value.
//   - KEYWORD UNKEYWORD: Value is the keyword.
//   - BEFORE ON SINCE SENTBEFORE SENTON SENTSINCE SAVEDBEFORE SAVEDON
//     SAVEDSINCE: Date (midnight UTC of the given day).
//   - LARGER SMALLER YOUNGER OLDER: Number.
//   - MODSEQ: Number; Field and Value the optional entry name and type
//     ("priv", "shared", "all").
//   - all others (ALL SEEN UNSEEN NEW ...): no arguments.
type SearchKey struct {
	Op       string
	Field    string
	Value    string
	Number   uint64
	Date     Date
	Set      NumSet
	Children []SearchKey
}

// Date is a calendar day of a SEARCH date.
type Date struct {
	Year  int
	Month int // 1..12
	Day   int
}

// SearchArgs is for SEARCH and UID SEARCH.
type SearchArgs struct {
	// Return is the RETURN options in upper case (MIN MAX ALL COUNT
	// SAVE), nil without RETURN; "RETURN ()" gives ["ALL"] (RFC 4731 §3.1).
	Return  []string
	Charset string // upper case, "" if not given
	Key     SearchKey
}

// SortCriterion is one SORT key.
type SortCriterion struct {
	Key     string // ARRIVAL CC DATE FROM SIZE SUBJECT TO DISPLAYFROM DISPLAYTO
	Reverse bool
}

// SortArgs is for SORT and UID SORT (ESORT RETURN options, RFC 5267).
type SortArgs struct {
	Return   []string
	Criteria []SortCriterion
	Charset  string
	Key      SearchKey
}

// ThreadArgs is for THREAD and UID THREAD.
type ThreadArgs struct {
	Algorithm string // upper case: ORDEREDSUBJECT, REFERENCES
	Charset   string
	Key       SearchKey
}

// maxSearchDepth bounds nesting of NOT, OR and parentheses.
const maxSearchDepth = 100

var searchKeysNoArg = map[string]bool{
	"ALL": true, "ANSWERED": true, "DELETED": true, "DRAFT": true, "FLAGGED": true, "NEW": true,
	"OLD": true, "RECENT": true, "SEEN": true, "UNANSWERED": true, "UNDELETED": true,
	"UNDRAFT": true, "UNFLAGGED": true, "UNSEEN": true, "SAVEDATESUPPORTED": true,
}

var searchKeysString = map[string]bool{
	"BCC": true, "BODY": true, "CC": true, "FROM": true, "SUBJECT": true, "TEXT": true, "TO": true,
}

var searchKeysOther = map[string]bool{
	"HEADER": true, "KEYWORD": true, "UNKEYWORD": true, "LARGER": true, "SMALLER": true,
	"YOUNGER": true, "OLDER": true, "UID": true, "NOT": true, "OR": true, "MODSEQ": true,
}

var searchKeysDate = map[string]bool{
	"BEFORE": true, "ON": true, "SINCE": true, "SENTBEFORE": true, "SENTON": true, "SENTSINCE": true,
	"SAVEDBEFORE": true, "SAVEDON": true, "SAVEDSINCE": true,
}

func (p *parser) search() (any, error) {
	a := &SearchArgs{}
	if err := p.sp(); err != nil {
		return nil, err
	}
	var err error
	if a.Return, err = p.returnOpts("SEARCH", []string{"MIN", "MAX", "ALL", "COUNT", "SAVE"}); err != nil {
		return nil, err
	}
	if p.takeFold("CHARSET ") {
		if a.Charset, err = p.charset(); err != nil {
			return nil, err
		}
		if err := p.sp(); err != nil {
			return nil, err
		}
	}
	a.Key, err = p.searchProgram()
	return a, err
}

// returnOpts parses an optional "RETURN (opts) " prefix.
func (p *parser) returnOpts(cmd string, allowed []string) ([]string, error) {
	if !p.takeFold("RETURN ") {
		return nil, nil
	}
	opts := []string{}
	err := p.list(cmd+" RETURN options", true, func() error {
		s, err := p.upperAtom("RETURN option")
		if err != nil {
			return err
		}
		ok := false
		for _, a := range allowed {
			ok = ok || a == s
		}
		if !ok {
			return p.errf("unknown %s RETURN option %s (known: %s)", cmd, s, strings.Join(allowed, " "))
		}
		opts = append(opts, s)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(opts) == 0 {
		opts = []string{"ALL"}
	}
	return opts, p.sp()
}

// charset reads charset = atom / quoted.
func (p *parser) charset() (string, error) {
	var s string
	var err error
	if p.peek() == '"' {
		s, err = p.quoted("charset")
	} else {
		s, err = p.atom("charset")
	}
	return asciiUpper(s), err
}

// searchProgram reads search-key *(SP search-key) up to the end of the line.
func (p *parser) searchProgram() (SearchKey, error) {
	root := SearchKey{Op: "AND"}
	for {
		k, err := p.searchKey(0)
		if err != nil {
			return SearchKey{}, err
		}
		root.Children = append(root.Children, k)
		if !p.take(' ') {
			return root, nil
		}
	}
}

func (p *parser) searchKey(depth int) (SearchKey, error) {
	if depth > maxSearchDepth {
		return SearchKey{}, p.errf("search keys nested deeper than %d", maxSearchDepth)
	}
	c := p.peek()
	if c == '(' {
		k := SearchKey{Op: "AND"}
		err := p.list("search key group", false, func() error {
			child, err := p.searchKey(depth + 1)
			k.Children = append(k.Children, child)
			return err
		})
		return k, err
	}
	if c >= '0' && c <= '9' || c == '*' || c == '$' {
		set, err := p.numSet("message set")
		return SearchKey{Op: "SEQSET", Set: set}, err
	}
	op, err := p.upperAtom("search key")
	if err != nil {
		return SearchKey{}, err
	}
	k := SearchKey{Op: op}
	if searchKeysNoArg[op] {
		return k, nil
	}
	if !searchKeysString[op] && !searchKeysDate[op] && !searchKeysOther[op] {
		return k, p.errf("unknown search key %s", op)
	}
	if err := p.sp(); err != nil {
		return k, p.errf("search key %s needs an argument", op)
	}
	switch {
	case searchKeysString[op]:
		k.Value, err = p.astring(op + " string")
	case searchKeysDate[op]:
		k.Date, err = p.searchDate(op)
	case op == "HEADER":
		if k.Field, err = p.astring("HEADER field name"); err == nil {
			if err = p.sp(); err == nil {
				k.Value, err = p.astring("HEADER value")
			}
		}
	case op == "KEYWORD" || op == "UNKEYWORD":
		k.Value, err = p.atom(op + " flag")
	case op == "LARGER" || op == "SMALLER":
		k.Number, err = p.number64(op + " size")
	case op == "YOUNGER" || op == "OLDER":
		var n uint32
		n, err = p.nzNumber(op + " seconds")
		k.Number = uint64(n)
	case op == "UID":
		k.Set, err = p.numSet("UID set")
	case op == "NOT":
		var child SearchKey
		child, err = p.searchKey(depth + 1)
		k.Children = []SearchKey{child}
	case op == "OR":
		var a, b SearchKey
		if a, err = p.searchKey(depth + 1); err == nil {
			if !p.take(' ') {
				return k, p.errf("OR needs two search keys")
			}
			b, err = p.searchKey(depth + 1)
		}
		k.Children = []SearchKey{a, b}
	case op == "MODSEQ":
		// RFC 7162 §7: "MODSEQ" [SP entry-name SP entry-type-req] SP mod-sequence-valzer.
		if p.peek() == '"' {
			if k.Field, err = p.quoted("MODSEQ entry name"); err != nil {
				return k, err
			}
			if err = p.sp(); err != nil {
				return k, err
			}
			var t string
			if t, err = p.atom("MODSEQ entry type"); err != nil {
				return k, err
			}
			k.Value = strings.ToLower(t)
			if k.Value != "priv" && k.Value != "shared" && k.Value != "all" {
				return k, p.errf("MODSEQ entry type must be priv, shared or all, not %s", t)
			}
			if err = p.sp(); err != nil {
				return k, err
			}
		}
		k.Number, err = p.number64("MODSEQ mod-sequence")
	default:
		return k, p.errf("unknown search key %s", op)
	}
	return k, err
}

// searchDate reads date = date-text / DQUOTE date-text DQUOTE.
func (p *parser) searchDate(op string) (Date, error) {
	var s string
	var err error
	if p.peek() == '"' {
		s, err = p.quoted(op + " date")
	} else {
		s = p.span(func(c byte) bool { return isAtomChar(c) })
	}
	if err != nil {
		return Date{}, err
	}
	t, err := ParseDate(s)
	if err != nil {
		return Date{}, p.errf("%s: %v", op, err)
	}
	return Date{t.Year(), int(t.Month()), t.Day()}, nil
}

var sortKeys = map[string]bool{
	"ARRIVAL": true, "CC": true, "DATE": true, "FROM": true, "SIZE": true, "SUBJECT": true, "TO": true,
	"DISPLAYFROM": true, "DISPLAYTO": true,
}

func (p *parser) sort() (any, error) {
	a := &SortArgs{}
	if err := p.sp(); err != nil {
		return nil, err
	}
	var err error
	if a.Return, err = p.returnOpts("SORT", []string{"MIN", "MAX", "ALL", "COUNT", "SAVE"}); err != nil {
		return nil, err
	}
	err = p.list("sort criteria", false, func() error {
		var c SortCriterion
		key, err := p.upperAtom("sort key")
		if err != nil {
			return err
		}
		if key == "REVERSE" {
			c.Reverse = true
			if err := p.sp(); err != nil {
				return err
			}
			if key, err = p.upperAtom("sort key"); err != nil {
				return err
			}
		}
		if !sortKeys[key] {
			return p.errf("unknown sort key %s", key)
		}
		c.Key = key
		a.Criteria = append(a.Criteria, c)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := p.sp(); err != nil {
		return nil, err
	}
	if a.Charset, err = p.charset(); err != nil {
		return nil, err
	}
	if err := p.sp(); err != nil {
		return nil, err
	}
	a.Key, err = p.searchProgram()
	return a, err
}

func (p *parser) thread() (any, error) {
	a := &ThreadArgs{}
	var err error
	if err = p.sp(); err != nil {
		return nil, err
	}
	if a.Algorithm, err = p.upperAtom("thread algorithm"); err != nil {
		return nil, err
	}
	if err = p.sp(); err != nil {
		return nil, err
	}
	if a.Charset, err = p.charset(); err != nil {
		return nil, err
	}
	if err = p.sp(); err != nil {
		return nil, err
	}
	a.Key, err = p.searchProgram()
	return a, err
}
