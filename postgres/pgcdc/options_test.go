package pgcdc

import (
	"errors"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
)

// TestCDCRefusesInvalidOptions: New fails with eventkit.ErrInvalidOption,
// naming the option, for each invalid value (the empty names, nil functions
// and nil logger were ignored before; the other errors did not wrap
// ErrInvalidOption).
func TestCDCRefusesInvalidOptions(t *testing.T) {
	const dsn = "postgres://x@127.0.0.1/db"
	rec := newCDCRecorder()
	type bad = eventkittest.BadOption[Option]
	eventkittest.TestBadOptions(t, func(o Option) error {
		_, err := New(dsn, rec, o)
		return err
	},
		bad{Name: "pgcdc.WithName", Opt: WithName("a.b")},
		bad{Name: "pgcdc.WithName", Opt: WithName("")},
		bad{Name: "pgcdc.WithTables", Opt: WithTables("orders", "")},
		bad{Name: "pgcdc.WithTables", Opt: WithTables("public.")},
		bad{Name: "pgcdc.WithTables", Opt: WithTables(".orders")},
		bad{Name: "pgcdc.WithPublication", Opt: WithPublication("")},
		bad{Name: "pgcdc.WithSlot", Opt: WithSlot("")},
		bad{Name: "pgcdc.WithProtoVersion", Opt: WithProtoVersion(3)},
		bad{Name: "pgcdc.WithHeartbeat", Opt: WithHeartbeat(0)},
		bad{Name: "pgcdc.WithBatch", Opt: WithBatch(0)},
		bad{Name: "pgcdc.WithBuffer", Opt: WithBuffer(-1)},
		bad{Name: "pgcdc.WithType", Opt: WithType(nil)},
		bad{Name: "pgcdc.WithTopic", Opt: WithTopic(nil)},
		bad{Name: "pgcdc.WithLogger", Opt: WithLogger(nil)},
		bad{Name: "pgcdc.WithReconnect", Opt: WithReconnect(0, time.Second)},
		bad{Name: "pgcdc.WithReconnect", Opt: WithReconnect(time.Second, time.Millisecond)},
	)
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
