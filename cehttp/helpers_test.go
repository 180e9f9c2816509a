package cehttp_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/cehttp"
)

// recorder is an eventkit.Publisher that keeps what it is given (or fails
// with err).
type recorder struct {
	mu     sync.Mutex
	topics []string
	events []event.Event
	err    error
}

func (r *recorder) Publish(_ context.Context, topic string, events ...event.Event) error {
	if err := eventkit.ValidateEvents(events); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	for _, e := range events {
		r.topics = append(r.topics, topic)
		r.events = append(r.events, e)
	}
	return nil
}

func (r *recorder) Close() error { return nil }

func (r *recorder) got() ([]string, []event.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.topics...), append([]event.Event(nil), r.events...)
}

func (r *recorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.topics, r.events = nil, nil
}

var errBroker = errors.New("broker down")

// do serves req with h and returns the response.
func do(t *testing.T, h http.Handler, req *http.Request) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func post(contentType, body string, hdr map[string]string) *http.Request {
	req := httptest.NewRequest(http.MethodPost, "/events", strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return req
}

func binaryHeaders(extra map[string]string) map[string]string {
	h := map[string]string{
		"ce-specversion": "1.0",
		"ce-id":          "b-1",
		"ce-source":      "/test",
		"ce-type":        "dev.eventkit.test",
	}
	for k, v := range extra {
		h[k] = v
	}
	return h
}

// problem decodes a problem+json answer, failing the test if it is not one
// with the wanted status.
func problem(t *testing.T, resp *http.Response, status int) cehttp.Problem {
	t.Helper()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d; body %s", resp.StatusCode, status, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json; body %s", ct, b)
	}
	var p cehttp.Problem
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("problem body %s: %v", b, err)
	}
	if p.Status != status || p.Title == "" || p.Type == "" {
		t.Fatalf("problem %+v lacks status/title/type", p)
	}
	return p
}

func wantStatus(t *testing.T, resp *http.Response, status int) {
	t.Helper()
	if resp.StatusCode != status {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d, want %d; body %s", resp.StatusCode, status, b)
	}
}
