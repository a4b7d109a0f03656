package imap

import (
	"strconv"
	"strings"
)

// FETCH (RFC 9051 §6.4.5, BINARY RFC 3516, CONDSTORE/QRESYNC RFC 7162,
// SAVEDATE RFC 8514).

// FetchArgs is for FETCH and UID FETCH. For UID FETCH the session adds UID
// to every response itself (RFC 9051 §6.4.9).
type FetchArgs struct {
	Set          NumSet
	Items        []FetchItem // macros ALL, FAST and FULL expanded
	ChangedSince uint64      // 0 if not given
	Vanished     bool        // VANISHED modifier (RFC 7162 §3.2.6), UID FETCH only
}

// FetchItem is one fetch attribute.
type FetchItem struct {
	// Name in upper case without ".PEEK": FLAGS UID INTERNALDATE
	// RFC822.SIZE RFC822 RFC822.HEADER RFC822.TEXT ENVELOPE BODY
	// BODYSTRUCTURE BINARY BINARY.SIZE MODSEQ SAVEDATE.
	Name    string
	Peek    bool     // BODY.PEEK or BINARY.PEEK
	Section *Section // BODY[...], BINARY[...], BINARY.SIZE[...]; nil for plain BODY
	Partial *Partial
}

// Section is a body section: Part is the part number path ("1.2" is [1 2],
// empty for the whole message), Specifier one of "", HEADER, HEADER.FIELDS,
// HEADER.FIELDS.NOT, TEXT, MIME; Fields the header field names.
type Section struct {
	Part      []uint32
	Specifier string
	Fields    []string
}

// Partial is "<offset.count>".
type Partial struct{ Offset, Count uint32 }

// ResponseName is the item's name in a FETCH response: without .PEEK and
// with only the origin of a partial (RFC 9051 §7.5.2: BODY[...]<origin>).
func (it FetchItem) ResponseName() string {
	var b strings.Builder
	b.WriteString(it.Name)
	if s := it.Section; s != nil {
		b.WriteByte('[')
		for i, n := range s.Part {
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(strconv.FormatUint(uint64(n), 10))
		}
		if s.Specifier != "" {
			if len(s.Part) > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s.Specifier)
		}
		if strings.HasPrefix(s.Specifier, "HEADER.FIELDS") {
			b.WriteString(" (")
			for i, f := range s.Fields {
				if i > 0 {
					b.WriteByte(' ')
				}
				b.Write(AppendAString(nil, f, false))
			}
			b.WriteByte(')')
		}
		b.WriteByte(']')
	}
	if it.Partial != nil {
		b.WriteString("<" + strconv.FormatUint(uint64(it.Partial.Offset), 10) + ">")
	}
	return b.String()
}

var fetchMacros = map[string][]string{
	"ALL":  {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"},
	"FAST": {"FLAGS", "INTERNALDATE", "RFC822.SIZE"},
	"FULL": {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"},
}

var fetchSimple = map[string]bool{
	"FLAGS": true, "UID": true, "INTERNALDATE": true, "RFC822.SIZE": true, "RFC822": true,
	"RFC822.HEADER": true, "RFC822.TEXT": true, "ENVELOPE": true, "BODYSTRUCTURE": true,
	"MODSEQ": true, "SAVEDATE": true,
}

func (p *parser) fetch() (any, error) {
	a := &FetchArgs{}
	var err error
	if err = p.sp(); err != nil {
		return nil, err
	}
	if a.Set, err = p.numSet("message set"); err != nil {
		return nil, err
	}
	if err = p.sp(); err != nil {
		return nil, err
	}
	if p.peek() == '(' {
		err = p.list("fetch items", false, func() error {
			it, err := p.fetchItem()
			a.Items = append(a.Items, it)
			return err
		})
	} else {
		start := p.pos
		name := asciiUpper(p.span(isFetchNameChar))
		if m, ok := fetchMacros[name]; ok && p.peek() != '[' {
			for _, n := range m {
				a.Items = append(a.Items, FetchItem{Name: n})
			}
		} else {
			p.pos = start
			var it FetchItem
			it, err = p.fetchItem()
			a.Items = append(a.Items, it)
		}
	}
	if err != nil {
		return nil, err
	}
	if p.take(' ') {
		err = p.list("fetch modifiers", false, func() error {
			name, err := p.upperAtom("fetch modifier")
			if err != nil {
				return err
			}
			switch name {
			case "CHANGEDSINCE":
				if err := p.sp(); err != nil {
					return err
				}
				a.ChangedSince, err = p.number64("CHANGEDSINCE mod-sequence")
				if err == nil && a.ChangedSince == 0 {
					err = p.errf("CHANGEDSINCE mod-sequence must not be 0")
				}
				return err
			case "VANISHED":
				a.Vanished = true
				return nil
			}
			return p.errf("unknown fetch modifier %s", name)
		})
		if err == nil && a.Vanished && a.ChangedSince == 0 {
			// RFC 7162 §3.2.6: VANISHED requires CHANGEDSINCE.
			err = p.errf("VANISHED needs CHANGEDSINCE")
		}
	}
	return a, err
}

func isFetchNameChar(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.'
}

func (p *parser) fetchItem() (FetchItem, error) {
	name := asciiUpper(p.span(isFetchNameChar))
	if name == "" {
		return FetchItem{}, p.errf("expected fetch item %s", p.found())
	}
	it := FetchItem{Name: name}
	if fetchSimple[name] {
		return it, nil
	}
	switch name {
	case "BODY", "BODY.PEEK":
		it.Name, it.Peek = "BODY", name == "BODY.PEEK"
		if p.peek() != '[' {
			if it.Peek {
				return it, p.errf("BODY.PEEK needs a section in [ ]")
			}
			return it, nil
		}
		s, err := p.section(false)
		if err != nil {
			return it, err
		}
		it.Section = s
	case "BINARY", "BINARY.PEEK", "BINARY.SIZE":
		it.Name, it.Peek = name, name == "BINARY.PEEK"
		if it.Peek {
			it.Name = "BINARY"
		}
		if p.peek() != '[' {
			return it, p.errf("%s needs a section part in [ ]", name)
		}
		s, err := p.section(true)
		if err != nil {
			return it, err
		}
		it.Section = s
		if name == "BINARY.SIZE" {
			return it, nil
		}
	default:
		if _, ok := fetchMacros[name]; ok {
			return it, p.errf("fetch macro %s cannot be used in a list", name)
		}
		return it, p.errf("unknown fetch item %s", name)
	}
	if p.take('<') {
		off, err := p.number("partial offset")
		if err != nil {
			return it, err
		}
		if err := p.expect('.', ". in partial <offset.count>"); err != nil {
			return it, err
		}
		n, err := p.nzNumber("partial count")
		if err != nil {
			return it, err
		}
		it.Partial = &Partial{off, n}
		if err := p.expect('>', "> to end partial"); err != nil {
			return it, err
		}
	}
	return it, nil
}

// section reads "[" section-spec "]"; binary allows only a part number.
func (p *parser) section(binary bool) (*Section, error) {
	s := &Section{}
	p.take('[')
	for p.peek() >= '0' && p.peek() <= '9' {
		n, err := p.nzNumber("section part number")
		if err != nil {
			return nil, err
		}
		s.Part = append(s.Part, n)
		if p.peek() != '.' {
			break
		}
		p.pos++
		if c := p.peek(); c < '0' || c > '9' {
			break // a section-text follows
		}
	}
	if p.peek() != ']' {
		if binary {
			return nil, p.errf("BINARY section must be a part number like 1.2 %s", p.found())
		}
		spec := asciiUpper(p.span(func(c byte) bool { return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '.' }))
		switch spec {
		case "HEADER", "TEXT":
		case "MIME":
			if len(s.Part) == 0 {
				return nil, p.errf("MIME section needs a part number")
			}
		case "HEADER.FIELDS", "HEADER.FIELDS.NOT":
			if err := p.sp(); err != nil {
				return nil, err
			}
			if err := p.list("header field list", false, func() error {
				f, err := p.astring("header field name")
				s.Fields = append(s.Fields, f)
				return err
			}); err != nil {
				return nil, err
			}
		case "":
			return nil, p.errf("expected section %s", p.found())
		default:
			return nil, p.errf("unknown section %s", spec)
		}
		s.Specifier = spec
	} else if len(s.Part) > 0 && p.line[p.pos-1] == '.' {
		return nil, p.errf("section part number ends with a dot")
	}
	if err := p.expect(']', "] to end section"); err != nil {
		return nil, err
	}
	return s, nil
}
