package pipehttp_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/memory"
	"github.com/eventkit/eventkit/pipeline"
	"github.com/eventkit/eventkit/pipeline/pipeconf"
	"github.com/eventkit/eventkit/pipeline/pipehttp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// post sends one structured-mode event and returns the answer's status and
// Retry-After.
func post(t *testing.T, url, id string) (int, string) {
	t.Helper()
	body := fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"/test","type":"order.placed","data":{"n":1}}`, id)
	resp, err := http.Post(url, "application/cloudevents+json", strings.NewReader(body))
	if err != nil {
		t.Error(err)
		return 0, ""
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

// ingress starts a pipeline fed by an HTTP ingress whose only stage calls
// gate, and returns the ingress's URL and its feed.
func ingress(t *testing.T, capacity int, gate func(e event.Event) error) (string, *pipeline.Feed) {
	t.Helper()
	feed := pipeline.NewFeed(pipeline.FeedCapacity(capacity), pipeline.FeedWait(0))
	srv := httptest.NewServer(pipehttp.NewHandler(feed))
	p := pipeline.New()
	p.From(pipeline.Source{Subscriber: feed, Pattern: ">"}).
		Then(pipeline.Sink("gate", func(_ context.Context, e event.Event) error { return gate(e) }))
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Close()
		_ = feed.Close()
		if err := p.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return srv.URL, feed
}

// The answer is 2xx only once the output took the event; a full pipeline
// answers 429 with Retry-After; an event that fails in a stage gets 503.
func TestIngressAnswers(t *testing.T) {
	release := make(chan struct{})
	url, feed := ingress(t, 1, func(e event.Event) error {
		if e.ID() == "bad" {
			return errors.New("output refused it")
		}
		<-release
		return nil
	})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free) // before the pipeline's drain, even when the test fails
	answered := make(chan int, 1)
	go func() { code, _ := post(t, url, "a"); answered <- code }()
	eventkittest.WaitFor(t, 10*time.Second, "the feed holds a", func() bool { return feed.Held() == 1 })
	if code, retry := post(t, url, "b"); code != http.StatusTooManyRequests || retry == "" {
		t.Fatalf("full pipeline answered %d (Retry-After %q), want 429 with Retry-After", code, retry)
	}
	select {
	case code := <-answered:
		t.Fatalf("answered %d before the output took the event", code)
	default:
	}
	free()
	if code := <-answered; code/100 != 2 {
		t.Fatalf("answered %d after the output took the event", code)
	}
	if code, retry := post(t, url, "bad"); code != http.StatusServiceUnavailable || retry == "" {
		t.Fatalf("a failed event answered %d (Retry-After %q), want 503 with Retry-After", code, retry)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// The YAML input `http:` serves until the pipeline's context ends; what it
// accepted reached the output.
func TestHTTPInputInYAML(t *testing.T) {
	addr := freeAddr(t)
	bus := memory.New()
	defer bus.Close()
	out, err := bus.Subscribe(context.Background(), "out")
	if err != nil {
		t.Fatal(err)
	}
	l := &pipeconf.Loader{Transports: pipeconf.Fixed{Sub: bus, Pub: bus}, Inputs: map[string]pipeconf.InputKind{"http": pipehttp.Kind}}
	def := fmt.Sprintf("input:\n  http: {listen: %q, path: /events}\n  types: [order.placed]\noutputs:\n  - {url: memory://, topic: out}\n", addr)
	loaded, err := l.Load(context.Background(), "p.yaml", []byte(def))
	if err != nil {
		t.Fatal(err)
	}
	defer loaded.Close()
	ctx, cancel := context.WithCancel(context.Background())
	if err := loaded.Start(ctx); err != nil {
		t.Fatal(err)
	}
	url := "http://" + addr + "/events"
	eventkittest.WaitFor(t, 10*time.Second, "the ingress listens", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	if code, _ := post(t, url, "y1"); code/100 != 2 {
		t.Fatalf("answered %d", code)
	}
	if m := eventkittest.Receive(t, out, 5*time.Second); m.Event.ID() != "y1" {
		t.Fatalf("output got %s", m.Event.ID())
	}
	cancel()
	if err := loaded.Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Fatal("the ingress still listens after the pipeline ended")
	}
}

// A misspelt setting names its line and field.
func TestHTTPInputRefusesBadSettings(t *testing.T) {
	l := &pipeconf.Loader{Transports: pipeconf.Fixed{}, Inputs: map[string]pipeconf.InputKind{"http": pipehttp.Kind}}
	_, err := l.Load(context.Background(), "p.yaml", []byte("input:\n  http:\n    listen: 127.0.0.1:0\n    topic: header\n    capcity: 3\noutputs:\n  - {url: x}\n"))
	for _, want := range []string{"p.yaml:4: input.http.topic:", `p.yaml:5: input.http.capcity: unknown field (did you mean "capacity"?)`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	}
}
