package pipecel

import (
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/google/cel-go/cel"
)

// The event variable read lazily gives what the whole map gave: lookups,
// presence, size, iteration, a missing key's error.
func TestLazyAttributesAsTheMap(t *testing.T) {
	withTime := eventkittest.NewEvent("e1")
	withTime.SetTime(time.Date(2026, 12, 3, 20, 0, 0, 0, time.UTC))
	withTime.SetExtension("tenant", "a")
	withTime.SetExtension("count", 3)
	for _, e := range []event.Event{eventkittest.NewEvent("e0"), withTime} {
		for _, expr := range []string{
			"event.type", "event.id + '/' + event.source", "event.subject", "event.dataschema",
			"event.datacontenttype", "event.specversion", "event.tenant", "event.count",
			"'tenant' in event", "'nope' in event", "has(event.time)", "has(event.subject)",
			"size(event)", "event.exists(k, k == 'tenant')", "event.nope", "event.time",
			"event == {'id': 'x'}",
		} {
			p, err := Compile(expr, cel.DynType, DefaultCostLimit)
			if err != nil {
				t.Fatal(err)
			}
			got, gotErr := p.eval(e)
			want, _, wantErr := p.prg.Eval(map[string]any{"event": attributes(e), "data": nil})
			if (gotErr != nil) != (wantErr != nil) || (gotErr == nil && got.Equal(want) != want.Equal(want)) {
				t.Errorf("event %s: %s = %v, %v; the map gives %v, %v", e.ID(), expr, got, gotErr, want, wantErr)
			}
		}
	}
}
