package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/postgres"
	"github.com/eventkit/eventkit/saga"
)

// sagaCLIStore returns a saga store in a new schema of the test server.
func sagaCLIStore(t *testing.T) (dsn, table string, store *postgres.SagaStore) {
	dsn, schema, pool := pgSchema(t, "sagacli_")
	ctx := context.Background()
	ob, err := postgres.NewOutbox(pool, postgres.OutboxTable(schema+".outbox"))
	if err != nil {
		t.Fatal(err)
	}
	table = schema + ".sagas"
	store = postgres.NewSagaStore(pool, ob, table)
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return dsn, table, store
}

func TestSagaCommand(t *testing.T) {
	dsn, table, store := sagaCLIStore(t)
	type cart struct{ Items int }
	s, err := saga.New[cart]("cart", store, saga.CorrelateBySubject())
	if err != nil {
		t.Fatal(err)
	}
	_ = s.On("cart.opened", saga.Step[cart]{Name: "open", Starts: true,
		Do: func(_ context.Context, c *saga.Context[cart], e event.Event) error {
			c.State.Items = 3
			if e.ID() == "2" {
				c.Complete()
			}
			return nil
		}})
	for _, id := range []string{"1", "2"} {
		e := event.New()
		e.SetID(id)
		e.SetSource("test")
		e.SetType("cart.opened")
		e.SetSubject("c" + id + map[string]string{"1": "\x1b[2J"}[id]) // a hostile id is escaped
		if err := s.HandleEvent(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	sagaCLI := func(args ...string) (stdout, stderr string, code int) {
		var out, errOut bytes.Buffer
		args = append([]string{"saga", args[0], "--dsn", dsn, "--table", table, "--saga", "cart"}, args[1:]...)
		code = run(context.Background(), args, &out, &errOut)
		return out.String(), errOut.String(), code
	}
	out, _, code := sagaCLI("list")
	if code != 0 || !strings.Contains(out, `c1\x1b[2J  running    1`) || !strings.Contains(out, "c2         completed  1") || strings.Contains(out, "\x1b") {
		t.Fatalf("saga list: exit %d:\n%s", code, out)
	}
	out, _, code = sagaCLI("list", "--status", "completed")
	if code != 0 || strings.Contains(out, "c1") || !strings.Contains(out, "c2") {
		t.Fatalf("saga list --status completed: exit %d:\n%s", code, out)
	}
	out, errOut, code := sagaCLI("show", "c2")
	var rec saga.Record
	var state cart
	err = json.Unmarshal([]byte(out), &rec)
	if err == nil {
		err = json.Unmarshal(rec.State, &state)
	}
	if err != nil || code != 0 || rec.Status != saga.Completed || state.Items != 3 || len(rec.History) != 2 {
		t.Fatalf("saga show: exit %d, printed %s (%v) %s; want the completed instance with its state and history", code, out, err, errOut)
	}
	if _, errOut, code := sagaCLI("show", "nope"); code != 1 || !strings.Contains(errOut, saga.ErrNotFound.Error()) {
		t.Fatalf("saga show of a missing instance: exit %d: %s", code, errOut)
	}
	var buf bytes.Buffer
	for _, args := range [][]string{{"saga", "list"}, {"saga"}, {"saga", "show", "--saga", "cart", "--dsn", dsn}} {
		if code := run(context.Background(), args, &buf, &buf); code != 2 {
			t.Fatalf("%q: exit %d; want 2 (usage)", args, code)
		}
	}
}
