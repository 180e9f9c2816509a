package pipeconf_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/memory"
)

// The enrich processor from a file of customers: found customers get their
// tier as an attribute and their record in the data; an unknown one is
// dead-lettered (on_missing: fail, a permanent error), never lost.
func TestEnrichFromFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "customers.yaml"), []byte("c1: {name: Ada, tier: gold}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	def := `input: {url: memory://, topic: in}
processors:
  - name: customer
    enrich:
      key: data.customer
      file: customers.yaml
      into: customer
      attributes: {tier: tier}
    dead_letter: {url: memory://, topic: dlq}
outputs:
  - {url: memory://, topic: out}
`
	b := memory.New()
	defer b.Close()
	ctx := context.Background()
	out, _ := b.Subscribe(ctx, "out")
	dlq, _ := b.Subscribe(ctx, "dlq")
	l, err := loader(b).Load(ctx, filepath.Join(dir, "p.yaml"), []byte(def))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	runCtx, cancel := context.WithCancel(ctx)
	if err := l.Start(runCtx); err != nil {
		t.Fatal(err)
	}
	for id, c := range map[string]string{"o1": "c1", "o2": "c9"} {
		e := eventkittest.NewEvent(id)
		_ = e.SetData(event.ApplicationJSON, map[string]string{"customer": c})
		if err := b.Publish(ctx, "in", e); err != nil {
			t.Fatal(err)
		}
	}
	m := eventkittest.Receive(t, out, 10*time.Second)
	if m.Event.ID() != "o1" || m.Event.Extensions()["tier"] != "gold" || !strings.Contains(string(m.Event.Data()), `"customer":{"name":"Ada","tier":"gold"}`) {
		t.Fatalf("out: %s %v %s", m.Event.ID(), m.Event.Extensions(), m.Event.Data())
	}
	if m := eventkittest.Receive(t, dlq, 10*time.Second); m.Event.ID() != "o2" {
		t.Fatalf("dead letter %s, want o2", m.Event.ID())
	}
	cancel()
	if err := l.Wait(); err != nil {
		t.Fatal(err)
	}
}

// Enrich settings are checked whole, each error at its line.
func TestEnrichErrors(t *testing.T) {
	def := `input: {url: memory://, topic: in}
processors:
  - name: e
    enrich:
      key: subject
      http: {url: "http://crm/customers"}
      values: {a: {x: 1}}
      on_error: ignore
outputs:
  - {url: memory://, topic: out}
`
	b := memory.New()
	defer b.Close()
	_, err := loader(b).Load(context.Background(), "e.yaml", []byte(def))
	for _, want := range []string{
		"e.yaml:5: processors[0].enrich: want one lookup (http, function, file or values), got [http values]",
		`e.yaml:8: processors[0].enrich.on_error: want fail, pass or drop, got "ignore"`,
		"e.yaml:5: processors[0].enrich: into or attributes is required",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q:\n%v", want, err)
		}
	}
}
