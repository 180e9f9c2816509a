package version

import (
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	vcs := []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "2feb75c"}}
	for _, c := range []struct {
		name string
		x    string
		info *debug.BuildInfo
		want string
	}{
		{"no build information", Default, nil, Default},
		{"-ldflags -X wins", "v9.9.9", &debug.BuildInfo{Main: debug.Module{Path: Module, Version: "v1.2.3"}}, "v9.9.9"},
		{"go install @v1.2.3", Default, &debug.BuildInfo{Main: debug.Module{Path: Module, Version: "v1.2.3"}}, "v1.2.3"},
		{"go install @commit", Default, &debug.BuildInfo{Main: debug.Module{Path: Module, Version: "v0.1.1-0.20261203071026-2feb75c12345"}}, "v0.1.1-0.20261203071026-2feb75c12345"},
		{"go build in a checkout", Default, &debug.BuildInfo{Main: debug.Module{Path: Module, Version: "v0.1.1-0.20261203071026-2feb75c12345"}, Settings: vcs}, Default},
		{"go build in a dirty checkout at a tag", Default, &debug.BuildInfo{Main: debug.Module{Path: Module, Version: "v0.1.0+dirty"}, Settings: vcs}, Default},
		{"go build in a clean checkout at a tag", Default, &debug.BuildInfo{Main: debug.Module{Path: Module, Version: "v0.2.0"}, Settings: vcs}, "v0.2.0"},
		{"go run, go test", Default, &debug.BuildInfo{Main: debug.Module{Path: Module, Version: "(devel)"}}, Default},
		{"a dependency of another program", Default, &debug.BuildInfo{Main: debug.Module{Path: "example.com/app", Version: "(devel)"},
			Deps: []*debug.Module{{Path: "example.com/other", Version: "v3.0.0"}, {Path: Module, Version: "v0.4.0"}}}, "v0.4.0"},
		{"a replaced dependency", Default, &debug.BuildInfo{Main: debug.Module{Path: "example.com/app"},
			Deps: []*debug.Module{{Path: Module, Version: "v0.4.0", Replace: &debug.Module{Path: "../eventkit"}}}}, Default},
		{"not in the binary", Default, &debug.BuildInfo{Main: debug.Module{Path: "example.com/app", Version: "v1.0.0"}}, Default},
	} {
		if got := resolve(c.x, c.info); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func TestGet(t *testing.T) {
	if v := Get(); v != Default {
		t.Errorf("Get() in a test binary = %q, want %q", v, Default)
	}
	if s := String(); !strings.HasPrefix(s, "eventkit "+Default+" (go") {
		t.Errorf("String() = %q", s)
	}
}

// A binary built with -ldflags -X reports that version.
func TestLdflags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command:", err)
	}
	bin := filepath.Join(t.TempDir(), "printversion")
	build := exec.Command(gobin, "build", "-o", bin, "-ldflags", "-X "+Module+"/internal/version.Version=v7.8.9-rc.1", "./testdata/printversion")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != "v7.8.9-rc.1" {
		t.Fatalf("printversion = %q, want v7.8.9-rc.1", got)
	}
}
