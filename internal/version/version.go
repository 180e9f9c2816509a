// Package version names the release of eventkit that a binary was built
// from, for "eventkit version", the server's /healthz and its
// eventkit_build_info metric.
//
// Get returns, in order of precedence:
//
//  1. Version, when a build set it with
//     -ldflags "-X github.com/eventkit/eventkit/internal/version.Version=v1.2.3";
//  2. the module version the Go toolchain recorded in the binary
//     (runtime/debug.ReadBuildInfo): "go install
//     github.com/eventkit/eventkit/cmd/eventkit@v1.2.3" records v1.2.3, and a
//     program that imports eventkit records the version it requires. A
//     version stamped from a working tree's version control (a
//     pseudo-version, or one marked +dirty) is not a release and is
//     skipped;
//  3. Default, the release this source tree is.
package version

import (
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
)

// Default is the release this source tree is (or, between releases, the
// last one).
const Default = "v0.1.0"

// Version overrides the version at build time (-ldflags -X); left at
// Default, Get looks at the build information.
var Version = Default

// Module is the module path of eventkit.
const Module = "github.com/eventkit/eventkit"

// Get returns the version of eventkit in this binary (see the package
// documentation for where it comes from).
func Get() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		info = nil
	}
	return resolve(Version, info)
}

// GoVersion returns the version of Go the binary was built with.
func GoVersion() string { return runtime.Version() }

// String returns "eventkit VERSION (GOVERSION GOOS/GOARCH)".
func String() string {
	return "eventkit " + Get() + " (" + GoVersion() + " " + runtime.GOOS + "/" + runtime.GOARCH + ")"
}

// pseudo matches the tail of a pseudo-version (vX.Y.Z-[0.]yyyymmddhhmmss-abcdefabcdef).
var pseudo = regexp.MustCompile(`[-.]\d{14}-[0-9a-f]{12}(\+incompatible)?$`)

// resolve applies the precedence of Get to an -X value and the build
// information (nil when there is none).
func resolve(x string, info *debug.BuildInfo) string {
	if x != "" && x != Default {
		return x
	}
	if info == nil {
		return Default
	}
	mod := &info.Main
	if mod.Path != Module {
		mod = nil
		for _, d := range info.Deps {
			if d.Path == Module {
				mod = d
				if d.Replace != nil {
					// A replaced module is whatever the replacement is:
					// not a release of eventkit.
					return Default
				}
				break
			}
		}
	}
	if mod == nil {
		return Default
	}
	v := mod.Version
	if v == "" || v == "(devel)" || !strings.HasPrefix(v, "v") || strings.Contains(v, "+dirty") {
		return Default
	}
	if pseudo.MatchString(v) && fromVCS(info) {
		// Stamped from the working tree's commit by "go build": not a
		// release. (A pseudo-version without version-control settings
		// was fetched as a module, "go install ...@commit", and names
		// that commit.)
		return Default
	}
	return v
}

// fromVCS reports whether the build information was stamped from a
// version-control checkout.
func fromVCS(info *debug.BuildInfo) bool {
	for _, s := range info.Settings {
		if strings.HasPrefix(s.Key, "vcs") {
			return true
		}
	}
	return false
}
