package imapd

import (
	"strings"
	"testing"
)

// TestCommandStates: every registered command outside the states RFC 9051
// §6 allows it in answers BAD, and the connection goes on.
func TestCommandStates(t *testing.T) {
	// A valid line of each command, so only the state decides.
	lines := map[string]string{
		"CAPABILITY": "CAPABILITY", "NOOP": "NOOP", "ID": "ID NIL",
		"STARTTLS": "STARTTLS", "LOGIN": "LOGIN a b", "AUTHENTICATE": "AUTHENTICATE PLAIN",
		"ENABLE": "ENABLE CONDSTORE", "SELECT": "SELECT INBOX", "EXAMINE": "EXAMINE INBOX",
		"NAMESPACE": "NAMESPACE", "LIST": `LIST "" "*"`, "LSUB": `LSUB "" "*"`,
		"STATUS": "STATUS INBOX (MESSAGES)", "CREATE": "CREATE x", "DELETE": "DELETE x",
		"RENAME": "RENAME x y", "SUBSCRIBE": "SUBSCRIBE x", "UNSUBSCRIBE": "UNSUBSCRIBE x",
		"CHECK": "CHECK", "CLOSE": "CLOSE", "UNSELECT": "UNSELECT", "EXPUNGE": "EXPUNGE",
		"FETCH": "FETCH 1 FLAGS", "STORE": `STORE 1 +FLAGS (\Seen)`, "SEARCH": "SEARCH ALL",
		"COPY": "COPY 1 Archive", "MOVE": "MOVE 1 Archive", "SORT": "SORT (ARRIVAL) UTF-8 ALL",
		"THREAD": "THREAD REFERENCES UTF-8 ALL", "IDLE": "IDLE", "APPEND": "APPEND INBOX {1+}\r\nx",
		"GETQUOTA": `GETQUOTA ""`, "GETQUOTAROOT": "GETQUOTAROOT INBOX", "SETQUOTA": `SETQUOTA "" (STORAGE 1)`,
		"COMPRESS": "COMPRESS DEFLATE",
	}
	for name := range verbs {
		if _, ok := lines[name]; !ok && name != "LOGOUT" {
			t.Errorf("command %s has no line in this test", name)
		}
	}
	e := newEnv(t, func(e *env) { e.srv.MaxBadCommands = 1000 })
	e.st.Deliver(t, "mjl@example.org", testMsgs[0])
	sel, _ := e.dial(t)
	sel.login()
	sel.ok("SELECT INBOX")
	auth, _ := e.dial(t)
	auth.login()
	notAuth, _ := e.dial(t)
	for _, st := range []struct {
		state state
		c     *client
	}{{stateNotAuth, notAuth}, {stateAuth, auth}, {stateSelected, sel}} {
		for name, v := range verbs {
			if v.states&(1<<st.state) != 0 || name == "LOGOUT" {
				continue
			}
			_, res := st.c.cmd(lines[name])
			if name == "APPEND" && st.state == stateNotAuth && strings.HasPrefix(res, "NO [CANNOT] ") {
				// The message data of a client that has not logged in is
				// refused before it is read (append.go).
				continue
			}
			if !strings.HasPrefix(res, "BAD ") {
				t.Errorf("%s in the %s state: %q, want BAD", name, st.state, res)
			}
		}
		st.c.ok("NOOP")
	}
}
