package pgcdc

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
)

// TestCDCRefusesInvalidOptions: New fails with eventkit.ErrInvalidOption,
// naming the option, for each invalid value (the empty names, nil functions
// and nil logger were ignored before; the other errors did not wrap
// ErrInvalidOption).
func TestCDCRefusesInvalidOptions(t *testing.T) {
	const dsn = "postgres://x@127.0.0.1/db"
	rec := newCDCRecorder()
	for _, c := range []struct {
		name string
		opt  Option
	}{
		{"pgcdc.WithName", WithName("a.b")},
		{"pgcdc.WithName", WithName("")},
		{"pgcdc.WithTables", WithTables("orders", "")},
		{"pgcdc.WithTables", WithTables("public.")},
		{"pgcdc.WithTables", WithTables(".orders")},
		{"pgcdc.WithPublication", WithPublication("")},
		{"pgcdc.WithSlot", WithSlot("")},
		{"pgcdc.WithProtoVersion", WithProtoVersion(3)},
		{"pgcdc.WithHeartbeat", WithHeartbeat(0)},
		{"pgcdc.WithBatch", WithBatch(0)},
		{"pgcdc.WithBuffer", WithBuffer(-1)},
		{"pgcdc.WithType", WithType(nil)},
		{"pgcdc.WithTopic", WithTopic(nil)},
		{"pgcdc.WithLogger", WithLogger(nil)},
		{"pgcdc.WithReconnect", WithReconnect(0, time.Second)},
		{"pgcdc.WithReconnect", WithReconnect(time.Second, time.Millisecond)},
	} {
		src, err := New(dsn, rec, c.opt)
		if !errors.Is(err, eventkit.ErrInvalidOption) || !strings.Contains(err.Error(), c.name) || src != nil {
			t.Errorf("New with an invalid %s = %v, %v; want nil and an ErrInvalidOption naming it", c.name, src, err)
		}
	}
	if _, err := New(dsn, nil); !errors.Is(err, eventkit.ErrInvalidOption) {
		t.Errorf("New with a nil publisher = %v; want ErrInvalidOption", err)
	}
	if _, err := New("postgres://x@127.0.0.1:notaport/db", rec); !errors.Is(err, eventkit.ErrInvalidOption) {
		t.Errorf("New with a dsn that does not parse = %v; want ErrInvalidOption", err)
	}
	if _, err := New(dsn, rec, WithName("shop"), WithTables("orders", "sales.items"), WithPublication("p"), WithSlot("s"),
		WithProtoVersion(2), WithHeartbeat(time.Second), WithBatch(1), WithBuffer(1), WithReconnect(time.Millisecond, time.Millisecond)); err != nil {
		t.Errorf("New with valid options: %v", err)
	}
}
