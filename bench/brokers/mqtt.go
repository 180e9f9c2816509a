package main

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/eventkit/eventkit"
	ekmqtt "github.com/eventkit/eventkit/mqtt"
)

func mqttSystems() []system {
	return []system{
		{"eventkit mqtt", eventkitMQTTRound},
		{"raw paho.golang", rawMQTTRound},
	}
}

func mqttURL() string { return env("EVENTKIT_MQTT_URL", "mqtt://127.0.0.1:1883") }

// MQTT keeps nothing for a topic without a subscriber, so both systems
// subscribe first and publish and consume at once (QoS 1, manual acks).
// Publish waits for each PUBACK in both.
func eventkitMQTTRound(n, batch int) (result, error) {
	ctx := context.Background()
	tr, err := ekmqtt.Dial(ctx, mqttURL())
	if err != nil {
		return result{}, err
	}
	defer tr.Close()
	tp := uniqueTopic()
	sub, err := tr.Subscribe(ctx, tp, eventkit.WithBuffer(batch))
	if err != nil {
		return result{}, err
	}
	defer sub.Close()
	events := make([]event.Event, n)
	for i := range events {
		events[i] = benchEvent(i)
	}
	start := time.Now()
	errc := make(chan error, 1)
	go func() {
		for i := 0; i < n; i += batch {
			if err := tr.Publish(ctx, tp, events[i:min(i+batch, n)]...); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for i := 0; i < n; i++ {
		m := <-sub.Messages()
		if err := m.Ack(); err != nil {
			return result{}, err
		}
	}
	if err := <-errc; err != nil {
		return result{}, err
	}
	el := time.Since(start)
	return result{float64(n) / el.Seconds(), float64(n) / el.Seconds(), float64(n) / el.Seconds()}, nil
}

func rawMQTTRound(n, batch int) (result, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	u, err := url.Parse(mqttURL())
	if err != nil {
		return result{}, err
	}
	tp := uniqueTopic()
	mt := "bench/" + tp
	got := make(chan *paho.Publish, batch)
	var subCli *paho.Client
	connect := func(id string, onPub func(paho.PublishReceived) (bool, error)) (*autopaho.ConnectionManager, error) {
		cfg := autopaho.ClientConfig{ServerUrls: []*url.URL{u}, KeepAlive: 20, CleanStartOnInitialConnection: true,
			ClientConfig: paho.ClientConfig{ClientID: id}}
		if onPub != nil {
			cfg.ClientConfig.EnableManualAcknowledgment = true
			cfg.ClientConfig.SendAcksInterval = 10 * time.Millisecond
			cfg.ClientConfig.OnPublishReceived = []func(paho.PublishReceived) (bool, error){onPub}
		}
		cm, err := autopaho.NewConnection(ctx, cfg)
		if err != nil {
			return nil, err
		}
		return cm, cm.AwaitConnection(ctx)
	}
	sub, err := connect("rawbench-sub-"+tp, func(pr paho.PublishReceived) (bool, error) {
		subCli = pr.Client
		got <- pr.Packet
		return true, nil
	})
	if err != nil {
		return result{}, err
	}
	if _, err := sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: mt, QoS: 1}}}); err != nil {
		return result{}, err
	}
	pub, err := connect("rawbench-pub-"+tp, nil)
	if err != nil {
		return result{}, err
	}
	start := time.Now()
	errc := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			_, err := pub.Publish(ctx, &paho.Publish{QoS: 1, Topic: mt, Payload: payload, Properties: &paho.PublishProperties{
				ContentType: "application/json", User: paho.UserProperties{{Key: "specversion", Value: "1.0"},
					{Key: "id", Value: "e-" + strconv.Itoa(i)}, {Key: "source", Value: "urn:bench"}, {Key: "type", Value: "bench.event"}}}})
			if err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for i := 0; i < n; i++ {
		p := <-got
		if p.Properties.User.Get("id") == "" {
			return result{}, fmt.Errorf("message without id")
		}
		if err := subCli.Ack(p); err != nil {
			return result{}, err
		}
	}
	if err := <-errc; err != nil {
		return result{}, err
	}
	el := time.Since(start)
	dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer dcancel()
	_ = pub.Disconnect(dctx)
	_ = sub.Disconnect(dctx)
	return result{float64(n) / el.Seconds(), float64(n) / el.Seconds(), float64(n) / el.Seconds()}, nil
}
