package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateCommand(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.json", `{"specversion":"1.0","id":"1","type":"t","source":"s"}`)
	lines := write("lines.jsonl", "{\"specversion\":\"1.0\",\"id\":\"1\",\"type\":\"t\",\"source\":\"s\"}\n{\"specversion\":\"1.0\",\"id\":\"2\",\"type\":\"t\",\"source\":\"s\",\"time\":\"lunchtime\"}\n")
	batch := write("batch.json", `[{"specversion":"1.0","id":"1","type":"t","source":"s"}]`)

	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"validate", good, batch}, &out, &errOut); code != 0 {
		t.Fatalf("valid input: exit %d: %s %s", code, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "valid 1 (type t)") {
		t.Fatalf("output: %s", out.String())
	}
	out.Reset()
	errOut.Reset()
	if code := run(context.Background(), []string{"validate", "-q", lines}, &out, &errOut); code != 1 {
		t.Fatalf("invalid input: exit %d", code)
	}
	if !strings.Contains(out.String(), `lines.jsonl:2: invalid`) || !strings.Contains(out.String(), `"time"`) {
		t.Fatalf("output should name line 2 and the time attribute: %s", out.String())
	}
	if strings.Contains(out.String(), "valid 1") {
		t.Fatalf("-q printed a valid event: %s", out.String())
	}
}

func TestUnknownCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"nope"}, &out, &errOut); code != 2 {
		t.Fatalf("exit %d", code)
	}
	if code := run(context.Background(), []string{"help"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "validate") {
		t.Fatalf("help: %d %s", code, out.String())
	}
}
