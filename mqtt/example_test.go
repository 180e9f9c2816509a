package mqtt_test

import (
	"context"
	"fmt"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	ekmqtt "github.com/eventkit/eventkit/mqtt"
)

// A shared subscription (consumer group) and a persistent-session
// subscription on one transport. (Compiled, not run by go test: it needs a
// broker; TestTransport and TestPersistentSession cover the same paths.)
func Example() {
	ctx := context.Background()
	tr, err := ekmqtt.Dial(ctx, eventkittest.Env("EVENTKIT_MQTT_URL", eventkittest.DefaultMQTTURL))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer tr.Close()
	ingest, _ := tr.Subscribe(ctx, "sensors.*.temperature", eventkit.WithGroup("ingest"))
	archive, _ := tr.Subscribe(ctx, "sensors.>", eventkit.WithTransportOption(ekmqtt.Session("archiver-1")))
	if err := tr.Publish(ctx, "sensors.kitchen.temperature", eventkittest.NewEvent("t-1")); err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range []eventkit.Subscription{ingest, archive} {
		m := <-s.Messages()
		fmt.Println(m.Topic)
		_ = m.Ack()
	}
}
