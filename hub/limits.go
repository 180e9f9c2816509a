package hub

import (
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/cehttp"
)

// Defaults of the server's resource bounds.
const (
	// DefaultMaxConcurrentRequests bounds the requests to /events served
	// at once.
	DefaultMaxConcurrentRequests = 256
	// DefaultMaxBufferedBytes bounds the request bodies held in memory at
	// once, all requests together.
	DefaultMaxBufferedBytes = 128 << 20
	// DefaultStreamWriteTimeout bounds each write to a stream client: a
	// client that does not read for that long is dropped.
	DefaultStreamWriteTimeout = Duration(10e9)
	// DefaultMaxHeaderBytes bounds the header of a request (431 above it).
	DefaultMaxHeaderBytes = 64 << 10
)

// admission bounds the requests to /events: their number, and the bytes
// of their bodies held at once. A request beyond either bound is answered
// 503 with Retry-After before its body is read.
type admission struct {
	slots    chan struct{}
	budget   int64
	used     atomic.Int64
	maxEvent int64
	maxBatch int64
	m        *metrics
}

func newAdmission(c Config, m *metrics) *admission {
	a := &admission{slots: make(chan struct{}, c.Limits.MaxConcurrentRequests), budget: c.Limits.MaxBufferedBytes,
		maxEvent: c.Limits.MaxEventBytes, maxBatch: c.Limits.MaxBatchBytes, m: m}
	if a.maxEvent <= 0 {
		a.maxEvent = cehttp.DefaultMaxEventSize
	}
	if a.maxBatch <= 0 {
		a.maxBatch = cehttp.DefaultMaxBatchSize
	}
	m.limit("max_concurrent_requests", float64(c.Limits.MaxConcurrentRequests))
	m.limit("max_buffered_bytes", float64(a.budget))
	m.limit("max_event_bytes", float64(a.maxEvent))
	m.limit("max_batch_bytes", float64(a.maxBatch))
	return a
}

// reserve is the number of bytes the body of r may take: its
// Content-Length, or the limit of its mode when the length is unknown.
func (a *admission) reserve(r *http.Request) int64 {
	limit := a.maxEvent
	if ct := r.Header.Get("Content-Type"); len(ct) >= len(eventkit.MediaTypeCloudEventsBatch) &&
		equalFoldPrefix(ct, eventkit.MediaTypeCloudEventsBatch) {
		limit = a.maxBatch
	}
	if r.ContentLength >= 0 && r.ContentLength <= limit {
		return r.ContentLength
	}
	if r.ContentLength > limit {
		return 0 // answered 413 without reading
	}
	return limit + 1
}

func equalFoldPrefix(s, prefix string) bool {
	for i := 0; i < len(prefix); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

// wrap serves h within the bounds.
func (a *admission) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case a.slots <- struct{}{}:
		default:
			a.busy(w, "concurrency", "too many requests in progress")
			return
		}
		defer func() { <-a.slots }()
		a.m.inflight.Inc()
		defer a.m.inflight.Dec()
		n := a.reserve(r)
		if a.used.Add(n) > a.budget && n > 0 {
			a.used.Add(-n)
			a.busy(w, "buffer", "the server holds too many request bytes")
			return
		}
		a.m.buffered.Add(float64(n))
		defer func() { a.used.Add(-n); a.m.buffered.Sub(float64(n)) }()
		h.ServeHTTP(w, r)
	})
}

func (a *admission) busy(w http.ResponseWriter, reason, detail string) {
	a.m.rejected.WithLabelValues(reason).Inc()
	w.Header().Set("Retry-After", "1")
	cehttp.WriteProblem(w, &cehttp.Problem{Type: problemBase + "busy", Status: http.StatusServiceUnavailable,
		Detail: detail + "; retry later"})
}

// headerBytes is the size of r's header as net/http counts it.
func headerBytes(r *http.Request) int {
	n := len(r.Method) + len(r.RequestURI) + len(r.Proto) + 4
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// limitHeaders answers 431 (problem+json) to a request whose header is
// larger than max.
func limitHeaders(max int, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n := headerBytes(r); n > max {
			cehttp.WriteProblem(w, &cehttp.Problem{Type: problemBase + "header-too-large", Status: http.StatusRequestHeaderFieldsTooLarge,
				Detail: "the request header takes " + strconv.Itoa(n) + " bytes, more than the limit of " + strconv.Itoa(max)})
			return
		}
		h.ServeHTTP(w, r)
	})
}
