package pgqueue

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/jackc/pgx/v5/pgxpool"
)

// unreachablePool is a pool whose server does not answer; pgxpool connects
// lazily, so creating it does no I/O.
func unreachablePool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// TestNewRejectsInvalidOptions: an invalid option value makes New fail
// (the options used to keep their default silently).
func TestNewRejectsInvalidOptions(t *testing.T) {
	pool := unreachablePool(t)
	for name, o := range map[string]Option{
		"WithTable empty":            WithTable(""),
		"WithTable three parts":      WithTable("a.b.c"),
		"WithVisibilityTimeout zero": WithVisibilityTimeout(0),
		"WithPollInterval negative":  WithPollInterval(-time.Second),
		"WithBatchSize zero":         WithBatchSize(0),
		"WithRetention zero":         WithRetention(0),
		"WithLogger nil":             WithLogger(nil),
		"WithCloseTimeout zero":      WithCloseTimeout(0),
	} {
		q, err := New(pool, o)
		if !errors.Is(err, eventkit.ErrInvalidOption) {
			t.Errorf("%s: New returned (%v, %v), want an error wrapping eventkit.ErrInvalidOption", name, q, err)
		}
	}
	if _, err := New(nil); !errors.Is(err, eventkit.ErrInvalidOption) {
		t.Errorf("New(nil): %v, want an error wrapping eventkit.ErrInvalidOption", err)
	}
}

// TestNewDoesNoIO: New succeeds without a server (it used to create the
// tables); the first I/O is Migrate's, under the caller's ctx.
func TestNewDoesNoIO(t *testing.T) {
	q, err := New(unreachablePool(t), WithTable("nowhere"))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer q.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := q.Migrate(ctx); err == nil {
		t.Fatal("Migrate on an unreachable server succeeded")
	}
	if err := q.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// TestCapabilities: the transport declares what its conformance features
// say it does.
func TestCapabilities(t *testing.T) {
	q, err := New(unreachablePool(t))
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	want := eventkit.CapWildcards | eventkit.CapConsumerGroups | eventkit.CapNack | eventkit.CapNackDelay |
		eventkit.CapAttemptCount | eventkit.CapOrderPerKey | eventkit.CapPersistent | eventkit.CapFromStart
	if got := eventkit.CapabilitiesOf(q); !got.Has(want) {
		t.Fatalf("capabilities %v, want at least %v", got, want)
	}
}
