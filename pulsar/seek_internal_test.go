package pulsar

import (
	"errors"
	"testing"

	ps "github.com/apache/pulsar-client-go/pulsar"
	"github.com/eventkit/eventkit"
)

func TestPosition(t *testing.T) {
	for _, tc := range []struct {
		id   ps.MessageID
		want string
	}{
		{ps.NewMessageID(12, 7, -1, 0), "12:7"},
		{ps.NewMessageID(12, 7, 3, 0), "12:7:3"},
	} {
		got := position(tc.id)
		if got != tc.want {
			t.Errorf("position = %q, want %q", got, tc.want)
		}
		back, err := parsePosition(got)
		if err != nil || back.LedgerID() != tc.id.LedgerID() || back.EntryID() != tc.id.EntryID() || back.BatchIdx() != tc.id.BatchIdx() {
			t.Errorf("parsePosition(%q) = %v, %v", got, back, err)
		}
	}
	for _, bad := range []string{"", "1", "1:2:3:4", "a:1", "1:-2", "-1:2", "1:2:-1", "1:2:4294967296"} {
		if _, err := parsePosition(bad); !errors.Is(err, eventkit.ErrInvalidOption) {
			t.Errorf("parsePosition(%q): %v, want ErrInvalidOption", bad, err)
		}
	}
}
