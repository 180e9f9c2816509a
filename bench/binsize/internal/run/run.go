// Package run holds what every minimal program of bench/binsize does with
// its transport: publish one event, then receive and ack one. It imports
// only the root eventkit package, so that a program's size is its
// transport's.
package run

import (
	"context"
	"log"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
)

// Event returns the event the programs publish.
func Event() event.Event {
	e := event.New()
	e.SetID("1")
	e.SetSource("binsize")
	e.SetType("binsize.ping")
	_ = e.SetData("application/json", map[string]string{"hello": "world"})
	return e
}

// Publish publishes one event on topic "binsize" and fails the program on
// an error.
func Publish(ctx context.Context, p eventkit.Publisher) {
	if err := p.Publish(ctx, "binsize", Event()); err != nil {
		log.Fatal(err)
	}
}

// PubSub subscribes to "binsize", publishes one event, receives and acks it,
// then closes the transport.
func PubSub(t interface {
	eventkit.Publisher
	eventkit.Subscriber
}) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sub, err := t.Subscribe(ctx, "binsize")
	if err != nil {
		log.Fatal(err)
	}
	Publish(ctx, t)
	select {
	case m := <-sub.Messages():
		_ = m.Ack()
	case <-ctx.Done():
		log.Fatal(ctx.Err())
	}
	_ = sub.Close()
	if err := t.Close(); err != nil {
		log.Fatal(err)
	}
}

// Must returns v, and fails the program if errs holds a non-nil error. It
// takes a constructor's results whether or not the constructor returns an
// error (Must(redis.New(c)) compiles for both shapes), so that one program
// measures commits on both sides of a constructor change.
func Must[T any](v T, errs ...error) T {
	for _, err := range errs {
		if err != nil {
			log.Fatal(err)
		}
	}
	return v
}
