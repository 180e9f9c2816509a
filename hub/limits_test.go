package hub_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/hub"
	"github.com/eventkit/eventkit/memory"
)

// gated holds every Publish until gate is closed.
type gated struct {
	eventkit.Publisher
	gate    chan struct{}
	waiting atomic.Int32
}

func (g *gated) Publish(ctx context.Context, topic string, events ...event.Event) error {
	g.waiting.Add(1)
	select {
	case <-g.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.Publisher.Publish(ctx, topic, events...)
}

// metricsText returns the server's /metrics page.
func metricsText(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// postAsync posts an event with data of n bytes and sends its status.
func postAsync(base string, n int) <-chan int {
	c := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, base+"/events", strings.NewReader(`"`+strings.Repeat("x", n-2)+`"`))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range map[string]string{"ce-specversion": "1.0", "ce-id": strconv.Itoa(n), "ce-source": "/t", "ce-type": "a.b"} {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			c <- 0
			return
		}
		resp.Body.Close()
		c <- resp.StatusCode
	}()
	return c
}

// TestRequestBounds: beyond max_concurrent_requests, or beyond
// max_buffered_bytes held by the requests in progress, a request is
// answered 503 with Retry-After, counted by reason; the bounds are
// metrics.
func TestRequestBounds(t *testing.T) {
	bus := memory.New()
	g := &gated{Publisher: bus, gate: make(chan struct{})}
	cfg := hub.Config{Limits: hub.LimitsConfig{MaxConcurrentRequests: 2, MaxBufferedBytes: 1500, MaxEventBytes: 1000}}
	s := start(t, cfg, hub.WithBroker(g, bus))
	a := postAsync(s.URL(), 900)
	waitFor(t, "one request in progress", func() bool { return g.waiting.Load() == 1 })
	if code := <-postAsync(s.URL(), 900); code != http.StatusServiceUnavailable {
		t.Errorf("beyond the byte budget: %d, want 503", code)
	}
	b := postAsync(s.URL(), 100)
	waitFor(t, "two requests in progress", func() bool { return g.waiting.Load() == 2 })
	if code := <-postAsync(s.URL(), 10); code != http.StatusServiceUnavailable {
		t.Errorf("beyond the concurrency bound: %d, want 503", code)
	}
	close(g.gate)
	if ca, cb := <-a, <-b; ca != http.StatusNoContent || cb != http.StatusNoContent {
		t.Fatalf("requests within the bounds: %d %d", ca, cb)
	}
	m := metricsText(t, s.URL())
	for _, want := range []string{
		`eventkit_ingress_rejected_total{reason="buffer"} 1`,
		`eventkit_ingress_rejected_total{reason="concurrency"} 1`,
		`eventkit_limit{name="max_concurrent_requests"} 2`,
		`eventkit_limit{name="max_buffered_bytes"} 1500`,
		`eventkit_ingress_buffered_bytes 0`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s:\n%s", want, grep(m, "eventkit_"))
		}
	}
}

// TestSlowStreamReaderDropped: a tail that connects and never reads is
// dropped once a write waits longer than stream_write_timeout, and its
// slot is free again.
func TestSlowStreamReaderDropped(t *testing.T) {
	bus := memory.New()
	cfg := hub.Config{MaxStreamClients: 1, Limits: hub.LimitsConfig{StreamWriteTimeout: hub.Duration(300 * time.Millisecond), MaxEventBytes: 256 << 10}}
	s := start(t, cfg, hub.WithBroker(bus, bus))
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	conn, err := d.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = io.WriteString(conn, "GET /events/stream?topic=%3E HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(conn)
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(l, ": subscribed") {
			break
		}
	}
	// From now on the client reads nothing.
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; !strings.Contains(metricsText(t, s.URL()), "eventkit_stream_dropped_total 1"); i++ {
		if time.Now().After(deadline) {
			t.Fatalf("the slow reader was not dropped after %d events:\n%s", i, grep(metricsText(t, s.URL()), "eventkit_stream"))
		}
		<-postAsync(s.URL(), 200<<10)
	}
	waitFor(t, "the slot freed", func() bool { return strings.Contains(metricsText(t, s.URL()), "eventkit_stream_clients 0") })
	sse(t, s.URL(), ">") // the slot is free for another client
}

// TestOversizeHeader431: a header beyond max_header_bytes is answered 431
// problem+json, not 503 with a Retry-After that no retry can satisfy.
func TestOversizeHeader431(t *testing.T) {
	s := start(t, hub.Config{DataDir: t.TempDir()})
	r := postEvent(t, s.URL(), "1", "a.b", "ce-source", "/"+strings.Repeat("s", 70<<10))
	if r.StatusCode != http.StatusRequestHeaderFieldsTooLarge || r.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("70 KiB header: %d %s", r.StatusCode, r.Header.Get("Content-Type"))
	}
	if r := postEvent(t, s.URL(), "1", "a.b"); r.StatusCode != http.StatusNoContent {
		t.Fatalf("small header: %d", r.StatusCode)
	}
}
