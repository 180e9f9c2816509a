package main

import (
	"bytes"
	"context"
	"runtime"
	"strings"
	"testing"

	"github.com/eventkit/eventkit/internal/version"
)

func TestVersionCommand(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), args, &out, &errOut); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut.String())
		}
		want := "eventkit " + version.Get() + " (" + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + ")\n"
		if out.String() != want {
			t.Fatalf("%v printed %q, want %q", args, out.String(), want)
		}
	}
	var out bytes.Buffer
	if code := run(context.Background(), []string{"version", "-short"}, &out, &out); code != 0 || out.String() != version.Get()+"\n" {
		t.Fatalf("version -short: exit %d, %q", code, out.String())
	}
	if code := run(context.Background(), []string{"version", "x"}, &out, &out); code != 2 {
		t.Fatalf("version x: exit %d", code)
	}
	out.Reset()
	run(context.Background(), []string{"help"}, &out, &out)
	if !strings.Contains(out.String(), "  version ") {
		t.Fatalf("help does not list version:\n%s", out.String())
	}
}
