package moxctl

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"moxd/internal/ctl"
)

// confTemplate is like etc/moxd.conf, with directories in a test directory
// and numeric users, so nothing depends on the machine's passwd file.
const confTemplate = `# moxd.conf for tests
hostname = "mail.example.org"
data_dir = "%[1]s/data"
run_dir = "%[1]s/run"
libexec_dir = ""
admin_group = ""
log_level = "info"
domains_file = "domains.conf"
%[2]s
[role_log_levels]
smtp = "debug"

[users]
keys = "60001:60001"
store = "60002:60002"
queue = "60003:60003"
smtp = "60004:60004"
submission = "60005:60005"
imap = "60006:60006"
web = "60007:60007"

[listen]
smtp = ["127.0.0.1:2525", "[::1]:2525"]
submission = ["127.0.0.1:5587"]

[tls]
local_ca = true
`

const domainsConf = `[[domain]]
name = "example.org"

[[account]]
name = "mjl"
addresses = ["mjl@example.org", "postmaster@example.org"]
`

// shortDir returns a new directory with a short path: unix socket paths are
// limited to about 100 bytes.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "moxctl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// writeConf writes moxd.conf (with extra lines after the top-level options)
// and domains.conf into dir and returns the path of moxd.conf. run_dir is
// dir/run and exists.
func writeConf(t *testing.T, dir, extra string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "run"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "moxd.conf")
	if err := os.WriteFile(p, []byte(fmt.Sprintf(confTemplate, dir, extra)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "domains.conf"), []byte(domainsConf), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func run(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = Main(args, &o, &e)
	return code, o.String(), e.String()
}

func TestUsage(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantStderr string // besides the usage text
	}{
		{"no args", nil, ""},
		{"only flags", []string{"-j", "-f", "/nonexistent.conf"}, ""},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unknown flag", []string{"-x", "status"}, "-x"},
		{"flag without value", []string{"-f"}, "-f"},
		{"status with argument", []string{"status", "now"}, ""},
		{"reload with argument", []string{"reload", "all"}, ""},
		{"stop with argument", []string{"stop", "now"}, ""},
		{"loglevel with too many arguments", []string{"loglevel", "debug", "smtp", "extra"}, ""},
		{"config without subcommand", []string{"config"}, ""},
		{"config unknown subcommand", []string{"config", "check"}, ""},
		{"config test with argument", []string{"config", "test", "x"}, ""},
		{"config describe unknown file", []string{"config", "describe", "users"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := run(tc.args...)
			if code != ExitUsage {
				t.Errorf("exit %d, want %d", code, ExitUsage)
			}
			if !strings.Contains(stderr, "usage: moxctl") || !strings.Contains(stderr, "config describe") {
				t.Errorf("stderr does not show the usage:\n%s", stderr)
			}
			if tc.wantStderr != "" && !strings.Contains(stderr, tc.wantStderr) {
				t.Errorf("stderr does not contain %q:\n%s", tc.wantStderr, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout not empty: %q", stdout)
			}
		})
	}
}

// lineOf returns the 1-based line of the first line of path containing s.
func lineOf(t *testing.T, path, s string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, s) {
			return i + 1
		}
	}
	t.Fatalf("%q not in %s", s, path)
	return 0
}

func TestConfigTest(t *testing.T) {
	tests := []struct {
		name      string
		extra     string
		replace   [2]string // replace the first occurrence of [0] by [1]
		wantCode  int
		errorLine string // the line of moxd.conf the error must point at
		wantErr   string
	}{
		{name: "valid", wantCode: ExitOK},
		{name: "unknown user key", replace: [2]string{`web = "60007:60007"`, "web = \"60007:60007\"\nmta = \"60008\""}, wantCode: ExitFailed, errorLine: "mta =", wantErr: "mta"},
		{name: "same user twice", replace: [2]string{`web = "60007:60007"`, `web = "60006:60006"`}, wantCode: ExitFailed, errorLine: `web = "60006:60006"`, wantErr: "users.imap"},
		{name: "unknown key", extra: "spool_dir = \"/var/spool/moxd\"\n", wantCode: ExitFailed, errorLine: "spool_dir", wantErr: "spool_dir"},
		{name: "bad log level", replace: [2]string{`log_level = "info"`, `log_level = "loud"`}, wantCode: ExitFailed, errorLine: `log_level = "loud"`, wantErr: "log level"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := writeConf(t, dir, tc.extra)
			if tc.replace[0] != "" {
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				b = bytes.Replace(b, []byte(tc.replace[0]), []byte(tc.replace[1]), 1)
				if err := os.WriteFile(p, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			code, stdout, stderr := run("-f", p, "config", "test")
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d; stdout %q, stderr %q", code, tc.wantCode, stdout, stderr)
			}
			if tc.wantCode == ExitOK {
				want := "configuration OK: " + p + ", " + filepath.Join(dir, "domains.conf")
				if !strings.Contains(stdout, want) {
					t.Errorf("stdout %q does not contain %q", stdout, want)
				}
				if stderr != "" {
					t.Errorf("stderr %q", stderr)
				}
				return
			}
			loc := fmt.Sprintf("%s:%d", p, lineOf(t, p, tc.errorLine))
			if !strings.Contains(stderr, loc) || !strings.Contains(stderr, tc.wantErr) {
				t.Errorf("stderr %q, want an error at %s mentioning %q", stderr, loc, tc.wantErr)
			}
		})
	}
}

func TestConfigTestMissingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "moxd.conf")
	code, _, stderr := run("-f", p, "config", "test")
	if code != ExitFailed || !strings.Contains(stderr, p) || !strings.Contains(stderr, "does not exist") {
		t.Errorf("exit %d, stderr %q; want %d and an error naming %s", code, stderr, ExitFailed, p)
	}
}

// TestConfigTestRelativePath checks that -f with a relative path names the
// file by its absolute path.
func TestConfigTestRelativePath(t *testing.T) {
	dir := t.TempDir()
	p := writeConf(t, dir, "")
	t.Chdir(dir)
	code, stdout, stderr := run("-f", "moxd.conf", "config", "test")
	if code != ExitOK || !strings.Contains(stdout, p) {
		t.Errorf("exit %d, stdout %q, stderr %q; want OK naming %s", code, stdout, stderr, p)
	}
}

func TestConfigDescribe(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"config", "describe"}, []string{"hostname = ", "data_dir = ", "[users]", "[listen]"}},
		{[]string{"config", "describe", "domains"}, []string{"[[domain]]", "[[account]]", "addresses"}},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			// describe needs no config file.
			code, stdout, stderr := run(append([]string{"-f", "/nonexistent/moxd.conf"}, tc.args...)...)
			if code != ExitOK {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			for _, s := range tc.want {
				if !strings.Contains(stdout, s) {
					t.Errorf("output does not contain %q", s)
				}
			}
		})
	}
}

func TestStatusNotRunning(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, runDir string)
	}{
		{"no socket", func(t *testing.T, runDir string) {}},
		{"stale socket", func(t *testing.T, runDir string) {
			ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: ctl.SocketPath(runDir), Net: "unix"})
			if err != nil {
				t.Fatal(err)
			}
			ln.SetUnlinkOnClose(false)
			ln.Close()
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := shortDir(t)
			p := writeConf(t, dir, "")
			tc.setup(t, filepath.Join(dir, "run"))
			for _, args := range [][]string{{"status"}, {"-j", "status"}, {"reload"}, {"stop"}, {"loglevel"}} {
				code, stdout, stderr := run(append([]string{"-f", p}, args...)...)
				if code != ExitNotRunning {
					t.Errorf("%q: exit %d, want %d; stderr %q", args, code, ExitNotRunning, stderr)
				}
				if !strings.Contains(stderr, "not running") || !strings.Contains(stderr, ctl.SocketPath(filepath.Join(dir, "run"))) {
					t.Errorf("%q: stderr %q, want not running and the socket path", args, stderr)
				}
				if stdout != "" {
					t.Errorf("%q: stdout %q", args, stdout)
				}
			}
		})
	}
}

// fakeMaster answers the control protocol on run_dir's socket with a fixed
// response, and records the requests.
type fakeMaster struct {
	mu   sync.Mutex
	reqs []ctl.Request
	resp ctl.Response
}

func startFake(t *testing.T, runDir string, resp ctl.Response) *fakeMaster {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: ctl.SocketPath(runDir), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeMaster{resp: resp}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			line, err := bufio.NewReader(c).ReadBytes('\n')
			if err == nil {
				var req ctl.Request
				dec := json.NewDecoder(bytes.NewReader(line))
				dec.DisallowUnknownFields()
				if err := dec.Decode(&req); err != nil {
					req = ctl.Request{Cmd: "undecodable: " + err.Error()}
				}
				f.mu.Lock()
				f.reqs = append(f.reqs, req)
				f.mu.Unlock()
				b, _ := json.Marshal(f.resp)
				c.Write(append(b, '\n'))
			}
			c.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return f
}

func (f *fakeMaster) requests() []ctl.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]ctl.Request(nil), f.reqs...)
}

func okResponse(t *testing.T, data any) ctl.Response {
	t.Helper()
	b, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	return ctl.Response{OK: true, Data: b}
}

// status returns a status with every role ready.
func status() ctl.Status {
	st := ctl.Status{Master: ctl.MasterStatus{PID: 4242, Version: "v0.1.0", BuildID: "abc123", Config: "/etc/moxd/moxd.conf", UptimeSeconds: 3725}}
	for i, r := range []string{"keys", "store", "queue", "smtp", "submission", "imap", "web"} {
		rs := ctl.RoleStatus{Role: r, PID: 5000 + i, UID: uint32(60001 + i), GID: uint32(60001 + i), State: "ready", UptimeSeconds: 3700}
		st.Roles = append(st.Roles, rs)
	}
	st.Roles[3].Listeners = []ctl.Listener{{Kind: "smtp", Addr: "127.0.0.1:2525"}, {Kind: "smtp", Addr: "[::1]:2525"}}
	st.Roles[0].Counters = []ctl.Counter{{Name: "signatures.dkim", Value: 17}}
	return st
}

func TestStatus(t *testing.T) {
	notReady := status()
	notReady.Roles[2].State = "backoff"
	notReady.Roles[2].PID = 0
	notReady.Roles[2].Restarts = 4
	notReady.Roles[2].LastExit = "exit status 1"
	notReady.Roles[0].State = "provisioning"
	stopping := status()
	stopping.Master.Stopping = true

	tests := []struct {
		name       string
		st         ctl.Status
		wantCode   int
		wantOut    []string
		notWantOut []string
	}{
		{"all ready", status(), ExitOK,
			[]string{"master pid 4242", "build abc123", "up 1h2m5s", "smtp=127.0.0.1:2525 smtp=[::1]:2525", "signatures.dkim", "17"},
			[]string{"not ready", "last exit"}},
		{"role not ready", notReady, ExitFailed,
			[]string{"not ready: keys, queue", "queue: last exit: exit status 1", "backoff"},
			nil},
		{"master stopping", stopping, ExitFailed, nil, []string{"not ready"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := shortDir(t)
			p := writeConf(t, dir, "")
			fake := startFake(t, filepath.Join(dir, "run"), okResponse(t, tc.st))

			code, stdout, stderr := run("-f", p, "status")
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d; stderr %q", code, tc.wantCode, stderr)
			}
			for _, s := range tc.wantOut {
				if !strings.Contains(stdout, s) {
					t.Errorf("output does not contain %q:\n%s", s, stdout)
				}
			}
			for _, s := range tc.notWantOut {
				if strings.Contains(stdout, s) {
					t.Errorf("output contains %q:\n%s", s, stdout)
				}
			}
			for _, r := range tc.st.Roles {
				if !strings.Contains(stdout, r.Role+" ") {
					t.Errorf("role %s not listed:\n%s", r.Role, stdout)
				}
			}

			// -j prints the status as JSON, with the same exit code.
			code, stdout, stderr = run("-j", "-f", p, "status")
			if code != tc.wantCode {
				t.Errorf("-j: exit %d, want %d; stderr %q", code, tc.wantCode, stderr)
			}
			var got ctl.Status
			dec := json.NewDecoder(strings.NewReader(stdout))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("-j output is not a status: %v\n%s", err, stdout)
			}
			if dec.More() {
				t.Errorf("-j output has more than one JSON value:\n%s", stdout)
			}
			if !reflect.DeepEqual(got, tc.st) {
				t.Errorf("-j status %+v, want %+v", got, tc.st)
			}

			for _, req := range fake.requests() {
				if req.Cmd != "status" || len(req.Args) != 0 {
					t.Errorf("request %+v, want status without arguments", req)
				}
			}
			if n := len(fake.requests()); n != 2 {
				t.Errorf("%d requests, want 2", n)
			}
		})
	}
}

// TestCommands checks the requests moxctl sends, and how it shows answers and
// refusals.
func TestCommands(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		resp     any    // data of an OK response
		refuse   string // error of a refusal instead
		wantReq  ctl.Request
		wantCode int
		wantOut  []string
		wantErr  string
	}{
		{name: "reload", args: []string{"reload"}, resp: ctl.ReloadResult{},
			wantReq: ctl.Request{Cmd: "reload"}, wantOut: []string{"configuration reloaded"}},
		{name: "reload needing restart", args: []string{"reload"}, resp: ctl.ReloadResult{NeedRestart: []string{"listen", "hostname"}},
			wantReq: ctl.Request{Cmd: "reload"}, wantOut: []string{"configuration reloaded", "after a restart of moxd: listen, hostname"}},
		{name: "reload json", args: []string{"-j", "reload"}, resp: ctl.ReloadResult{NeedRestart: []string{"users"}},
			wantReq: ctl.Request{Cmd: "reload"}, wantOut: []string{`"need_restart": [`, `"users"`}},
		{name: "reload refused", args: []string{"reload"}, refuse: "configuration not reloaded: /etc/moxd/moxd.conf:3: hostname: required",
			wantReq: ctl.Request{Cmd: "reload"}, wantCode: ExitFailed, wantErr: "moxctl: configuration not reloaded: /etc/moxd/moxd.conf:3"},
		{name: "stop", args: []string{"stop"}, wantReq: ctl.Request{Cmd: "stop"}, wantOut: []string{"moxd is stopping"}},
		{name: "loglevel show", args: []string{"loglevel"}, resp: ctl.LogLevels{Levels: map[string]string{"smtp": "debug", "master": "info"}},
			wantReq: ctl.Request{Cmd: "loglevel"}, wantOut: []string{"master       info\nsmtp         debug\n"}},
		{name: "loglevel set", args: []string{"loglevel", "trace", "imap"}, resp: ctl.LogLevels{Levels: map[string]string{"imap": "trace"}},
			wantReq: ctl.Request{Cmd: "loglevel", Args: []string{"trace", "imap"}}, wantOut: []string{"imap         trace"}},
		{name: "loglevel refused", args: []string{"loglevel", "loud"}, refuse: `unknown log level "loud"`,
			wantReq: ctl.Request{Cmd: "loglevel", Args: []string{"loud"}}, wantCode: ExitFailed, wantErr: `unknown log level "loud"`},
		{name: "peer refused", args: []string{"status"}, refuse: "uid 1000 may not control moxd: use root or a member of admin_group",
			wantReq: ctl.Request{Cmd: "status"}, wantCode: ExitFailed, wantErr: "admin_group"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := shortDir(t)
			p := writeConf(t, dir, "")
			resp := ctl.Response{Error: tc.refuse}
			if tc.refuse == "" {
				resp = ctl.Response{OK: true}
				if tc.resp != nil {
					resp = okResponse(t, tc.resp)
				}
			}
			fake := startFake(t, filepath.Join(dir, "run"), resp)
			code, stdout, stderr := run(append([]string{"-f", p}, tc.args...)...)
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d; stderr %q", code, tc.wantCode, stderr)
			}
			for _, s := range tc.wantOut {
				if !strings.Contains(stdout, s) {
					t.Errorf("output does not contain %q:\n%s", s, stdout)
				}
			}
			if tc.wantErr != "" && !strings.Contains(stderr, tc.wantErr) {
				t.Errorf("stderr %q does not contain %q", stderr, tc.wantErr)
			}
			if reqs := fake.requests(); len(reqs) != 1 || !reflect.DeepEqual(reqs[0], tc.wantReq) {
				t.Errorf("requests %+v, want [%+v]", reqs, tc.wantReq)
			}
		})
	}
}
