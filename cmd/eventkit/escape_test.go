package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/hub"
)

// hostile holds what a producer could use to take over an operator's
// terminal: escape sequences (C0 and C1 controls, DEL), a carriage return,
// bidirectional overrides, and bytes that are not UTF-8.
const hostile = "a\x1b]0;pwned\x07b\x1b[2Jc\rd\x7fe\u009b31mf\u202eg\u2066h\u2028i"

// unsafeRune reports a rune a terminal may act on instead of showing.
func unsafeRune(r rune) bool {
	return r < 0x20 && r != '\n' || r == 0x7f || r >= 0x80 && r <= 0x9f || isBidiControl(r) || r == '\u2028' || r == '\u2029'
}

func assertPrintable(t *testing.T, what, out string) {
	t.Helper()
	if !utf8.ValidString(out) {
		t.Fatalf("%s prints bytes that are not UTF-8: %q", what, out)
	}
	for _, r := range out {
		if unsafeRune(r) {
			t.Fatalf("%s prints the control character %U raw: %q", what, r, out)
		}
	}
}

// eventkit tail escapes control characters (a producer could otherwise
// inject terminal escape sequences into an operator's screen), in the line
// form and with --json.
func TestTailEscapesControlCharacters(t *testing.T) {
	e := event.New()
	e.SetID("id" + hostile)
	e.SetSource("/src")
	e.SetType("t.x")
	e.SetSubject("subj" + hostile)
	e.SetExtension("ext", hostile)
	_ = e.SetData("text/plain", []byte("data"+hostile+"\xff\xfe"+strings.Repeat("é", 200)))
	b, err := eventkit.MarshalEvent(e)
	if err != nil {
		t.Fatal(err)
	}
	line := tailLine(hub.StreamItem{Topic: "t.x", Event: b})
	assertPrintable(t, "tail", line)
	for _, want := range []string{`id=ida\x1b]0;pwned\ab\x1b[2Jc\rd\x7fe\u009b31mf\u202eg\u2066h\u2028i`, `subject=subj`, `data=dataa\x1b]0;`} {
		if !strings.Contains(line, want) {
			t.Errorf("tail line lacks %q:\n%s", want, line)
		}
	}
	// The clipped data is cut between characters, not inside one.
	if !strings.Contains(line, "é…") {
		t.Errorf("tail line does not clip the data at a character: %s", line)
	}

	js := tailJSON(b)
	assertPrintable(t, "tail --json", js)
	back, err := eventkit.UnmarshalEvent([]byte(js))
	if err != nil {
		t.Fatalf("tail --json prints %s: %v", js, err)
	}
	if back.ID() != e.ID() || back.Subject() != e.Subject() || back.Extensions()["ext"] != hostile {
		t.Fatalf("tail --json changed the event: %s", js)
	}
}

// The other human-readable outputs escape what comes from events too.
func TestOutputsEscapeControlCharacters(t *testing.T) {
	dir := t.TempDir()
	bad, _ := json.Marshal(map[string]string{"specversion": "1.0", "id": hostile, "source": "/s", "type": "t" + hostile})
	p := filepath.Join(dir, "e.json")
	if err := os.WriteFile(p, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	run(context.Background(), []string{"validate", p}, &out, &errOut)
	assertPrintable(t, "validate", out.String()+errOut.String())
	if !strings.Contains(out.String(), `valid a\x1b]0;pwned`) {
		t.Fatalf("validate printed %q", out.String())
	}
	// An error that carries a hostile value (a file name).
	out.Reset()
	errOut.Reset()
	if code := run(context.Background(), []string{"validate", filepath.Join(dir, "x"+hostile)}, &out, &errOut); code != 1 {
		t.Fatalf("validate of a missing file: exit %d", code)
	}
	assertPrintable(t, "an error", out.String()+errOut.String())
	if !strings.Contains(errOut.String(), `pwned\a`) {
		t.Fatalf("error printed as %q", errOut.String())
	}
}
