package amqp_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/internal/testkit"
	amqp "github.com/rabbitmq/amqp091-go"
)

// TestNativeTypedHeaders publishes, with a plain amqp091 client through the
// real broker, binary-mode messages whose attributes are native AMQP
// values under either prefix ("cloudEvents:" as the binding names them,
// "cloudEvents_" as the JMS form): the subscription delivers them as
// events with the matching CloudEvents types.
func TestNativeTypedHeaders(t *testing.T) {
	ns := eventkittest.UniqueName("eknative")
	tr := dial(t, "ektest-"+ns)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tp := ns + ".typed"
	sub := testkit.Subscribe(t, ctx, tr, tp)
	defer sub.Close()

	ch := channel(t, testkit.AMQPURL(t))
	ts := time.Date(2018, 4, 5, 3, 56, 24, 0, time.UTC)
	bin := []byte{0, 0xff, 0xfe, 'a'}
	for _, prefix := range []string{"cloudEvents:", "cloudEvents_"} {
		h := amqp.Table{
			prefix + "specversion": "1.0",
			prefix + "id":          "native-" + prefix,
			prefix + "source":      "/mycontext",
			prefix + "type":        "com.example.someevent",
			prefix + "time":        ts,
			prefix + "seq":         int64(42),
			prefix + "flag":        true,
			prefix + "blob":        bin,
			prefix + "when":        ts,
		}
		if err := ch.PublishWithContext(ctx, tr.Exchange(), tp, false, false,
			amqp.Publishing{Headers: h, ContentType: "text/plain", Body: []byte("hi")}); err != nil {
			t.Fatal(err)
		}
	}
	for _, prefix := range []string{"cloudEvents:", "cloudEvents_"} {
		var m interface{ Ack() error }
		select {
		case msg := <-sub.Messages():
			m = msg
			e := msg.Event
			if e.ID() != "native-"+prefix {
				t.Fatalf("got event %q, want native-%s", e.ID(), prefix)
			}
			ext := e.Extensions()
			if !e.Time().Equal(ts) || ext["seq"] != int32(42) || ext["flag"] != true || string(e.Data()) != "hi" {
				t.Errorf("prefix %q: time %v, extensions %#v, data %q", prefix, e.Time(), ext, e.Data())
			}
			if b, ok := ext["blob"].([]byte); !ok || !bytes.Equal(b, bin) {
				t.Errorf("prefix %q: blob %#v, want Binary %v", prefix, ext["blob"], bin)
			}
			if w, ok := ext["when"].(types.Timestamp); !ok || !w.Time.Equal(ts) {
				t.Errorf("prefix %q: when %#v, want Timestamp %v", prefix, ext["when"], ts)
			}
		case <-ctx.Done():
			t.Fatalf("prefix %q: no event delivered (a message that does not decode is dropped)", prefix)
		}
		if err := m.Ack(); err != nil {
			t.Fatal(err)
		}
	}
}
