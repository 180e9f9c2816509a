package mqtt_test

import (
	"context"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/internal/testkit"
)

// TestSpecExampleThroughBroker publishes the MQTT binding's binary-mode
// example (Content Type and a datacontenttype user property) with a plain
// paho client through the real broker: the subscription delivers it as
// the event it describes (it was dropped as "not a valid CloudEvent").
func TestSpecExampleThroughBroker(t *testing.T) {
	tr := dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns := eventkittest.UniqueName("ekspec")
	tp := ns + ".mytopic"
	s := testkit.Subscribe(t, ctx, tr, tp)
	defer s.Close()

	c, _ := pahoConnect(t, ctx, &paho.Connect{ClientID: ns + "-pub", CleanStart: true, KeepAlive: 10})
	defer c.Disconnect(&paho.Disconnect{})
	const ct = "application/json; charset=utf-8"
	if _, err := c.Publish(ctx, &paho.Publish{Topic: ns + "/mytopic", QoS: 1, Payload: []byte(`{"a":1}`),
		Properties: &paho.PublishProperties{ContentType: ct, User: paho.UserProperties{
			{Key: "specversion", Value: "1.0"},
			{Key: "type", Value: "com.example.someevent"},
			{Key: "time", Value: "2018-04-05T03:56:24Z"},
			{Key: "id", Value: "1234-1234-1234"},
			{Key: "source", Value: "/mycontext/subcontext"},
			{Key: "datacontenttype", Value: ct},
		}}}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-s.Messages():
		e := m.Event
		if e.ID() != "1234-1234-1234" || e.DataContentType() != ct || string(e.Data()) != `{"a":1}` {
			t.Fatalf("got %v", e)
		}
		_ = m.Ack()
	case <-ctx.Done():
		t.Fatal("the binding's example was not delivered")
	}
}
