package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/pipeline"
)

// A feed's Publish returns only after the sink took every event, and
// returns the stage's error when one failed, so that the producer sends
// again: nothing is acked that did not reach the end.
func TestFeedPublishWaitsForTheSink(t *testing.T) {
	feed := pipeline.NewFeed()
	t.Cleanup(func() { _ = feed.Close() })
	var c collector
	release := make(chan struct{})
	p := pipeline.New()
	p.From(pipeline.Source{Subscriber: feed, Pattern: ">"}).
		Then(pipeline.Map("gate", func(_ context.Context, e event.Event) (event.Event, error) {
			<-release
			if e.ID() == "bad" {
				return e, errors.New("lookup down")
			}
			return e, nil
		})).
		Then(c.sink("out"))
	start(t, p)
	ctx := context.Background()
	done := make(chan error, 1)
	go func() { done <- feed.Publish(ctx, "in", eventkittest.NewEvent("a"), eventkittest.NewEvent("b")) }()
	select {
	case err := <-done:
		t.Fatalf("Publish returned %v before the stage handled its events", err)
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := ids(c.snapshot()); fmt.Sprint(got) != "[a b]" {
		t.Fatalf("sink got %v", got)
	}
	err := feed.Publish(ctx, "in", eventkittest.NewEvent("c"), eventkittest.NewEvent("bad"))
	if err == nil || !strings.Contains(err.Error(), "lookup down") {
		t.Fatalf("Publish of a failing event: %v; want the stage's error", err)
	}
	if feed.Held() != 0 {
		t.Fatalf("feed holds %d events after every Publish returned", feed.Held())
	}
}

// A full feed refuses at once with FeedWait(0): the caller can answer 429
// instead of holding the request; room made by the pipeline is usable
// again.
func TestFeedFullRefuses(t *testing.T) {
	feed := pipeline.NewFeed(pipeline.FeedCapacity(2), pipeline.FeedWait(0))
	ctx := context.Background()
	first := make(chan error, 1)
	go func() { first <- feed.Publish(ctx, "in", eventkittest.NewEvent("a"), eventkittest.NewEvent("b")) }()
	eventually(t, "two events held", func() bool { return feed.Held() == 2 })
	err := feed.Publish(ctx, "in", eventkittest.NewEvent("c"))
	var ra *eventkit.RetryAfterError
	if !errors.Is(err, pipeline.ErrFull) || !errors.As(err, &ra) {
		t.Fatalf("Publish into a full feed: %v; want ErrFull with a retry delay", err)
	}
	// No subscription took them: Close fails them, and Publish says so.
	if err := feed.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-first; !errors.Is(err, eventkit.ErrClosed) {
		t.Fatalf("Publish of events a closed feed dropped: %v; want ErrClosed", err)
	}
	if err := feed.Publish(ctx, "in", eventkittest.NewEvent("d")); !errors.Is(err, eventkit.ErrClosed) {
		t.Fatalf("Publish after Close: %v", err)
	}
}
