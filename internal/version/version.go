// Package version owns what a sopilot binary says about its own build:
// the release version, the commit and the build date. Release builds set
// them with the linker (the Makefile's build target and the Dockerfiles):
//
//	-ldflags "-X github.com/sopilot/sopilot/internal/version.version=0.1.0
//	          -X github.com/sopilot/sopilot/internal/version.commit=<sha>
//	          -X github.com/sopilot/sopilot/internal/version.date=<RFC 3339>"
//
// A plain `go build` in a git checkout falls back to the VCS stamp Go
// records in the binary (runtime/debug.ReadBuildInfo); `go install
// ...@v0.1.0` to the module version.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"slices"
)

// Set by -ldflags -X; empty means "read the build info".
var (
	version string
	commit  string
	date    string
)

// Unknown is what a field says when neither the linker nor Go's build
// info knows it.
const Unknown = "unknown"

// Info is one binary's build.
type Info struct {
	// Version is the release ("0.1.0"), or "dev" for a build that is not
	// a release.
	Version string
	// Commit is the git commit, with "-dirty" when the tree had changes.
	Commit string
	// Date is when the binary was built (or, from the VCS stamp, when
	// its commit was made), RFC 3339.
	Date string
	// GoVersion is the Go release that built it.
	GoVersion string
}

// Get returns this binary's build.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return from(version, commit, date, bi)
}

// Requested reports whether args ask for the version (--version or
// -version before any "--"), for the binaries whose flags are parsed by
// the standard library. Checked before the other flags, so that it works
// whatever else is missing, and kept out of the flag set so that no
// SOPILOT_VERSION variable can turn it on.
func Requested(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "--version", "-version", "--version=true", "-version=true":
			return true
		}
	}
	return false
}

func from(v, c, d string, bi *debug.BuildInfo) Info {
	info := Info{Version: v, Commit: c, Date: d, GoVersion: runtime.Version()}
	if bi != nil {
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		setting := func(k string) string {
			i := slices.IndexFunc(bi.Settings, func(s debug.BuildSetting) bool { return s.Key == k })
			if i < 0 {
				return ""
			}
			return bi.Settings[i].Value
		}
		if info.Commit == "" {
			if info.Commit = setting("vcs.revision"); info.Commit != "" && setting("vcs.modified") == "true" {
				info.Commit += "-dirty"
			}
		}
		if info.Date == "" {
			info.Date = setting("vcs.time")
		}
		if bi.GoVersion != "" {
			info.GoVersion = bi.GoVersion
		}
	}
	if info.Version == "" {
		info.Version = "dev"
	}
	if info.Commit == "" {
		info.Commit = Unknown
	}
	if info.Date == "" {
		info.Date = Unknown
	}
	return info
}

// String is what --version prints after the program's name:
// "0.1.0 (commit 4366ca8e1f0b, built 2026-05-01T10:00:00Z, go1.26.8)".
func (i Info) String() string {
	return fmt.Sprintf("%s (commit %s, built %s, %s)", i.Version, i.Commit, i.Date, i.GoVersion)
}

// Line is the whole --version output of program: "sopilot 0.1.0 (...)".
func (i Info) Line(program string) string { return program + " " + i.String() }
