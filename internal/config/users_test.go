package config

import (
	"os/user"
	"strconv"
	"strings"
	"testing"
)

func TestResolveUserNumeric(t *testing.T) {
	tests := []struct {
		spec     string
		uid, gid uint32
		err      string
	}{
		{"64100:64100", 64100, 64100, ""},
		{"1000", 1000, 1000, ""},
		{"1000:2000", 1000, 2000, ""},
		{"0", 0, 0, "must not run as root"},
		{"1000:0", 0, 0, "must not run as root or with group 0"},
		{"0:1000", 0, 0, "must not run as root"},
		{"4294967295", 0, 0, "out of range"},
		{"4294967296:1", 0, 0, "out of range"},
		{"1000:", 0, 0, "gid: empty number"},
		{"1000:x", 0, 0, `gid: "x" is not a decimal number`},
		{"1:2:3", 0, 0, `gid: "2:3" is not a decimal number`},
		{"", 0, 0, "empty user"},
	}
	for _, tc := range tests {
		u, err := ResolveUser(tc.spec)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.spec, err, tc.err)
			}
			continue
		}
		if err != nil || u.UID != tc.uid || u.GID != tc.gid || u.Spec != tc.spec {
			t.Errorf("%q: %+v %v, want uid %d gid %d", tc.spec, u, err, tc.uid, tc.gid)
		}
	}
}

func TestResolveUserByName(t *testing.T) {
	// "nobody" exists on every system moxd runs on.
	pw, err := user.Lookup("nobody")
	if err != nil {
		t.Fatalf("looking up nobody: %v", err)
	}
	u, err := ResolveUser("nobody")
	if err != nil {
		t.Fatal(err)
	}
	if u.Name != "nobody" || u.Spec != "nobody" || pw.Uid != strconv.FormatUint(uint64(u.UID), 10) || pw.Gid != strconv.FormatUint(uint64(u.GID), 10) {
		t.Errorf("got %+v, passwd has %s:%s", u, pw.Uid, pw.Gid)
	}

	_, err = ResolveUser("root")
	if err == nil || !strings.Contains(err.Error(), "must not run as root") {
		t.Errorf("root: got %v", err)
	}
	_, err = ResolveUser("_moxd-no-such-user")
	want := `unknown user "_moxd-no-such-user" (create it, see README "Install", or use a numeric "uid:gid")`
	if err == nil || err.Error() != want {
		t.Errorf("unknown user: got %v, want %s", err, want)
	}
}

func TestResolveGroup(t *testing.T) {
	g, err := user.LookupGroupId("0")
	if err != nil {
		t.Fatalf("group 0: %v", err)
	}
	tests := []struct {
		spec string
		gid  uint32
		err  string
	}{
		{"123", 123, ""},
		{"0", 0, ""},
		{g.Name, 0, ""}, // root or wheel: allowed for the admin group.
		{"_moxd-no-such-group", 0, `unknown group "_moxd-no-such-group"`},
		{"", 0, "empty group"},
		{"12a", 0, "not a decimal number"},
	}
	for _, tc := range tests {
		gid, err := ResolveGroup(tc.spec)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.spec, err, tc.err)
			}
			continue
		}
		if err != nil || gid != tc.gid {
			t.Errorf("%q: %d %v, want %d", tc.spec, gid, err, tc.gid)
		}
	}
}
