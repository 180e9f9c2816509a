package cehttp

import (
	"mime"
	"testing"
)

func FuzzParseMediaType(f *testing.F) {
	for _, c := range []string{"application/json", "Application/JSON", "text/plain; charset=utf-8", "a/b/c", "/x", "x/", "x", "", "a{b}/c", "application/cloudevents+json", "a b/c"} {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, ct string) {
		got, _, gerr := parseMediaType(ct)
		want, _, werr := mime.ParseMediaType(ct)
		if got != want || (gerr == nil) != (werr == nil) {
			t.Fatalf("parseMediaType(%q) = %q, %v; mime.ParseMediaType: %q, %v", ct, got, gerr, want, werr)
		}
	})
}
