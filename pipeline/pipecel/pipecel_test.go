package pipecel_test

import (
	"context"
	"time"

	"github.com/eventkit/eventkit/memory"
	"github.com/eventkit/eventkit/pipeline"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/pipeline/pipecel"
	"github.com/google/cel-go/cel"
)

func order(id string, total int) event.Event {
	e := eventkittest.NewEvent(id)
	e.SetType("order.placed")
	_ = e.SetData(event.ApplicationJSON, map[string]any{"id": id, "total": total})
	return e
}

func TestFilterExpression(t *testing.T) {
	p, err := pipecel.Compile("event.type == 'order.placed' && data.total > 100", cel.BoolType, pipecel.DefaultCostLimit)
	if err != nil {
		t.Fatal(err)
	}
	for total, want := range map[int]bool{50: false, 150: true} {
		if got, err := p.Eval(order("o1", total)); err != nil || got != want {
			t.Errorf("total %d: %v, %v; want %v", total, got, err, want)
		}
	}
	if _, err := p.Eval(eventkittest.NewEvent("no-total")); err != nil {
		t.Fatalf("a short-circuited expression failed: %v", err)
	}
	missing, _ := pipecel.Compile("data.total > 100", cel.BoolType, pipecel.DefaultCostLimit)
	if _, err := missing.Eval(eventkittest.NewEvent("no-total")); err == nil || !eventkit.IsPermanent(err) {
		t.Fatalf("a missing field: %v; want a permanent error", err)
	}
}

func TestCompileErrors(t *testing.T) {
	for expr, want := range map[string]string{
		"data.total >":   "Syntax error",
		"event.type + 1": "no matching overload",
		"'not a bool'":   "gives string, want bool",
	} {
		if _, err := pipecel.Compile(expr, cel.BoolType, pipecel.DefaultCostLimit); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v; want %q", expr, err, want)
		}
	}
}

// The cost limit stops an expression that would run for long.
func TestCostLimit(t *testing.T) {
	p, err := pipecel.Compile("[1,2,3,4,5,6,7,8,9,10].all(x, [1,2,3,4,5,6,7,8,9,10].all(y, [1,2,3,4,5,6,7,8,9,10].all(z, x+y+z > 0)))", cel.BoolType, 100)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Eval(order("o", 1)); err == nil || !strings.Contains(err.Error(), "cost limit") {
		t.Fatalf("Eval = %v; want the cost limit", err)
	}
}

func TestMapStage(t *testing.T) {
	s, err := pipecel.Map("m", "{'id': data.id, 'double': data.total * 2.0}", "order.doubled")
	if err != nil {
		t.Fatal(err)
	}
	bus := memory.New()
	defer bus.Close()
	out, _ := bus.Subscribe(context.Background(), "out")
	p := pipeline.New()
	p.From(pipeline.Source{Subscriber: bus, Pattern: "in"}).Then(s).Then(pipeline.Publish("out", bus, "out"))
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	if err := bus.Publish(context.Background(), "in", order("o1", 21)); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-out.Messages():
		if m.Event.Type() != "order.doubled" || string(m.Event.Data()) != `{"double":42,"id":"o1"}` {
			t.Fatalf("output %s %s", m.Event.Type(), m.Event.Data())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no output")
	}
}

// The cost per event of a CEL filter and a CEL map (bench/RESULTS.md).
func BenchmarkCEL(b *testing.B) {
	e := order("o1", 150)
	for _, c := range []struct{ name, expr string }{
		{"filter", "event.type == 'order.placed' && data.total > 100"},
		{"map", "{'id': data.id, 'double': data.total * 2.0}"},
	} {
		b.Run(c.name, func(b *testing.B) {
			p, err := pipecel.Compile(c.expr, cel.DynType, pipecel.DefaultCostLimit)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.Eval(e); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
