package cehttp_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/cehttp"
)

// discard is a Publisher that drops what it is given.
type discard struct{}

func (discard) Publish(context.Context, string, ...event.Event) error { return nil }
func (discard) Close() error                                          { return nil }

// benchRequest is the binary-mode request of event i of the benchmarks.
func benchRequest(i int, body []byte) *http.Request {
	req := httptest.NewRequest(http.MethodPost, "/events", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Ce-Specversion", "1.0")
	req.Header.Set("Ce-Id", "id-"+strconv.Itoa(i))
	req.Header.Set("Ce-Source", "/bench")
	req.Header.Set("Ce-Type", "bench.binary")
	return req
}

// BenchmarkBinary measures the handler's own cost for one binary-mode
// event (the publisher drops it).
func BenchmarkBinary(b *testing.B) {
	h := cehttp.NewHandler(discard{})
	body := []byte(`{"pad":"` + strings.Repeat("x", 246) + `"}`)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		req := benchRequest(i, body)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusNoContent {
			b.Fatal(w.Code)
		}
	}
}

// BenchmarkBatch measures the handler's own cost for a batch of 500
// events (the publisher drops them); ns/op is per batch.
func BenchmarkBatch(b *testing.B) {
	h := cehttp.NewHandler(discard{})
	data := `{"pad":"` + strings.Repeat("x", 246) + `"}`
	var body bytes.Buffer
	body.WriteByte('[')
	for j := 0; j < 500; j++ {
		if j > 0 {
			body.WriteByte(',')
		}
		body.WriteString(`{"specversion":"1.0","id":"b-` + strconv.Itoa(j) + `","source":"/bench","type":"bench.batch","datacontenttype":"application/json","data":` + data + `}`)
	}
	body.WriteByte(']')
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/events", bytes.NewReader(body.Bytes()))
		req.Header.Set("Content-Type", "application/cloudevents-batch+json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code)
		}
	}
}

// BenchmarkBinarySigned is BenchmarkBinary with an RFC 9421 signature
// verified (headers, replay cache, Content-Digest); the requests are signed
// before the timer starts. The difference with BenchmarkBinary is the cost
// of verification.
func BenchmarkBinarySigned(b *testing.B) {
	secret := []byte("bench-secret")
	h := cehttp.NewHandler(discard{}, cehttp.WithHMACSecret(secret))
	body := []byte(`{"pad":"` + strings.Repeat("x", 246) + `"}`)
	reqs := make([]*http.Request, b.N)
	for i := range reqs {
		req := benchRequest(i, body)
		if err := cehttp.SignRequest(req, body, "k", secret); err != nil {
			b.Fatal(err)
		}
		reqs[i] = req
	}
	b.ReportAllocs()
	b.ResetTimer()
	for _, req := range reqs {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusNoContent {
			b.Fatal(w.Code)
		}
	}
}
