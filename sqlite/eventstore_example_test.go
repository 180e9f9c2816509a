package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/es"
	"github.com/eventkit/eventkit/sqlite"
	_ "modernc.org/sqlite"
)

func ExampleEventStore() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "eventkit-example")
	defer os.RemoveAll(dir)
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "events.db")+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)")
	if err != nil {
		panic(err)
	}
	defer db.Close()
	store := sqlite.NewEventStore(db, "events")
	if err := store.Migrate(ctx); err != nil {
		panic(err)
	}

	placed := event.New()
	placed.SetID("evt-1")
	placed.SetSource("/shop")
	placed.SetType("order.placed")
	_ = placed.SetData(event.ApplicationJSON, map[string]any{"total": 42})

	res, err := store.Append(ctx, "order-1", es.NoStream, placed)
	fmt.Println("appended: version", res.Version, "position", res.Positions[0], err)

	// A retry of the same append (same event id, same place) is a no-op.
	again, err := store.Append(ctx, "order-1", es.NoStream, placed)
	fmt.Println("retried:  version", again.Version, "position", again.Positions[0], err)

	// A stale writer gets a conflict naming the versions.
	other := placed.Clone()
	other.SetID("evt-2")
	_, err = store.Append(ctx, "order-1", es.NoStream, other)
	fmt.Println(err)

	all, _ := store.ReadAll(ctx, 0, 0)
	fmt.Println("global log:", len(all), "event(s)")
	// Output:
	// appended: version 1 position 1 <nil>
	// retried:  version 1 position 1 <nil>
	// es: version conflict on stream "order-1": expected no-stream, actual 1
	// global log: 1 event(s)
}
