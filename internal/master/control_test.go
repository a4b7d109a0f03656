package master

import (
	"log/slog"
	"slices"
	"strings"
	"testing"

	"moxd/internal/config"
)

func TestParseLevel(t *testing.T) {
	tests := []struct {
		in       string
		want     slog.Level
		wantName string // levelName of the result
	}{
		{"trace", slog.LevelDebug - 4, "trace"},
		{"debug", slog.LevelDebug, "debug"},
		{"info", slog.LevelInfo, "info"},
		{"warn", slog.LevelWarn, "warn"},
		{"error", slog.LevelError, "error"},
		{"", slog.LevelInfo, "info"},
		{"WARN", slog.LevelWarn, "warn"},
		{"Debug", slog.LevelDebug, "debug"},
		{"TRACE", slog.LevelDebug - 4, "trace"},
	}
	for _, tc := range tests {
		l, err := parseLevel(tc.in)
		if err != nil {
			t.Errorf("parseLevel(%q): %v", tc.in, err)
			continue
		}
		if l != tc.want {
			t.Errorf("parseLevel(%q) = %v, want %v", tc.in, l, tc.want)
		}
		if got := levelName(l); got != tc.wantName {
			t.Errorf("levelName(parseLevel(%q)) = %q, want %q", tc.in, got, tc.wantName)
		}
		// The name parses back to the same level.
		if back, err := parseLevel(levelName(l)); err != nil || back != l {
			t.Errorf("parseLevel(levelName(%v)) = %v, %v", l, back, err)
		}
	}
}

func TestParseLevelBad(t *testing.T) {
	for _, in := range []string{"warning", "verbose", "fatal", "0", "-4", " info", "info ", "debug+2"} {
		_, err := parseLevel(in)
		if err == nil {
			t.Errorf("parseLevel(%q) accepted", in)
			continue
		}
		// The error names the value and says what to use.
		for _, s := range []string{`"` + in + `"`, "trace, debug, info, warn or error"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("parseLevel(%q): error %q does not contain %q", in, err, s)
			}
		}
	}
}

// TestLevelNameLevels checks levelName on the levels config and moxctl can
// set, and that no slog level below debug is shown as debug.
func TestLevelNameLevels(t *testing.T) {
	tests := []struct {
		l    slog.Level
		want string
	}{
		{slog.LevelDebug - 4, "trace"},
		{slog.LevelDebug - 1, "trace"},
		{slog.LevelDebug, "debug"},
		{slog.LevelInfo, "info"},
		{slog.LevelWarn, "warn"},
		{slog.LevelError, "error"},
	}
	for _, tc := range tests {
		if got := levelName(tc.l); got != tc.want {
			t.Errorf("levelName(%v) = %q, want %q", tc.l, got, tc.want)
		}
	}
}

// baseConfig is a loaded configuration as master holds it.
func baseConfig() *config.Config {
	return &config.Config{
		Path: "/etc/moxd/moxd.conf",
		Static: config.Static{
			Hostname:    "mail.example.org",
			DataDir:     "/var/db/moxd",
			RunDir:      "/var/run/moxd",
			LibexecDir:  "/usr/local/libexec/moxd",
			AdminGroup:  "_moxdadm",
			LogLevel:    "info",
			DomainsFile: "domains.conf",
			Users: config.Users{
				Keys: "_moxd-keys", Store: "_moxd-store", Queue: "_moxd-queue", SMTP: "_moxd-smtp",
				Submission: "_moxd-submit", IMAP: "_moxd-imap", Web: "_moxd-web",
			},
			Listen: config.Listen{
				SMTP:       []string{"0.0.0.0:25", "[::]:25"},
				Submission: []string{"0.0.0.0:587"},
			},
			TLS: config.TLS{Certificates: []config.CertFiles{{CertFile: "/etc/ssl/a.pem", KeyFile: "/etc/ssl/a.key"}}},
		},
	}
}

func TestRestartOnly(t *testing.T) {
	tests := []struct {
		name   string
		change func(c *config.Config)
		want   []string
	}{
		{"nothing", func(c *config.Config) {}, nil},
		{"log levels", func(c *config.Config) {
			c.Static.LogLevel = "debug"
			c.Static.RoleLogLevels = map[string]string{"smtp": "trace"}
		}, nil},
		{"certificates", func(c *config.Config) {
			c.Static.TLS.Certificates = append(c.Static.TLS.Certificates, config.CertFiles{CertFile: "/etc/ssl/b.pem", KeyFile: "/etc/ssl/b.key"})
			c.Static.TLS.LocalCA = true
		}, nil},
		{"domains file", func(c *config.Config) { c.Static.DomainsFile = "/etc/moxd/other.conf" }, nil},
		{"data_dir", func(c *config.Config) { c.Static.DataDir = "/srv/moxd" }, []string{"data_dir"}},
		{"run_dir", func(c *config.Config) { c.Static.RunDir = "/run/moxd" }, []string{"run_dir"}},
		{"libexec_dir", func(c *config.Config) { c.Static.LibexecDir = "" }, []string{"libexec_dir"}},
		{"one user", func(c *config.Config) { c.Static.Users.Web = "60007:60007" }, []string{"users"}},
		{"hostname", func(c *config.Config) { c.Static.Hostname = "mx.example.org" }, []string{"hostname"}},
		{"admin_group", func(c *config.Config) { c.Static.AdminGroup = "" }, []string{"admin_group"}},
		{"listener added", func(c *config.Config) { c.Static.Listen.IMAP = []string{"127.0.0.1:143"} }, []string{"listen"}},
		{"listener address changed", func(c *config.Config) { c.Static.Listen.SMTP[1] = "[::1]:25" }, []string{"listen"}},
		{"listener moved to another kind", func(c *config.Config) {
			c.Static.Listen.Submission = nil
			c.Static.Listen.Submissions = []string{"0.0.0.0:587"}
		}, []string{"listen"}},
		{"listener order", func(c *config.Config) { c.Static.Listen.SMTP = []string{"[::]:25", "0.0.0.0:25"} }, []string{"listen"}},
		{"all", func(c *config.Config) {
			c.Static.Hostname = "mx.example.org"
			c.Static.AdminGroup = "wheel"
			c.Static.Users.Keys = "60001"
			c.Static.LibexecDir = "/opt/moxd/libexec"
			c.Static.RunDir = "/run/moxd"
			c.Static.DataDir = "/srv/moxd"
			c.Static.Listen.HTTPS = []string{"[::]:443"}
			c.Static.LogLevel = "warn"
		}, []string{"listen", "data_dir", "run_dir", "libexec_dir", "users", "hostname", "admin_group"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			old, cur := baseConfig(), baseConfig()
			tc.change(cur)
			if got := restartOnly(old, cur); !slices.Equal(got, tc.want) {
				t.Errorf("restartOnly = %q, want %q", got, tc.want)
			}
			// Changing back is the same set of settings.
			if got := restartOnly(cur, old); !slices.Equal(got, tc.want) {
				t.Errorf("restartOnly reversed = %q, want %q", got, tc.want)
			}
		})
	}
}
