package config

// Writing domains.conf. moxd-master rewrites the file when an account, domain
// or address is changed through moxctl or the admin web pages (DESIGN.md §8):
//
//   - The new content is rendered from a Dynamic by MarshalDynamic, checked
//     with the same validation Load applies, and read back before anything
//     is written.
//   - Compare-and-swap: the file on disk must still hash to what master last
//     loaded. A file edited by hand in the meantime is never overwritten; the
//     change is refused with an *ErrChanged asking for "moxctl reload".
//   - Atomic replace: the new content goes to a temporary file in the same
//     directory (created exclusively), is synced, renamed over the old file,
//     and the directory is synced, so after a crash the file holds either
//     the old or the new content, never a mix.
//   - Previous versions are kept as domains.conf.1 (the newest) to
//     domains.conf.N, each written the same careful way.
//
// WriteDynamic is not safe for concurrent use on one path: master makes
// changes one at a time. A hand edit saved in the short moment between the
// last hash check and the rename is lost (it is neither kept as a previous
// version nor detected); rename offers no compare-and-swap.

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"moxd/internal/durable"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"unicode/utf8"
)

// defaultKeep is the number of previous versions WriteDynamic keeps when its
// keep argument is 0.
const defaultKeep = 10

// defaultDynamicMode is the mode of a newly created domains.conf.
const defaultDynamicMode fs.FileMode = 0o640

const dynamicHeader = `# domains.conf: domains, DKIM selectors and accounts of moxd.
#
# This file is written by moxd-master when domains or accounts are changed with
# moxctl or the admin web pages; previous versions are kept next to it as
# domains.conf.1 (the newest), domains.conf.2, and so on. It may be edited by
# hand: run "moxctl reload" afterwards. Until then, changes through moxd are
# refused, so that a hand edit is never overwritten.
`

// ErrChanged is returned by WriteDynamic when the file on disk no longer has
// the content moxd-master last loaded, typically after a hand edit.
type ErrChanged struct {
	Path string // The file that changed.
}

func (e *ErrChanged) Error() string {
	return fmt.Sprintf("%s was changed since moxd last loaded it (edited by hand?); run \"moxctl reload\" to load it, then make the change again", e.Path)
}

// MarshalDynamic renders d as commented TOML that Load/ParseDynamic reads back
// to an equal value (a nil list reads back as an empty one). Values are written
// as they are in d; ParseDynamic lower-cases domain names, so d reads back
// equal when it is normalized, as any Dynamic returned by Load or
// ParseDynamic is. The sections are preceded by a comment with the
// documentation of their options. It fails on values TOML cannot carry
// unchanged, such as strings that are not valid UTF-8.
func MarshalDynamic(d *Dynamic) ([]byte, error) {
	if d == nil {
		return nil, errors.New("rendering domains.conf: no configuration given")
	}
	var b bytes.Buffer
	b.WriteString(dynamicHeader)
	if err := marshalFields(&b, reflect.ValueOf(d).Elem(), nil, nil); err != nil {
		return nil, fmt.Errorf("rendering domains.conf: %w", err)
	}
	return b.Bytes(), nil
}

// marshalFields writes the fields of struct v. header is the table path of v
// without indices (nil for the top level), at the same path with indices,
// for messages. TOML requires a table's plain values before its sub-tables,
// so values come first, then the arrays of tables. At the top level each
// array of tables is preceded by its documentation.
func marshalFields(b *bytes.Buffer, v reflect.Value, header, at keyPath) error {
	t := v.Type()
	top := header == nil
	for i := range t.NumField() {
		f := t.Field(i)
		key := f.Tag.Get("toml")
		if key == "" || kindOf(f.Type) != kindValue {
			continue
		}
		fv := v.Field(i)
		if f.Tag.Get("omitempty") == "true" && fv.IsZero() {
			continue
		}
		if err := checkMarshalValue(fv, at.with(key)); err != nil {
			return err
		}
		if top {
			b.WriteByte('\n')
			writeComment(b, "", key+": "+f.Tag.Get("doc"))
		}
		b.WriteString(keyPath{key}.String() + " = " + tomlValue(fv) + "\n")
	}
	for i := range t.NumField() {
		f := t.Field(i)
		key := f.Tag.Get("toml")
		if key == "" {
			continue
		}
		switch kindOf(f.Type) {
		case kindValue:
			continue
		case kindTableArray:
		default:
			return fmt.Errorf("%s: field %s of type %s cannot be written (only values and arrays of tables are supported)", at.with(key), f.Name, f.Type)
		}
		sub := header.with(key)
		fv := v.Field(i)
		if top {
			b.WriteByte('\n')
			writeLegend(b, f, sub, "")
			if fv.Len() == 0 {
				fmt.Fprintf(b, "# (no [[%s]] sections)\n", sub)
			}
		}
		for j := range fv.Len() {
			b.WriteString("\n[[" + sub.String() + "]]\n")
			if err := marshalFields(b, fv.Index(j), sub, at.with(key, index(j))); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkMarshalValue reports values that cannot be written as TOML and read
// back unchanged.
func checkMarshalValue(v reflect.Value, at keyPath) error {
	switch v.Kind() {
	case reflect.String:
		if !utf8.ValidString(v.String()) {
			return fmt.Errorf("%s: %q is not valid UTF-8", at, v.String())
		}
		return nil
	case reflect.Bool, reflect.Int, reflect.Int32, reflect.Int64:
		return nil
	case reflect.Pointer:
		// Written only when set (omitempty); nil is an absent key.
		if v.IsNil() {
			return fmt.Errorf("%s: an unset optional value needs omitempty", at)
		}
		return checkMarshalValue(v.Elem(), at)
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.String {
			break
		}
		for i := range v.Len() {
			if err := checkMarshalValue(v.Index(i), at.with(index(i))); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("%s: values of type %s cannot be written", at, v.Type())
}

// writeLegend writes the documentation of the array of tables f and of its
// options, indented by indent, as comment lines.
func writeLegend(b *bytes.Buffer, f reflect.StructField, name keyPath, indent string) {
	writeComment(b, indent, "[["+name.String()+"]]: "+f.Tag.Get("doc"))
	et := f.Type.Elem()
	for i := range et.NumField() {
		ef := et.Field(i)
		key := ef.Tag.Get("toml")
		if key == "" {
			continue
		}
		if kindOf(ef.Type) == kindTableArray {
			writeLegend(b, ef, name.with(key), indent+"  ")
		} else {
			writeComment(b, indent+"  ", key+": "+ef.Tag.Get("doc"))
		}
	}
}

// writeComment writes text as "# " comment lines of at most 78 characters
// (unless a word is longer), the first indented by indent and the following
// ones by two more spaces.
func writeComment(b *bytes.Buffer, indent, text string) {
	line := "# " + indent
	start := len(line)
	for _, word := range strings.Fields(text) {
		if len(line) > start && utf8.RuneCountInString(line)+1+utf8.RuneCountInString(word) > 78 {
			b.WriteString(line + "\n")
			line = "# " + indent + "  "
			start = len(line)
		}
		if len(line) > start {
			line += " "
		}
		line += word
	}
	b.WriteString(line + "\n")
}

// WriteDynamic replaces path with d if the file's current content still hashes
// to expect (SHA-256, as Config.DynamicHash; a missing file hashes as empty
// content); otherwise it returns an *ErrChanged and leaves every file alone.
//
// d is first validated with the checks Load applies to domains.conf; an
// invalid d is refused (the error holds the *Error values) and nothing is
// written. The normalized form of d (lower-cased domain names) is written; d
// itself is not modified.
//
// The previous content is kept as path+".1" and older versions move up to
// path+".keep" (keep 0 means 10); versions beyond keep are removed. The new
// file, like the kept versions, gets the mode of the existing file (0640 for
// a new one), is written to a temporary file in the same directory, synced,
// renamed into place, and the directory is synced. A path that is a symbolic
// link is refused, since the rename would replace the link.
//
// WriteDynamic returns the SHA-256 of the new content, to pass as expect to
// the next call. If only the final directory sync fails, the file has been
// replaced: the hash is returned along with the error.
func WriteDynamic(path string, d *Dynamic, expect [32]byte, keep int) ([32]byte, error) {
	return writeDynamic(path, d, expect, keep, os.Rename)
}

// writeDynamic is WriteDynamic with the rename function passed in, so tests
// can make a rename fail as a crash would.
func writeDynamic(path string, d *Dynamic, expect [32]byte, keep int, rename func(oldpath, newpath string) error) ([32]byte, error) {
	var zero [32]byte
	if d == nil {
		return zero, fmt.Errorf("writing %s: no configuration given", path)
	}
	switch {
	case keep == 0:
		keep = defaultKeep
	case keep < 0:
		return zero, fmt.Errorf("writing %s: number of previous versions to keep is %d; use 0 for the default (%d) or a positive number", path, keep, defaultKeep)
	}

	nd := cloneValue(reflect.ValueOf(d).Elem()).Addr().Interface().(*Dynamic)
	if err := validateDynamic(path, nd, nil, dynOptions{}); err != nil {
		return zero, fmt.Errorf("not writing %s, the new configuration is invalid: %w", path, err)
	}
	data, err := MarshalDynamic(nd)
	if err != nil {
		return zero, fmt.Errorf("not writing %s: %w", path, err)
	}
	// Guard against a rendering bug: what is written must load as intended.
	if back, err := ParseDynamic(path, data); err != nil {
		return zero, fmt.Errorf("not writing %s: the rendered configuration does not load (a bug in moxd): %w", path, err)
	} else if !sameValue(reflect.ValueOf(back).Elem(), reflect.ValueOf(nd).Elem()) {
		return zero, fmt.Errorf("not writing %s: the rendered configuration loads differently (a bug in moxd)", path)
	}

	cur, mode, exists, err := readCurrent(path)
	if err != nil {
		return zero, err
	}
	if sha256.Sum256(cur) != expect {
		return zero, &ErrChanged{Path: path}
	}

	dir := filepath.Dir(path)
	if exists {
		if err := keepVersions(path, cur, mode, keep, rename); err != nil {
			return zero, err
		}
	}
	tmp, err := writeTemp(path, data, mode)
	if err != nil {
		return zero, err
	}
	// Check again as late as possible, to narrow the window for a hand edit.
	now, _, _, err := readCurrent(path)
	if err == nil && sha256.Sum256(now) != expect {
		err = &ErrChanged{Path: path}
	}
	if err == nil {
		if rerr := rename(tmp, path); rerr != nil {
			err = fmt.Errorf("replacing %s: %w", path, rerr)
		}
	}
	if err != nil {
		os.Remove(tmp)
		return zero, err
	}
	sum := sha256.Sum256(data)
	if err := durable.SyncDir(dir); err != nil {
		return sum, fmt.Errorf("%s was replaced, but syncing its directory failed: %w", path, err)
	}
	return sum, nil
}

// readCurrent returns the content and permission bits of the file at path.
// A missing file is not an error: it has no content and the default mode.
func readCurrent(path string) (data []byte, mode fs.FileMode, exists bool, err error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, defaultDynamicMode, false, nil
	} else if err != nil {
		return nil, 0, false, fmt.Errorf("writing %s: %w", path, err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return nil, 0, false, fmt.Errorf("%s is a symbolic link, which moxd would replace by a file when it writes the configuration; set domains_file in moxd.conf to the file the link points to", path)
	}
	if !fi.Mode().IsRegular() {
		return nil, 0, false, fmt.Errorf("%s is not a regular file; set domains_file in moxd.conf to a file", path)
	}
	data, err = os.ReadFile(path)
	if err != nil {
		return nil, 0, false, fmt.Errorf("reading %s: %w", path, err)
	}
	return data, fi.Mode().Perm(), true, nil
}

// versionPath is the name of the n-th previous version of path.
func versionPath(path string, n int) string {
	return fmt.Sprintf("%s.%d", path, n)
}

// keepVersions moves path.1 .. path.(keep-1) one place up, writes cur as
// path.1 and removes versions beyond keep (left over from a larger keep).
func keepVersions(path string, cur []byte, mode fs.FileMode, keep int, rename func(oldpath, newpath string) error) error {
	for n := keep + 1; ; n++ {
		err := os.Remove(versionPath(path, n))
		if errors.Is(err, fs.ErrNotExist) {
			break
		} else if err != nil {
			return fmt.Errorf("removing old version of %s: %w", path, err)
		}
	}
	for n := keep - 1; n >= 1; n-- {
		old := versionPath(path, n)
		if _, err := os.Lstat(old); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := rename(old, versionPath(path, n+1)); err != nil {
			return fmt.Errorf("keeping previous versions of %s: %w", path, err)
		}
	}
	tmp, err := writeTemp(path, cur, mode)
	if err != nil {
		return err
	}
	if err := rename(tmp, versionPath(path, 1)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("keeping previous version of %s: %w", path, err)
	}
	if err := durable.SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("keeping previous version of %s: %w", path, err)
	}
	return nil
}

// writeTemp writes data to a new temporary file next to path, with mode,
// synced to disk, and returns its name. On failure nothing is left behind.
func writeTemp(path string, data []byte, mode fs.FileMode) (name string, rerr error) {
	// os.CreateTemp opens with O_EXCL, so an existing file (or a link planted
	// under the name) is never written through.
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	defer func() {
		if rerr != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	// The mode given to open is reduced by the umask; set it exactly.
	if err := f.Chmod(mode); err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("writing %s: syncing: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Name(), nil
}

// cloneValue returns a deep copy of v (structs, slices and plain values, as
// the configuration types hold), addressable. Unexported fields, which hold
// what validation derives and are not in the file, are left zero.
func cloneValue(v reflect.Value) reflect.Value {
	c := reflect.New(v.Type()).Elem()
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if !v.Type().Field(i).IsExported() {
				continue
			}
			c.Field(i).Set(cloneValue(v.Field(i)))
		}
	case reflect.Slice:
		if v.IsNil() {
			break
		}
		c.Set(reflect.MakeSlice(v.Type(), v.Len(), v.Len()))
		for i := range v.Len() {
			c.Index(i).Set(cloneValue(v.Index(i)))
		}
	case reflect.Pointer:
		if v.IsNil() {
			break
		}
		c.Set(reflect.New(v.Type().Elem()))
		c.Elem().Set(cloneValue(v.Elem()))
	case reflect.Map:
		if v.IsNil() {
			break
		}
		c.Set(reflect.MakeMapWithSize(v.Type(), v.Len()))
		iter := v.MapRange()
		for iter.Next() {
			c.SetMapIndex(cloneValue(iter.Key()), cloneValue(iter.Value()))
		}
	default:
		c.Set(v)
	}
	return c
}

// sameValue reports whether a and b hold the same configuration: like
// reflect.DeepEqual, but a nil and an empty slice are the same, as they are
// in a TOML file. Unexported fields, not in the file, are not compared.
func sameValue(a, b reflect.Value) bool {
	switch a.Kind() {
	case reflect.Struct:
		for i := range a.NumField() {
			if !a.Type().Field(i).IsExported() {
				continue
			}
			if !sameValue(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Slice:
		if a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			if !sameValue(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return sameValue(a.Elem(), b.Elem())
	}
	return reflect.DeepEqual(a.Interface(), b.Interface())
}
