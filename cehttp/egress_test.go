package cehttp_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/eventkit/eventkit/cehttp"
	"github.com/eventkit/eventkit/eventkittest"
)

// TestPublisherRedirects: a 3xx is a failed delivery, never followed to
// another origin (a 302 turned into a GET elsewhere was counted delivered,
// a 307 re-posted the body and its signature to another host). With
// WithSameOriginRedirects, only 307/308 to the same origin are followed.
func TestPublisherRedirects(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer other.Close()
	rec := &recorder{}
	final := cehttp.NewHandler(rec)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/302-other":
			http.Redirect(w, r, other.URL+"/x", http.StatusFound)
		case "/307-other":
			http.Redirect(w, r, other.URL+"/x", http.StatusTemporaryRedirect)
		case "/302-same":
			http.Redirect(w, r, "/final", http.StatusFound)
		case "/307-same":
			http.Redirect(w, r, "/final", http.StatusTemporaryRedirect)
		case "/final":
			final.ServeHTTP(w, r)
		}
	}))
	defer srv.Close()
	for _, c := range []struct {
		path       string
		sameOrigin bool
		delivered  bool
	}{
		{"/302-other", false, false},
		{"/307-other", false, false},
		{"/307-same", false, false},
		{"/302-other", true, false},
		{"/307-other", true, false},
		{"/302-same", true, false},
		{"/307-same", true, true},
	} {
		opts := []cehttp.PublisherOption{cehttp.WithSigningSecret([]byte("k"))}
		if c.sameOrigin {
			opts = append(opts, cehttp.WithSameOriginRedirects())
		}
		p, err := cehttp.NewPublisher(srv.URL+c.path, opts...)
		if err != nil {
			t.Fatal(err)
		}
		err = p.Publish(t.Context(), "dev.eventkit.test", eventkittest.NewEvent("r"))
		_ = p.Close()
		if c.delivered && err != nil {
			t.Errorf("%s (same origin %v): %v", c.path, c.sameOrigin, err)
		}
		if !c.delivered && !errors.Is(err, cehttp.ErrRedirect) {
			t.Errorf("%s (same origin %v): got %v, want ErrRedirect", c.path, c.sameOrigin, err)
		}
	}
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("%d requests reached the other origin", n)
	}
	if _, got := rec.got(); len(got) != 1 {
		t.Errorf("%d events delivered, want 1", len(got))
	}
}

// TestPublisherPublicTargetsOnly: loopback, link-local, private and
// unspecified targets are refused at connect time, names included.
func TestPublisherPublicTargetsOnly(t *testing.T) {
	srv := httptest.NewServer(cehttp.NewHandler(&recorder{}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	for _, target := range []string{
		srv.URL,
		"http://localhost:" + port,
		"http://169.254.169.254/latest",
		"http://10.1.2.3/",
		"http://192.168.0.1/",
		"http://100.64.0.1/",
		"http://[::1]:" + port,
		"http://[fd00::1]/",
		"http://0.0.0.0:" + port,
	} {
		p, err := cehttp.NewPublisher(target, cehttp.WithPublicTargetsOnly())
		if err != nil {
			t.Fatal(err)
		}
		err = p.Publish(t.Context(), "dev.eventkit.test", eventkittest.NewEvent("p"))
		_ = p.Close()
		if !errors.Is(err, cehttp.ErrTargetRefused) {
			t.Errorf("%s: got %v, want ErrTargetRefused", target, err)
		}
	}
	p, err := cehttp.NewPublisher(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Publish(t.Context(), "dev.eventkit.test", eventkittest.NewEvent("p")); err != nil {
		t.Fatalf("without WithPublicTargetsOnly: %v", err)
	}
}

// TestPublisherKeepsConnectionsOfConcurrentPosts: publishers posting at
// once to one host reuse their connections. With net/http's default of 2
// idle connections per host, 8 concurrent publishers opened a new TCP
// connection for about one request in five (about 400 for the 2000 events
// of the conformance suite's ManyPublishersAndSubscribers, whose CPU under
// load made its events late).
func TestPublisherKeepsConnectionsOfConcurrentPosts(t *testing.T) {
	const publishers, each = 8, 100
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(cehttp.NewHandler(&recorder{}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	pub, err := cehttp.NewPublisher(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	errs := make(chan error, publishers)
	for p := range publishers {
		go func() {
			var err error
			for i := 0; i < each && err == nil; i++ {
				err = pub.Publish(context.Background(), "t", eventkittest.NewEvent(fmt.Sprintf("p%d-%d", p, i)))
			}
			errs <- err
		}()
	}
	for range publishers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// One connection per publisher, and a few dialled while another
	// became idle.
	if n := conns.Load(); n > 2*publishers {
		t.Fatalf("%d connections for %d requests of %d concurrent publishers", n, publishers*each, publishers)
	}
}
