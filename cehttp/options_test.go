package cehttp_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/cehttp"
	"github.com/eventkit/eventkit/eventkittest"
)

// An invalid option value fails NewPublisher instead of being used (a zero
// timeout failed every request at once; an empty token or secret sent
// none).
func TestPublisherRefusesInvalidOptions(t *testing.T) {
	for name, opt := range map[string]cehttp.PublisherOption{
		"zero timeout":       cehttp.WithTimeout(0),
		"negative timeout":   cehttp.WithTimeout(-time.Second),
		"nil client":         cehttp.WithHTTPClient(nil),
		"empty token":        cehttp.WithToken(""),
		"empty secret":       cehttp.WithSigningSecret(nil),
		"bad header":         cehttp.WithHeader("Bad Header", "x"),
		"unknown mode":       cehttp.WithMode(eventkit.Mode(9)),
		"zero close timeout": cehttp.WithCloseTimeout(0),
	} {
		if _, err := cehttp.NewPublisher("http://127.0.0.1:1/hook", opt); !errors.Is(err, eventkit.ErrInvalidOption) {
			t.Errorf("%s: NewPublisher returned %v, want ErrInvalidOption", name, err)
		}
	}
	if _, err := cehttp.NewPublisher("ftp://x"); !errors.Is(err, eventkit.ErrInvalidOption) {
		t.Errorf("ftp URL: NewPublisher returned %v, want ErrInvalidOption", err)
	}
}

// Close waits for the requests in flight, and refuses new publishes.
func TestPublisherCloseWaitsForRequests(t *testing.T) {
	release := make(chan struct{})
	var started, answered atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started.Add(1)
		<-release
		answered.Add(1)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	pub, err := cehttp.NewPublisher(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- pub.Publish(context.Background(), "t", eventkittest.NewEvent("a")) }()
	deadline := time.Now().Add(5 * time.Second)
	for started.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the request never arrived")
		}
		time.Sleep(time.Millisecond)
	}
	closed := make(chan error, 1)
	go func() { closed <- pub.Close() }()
	// Close does not return while the request is in flight: a publish
	// after Close began is refused meanwhile.
	for {
		// Before Close began, this publish posts a request that its ctx
		// abandons soon.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		err := pub.Publish(ctx, "t", eventkittest.NewEvent("b"))
		cancel()
		if errors.Is(err, eventkit.ErrClosed) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Publish not refused after Close")
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-closed:
		t.Fatalf("Close returned %v with a request in flight", err)
	default:
	}
	close(release)
	if err := <-errc; err != nil {
		t.Fatalf("the publish in flight: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if answered.Load() == 0 {
		t.Fatal("Close returned before the request was answered")
	}
}

// The batch mode declares batch publishing; the others do not.
func TestPublisherCapabilities(t *testing.T) {
	for _, c := range []struct {
		opts []cehttp.PublisherOption
		want eventkit.Capabilities
	}{
		{nil, 0},
		{[]cehttp.PublisherOption{cehttp.WithMode(eventkit.Structured)}, 0},
		{[]cehttp.PublisherOption{cehttp.WithBatch()}, eventkit.CapBatchPublish},
	} {
		p, err := cehttp.NewPublisher("http://127.0.0.1:1/hook", c.opts...)
		if err != nil {
			t.Fatal(err)
		}
		if got := eventkit.CapabilitiesOf(p); got != c.want {
			t.Errorf("capabilities %s, want %s", got, c.want)
		}
		_ = p.Close()
	}
}
