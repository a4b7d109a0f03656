package config

// Role users: each worker role runs as its own unix user (DESIGN.md §2).
// Users are given by name (looked up in the passwd database through os/user)
// or numerically, which localserve uses so no system users are needed.

import (
	"errors"
	"fmt"
	"os/user"
	"strconv"
	"strings"
)

// workerRoles are the roles that run as their own user, in start order.
var workerRoles = [...]string{"keys", "store", "queue", "smtp", "submission", "imap", "web"}

// RoleNames returns the names of the worker roles, the keys of Config.Users:
// keys, store, queue, smtp, submission, imap, web.
func RoleNames() []string {
	return append([]string(nil), workerRoles[:]...)
}

// isLogRole reports whether name may be used in role_log_levels: a worker
// role or master.
func isLogRole(name string) bool {
	if name == "master" {
		return true
	}
	for _, r := range workerRoles {
		if r == name {
			return true
		}
	}
	return false
}

// specs returns pointers to the configured user of each worker role.
func (u *Users) specs() map[string]*string {
	return map[string]*string{
		"keys":       &u.Keys,
		"store":      &u.Store,
		"queue":      &u.Queue,
		"smtp":       &u.SMTP,
		"submission": &u.Submission,
		"imap":       &u.IMAP,
		"web":        &u.Web,
	}
}

// User is a resolved role user.
type User struct {
	Spec string // As configured: a name, "uid:gid" or "uid".
	Name string // Name in the passwd database; empty for a numeric id without an entry.
	UID  uint32
	GID  uint32
}

// ResolveUser resolves a role user: a user name (passwd lookup, GID is the
// user's primary group), "uid:gid" or "uid" (gid = uid). A user with uid 0 or
// gid 0 is an error: no worker runs as root.
func ResolveUser(spec string) (User, error) {
	u := User{Spec: spec}
	if spec == "" {
		return u, errors.New("empty user (give a user name or a numeric \"uid:gid\")")
	}
	if isDigit(spec[0]) {
		uidStr, gidStr, hasGID := strings.Cut(spec, ":")
		if !hasGID {
			gidStr = uidStr
		}
		uid, err := parseID(uidStr)
		if err != nil {
			return u, fmt.Errorf("user %q: uid: %w", spec, err)
		}
		gid, err := parseID(gidStr)
		if err != nil {
			return u, fmt.Errorf("user %q: gid: %w", spec, err)
		}
		u.UID, u.GID = uid, gid
		if pw, err := user.LookupId(uidStr); err == nil {
			u.Name = pw.Username
		}
	} else {
		pw, err := user.Lookup(spec)
		if err != nil {
			var unknown user.UnknownUserError
			if errors.As(err, &unknown) {
				return u, fmt.Errorf("unknown user %q (create it, see README \"Install\", or use a numeric \"uid:gid\")", spec)
			}
			return u, fmt.Errorf("looking up user %q: %w", spec, err)
		}
		u.Name = pw.Username
		if u.UID, err = parseID(pw.Uid); err != nil {
			return u, fmt.Errorf("user %q: passwd uid %q: %w", spec, pw.Uid, err)
		}
		if u.GID, err = parseID(pw.Gid); err != nil {
			return u, fmt.Errorf("user %q: passwd gid %q: %w", spec, pw.Gid, err)
		}
	}
	if u.UID == 0 || u.GID == 0 {
		return u, fmt.Errorf("user %q has uid %d, gid %d: a role must not run as root or with group 0; use a dedicated user", spec, u.UID, u.GID)
	}
	return u, nil
}

// ResolveGroup resolves a group name or number to a gid. Group 0 is allowed:
// on the BSDs the admin group wheel has gid 0.
func ResolveGroup(spec string) (uint32, error) {
	if spec == "" {
		return 0, errors.New("empty group")
	}
	if isDigit(spec[0]) {
		gid, err := parseID(spec)
		if err != nil {
			return 0, fmt.Errorf("group %q: %w", spec, err)
		}
		return gid, nil
	}
	g, err := user.LookupGroup(spec)
	if err != nil {
		var unknown user.UnknownGroupError
		if errors.As(err, &unknown) {
			return 0, fmt.Errorf("unknown group %q", spec)
		}
		return 0, fmt.Errorf("looking up group %q: %w", spec, err)
	}
	gid, err := parseID(g.Gid)
	if err != nil {
		return 0, fmt.Errorf("group %q: gid %q: %w", spec, g.Gid, err)
	}
	return gid, nil
}

// lookupUID resolves the name of a unix user of an account
// (account.unix_users) in the passwd database. Unlike ResolveUser it takes
// only names and allows root: these users' mail is submitted, nothing runs
// as them.
func lookupUID(name string) (uint32, error) {
	pw, err := user.Lookup(name)
	if err != nil {
		var unknown user.UnknownUserError
		if errors.As(err, &unknown) {
			return 0, fmt.Errorf("unknown user %q (remove it, or give a numeric uid)", name)
		}
		return 0, fmt.Errorf("looking up user %q: %w", name, err)
	}
	uid, err := parseID(pw.Uid)
	if err != nil {
		return 0, fmt.Errorf("user %q: passwd uid %q: %w", name, pw.Uid, err)
	}
	return uid, nil
}

func isDigit(c byte) bool {
	return c >= '0' && c <= '9'
}

// parseID parses a decimal uid or gid. 4294967295 is refused: as (uid_t)-1 it
// means "leave unchanged" to setuid-family system calls.
func parseID(s string) (uint32, error) {
	if s == "" {
		return 0, errors.New("empty number")
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, fmt.Errorf("%q is not a decimal number", s)
		}
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil || v == 1<<32-1 {
		return 0, fmt.Errorf("%q is out of range", s)
	}
	return uint32(v), nil
}

// resolveUsers resolves the users of all worker roles. With localserve and
// master not running as root, every role is the invoking user.
func resolveUsers(file string, s *Static, kl *keyLines, e env) (map[string]User, []error) {
	users := map[string]User{}
	if s.Localserve && e.getuid() != 0 {
		uid, gid := uint32(e.getuid()), uint32(e.getgid())
		for _, role := range workerRoles {
			users[role] = User{Spec: fmt.Sprintf("%d:%d", uid, gid), UID: uid, GID: gid}
		}
		return users, nil
	}
	var errs []error
	byUID := map[uint32]string{}
	specs := s.Users.specs()
	for _, role := range workerRoles {
		key := keyPath{"users", role}
		u, err := e.lookupUser(*specs[role])
		if err != nil {
			errs = append(errs, kl.errorf(file, key, "%v", err))
			continue
		}
		// DESIGN.md §2: one unix user per role, so a compromised role cannot
		// signal, trace or read the files of another.
		if other, ok := byUID[u.UID]; ok {
			errs = append(errs, kl.errorf(file, key, "uid %d is also the uid of users.%s; every role needs its own user", u.UID, other))
			continue
		}
		byUID[u.UID] = role
		users[role] = u
	}
	return users, errs
}
