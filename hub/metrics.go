package hub

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/cehttp"
	"github.com/eventkit/eventkit/internal/version"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests *prometheus.CounterVec
	// The counters of the usual answers, so that counting a request
	// hashes no labels.
	ok200, ok204 prometheus.Counter
	latency      prometheus.Histogram
	events       prometheus.Counter
	deliveries   *prometheus.CounterVec
	deliveryTime *prometheus.HistogramVec
	streams      prometheus.Gauge
	streamed     prometheus.Counter
	dropped      prometheus.Counter
	inflight     prometheus.Gauge
	buffered     prometheus.Gauge
	rejected     *prometheus.CounterVec
	limits       *prometheus.GaugeVec
	discarded    prometheus.Counter
	lost         *prometheus.CounterVec
}

// limit makes the configured bound name visible as eventkit_limit{name}.
func (m *metrics) limit(name string, v float64) { m.limits.WithLabelValues(name).Set(v) }

func counter(subsystem, name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "eventkit", Subsystem: subsystem, Name: name, Help: help})
}

func counterVec(subsystem, name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "eventkit", Subsystem: subsystem, Name: name, Help: help}, labels)
}

func gauge(subsystem, name, help string) prometheus.Gauge {
	return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "eventkit", Subsystem: subsystem, Name: name, Help: help})
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: counterVec("ingress", "requests_total", "HTTP requests to /events by status code.", "code"),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "eventkit", Subsystem: "ingress", Name: "request_duration_seconds",
			Help:    "Time to answer POST /events (events stored before the answer).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		events:     counter("ingress", "events_total", "Events stored by the broker and acknowledged to clients."),
		deliveries: counterVec("subscription", "deliveries_total", "Webhook deliveries by subscription and outcome (delivered, failed, dead_lettered).", "subscription", "outcome"),
		streams:    gauge("stream", "clients", "Clients connected to GET /events/stream."),
		streamed:   counter("stream", "events_total", "Events sent to stream clients."),
		dropped:    counter("stream", "dropped_total", "Stream clients dropped because they did not read within the write timeout."),
		inflight:   gauge("ingress", "requests_in_flight", "Requests to /events being served (bounded by max_concurrent_requests)."),
		buffered:   gauge("ingress", "buffered_bytes", "Request body bytes reserved by the requests in flight (bounded by max_buffered_bytes)."),
		rejected:   counterVec("ingress", "rejected_total", "Requests refused with 503 at a bound, by reason (concurrency, buffer).", "reason"),
		discarded:  counter("broker", "discarded_total", "Stored events dropped to make room (broker.discard old)."),
		lost:       counterVec("subscription", "lost_total", "Events dropped from the store (broker.discard old) before the subscription delivered or dead-lettered them.", "subscription"),
		limits: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "eventkit", Name: "limit",
			Help: "The configured bounds of the server, by name.",
		}, []string{"name"}),
	}
	// The console's latency heatmap reads the native buckets.
	m.deliveryTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "eventkit", Subsystem: "subscription", Name: "delivery_duration_seconds",
		Help:                            "Time of each webhook delivery attempt by subscription (a native histogram, with classic buckets for text scrapers).",
		Buckets:                         []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		NativeHistogramBucketFactor:     1.1,
		NativeHistogramMaxBucketNumber:  160,
		NativeHistogramMinResetDuration: time.Hour,
	}, []string{"subscription"})
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "eventkit", Name: "build_info",
		Help:        "Always 1; the labels name the version of eventkit and of Go the server was built with.",
		ConstLabels: prometheus.Labels{"version": version.Get(), "goversion": version.GoVersion()},
	})
	buildInfo.Set(1)
	reg.MustRegister(m.requests, m.latency, m.events, m.deliveries, m.deliveryTime, m.streams, m.streamed, buildInfo,
		m.dropped, m.inflight, m.buffered, m.rejected, m.limits, m.discarded, m.lost)
	m.ok200 = m.requests.WithLabelValues(strconv.Itoa(http.StatusOK))
	m.ok204 = m.requests.WithLabelValues(strconv.Itoa(http.StatusNoContent))
	return m
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (m *metrics) instrument(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		if sw.code == 0 {
			sw.code = http.StatusOK
		}
		m.requestCounter(sw.code).Inc()
		if r.Method == http.MethodPost {
			m.latency.Observe(time.Since(start).Seconds())
		}
	})
}

// requestCounter returns the counter of requests answered with code.
func (m *metrics) requestCounter(code int) prometheus.Counter {
	switch code {
	case http.StatusOK:
		return m.ok200
	case http.StatusNoContent:
		return m.ok204
	}
	return m.requests.WithLabelValues(strconv.Itoa(code))
}

// countingPublisher checks the events of a request against the broker's
// limits before publishing any, translates the broker's refusals into the
// answers the ingress gives (507 when the store is full, 4xx when no retry
// can succeed) and counts the events the broker confirmed.
type countingPublisher struct {
	eventkit.Publisher
	m      *metrics
	limits *brokerLimits // nil: unknown (WithBroker)
	store  *storeState
	js     *jsGuard // nil: not the embedded broker
	// discard makes room at max_bytes (broker.discard old; nil otherwise).
	discard *discarder
}

// answerable classifies a publish error for the ingress.
func answerable(err error) error { return brokerRefused(insufficientStorage(err)) }

// PublishEach publishes events[i] to topics[i], in one call when the
// publisher is a cehttp.EachPublisher, and counts them once all are
// confirmed.
func (p *countingPublisher) PublishEach(ctx context.Context, topics []string, events []event.Event) error {
	if err := p.limits.check(topics, events); err != nil {
		return err
	}
	if err := p.js.check(); err != nil {
		return err
	}
	ep, ok := p.Publisher.(cehttp.EachPublisher)
	if !ok {
		return cehttp.PublishRuns(ctx, countingRuns{p}, topics, events) // counts run by run
	}
	err := p.withRoom(ctx, topics, events, func() error { return ep.PublishEach(ctx, topics, events) })
	p.store.note(err)
	err = answerable(err)
	if err == nil {
		p.m.events.Add(float64(len(events)))
	}
	return err
}

func (p *countingPublisher) Publish(ctx context.Context, topic string, events ...event.Event) error {
	if p.limits != nil {
		topics := make([]string, len(events))
		for i := range topics {
			topics[i] = topic
		}
		if err := p.limits.check(topics, events); err != nil {
			return err
		}
	}
	if err := p.js.check(); err != nil {
		return err
	}
	return countingRuns{p}.Publish(ctx, topic, events...)
}

// countingRuns publishes runs of events already checked.
type countingRuns struct{ p *countingPublisher }

func (c countingRuns) Close() error { return nil }

func (c countingRuns) Publish(ctx context.Context, topic string, events ...event.Event) error {
	p := c.p
	publish := func() error { return p.Publisher.Publish(ctx, topic, events...) }
	var err error
	if p.discard == nil {
		err = publish()
	} else {
		topics := make([]string, len(events))
		for i := range topics {
			topics[i] = topic
		}
		err = p.withRoom(ctx, topics, events, publish)
	}
	p.store.note(err)
	err = answerable(err)
	if err == nil {
		p.m.events.Add(float64(len(events)))
	}
	return err
}

// withRoom runs publish; with broker.discard old, when the stream is at its
// max_bytes, it drops the oldest events (counted and reported, see
// discarder) and publishes again. Events of a batch stored before the
// refusal are not stored twice: the broker de-duplicates them by id.
func (p *countingPublisher) withRoom(ctx context.Context, topics []string, events []event.Event, publish func() error) error {
	err := publish()
	for try := 0; try < 3 && p.discard != nil && err != nil && maxBytesReached(err); try++ {
		if derr := p.discard.makeRoom(ctx, p.discard.storedSize(topics, events)); derr != nil {
			p.discard.log.Warn("broker.discard old: cannot make room", "err", derr)
			return err
		}
		err = publish()
	}
	return err
}

// storedSize estimates the bytes the events take stored: what
// JetStream's file store counts (subject, header, body and its framing).
func (d *discarder) storedSize(topics []string, events []event.Event) int64 {
	var n int64
	for i := range events {
		b, _ := eventkit.MarshalEvent(events[i])
		n += int64(len(b)+len(d.prefix)+len(topics[i])+len(events[i].ID())) + headerOverhead
	}
	return n
}
