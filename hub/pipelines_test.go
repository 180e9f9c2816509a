package hub_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/hub"
	"github.com/eventkit/eventkit/memory"
)

// A pipeline of the configuration reads what POST /events stored and
// publishes its output back to the server's broker; it runs while the
// server serves.
func TestPipelinesInConfig(t *testing.T) {
	cfg, err := hub.ParseConfig([]byte(`
pipelines:
  - name: audit
    definition:
      input: {url: hub, topic: orders.>, group: audit}
      processors:
        - name: created
          filter: {attributes: {type: orders.created}}
      outputs:
        - {url: hub, topic: audit.orders}
`))
	if err != nil {
		t.Fatal(err)
	}
	bus := memory.New()
	audit, err := bus.Subscribe(context.Background(), "audit.orders")
	if err != nil {
		t.Fatal(err)
	}
	s := start(t, cfg, hub.WithBroker(bus, bus))
	for i, typ := range []string{"orders.created", "orders.shipped", "orders.created"} {
		if resp := postEvent(t, s.URL(), string(rune('a'+i)), typ); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("POST: %d", resp.StatusCode)
		}
	}
	for _, want := range []string{"a", "c"} {
		if m := eventkittest.Receive(t, audit, 10*time.Second); m.Event.ID() != want {
			t.Fatalf("audit got %s, want %s", m.Event.ID(), want)
		}
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
}

// A pipeline that does not load stops the server from starting, with the
// line and the field.
func TestPipelineErrorsInConfig(t *testing.T) {
	cfg, err := hub.ParseConfig([]byte(`pipelines:
  - definition:
      input: {url: hub, topic: orders.>}
      processors:
        - filter: {attributes: {type: x}}
          wrokers: 2
      outputs:
        - {url: kafka://elsewhere, topic: out}
  - {file: does-not-exist.yaml}
`))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen = "127.0.0.1:0"
	bus := memory.New()
	_, err = hub.New(cfg, hub.WithBroker(bus, bus), hub.WithLogger(quiet))
	for _, want := range []string{
		`configuration:6: pipelines[0].definition.processors[0].wrokers: unknown field (did you mean "workers"?)`,
		`configuration:8: pipelines[0].definition.outputs[0].url: only "hub" (the server's broker) is known here`,
		"pipelines[1].file: open does-not-exist.yaml",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("hub.New error does not say %q:\n%v", want, err)
		}
	}
}
