package cehttp_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/cehttp"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/internal/version"
	"github.com/eventkit/eventkit/memory"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))
}

// TestTransport runs the transport conformance suite with publishes going
// through HTTP: the egress Publisher posts to a test server whose ingress
// Handler publishes to a memory bus, from which the suite subscribes.
func TestTransport(t *testing.T) {
	for _, mode := range []struct {
		name string
		m    cehttp.PublisherOption
	}{{"binary", cehttp.WithMode(eventkit.Binary)}, {"batch", cehttp.WithBatch()}} {
		t.Run(mode.name, func(t *testing.T) {
			eventkittest.TestTransport(t, func(t *testing.T, ns string) (eventkit.Publisher, eventkit.Subscriber) {
				bus := memory.New()
				srv := httptest.NewServer(cehttp.NewHandler(bus,
					cehttp.WithTopic(cehttp.TopicFromHeader("")),
					cehttp.WithBearerToken("tok"), cehttp.WithHMACSecret([]byte("key"))))
				t.Cleanup(srv.Close)
				pub, err := cehttp.NewPublisher(srv.URL, mode.m,
					cehttp.WithToken("tok"), cehttp.WithSigningSecret([]byte("key")))
				if err != nil {
					t.Fatal(err)
				}
				return pub, bus
			}, eventkittest.Features{
				Wildcards:           true,
				ConsumerGroups:      true,
				GroupBalance:        true,
				OrderPerKey:         true,
				ExtensionsAsStrings: true,
				Timeout:             20 * time.Second,
			})
		})
	}
}

func TestStructuredModeRoundTrip(t *testing.T) {
	rec := &recorder{}
	srv := httptest.NewServer(cehttp.NewHandler(rec, cehttp.WithTopic(cehttp.TopicFromHeader(""))))
	defer srv.Close()
	pub, err := cehttp.NewPublisher(srv.URL, cehttp.WithMode(eventkit.Structured))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	want := eventkittest.NewEvent("s-1")
	want.SetSubject("Euro € 😀")
	want.SetExtension("extint", 7)
	if err := pub.Publish(context.Background(), "orders.created", want); err != nil {
		t.Fatal(err)
	}
	topics, got := rec.got()
	if len(got) != 1 || topics[0] != "orders.created" {
		t.Fatalf("got %v on %v", got, topics)
	}
	if d := eventkittest.DiffEvents(want, got[0]); d != "" {
		t.Fatal(d)
	}
	// Structured mode keeps extension types.
	if v, ok := got[0].Extensions()["extint"].(int32); !ok || v != 7 {
		t.Fatalf("extint = %#v", got[0].Extensions()["extint"])
	}
}

func TestPublisherErrors(t *testing.T) {
	var status atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := int(status.Load())
		if s == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "3")
		}
		w.WriteHeader(s)
	}))
	defer srv.Close()
	pub, err := cehttp.NewPublisher(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	ev := eventkittest.NewEvent("e")
	ctx := context.Background()

	for _, s := range []int{200, 201, 202, 204} {
		status.Store(int32(s))
		if err := pub.Publish(ctx, "a.b", ev); err != nil {
			t.Errorf("status %d: %v", s, err)
		}
	}
	for _, s := range []int{301, 400, 404, 500, 502} {
		status.Store(int32(s))
		err := pub.Publish(ctx, "a.b", ev)
		var se *cehttp.StatusError
		if !errors.As(err, &se) || se.Status != s {
			t.Errorf("status %d: got %v", s, err)
		}
		if eventkit.IsPermanent(err) != (s >= 400 && s < 500) {
			t.Errorf("status %d: IsPermanent = %v", s, eventkit.IsPermanent(err))
		}
	}
	status.Store(http.StatusServiceUnavailable)
	var ra *eventkit.RetryAfterError
	if err := pub.Publish(ctx, "a.b", ev); !errors.As(err, &ra) || ra.Delay != 3*time.Second || eventkit.IsPermanent(err) {
		t.Errorf("503 with Retry-After: got %v", err)
	}
	// An invalid event sends nothing.
	status.Store(200)
	bad := eventkittest.NewEvent("")
	var ve *eventkit.ValidationError
	if err := pub.Publish(ctx, "a.b", ev, bad); !errors.As(err, &ve) || ve.Attribute != "id" {
		t.Errorf("invalid event: got %v", err)
	}
	if _, err := cehttp.NewPublisher("ftp://x"); err == nil {
		t.Errorf("NewPublisher accepted an ftp URL")
	}
}

func TestPublisherTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	pub, err := cehttp.NewPublisher(srv.URL, cehttp.WithTimeout(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	start := time.Now()
	err = pub.Publish(context.Background(), "a.b", eventkittest.NewEvent("slow"))
	if err == nil {
		t.Fatal("a request that never finished succeeded")
	}
	if el := time.Since(start); el < 200*time.Millisecond {
		t.Fatalf("gave up after %s, before the timeout", el)
	}
}

// ExampleNewHandler accepts CloudEvents over HTTP into a memory bus.
func ExampleNewHandler() {
	bus := memory.New()
	defer bus.Close()
	sub, _ := bus.Subscribe(context.Background(), "com.example.>")
	srv := httptest.NewServer(cehttp.NewHandler(bus))
	defer srv.Close()

	req, _ := http.NewRequest(http.MethodPost, srv.URL, nil)
	req.Header.Set("ce-specversion", "1.0")
	req.Header.Set("ce-id", "1")
	req.Header.Set("ce-source", "/example")
	req.Header.Set("ce-type", "com.example.greeting")
	req.Header.Set("ce-subject", "Euro%20%E2%82%AC")
	resp, _ := http.DefaultClient.Do(req)
	resp.Body.Close()
	m := <-sub.Messages()
	_ = m.Ack()
	fmt.Println(resp.StatusCode, m.Topic, m.Event.Subject())
	// Output: 204 com.example.greeting Euro €
}

// ExampleNewPublisher posts an event to a webhook in binary mode.
func ExampleNewPublisher() {
	bus := memory.New()
	defer bus.Close()
	srv := httptest.NewServer(cehttp.NewHandler(bus, cehttp.WithTopic(cehttp.TopicFromHeader(""))))
	defer srv.Close()
	sub, _ := bus.Subscribe(context.Background(), "orders.*")

	pub, _ := cehttp.NewPublisher(srv.URL)
	defer pub.Close()
	e := event.New()
	e.SetID("o-1")
	e.SetSource("/shop")
	e.SetType("com.example.order.created")
	_ = e.SetData("application/json", map[string]string{"order": "o-1"})
	if err := pub.Publish(context.Background(), "orders.created", e); err != nil {
		fmt.Println(err)
		return
	}
	m := <-sub.Messages()
	_ = m.Ack()
	fmt.Println(m.Topic, m.Event.ID(), string(m.Event.Data()))
	// Output: orders.created o-1 {"order":"o-1"}
}

func TestPublisherHandshake(t *testing.T) {
	srv := httptest.NewServer(cehttp.NewHandler(&recorder{}, cehttp.WithAllowedOrigins("sender.example")))
	defer srv.Close()
	pub, err := cehttp.NewPublisher(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	ctx := context.Background()
	if err := pub.Handshake(ctx, "sender.example", 60); err != nil {
		t.Fatalf("granted origin: %v", err)
	}
	if err := pub.Handshake(ctx, "other.example", 0); err == nil {
		t.Fatal("refused origin: no error")
	}
	// A target that answers 200 without granting anything.
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer plain.Close()
	pub2, _ := cehttp.NewPublisher(plain.URL)
	defer pub2.Close()
	if err := pub2.Handshake(ctx, "sender.example", 0); err == nil {
		t.Fatal("a target without WebHook-Allowed-Origin passed the handshake")
	}
}

// The publisher names itself in User-Agent ("eventkit/v0.1.0"), unless
// WithHeader sets another.
func TestPublisherUserAgent(t *testing.T) {
	got := make(chan string, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("User-Agent")
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	for _, c := range []struct {
		opts []cehttp.PublisherOption
		want string
	}{
		{nil, "eventkit/" + version.Get()},
		{[]cehttp.PublisherOption{cehttp.WithHeader("User-Agent", "mine/1")}, "mine/1"},
	} {
		p, err := cehttp.NewPublisher(srv.URL, c.opts...)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Publish(context.Background(), "a.b", eventkittest.NewEvent("ua")); err != nil {
			t.Fatal(err)
		}
		if ua := <-got; ua != c.want {
			t.Errorf("User-Agent %q, want %q", ua, c.want)
		}
	}
}
