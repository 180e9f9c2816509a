package pipeconf_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/memory"
	"github.com/eventkit/eventkit/pipeline/pipeconf"
)

// busTransports opens every URL on one memory bus (and fails for "bad:").
type busTransports struct{ b *memory.Bus }

type nopCloser struct{ eventkit.Subscriber }

func (nopCloser) Close() error { return nil }

type nopPub struct{ eventkit.Publisher }

func (nopPub) Close() error { return nil }

func (t busTransports) Subscriber(_ context.Context, url string) (eventkit.Subscriber, error) {
	if strings.HasPrefix(url, "bad:") {
		return nil, errors.New("cannot open " + url)
	}
	return nopCloser{t.b}, nil
}

func (t busTransports) Publisher(_ context.Context, url string) (eventkit.Publisher, error) {
	if strings.HasPrefix(url, "bad:") {
		return nil, errors.New("cannot open " + url)
	}
	return nopPub{t.b}, nil
}

func loader(b *memory.Bus) *pipeconf.Loader {
	return &pipeconf.Loader{
		Transports: busTransports{b},
		Functions: map[string]pipeconf.Function{
			"upper-subject": func(_ context.Context, e event.Event) ([]event.Event, error) {
				e.SetSubject(strings.ToUpper(e.Subject()))
				return []event.Event{e}, nil
			},
		},
	}
}

const valid = `
pipeline:
  max_in_flight: 32
input:
  url: memory://
  topic: in
processors:
  - name: upper
    map: {function: upper-subject}
    workers: 2
    ordered: true
  - name: only-tests
    filter:
      attributes: {type: dev.eventkit.test}
  - name: batch
    batch: {size: 5, wait: 20ms}
  - name: by-subject
    route:
      attribute: subject
      cases: {A: out-a}
      default: out-other
outputs:
  - name: out-a
    url: memory://
    topic: a
  - name: out-other
    url: memory://
    topic: other
    batch: 10
`

func TestLoadAndRun(t *testing.T) {
	b := memory.New()
	defer b.Close()
	l, err := loader(b).Load(context.Background(), "valid.yaml", []byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	a, _ := b.Subscribe(ctx, "a")
	other, _ := b.Subscribe(ctx, "other")
	if err := l.Pipeline.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer l.Pipeline.Shutdown(ctx)
	for i, subj := range []string{"a", "b", "a", "c"} {
		e := eventkittest.NewEvent(string(rune('0' + i)))
		e.SetSubject(subj)
		if i == 3 {
			e.SetType("filtered.out")
		}
		if err := b.Publish(ctx, "in", e); err != nil {
			t.Fatal(err)
		}
	}
	want := map[eventkit.Subscription][]string{a: {"A", "A"}, other: {"B"}}
	for sub, subjects := range want {
		for _, s := range subjects {
			select {
			case m := <-sub.Messages():
				if m.Event.Subject() != s {
					t.Fatalf("subject %q; want %q", m.Event.Subject(), s)
				}
				_ = m.Ack()
			case <-time.After(10 * time.Second):
				t.Fatalf("no event with subject %q", s)
			}
		}
	}
}

// An invalid definition is refused with every error, each naming the
// line and the field.
func TestErrorsNameLineAndField(t *testing.T) {
	const bad = `input:
  url: memory://
  topic: in
  gruop: g
processors:
  - name: m
    map: {function: nope}
    wokers: 2
  - name: f
    filter: {attributes: {type: x}}
    timeout: soon
  - name: two-kinds
    map: {function: nope}
    batch: {size: 1}
  - name: r
    route:
      attribute: type
      cases: {x: missing}
outputs:
  - name: o
    url: bad://nowhere
    topic: out
`
	b := memory.New()
	defer b.Close()
	_, err := loader(b).Load(context.Background(), "bad.yaml", []byte(bad))
	if err == nil {
		t.Fatal("Load accepted the definition")
	}
	for _, want := range []string{
		`bad.yaml:4: input.gruop: unknown field`,
		`bad.yaml:7: processors[0].map.function: no function "nope" is registered`,
		`bad.yaml:8: processors[0].wokers: unknown field (did you mean "workers"?)`,
		`bad.yaml:11: processors[1].timeout: want a duration such as 50ms or 2s, got "soon"`,
		`bad.yaml:12: processors[2]: want exactly one processor kind`,
		`bad.yaml:18: processors[3].route.cases: case "x" names the output "missing", which is not defined`,
		`bad.yaml:21: outputs[0].url: cannot open bad://nowhere`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q:\n%v", want, err)
		}
	}
	var pe *pipeconf.Error
	if !errors.As(err, &pe) {
		t.Fatalf("%T is not an *Error", err)
	}
}

// A contract mismatch found by pipeline.Build is reported with the file.
func TestContractErrorFromBuild(t *testing.T) {
	const def = `input: {url: memory://, topic: in, types: [a]}
processors:
  - name: m
    map: {function: upper-subject}
    consumes: [b]
outputs:
  - {url: memory://, topic: out}
`
	b := memory.New()
	defer b.Close()
	_, err := loader(b).Load(context.Background(), "c.yaml", []byte(def))
	if err == nil || !strings.Contains(err.Error(), `c.yaml: pipeline: stage "m" consumes [b] but ["input"] produces "a"`) {
		t.Fatalf("Load = %v", err)
	}
}

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
