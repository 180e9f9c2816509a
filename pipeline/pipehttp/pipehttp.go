// Package pipehttp is the HTTP ingress of a pipeline: an HTTP server that
// accepts CloudEvents in binary, structured and batch mode (package
// cehttp's Handler, with its strict decoding, authentication and
// signatures) and pushes them into a pipeline.Feed, the pipeline's source.
//
// What an answer means:
//
//   - 2xx only after the pipeline finished with every event of the
//     request: each was acked, that is every event that descends from it
//     was settled by an output (published and confirmed by its transport)
//     or ended on purpose (a filter, a route without a case, a dead letter
//     that kept it). The ingress does not store events itself: an answer
//     is never given for an event that is only queued in memory.
//   - 429 Too Many Requests, with Retry-After, when the pipeline is full
//     (the feed holds its capacity of events not yet settled) and no room
//     was made within busy_wait: back-pressure reaches the client instead
//     of filling memory.
//   - 503 Service Unavailable, with Retry-After, when an event failed in a
//     stage (the stage's error is in the problem's detail), when the
//     pipeline did not settle the events within the request timeout, or
//     while the pipeline drains. The client sends the request again; an
//     event may then be seen twice (its id is unchanged, for deduplication
//     downstream), never lost.
//   - 4xx for a malformed request, as cehttp.Handler answers it; nothing of
//     it enters the pipeline.
package pipehttp

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/cehttp"
	"github.com/eventkit/eventkit/pipeline"
	"github.com/eventkit/eventkit/pipeline/pipeconf"
)

// NewHandler returns the ingress handler that pushes into feed (see the
// package documentation for its answers); opts configure the cehttp
// Handler under it (authentication, sizes, WithPublishTimeout for the wait
// for the pipeline, WithTopic).
func NewHandler(feed *pipeline.Feed, opts ...cehttp.Option) http.Handler {
	h := cehttp.NewHandler(busyAsProblem{feed}, opts...)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&retryAfter{ResponseWriter: w}, r)
	})
}

// busyAsProblem answers a full feed with 429.
type busyAsProblem struct{ feed *pipeline.Feed }

func (b busyAsProblem) Publish(ctx context.Context, topic string, events ...event.Event) error {
	err := b.feed.Publish(ctx, topic, events...)
	if errors.Is(err, pipeline.ErrFull) {
		return &cehttp.Problem{Type: "https://eventkit.dev/problems/busy", Title: "Pipeline full",
			Status: http.StatusTooManyRequests, Detail: "the pipeline holds as many events as it may; retry later"}
	}
	return err
}

func (b busyAsProblem) Close() error { return nil }

// retryAfter adds Retry-After to a 429 answer.
type retryAfter struct{ http.ResponseWriter }

func (w *retryAfter) WriteHeader(code int) {
	if code == http.StatusTooManyRequests && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", "1")
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *retryAfter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Config is the YAML form's settings (see Kind).
type Config struct {
	Listen   string        // host:port (required)
	Path     string        // "/" by default
	Capacity int           // events held and not settled (pipeline.DefaultFeedCapacity)
	BusyWait time.Duration // wait for room before 429 (0: at once)
	Timeout  time.Duration // wait for the pipeline before 503 (cehttp.DefaultPublishTimeout)
	Token    string        // bearer token required, if set
	Topic    string        // "header": the topic comes from the Eventkit-Topic header (behind a token only); "" or "type": the event's type
}

// Input returns the pipeline input of cfg: the feed as its source and the
// HTTP server as its producer, which listens on cfg.Listen when it runs and
// stops (net/http's Shutdown: every request answered) when its context
// ends.
func Input(cfg Config) *pipeconf.Input {
	feed := pipeline.NewFeed(pipeline.FeedCapacity(cmp(cfg.Capacity, pipeline.DefaultFeedCapacity)), pipeline.FeedWait(cfg.BusyWait))
	var opts []cehttp.Option
	if cfg.Timeout > 0 {
		opts = append(opts, cehttp.WithPublishTimeout(cfg.Timeout))
	}
	if cfg.Token != "" {
		opts = append(opts, cehttp.WithBearerToken(cfg.Token))
	}
	if cfg.Topic == "header" {
		opts = append(opts, cehttp.WithTopic(cehttp.TopicFromHeader("")))
	}
	path := cfg.Path
	if path == "" {
		path = "/"
	}
	mux := http.NewServeMux()
	mux.Handle(path, NewHandler(feed, opts...))
	return &pipeconf.Input{
		Source: pipeline.Source{Subscriber: feed, Pattern: ">"},
		Close:  feed.Close,
		Run: func(ctx context.Context) error {
			ln, err := net.Listen("tcp", cfg.Listen)
			if err != nil {
				return err
			}
			srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
			served := make(chan error, 1)
			go func() { served <- srv.Serve(ln) }()
			select {
			case err := <-served:
				return err
			case <-ctx.Done():
			}
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cmp(cfg.Timeout, 30*time.Second)+time.Second)
			defer cancel()
			err = srv.Shutdown(sctx)
			<-served
			return err
		},
	}
}

func cmp[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Kind is the "http" input kind of package pipeconf:
//
//	input:
//	  http:
//	    listen: 127.0.0.1:8081
//	    path: /events
//	    capacity: 256     # events held and not settled; more: 429
//	    busy_wait: 0s     # wait for room before answering 429
//	    timeout: 30s      # wait for the pipeline before answering 503
//	    token: s3cret     # Authorization: Bearer s3cret required
//	    topic: type       # or header (Eventkit-Topic, behind a token)
func Kind(n *pipeconf.Node) *pipeconf.Input {
	cfg := Config{
		Listen: n.String("listen", true), Path: n.String("path", false),
		Capacity: n.Int("capacity", 0), BusyWait: n.Duration("busy_wait", 0), Timeout: n.Duration("timeout", 0),
		Token: n.String("token", false), Topic: n.String("topic", false),
	}
	switch cfg.Topic {
	case "", "type", "header":
	default:
		n.Errorf("topic", "want type or header, got %q", cfg.Topic)
	}
	if cfg.Topic == "header" && cfg.Token == "" {
		n.Errorf("topic", "topic: header lets clients choose the topic: it needs a token")
	}
	if cfg.Capacity < 0 {
		n.Errorf("capacity", "must be at least 1, got %d", cfg.Capacity)
	}
	if cfg.Listen == "" {
		return nil
	}
	return Input(cfg)
}

var _ pipeconf.InputKind = Kind
