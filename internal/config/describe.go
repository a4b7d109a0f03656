package config

// Writing configuration files from the struct types: Describe and
// DescribeDomains (annotated files with every option), the etc/ examples and
// the localserve files all come from writeConfig, so the documentation lives
// only in the struct tags.
//
// Layout of the output: each option is preceded by its doc comment. When an
// option is empty and its field has an example tag, an "Example:" comment
// follows. Arrays of tables ([[tls.certificate]], [[domain]], ...) that are
// empty are shown as a commented-out example section; commented-out TOML
// lines start with "#" and no space, documentation lines with "# ".

import (
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
)

const describeHeader = `# moxd.conf: static configuration of moxd, read by moxd-master when it starts
# (moxd-master -n checks it). Changes take effect after a restart.
#
# This file lists every option with its documentation; the values shown are the
# defaults, except hostname, which has no default and must be set.
# Domains and accounts are in domains.conf (see domains_file).
# This text is generated from the moxd source ("moxctl config describe").
`

const describeDomainsHeader = `# domains.conf: dynamic configuration of moxd: domains, DKIM selectors and
# accounts. moxd-master reads it at start and on "moxctl reload"; moxctl and
# the admin web pages rewrite it (atomically, keeping previous versions).
# Edit it by hand only with care: a change made while moxd runs is detected
# and must be loaded with "moxctl reload" before the next change through moxd.
#
# This file lists every option with its documentation and commented-out
# examples. This text is generated from the moxd source, like the output of
# "moxctl config describe".
`

// describeStatic is the value Describe prints: the defaults and an example
// host name.
func describeStatic() Static {
	s := defaultStatic()
	s.Hostname = "mail.example.com"
	return s
}

// Describe writes an annotated moxd.conf with every option, its
// documentation and its default. The output is valid TOML.
func Describe(w io.Writer) error {
	return describe(w, false)
}

// DescribeDomains writes an annotated domains.conf with every option, its
// documentation and commented-out examples. The output is valid TOML.
func DescribeDomains(w io.Writer) error {
	return describeDomains(w, false)
}

func describe(w io.Writer, activeExamples bool) error {
	s := describeStatic()
	return writeConfig(w, describeHeader, &s, activeExamples)
}

func describeDomains(w io.Writer, activeExamples bool) error {
	return writeConfig(w, describeDomainsHeader, &Dynamic{}, activeExamples)
}

// writeConfig writes header and then v (a pointer to Static or Dynamic) as
// documented TOML. With activeExamples, empty options with an example get the
// example as value, which tests use to check that the examples are valid.
func writeConfig(w io.Writer, header string, v any, activeExamples bool) error {
	cw := &configWriter{active: activeExamples}
	cw.b.WriteString(header)
	if err := cw.table(reflect.ValueOf(v).Elem(), nil); err != nil {
		return err
	}
	if _, err := io.WriteString(w, cw.b.String()); err != nil {
		return fmt.Errorf("writing configuration: %w", err)
	}
	return nil
}

type configWriter struct {
	b       strings.Builder
	active  bool
	comment string // "#" while writing a commented-out example section.
}

type fieldKind int

const (
	kindValue      fieldKind = iota // string, bool, []string: key = value
	kindMap                         // map[string]string: [table] of keys
	kindTable                       // struct: [table]
	kindTableArray                  // []struct: [[array]]
)

func kindOf(t reflect.Type) fieldKind {
	switch {
	case t.Kind() == reflect.Map:
		return kindMap
	case t.Kind() == reflect.Struct:
		return kindTable
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		return kindTableArray
	}
	return kindValue
}

// table writes the fields of struct v, whose header (if any) was written.
// Plain values come first, as TOML requires, then sub-tables and arrays of
// tables in field order.
func (cw *configWriter) table(v reflect.Value, path []string) error {
	t := v.Type()
	for _, pass := range []fieldKind{kindValue, kindMap, kindTable, kindTableArray} {
		for i := range t.NumField() {
			f := t.Field(i)
			key := f.Tag.Get("toml")
			if key == "" || kindOf(f.Type) != pass {
				continue
			}
			if err := cw.field(f, v.Field(i), path, key); err != nil {
				return err
			}
		}
	}
	return nil
}

func (cw *configWriter) field(f reflect.StructField, v reflect.Value, path []string, key string) error {
	doc := f.Tag.Get("doc")
	example := f.Tag.Get("example")
	sub := append(slices.Clone(path), key)
	header := keyPath(sub).String()
	switch kindOf(f.Type) {
	case kindValue:
		cw.blank()
		cw.doc(doc)
		if v.IsZero() && example != "" {
			ev, err := exampleValue(f.Type, key, example)
			if err != nil {
				return err
			}
			if cw.active {
				v = ev
			} else {
				cw.doc("Example: " + keyPath{key}.String() + " = " + tomlValue(ev))
			}
		}
		if v.Kind() == reflect.Pointer && v.IsNil() {
			return nil // Absent: the default applies.
		}
		cw.line(keyPath{key}.String() + " = " + tomlValue(v))
	case kindMap:
		cw.blank()
		cw.doc(doc)
		cw.line("[" + header + "]")
		if v.Len() == 0 && example != "" {
			m := map[string]string{}
			if _, err := toml.Decode(example, &m); err != nil {
				return fmt.Errorf("example of %s: %w", header, err)
			}
			v = reflect.ValueOf(m)
			if !cw.active {
				cw.doc("Example:")
				cw.withComment(func() { cw.mapEntries(v) })
				return nil
			}
		}
		cw.mapEntries(v)
	case kindTable:
		cw.blank()
		cw.doc(doc)
		cw.line("[" + header + "]")
		return cw.table(v, sub)
	case kindTableArray:
		cw.blank()
		cw.doc(doc)
		if v.Len() == 0 {
			ev := exampleStruct(f.Type.Elem())
			if cw.active {
				return cw.element(ev, sub, header)
			}
			cw.doc("Example:")
			var err error
			cw.withComment(func() { err = cw.element(ev, sub, header) })
			return err
		}
		for i := range v.Len() {
			if err := cw.element(v.Index(i), sub, header); err != nil {
				return err
			}
		}
	}
	return nil
}

func (cw *configWriter) element(v reflect.Value, path []string, header string) error {
	cw.line("[[" + header + "]]")
	return cw.table(v, path)
}

func (cw *configWriter) mapEntries(v reflect.Value) {
	keys := v.MapKeys()
	slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
	for _, k := range keys {
		cw.line(keyPath{k.String()}.String() + " = " + tomlValue(v.MapIndex(k)))
	}
}

// withComment runs fn with TOML lines commented out. Nested calls keep a
// single "#".
func (cw *configWriter) withComment(fn func()) {
	prev := cw.comment
	cw.comment = "#"
	fn()
	cw.comment = prev
}

func (cw *configWriter) line(s string) {
	cw.b.WriteString(cw.comment)
	cw.b.WriteString(s)
	cw.b.WriteByte('\n')
}

// blank separates options by an empty line, but not at the very start.
func (cw *configWriter) blank() {
	if cw.b.Len() > 0 {
		cw.b.WriteByte('\n')
	}
}

// doc writes text as comment lines wrapped at 78 columns.
func (cw *configWriter) doc(text string) {
	if text == "" {
		return
	}
	line := "#"
	for _, word := range strings.Fields(text) {
		if len(line) > 1 && utf8.RuneCountInString(line)+1+utf8.RuneCountInString(word) > 78 {
			cw.b.WriteString(line + "\n")
			line = "#"
		}
		line += " " + word
	}
	cw.b.WriteString(line + "\n")
}

// exampleValue decodes the TOML value text of an example tag into a value of
// type t.
func exampleValue(t reflect.Type, key, example string) (reflect.Value, error) {
	holder := reflect.New(reflect.StructOf([]reflect.StructField{{
		Name: "V",
		Type: t,
		Tag:  reflect.StructTag(`toml:"v"`),
	}}))
	if _, err := toml.Decode("v = "+example, holder.Interface()); err != nil {
		return reflect.Value{}, fmt.Errorf("example of %s: %w", key, err)
	}
	return holder.Elem().Field(0), nil
}

// exampleStruct returns a value of struct type t with every field set from
// its example tag, and one example element in each array of tables. The
// example tags are checked by the tests, so a bad tag cannot reach users.
func exampleStruct(t reflect.Type) reflect.Value {
	v := reflect.New(t).Elem()
	for i := range t.NumField() {
		f := t.Field(i)
		switch kindOf(f.Type) {
		case kindTableArray:
			s := reflect.MakeSlice(f.Type, 1, 1)
			s.Index(0).Set(exampleStruct(f.Type.Elem()))
			v.Field(i).Set(s)
		case kindValue:
			if ex := f.Tag.Get("example"); ex != "" {
				if ev, err := exampleValue(f.Type, f.Tag.Get("toml"), ex); err == nil {
					v.Field(i).Set(ev)
				}
			}
		}
	}
	return v
}

// tomlValue formats a string, bool, integer, a list of them, or a pointer to
// one of them as TOML.
func tomlValue(v reflect.Value) string {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return `""`
		}
		return tomlValue(v.Elem())
	case reflect.String:
		return tomlString(v.String())
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case reflect.Int, reflect.Int64, reflect.Int32:
		return strconv.FormatInt(v.Int(), 10)
	case reflect.Slice:
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = tomlValue(v.Index(i))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return tomlString(fmt.Sprint(v.Interface()))
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range s {
		switch {
		case c == '"':
			b.WriteString(`\"`)
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\t':
			b.WriteString(`\t`)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, c)
		default:
			b.WriteRune(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
