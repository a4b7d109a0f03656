// Package version holds the build identity shared by every moxd binary.
//
// moxd-master refuses workers whose build id differs from its own: after a
// package upgrade replaced the binaries on disk, a restarted worker would run
// new code against an old master. The Makefile stamps one id into all binaries
// of a build with -ldflags "-X moxd/internal/version.buildID=...".
package version

import (
	"crypto/sha256"
	"encoding/hex"
	"runtime/debug"
	"sync"
)

// buildID is set by the linker; see the Makefile.
var buildID string

// Version is the release version, set by the linker; "dev" otherwise.
var Version = "dev"

var computeOnce = sync.OnceValue(func() string {
	if buildID != "" {
		return buildID
	}
	// Built without the Makefile: derive an id from the module build info.
	// Binaries built from the same tree by the same toolchain agree, so a plain
	// "go build ./cmd/..." still runs; but such an id does not change with the
	// source, so only Makefile builds detect replaced binaries reliably.
	h := sha256.New()
	if bi, ok := debug.ReadBuildInfo(); ok {
		h.Write([]byte(bi.GoVersion + "\n" + bi.Main.Version + bi.Main.Sum + "\n"))
		for _, s := range bi.Settings {
			h.Write([]byte(s.Key + "=" + s.Value + "\n"))
		}
		for _, d := range bi.Deps {
			h.Write([]byte(d.Path + "@" + d.Version + d.Sum + "\n"))
		}
	}
	return "mod-" + hex.EncodeToString(h.Sum(nil))[:16]
})

// BuildID returns the id of this build. Master and workers must agree on it.
func BuildID() string {
	return computeOnce()
}
