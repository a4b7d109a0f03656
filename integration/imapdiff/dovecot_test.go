//go:build linux

package imapdiff

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// dovecotConf is the loopback configuration from PEERS.md §3, with absolute
// paths filled in. Any user name logs in with password "pass"; mail is
// maildir (fs layout, "/" separator) owned by nobody:nogroup.
const dovecotConf = `protocols = imap
listen = 127.0.0.1
base_dir = {{DIR}}/run
state_dir = {{DIR}}/state
log_path = {{DIR}}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:{{DIR}}/mail/%u:LAYOUT=fs
namespace inbox {
  inbox = yes
  separator = /
  mailbox Drafts {
    special_use = \Drafts
  }
  mailbox Sent {
    special_use = \Sent
  }
  mailbox Trash {
    special_use = \Trash
  }
  mailbox Junk {
    special_use = \Junk
  }
}
passdb {
  driver = static
  args = password=pass
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home={{DIR}}/mail/%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = {{PORT}}
  }
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 0
  }
  inet_listener pop3s {
    port = 0
  }
}
protocol imap {
  mail_max_userip_connections = 100
}
`

// dovecotBinary is Debian's dovecot-imapd master.
const dovecotBinary = "/usr/sbin/dovecot"

// skipOrFail skips the test, except in CI (CI set), where a missing
// dependency is a failure.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("CI: "+format, args...)
	}
	t.Skipf(format, args...)
}

// startDovecot runs dovecot in the foreground with its own config in a fresh
// directory, waits until it accepts connections and returns its target. It
// is stopped by PID when the test ends.
func startDovecot(t *testing.T) Target {
	t.Helper()
	for _, p := range []string{dovecotBinary, "/usr/lib/dovecot/imap", "/usr/lib/dovecot/imap-login"} {
		if _, err := os.Stat(p); err != nil {
			skipOrFail(t, "dovecot IMAP not installed (%v): apt-get install dovecot-imapd", err)
		}
	}
	if os.Geteuid() != 0 {
		skipOrFail(t, "running dovecot with mail owned by nobody needs root")
	}
	// Not t.TempDir: its parent is 0700 and nobody (mail) and dovenull
	// (login) must traverse it.
	dir, err := os.MkdirTemp("", "imapdiff-dovecot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	mail := filepath.Join(dir, "mail")
	if err := os.Mkdir(mail, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(mail, 65534, 65534); err != nil {
		t.Fatal(err)
	}

	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		conf := strings.NewReplacer("{{DIR}}", dir, "{{PORT}}", strconv.Itoa(port)).Replace(dovecotConf)
		confPath := filepath.Join(dir, "dovecot.conf")
		if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err := runDovecot(t, dir, confPath, addr); err != nil {
			// Most likely the port was taken between probe and bind.
			lastErr = err
			continue
		}
		return Target{Name: "dovecot", Addr: addr, Password: "pass"}
	}
	t.Fatalf("dovecot did not start: %v", lastErr)
	return Target{}
}

// runDovecot starts one dovecot and waits (≤ 10 s) until addr accepts. On
// failure the process is gone when it returns.
func runDovecot(t *testing.T, dir, confPath, addr string) error {
	cmd := exec.Command(dovecotBinary, "-c", confPath, "-F")
	out, err := os.Create(filepath.Join(dir, "dovecot.out"))
	if err != nil {
		return err
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	// INTERNALDATE is shown in the server's zone; dovecot imports TZ.
	cmd.Env = append(os.Environ(), "TZ=UTC")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start dovecot: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		// dovecot stops its children (auth, imap, login) on SIGTERM.
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("dovecot exited: %v: %s %s", err, readFile(filepath.Join(dir, "dovecot.out")), readFile(filepath.Join(dir, "dovecot.log")))
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("dovecot not accepting on %s after 10s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("dovecot.log:\n%s", readFile(filepath.Join(dir, "dovecot.log")))
		}
	})
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}
