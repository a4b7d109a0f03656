package config

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// fullDynamic is a normalized configuration using every kind of value,
// including internationalized domains and local parts and a quoted local
// part with characters TOML must escape.
func fullDynamic() *Dynamic {
	zero, many := 0, 5000
	return &Dynamic{
		PostmasterAccount: "postmaster",
		Domains: []Domain{
			{Name: "example.com", DKIM: []DKIMSelector{{"moxd-ed", "ed25519"}, {"moxd-rsa", "rsa2048"}}, LocalpartSeparators: []string{"+", "-"},
				Aliases: []Alias{{Address: "team@example.com", Members: []string{"mjl@example.com", "jöran@bücher.example"}, MembersMaySend: true}},
				Routes:  []Route{{ToDomains: []string{".bücher.example", "例え.テスト"}, MinimumAttempts: 2}}},
			{Name: "bücher.example", LocalpartCaseSensitive: true},
			{Name: "例え.テスト", DKIM: []DKIMSelector{{"sel.2024", "ed25519"}}},
		},
		Accounts: []Account{
			{Name: "mjl", Addresses: []string{"mjl@example.com", "Mjl.Other@bücher.example", "@例え.テスト"}, MaxMessagesPerDay: &zero,
				Destinations:   []Destination{{"mjl@example.com", "Archive/Direct"}, {"moxd@example.com", "Lists/moxd"}},
				UniqueMailFrom: true, Routes: []Route{{FromDomains: []string{"example.com"}}, {}}},
			{Name: "jo_ran-2.x", Addresses: []string{"jöran@bücher.example", "用户@例え.テスト", `"a \"quoted\" \\ one"@example.com`}, MaxFirstTimeRecipientsPerDay: &many},
			{Name: "empty", Addresses: []string{}},
			{Name: "postmaster", Addresses: []string{"postmaster@example.com", "postmaster@bücher.example", "postmaster@例え.テスト"}, Quota: "10G"},
		},
		Routes: []Route{{FromDomains: []string{".example.com"}, ToDomains: []string{"example.net"}, MinimumAttempts: 1}},
	}
}

// withUnixUsers is a normalized configuration with unix users, which
// validation resolves.
func withUnixUsers(t *testing.T) *Dynamic {
	d := withPostmaster(&Dynamic{
		Domains:  []Domain{{Name: "example.org"}},
		Accounts: []Account{{Name: "a", Addresses: []string{"a@example.org"}, UnixUsers: []string{"1000", "1001"}}, {Name: "b", Addresses: []string{}, UnixUsers: []string{}}},
	})
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	return d
}

// withPostmaster gives every domain of d that has no postmaster address one,
// in an account "pm" (RFC 5321 §4.5.1 makes Load require it).
func withPostmaster(d *Dynamic) *Dynamic {
	var l []string
	for _, dom := range d.Domains {
		if _, _, ok := d.AddressOwner("postmaster@" + dom.Name); !ok {
			l = append(l, "postmaster@"+dom.Name)
		}
	}
	if len(l) > 0 {
		d.Accounts = append(d.Accounts, Account{Name: "pm", Addresses: l})
	}
	return d
}

// pmExampleCom is the account holding postmaster@example.com in the files
// the tests start from.
const pmExampleCom = "\n[[account]]\nname = \"pm\"\naddresses = [\"postmaster@example.com\"]\n"

func TestMarshalDynamicRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		d    *Dynamic
	}{
		{"empty", &Dynamic{}},
		{"domain only", withPostmaster(&Dynamic{Domains: []Domain{{Name: "example.org"}}})},
		{"full", fullDynamic()},
		{"unix users", withUnixUsers(t)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data, err := MarshalDynamic(tc.d)
			if err != nil {
				t.Fatalf("MarshalDynamic: %v", err)
			}
			got, err := ParseDynamic("domains.conf", data)
			if err != nil {
				t.Fatalf("ParseDynamic of marshaled output: %v\n%s", err, data)
			}
			if !reflect.DeepEqual(got, tc.d) {
				t.Errorf("read back %#v\nwant %#v\nfile:\n%s", got, tc.d, data)
			}
			// The file documents its sections for a reader editing it by hand.
			for _, want := range []string{"# [[domain]]: ", "# [[account]]: ", "#   [[domain.dkim]]: ", "moxctl reload"} {
				if !bytes.Contains(data, []byte(want)) {
					t.Errorf("output lacks %q:\n%s", want, data)
				}
			}
		})
	}
}

func TestMarshalDynamicRefusesBadUTF8(t *testing.T) {
	d := &Dynamic{Accounts: []Account{{Name: "mjl", Addresses: []string{"a\xffb@example.com"}}}}
	_, err := MarshalDynamic(d)
	if err == nil || !strings.Contains(err.Error(), "account[0].addresses[0]") {
		t.Fatalf("got error %v, want one naming account[0].addresses[0]", err)
	}
}

// setup writes moxd.conf (and domains.conf when domains is not empty) and
// loads them like master does. It returns the path of moxd.conf and the
// loaded configuration.
func setup(t *testing.T, domains string) (string, *Config) {
	t.Helper()
	p := writeFiles(t, "hostname = \"mail.example.com\"\n", domains)
	c, err := load(p, testEnv(0, 0))
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return p, c
}

// dirNames lists the names in dir, sorted.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWriteDynamicNewFileLoads(t *testing.T) {
	p, c := setup(t, "")
	d := fullDynamic()
	// Not normalized: the written file holds the lower-cased names, and the
	// caller's value is left alone.
	d.Domains[0].Name = "Example.COM"
	d.Accounts[0].Addresses[0] = "mjl@EXAMPLE.com"
	orig := cloneValue(reflect.ValueOf(d).Elem()).Interface()

	sum, err := WriteDynamic(c.DomainsPath, d, c.DynamicHash, 0)
	if err != nil {
		t.Fatalf("WriteDynamic: %v", err)
	}
	if !reflect.DeepEqual(*d, orig) {
		t.Errorf("WriteDynamic modified its argument: %#v", d)
	}
	c2, err := load(p, testEnv(0, 0))
	if err != nil {
		t.Fatalf("loading the written file: %v", err)
	}
	if sum != c2.DynamicHash {
		t.Errorf("returned hash %x, Load computes %x", sum, c2.DynamicHash)
	}
	if want := fullDynamic(); !reflect.DeepEqual(&c2.Dynamic, want) {
		t.Errorf("loaded %#v\nwant %#v", c2.Dynamic, want)
	}
	fi, err := os.Stat(c.DomainsPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("new file has mode %o, want 640", fi.Mode().Perm())
	}
	// No previous version existed, so none is kept; no temporary file is left.
	if got, want := dirNames(t, filepath.Dir(p)), []string{"domains.conf", "moxd.conf"}; !slices.Equal(got, want) {
		t.Errorf("directory holds %q, want %q", got, want)
	}
}

func TestWriteDynamicRotation(t *testing.T) {
	p, c := setup(t, "# hand-written start\n")
	if err := os.Chmod(c.DomainsPath, 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(p)
	contents := []string{readString(t, c.DomainsPath)}
	hash := c.DynamicHash
	const keep = 3
	for i := 1; i <= 6; i++ {
		d := withPostmaster(&Dynamic{Domains: []Domain{{Name: fmt.Sprintf("d%d.example", i)}}})
		var err error
		hash, err = WriteDynamic(c.DomainsPath, d, hash, keep)
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		contents = append(contents, readString(t, c.DomainsPath))
		if !strings.Contains(contents[i], fmt.Sprintf("d%d.example", i)) {
			t.Fatalf("write %d: file does not hold the new domain:\n%s", i, contents[i])
		}

		// path.1 is the version just replaced, path.2 the one before, ...
		wantNames := []string{"domains.conf", "moxd.conf"}
		for n := 1; n <= min(i, keep); n++ {
			vp := versionPath(c.DomainsPath, n)
			if got := readString(t, vp); got != contents[i-n] {
				t.Errorf("write %d: %s holds %q, want %q", i, filepath.Base(vp), got, contents[i-n])
			}
			wantNames = append(wantNames, filepath.Base(vp))
		}
		slices.Sort(wantNames)
		if got := dirNames(t, dir); !slices.Equal(got, wantNames) {
			t.Errorf("write %d: directory holds %q, want %q", i, got, wantNames)
		}
	}
	// The mode of the existing file carries over to the new file and the
	// kept versions.
	for _, name := range []string{"domains.conf", "domains.conf.1", "domains.conf.3"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %o, want 600", name, fi.Mode().Perm())
		}
	}

	// A smaller keep removes the versions beyond it.
	if _, err := WriteDynamic(c.DomainsPath, &Dynamic{}, hash, 1); err != nil {
		t.Fatal(err)
	}
	if got, want := dirNames(t, dir), []string{"domains.conf", "domains.conf.1", "moxd.conf"}; !slices.Equal(got, want) {
		t.Errorf("after keep 1: directory holds %q, want %q", got, want)
	}
	if got := readString(t, versionPath(c.DomainsPath, 1)); got != contents[6] {
		t.Errorf("after keep 1: domains.conf.1 holds %q, want %q", got, contents[6])
	}
}

func TestWriteDynamicChanged(t *testing.T) {
	const initial = "[[domain]]\nname = \"example.com\"\n" + pmExampleCom
	tests := []struct {
		name  string
		touch func(t *testing.T, path string) // The change made behind master's back.
	}{
		{"hand edit", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("[[domain]]\nname = \"other.example\"\n"+initial), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"removed", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, c := setup(t, initial)
			tc.touch(t, c.DomainsPath)
			before := dirNames(t, filepath.Dir(p))
			var edited string
			if slices.Contains(before, "domains.conf") {
				edited = readString(t, c.DomainsPath)
			}

			d := withPostmaster(&Dynamic{Domains: []Domain{{Name: "example.com"}, {Name: "new.example"}}})
			_, err := WriteDynamic(c.DomainsPath, d, c.DynamicHash, 0)
			var ce *ErrChanged
			if !errors.As(err, &ce) {
				t.Fatalf("got error %v, want *ErrChanged", err)
			}
			if ce.Path != c.DomainsPath || !strings.Contains(err.Error(), c.DomainsPath) || !strings.Contains(err.Error(), "moxctl reload") {
				t.Errorf("error %q should name %s and say to run moxctl reload", err, c.DomainsPath)
			}
			if got := dirNames(t, filepath.Dir(p)); !slices.Equal(got, before) {
				t.Errorf("directory holds %q, want %q as before", got, before)
			}
			if edited != "" {
				if got := readString(t, c.DomainsPath); got != edited {
					t.Errorf("file changed to %q", got)
				}
			}
		})
	}
}

func TestWriteDynamicInvalid(t *testing.T) {
	const initial = "[[domain]]\nname = \"example.com\"\n" + pmExampleCom
	tests := []struct {
		name string
		d    Dynamic
		key  string // Key named by the validation error.
	}{
		{"non-ASCII account name", Dynamic{
			Domains:  []Domain{{Name: "example.com"}},
			Accounts: []Account{{Name: "jöran", Addresses: []string{"jöran@example.com"}}},
		}, "account[0].name"},
		{"address in unknown domain", Dynamic{
			Domains:  []Domain{{Name: "example.com"}},
			Accounts: []Account{{Name: "mjl", Addresses: []string{"mjl@example.org"}}},
		}, "account[0].addresses[0]"},
		{"duplicate domain", Dynamic{
			Domains: []Domain{{Name: "example.com"}, {Name: "EXAMPLE.com"}},
		}, "domain[1].name"},
		{"bad DKIM algorithm", Dynamic{
			Domains: []Domain{{Name: "example.com", DKIM: []DKIMSelector{{"s", "dsa"}}}},
		}, "domain[0].dkim[0].algorithm"},
		{"address in two accounts", Dynamic{
			Domains:  []Domain{{Name: "example.com"}},
			Accounts: []Account{{Name: "a", Addresses: []string{"x@example.com"}}, {Name: "b", Addresses: []string{"X@example.com"}}},
		}, "account[1].addresses[0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, c := setup(t, initial)
			_, err := WriteDynamic(c.DomainsPath, &tc.d, c.DynamicHash, 0)
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("got error %v, want a validation *Error", err)
			}
			if ce.Key != tc.key {
				t.Errorf("error names key %q, want %q (%v)", ce.Key, tc.key, err)
			}
			if got := readString(t, c.DomainsPath); got != initial {
				t.Errorf("file changed to %q", got)
			}
			if got, want := dirNames(t, filepath.Dir(p)), []string{"domains.conf", "moxd.conf"}; !slices.Equal(got, want) {
				t.Errorf("directory holds %q, want %q", got, want)
			}
		})
	}
}

// TestWriteDynamicRenameFails simulates a crash at each rename: the current
// file stays intact and no temporary file is left behind.
func TestWriteDynamicRenameFails(t *testing.T) {
	const initial = "[[domain]]\nname = \"example.com\"\n" + pmExampleCom
	tests := []struct {
		name   string
		failOn string // Base name of the rename target that fails.
	}{
		{"replacing the file", "domains.conf"},
		{"keeping the previous version", "domains.conf.1"},
		{"moving an older version up", "domains.conf.2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, c := setup(t, initial)
			dir := filepath.Dir(p)
			// One earlier write, so there is a version to move up.
			d1 := withPostmaster(&Dynamic{Domains: []Domain{{Name: "example.com"}, {Name: "one.example"}}})
			hash, err := WriteDynamic(c.DomainsPath, d1, c.DynamicHash, 0)
			if err != nil {
				t.Fatal(err)
			}
			current := readString(t, c.DomainsPath)

			crash := errors.New("simulated crash")
			rename := func(oldpath, newpath string) error {
				if filepath.Base(newpath) == tc.failOn {
					return crash
				}
				return os.Rename(oldpath, newpath)
			}
			d2 := withPostmaster(&Dynamic{Domains: []Domain{{Name: "example.com"}, {Name: "two.example"}}})
			if _, err := writeDynamic(c.DomainsPath, d2, hash, 0, rename); !errors.Is(err, crash) {
				t.Fatalf("got error %v, want the simulated crash", err)
			}
			if got := readString(t, c.DomainsPath); got != current {
				t.Errorf("file changed to %q, want %q", got, current)
			}
			for _, name := range dirNames(t, dir) {
				if strings.Contains(name, ".tmp") {
					t.Errorf("temporary file %s left behind", name)
				}
			}

			// The file still matches the hash, so the change can be retried.
			if _, err := WriteDynamic(c.DomainsPath, d2, hash, 0); err != nil {
				t.Fatalf("retry: %v", err)
			}
			if got := readString(t, c.DomainsPath); !strings.Contains(got, "two.example") {
				t.Errorf("retry did not write the change:\n%s", got)
			}
		})
	}
}

func TestWriteDynamicRefusals(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, path string)
		keep    int
		want    string
	}{
		{"symbolic link", func(t *testing.T, path string) {
			target := path + ".real"
			if err := os.WriteFile(target, nil, 0o640); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, path); err != nil {
				t.Fatal(err)
			}
		}, 0, "symbolic link"},
		{"directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o755); err != nil {
				t.Fatal(err)
			}
		}, 0, "not a regular file"},
		{"negative keep", func(t *testing.T, path string) {}, -1, "keep"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "domains.conf")
			tc.prepare(t, path)
			before := dirNames(t, filepath.Dir(path))
			_, err := WriteDynamic(path, &Dynamic{}, sha256.Sum256(nil), tc.keep)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one mentioning %q", err, tc.want)
			}
			if got := dirNames(t, filepath.Dir(path)); !slices.Equal(got, before) {
				t.Errorf("directory holds %q, want %q as before", got, before)
			}
			if fi, err := os.Lstat(path); err == nil && fi.Mode().IsRegular() {
				t.Errorf("%s became a regular file", path)
			} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Fatal(err)
			}
		})
	}
}

// TestWriteDynamicLateEdit: a hand edit saved while the previous version is
// being kept is detected by the last check before the rename.
func TestWriteDynamicLateEdit(t *testing.T) {
	p, c := setup(t, "[[domain]]\nname = \"example.com\"\n"+pmExampleCom)
	const edit = "[[domain]]\nname = \"edited.example\"\n"
	rename := func(oldpath, newpath string) error {
		if err := os.Rename(oldpath, newpath); err != nil {
			return err
		}
		if newpath == versionPath(c.DomainsPath, 1) {
			return os.WriteFile(c.DomainsPath, []byte(edit), 0o640)
		}
		return nil
	}
	d := withPostmaster(&Dynamic{Domains: []Domain{{Name: "new.example"}}})
	_, err := writeDynamic(c.DomainsPath, d, c.DynamicHash, 0, rename)
	var ce *ErrChanged
	if !errors.As(err, &ce) {
		t.Fatalf("got error %v, want *ErrChanged", err)
	}
	if got := readString(t, c.DomainsPath); got != edit {
		t.Errorf("file holds %q, want the hand edit %q", got, edit)
	}
	for _, name := range dirNames(t, filepath.Dir(p)) {
		if strings.Contains(name, ".tmp") {
			t.Errorf("temporary file %s left behind", name)
		}
	}
}
