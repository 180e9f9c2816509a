package cehttp_test

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/cehttp"
)

// eachRecorder is a recorder that is also a cehttp.EachPublisher, and
// counts the calls of each kind.
type eachRecorder struct {
	recorder
	publishCalls, eachCalls int
}

func (r *eachRecorder) Publish(ctx context.Context, topic string, events ...event.Event) error {
	r.mu.Lock()
	r.publishCalls++
	r.mu.Unlock()
	return r.recorder.Publish(ctx, topic, events...)
}

func (r *eachRecorder) PublishEach(ctx context.Context, topics []string, events []event.Event) error {
	r.mu.Lock()
	r.eachCalls++
	r.mu.Unlock()
	for i := range events {
		if err := r.recorder.Publish(ctx, topics[i], events[i]); err != nil {
			return err
		}
	}
	return nil
}

func batchOf(types ...string) string {
	var parts []string
	for i, ty := range types {
		parts = append(parts, `{"specversion":"1.0","id":"e`+strconv.Itoa(i)+`","source":"/t","type":"`+ty+`"}`)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// A batch spanning several topics goes to an EachPublisher in one call, in
// order; a batch of one topic, or a single event, still goes to Publish.
func TestBatchUsesPublishEach(t *testing.T) {
	pub := &eachRecorder{}
	h := cehttp.NewHandler(pub)
	types := []string{"a.x", "b.y", "a.x", "c.z", "b.y", "a.x"}
	wantStatus(t, do(t, h, post("application/cloudevents-batch+json", batchOf(types...), nil)), http.StatusOK)
	topics, events := pub.got()
	if !slices.Equal(topics, types) || len(events) != len(types) {
		t.Fatalf("published to %v, want %v", topics, types)
	}
	for i, e := range events {
		if e.ID() != "e"+strconv.Itoa(i) {
			t.Fatalf("event %d is %s: out of order", i, e.ID())
		}
	}
	if pub.eachCalls != 1 || pub.publishCalls != 0 {
		t.Fatalf("PublishEach called %d times, Publish %d times; want 1 and 0", pub.eachCalls, pub.publishCalls)
	}

	pub.reset()
	pub.eachCalls, pub.publishCalls = 0, 0
	wantStatus(t, do(t, h, post("application/cloudevents-batch+json", batchOf("a.x", "a.x", "a.x"), nil)), http.StatusOK)
	wantStatus(t, do(t, h, post("application/json", `{}`, binaryHeaders(nil))), http.StatusNoContent)
	if pub.eachCalls != 0 || pub.publishCalls != 2 {
		t.Fatalf("PublishEach called %d times, Publish %d times; want 0 and 2", pub.eachCalls, pub.publishCalls)
	}
}

// A failing PublishEach is answered 503.
func TestBatchPublishEachFails(t *testing.T) {
	pub := &eachRecorder{}
	pub.err = errBroker
	h := cehttp.NewHandler(pub)
	resp := do(t, h, post("application/cloudevents-batch+json", batchOf("a.x", "b.y"), nil))
	problem(t, resp, http.StatusServiceUnavailable)
}

// An empty batch is accepted with nothing published, whatever the
// publisher: before, an EachPublisher (the hub's) made the handler panic
// (slice bounds out of range) and the connection was dropped.
func TestEmptyBatch(t *testing.T) {
	for name, pub := range map[string]interface {
		got() ([]string, []event.Event)
	}{"publisher": &recorder{}, "each publisher": &eachRecorder{}} {
		t.Run(name, func(t *testing.T) {
			h := cehttp.NewHandler(pub.(eventkit.Publisher))
			for _, body := range []string{`[]`, ` [ ] `} {
				resp := do(t, h, post("application/cloudevents-batch+json", body, nil))
				b, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != http.StatusOK || string(b) != `{"accepted":0}` {
					t.Fatalf("POST %q: %d %s", body, resp.StatusCode, b)
				}
			}
			if _, got := pub.got(); len(got) != 0 {
				t.Fatalf("%d events published", len(got))
			}
		})
	}
}
