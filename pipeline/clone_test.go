package pipeline

import (
	"reflect"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/eventkittest"
)

// A clone equals its event, and changing one (attributes, extensions,
// data in place) leaves the other as it was.
func TestCloneEventSharesNothing(t *testing.T) {
	e := eventkittest.NewEvent("1")
	e.SetTime(time.Unix(1, 0).UTC())
	e.SetDataSchema("https://schema/1")
	e.SetExtension("tenant", "a")
	e.SetExtension("blob", []byte("xyz"))
	_ = e.SetData(event.ApplicationJSON, map[string]int{"n": 1})
	before := e.Clone()
	c := CloneEvent(e)
	if !reflect.DeepEqual(c, e) {
		t.Fatalf("clone %v; want %v", c, e)
	}
	c.SetType("u")
	c.SetTime(time.Unix(2, 0))
	c.SetDataSchema("https://schema/2")
	c.SetExtension("tenant", "b")
	c.Extensions()["blob"].([]byte)[0] = 'X'
	c.DataEncoded[0] = '['
	if !reflect.DeepEqual(e, before) {
		t.Fatalf("the original changed with its clone: %v; want %v", e, before)
	}
	v03 := eventkittest.NewEvent("2")
	v03.SetSpecVersion(event.CloudEventsVersionV03)
	if c := CloneEvent(v03); !reflect.DeepEqual(c, v03) {
		t.Fatalf("a 0.3 clone %v; want %v", c, v03)
	}
}
