package randid_test

import (
	"encoding/hex"
	"testing"

	"github.com/eventkit/eventkit/internal/randid"
)

func TestHex(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		s := randid.Hex(8)
		if len(s) != 16 {
			t.Fatalf("Hex(8) = %q, want 16 digits", s)
		}
		if _, err := hex.DecodeString(s); err != nil {
			t.Fatalf("Hex(8) = %q: %v", s, err)
		}
		if seen[s] {
			t.Fatalf("Hex(8) gave %q twice", s)
		}
		seen[s] = true
	}
}
