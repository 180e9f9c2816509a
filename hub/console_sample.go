package hub

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/cehttp"
	dto "github.com/prometheus/client_model/go"
)

// The console's history: one sample every consoleSampleEvery, the last
// consoleSamples kept (ten minutes).
const (
	consoleSampleEvery = 5 * time.Second
	consoleSamples     = 120
)

// tallyCount is what the console counts of one topic.
type tallyCount struct {
	events, bytes uint64
	last          time.Time
}

// topicTally counts the events accepted per topic, for at most max
// topics (events of further topics are not counted; full says so).
type topicTally struct {
	max int

	mu      sync.Mutex
	topics  map[string]tallyCount
	overrun bool
}

func newTopicTally(max int) *topicTally {
	return &topicTally{max: max, topics: map[string]tallyCount{}}
}

// add counts events accepted on topic.
func (t *topicTally) add(topic string, events []event.Event) {
	var size uint64
	for i := range events {
		if b, err := eventkit.MarshalEvent(events[i]); err == nil {
			size += uint64(len(b))
		}
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	c, ok := t.topics[topic]
	if !ok && len(t.topics) >= t.max {
		t.overrun = true
		return
	}
	c.events += uint64(len(events))
	c.bytes += size
	c.last = now
	t.topics[topic] = c
}

// counts returns a copy of the counts.
func (t *topicTally) counts() map[string]tallyCount {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]tallyCount, len(t.topics))
	for k, v := range t.topics {
		out[k] = v
	}
	return out
}

// full says whether a topic was left uncounted.
func (t *topicTally) full() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.overrun
}

// record counts events accepted, events[i] on topicOf(i) (an observer of
// observedPublisher).
func (t *topicTally) record(topicOf func(int) string, events []event.Event) {
	for i := 0; i < len(events); {
		j := i + 1
		for j < len(events) && topicOf(j) == topicOf(i) {
			j++
		}
		t.add(topicOf(i), events[i:j])
		i = j
	}
}

// observedPublisher tells seen of the events it published without error,
// events[i] on topicOf(i): the Discovery API's records and the console's
// counts.
type observedPublisher struct {
	eventkit.Publisher
	seen func(topicOf func(int) string, events []event.Event)
}

func (p *observedPublisher) Publish(ctx context.Context, topic string, events ...event.Event) error {
	err := p.Publisher.Publish(ctx, topic, events...)
	if err == nil {
		p.seen(func(int) string { return topic }, events)
	}
	return err
}

// PublishEach publishes events[i] to topics[i], in one call when the
// publisher is a cehttp.EachPublisher.
func (p *observedPublisher) PublishEach(ctx context.Context, topics []string, events []event.Event) error {
	ep, ok := p.Publisher.(cehttp.EachPublisher)
	if !ok {
		return cehttp.PublishRuns(ctx, p, topics, events)
	}
	err := ep.PublishEach(ctx, topics, events)
	if err == nil {
		p.seen(func(i int) string { return topics[i] }, events)
	}
	return err
}

// sample is the state of the counters at one time.
type sample struct {
	at     time.Time
	topics map[string]tallyCount
	// latency holds each subscription's delivery times, cumulative.
	latency map[string]latencyBuckets
}

// sampler keeps the last n samples, one taken every interval by a
// goroutine that stop ends.
type sampler struct {
	take func() sample

	mu      sync.Mutex
	ring    []sample // oldest first
	n       int
	stopped chan struct{}
	done    chan struct{}
}

func newSampler(take func() sample, every time.Duration, n int) *sampler {
	s := &sampler{take: take, n: n, stopped: make(chan struct{}), done: make(chan struct{})}
	s.add(take())
	go s.run(every)
	return s
}

func (s *sampler) run(every time.Duration) {
	defer close(s.done)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			s.add(s.take())
		case <-s.stopped:
			return
		}
	}
}

// stop ends the goroutine and waits for it.
func (s *sampler) stop() {
	select {
	case <-s.stopped:
	default:
		close(s.stopped)
	}
	<-s.done
}

func (s *sampler) add(x sample) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ring) == s.n {
		copy(s.ring, s.ring[1:])
		s.ring = s.ring[:s.n-1]
	}
	s.ring = append(s.ring, x)
}

// since returns the oldest sample taken at t or later (the newest when
// none is), and its time; nil when there is none.
func (s *sampler) since(t time.Time) (*sample, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.ring {
		if !s.ring[i].at.Before(t) || i == len(s.ring)-1 {
			x := s.ring[i]
			return &x, x.at
		}
	}
	return nil, time.Time{}
}

// all returns the samples, oldest first.
func (s *sampler) all() []sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sample(nil), s.ring...)
}

// snapshot takes the console's sample now.
func (c *console) snapshot() sample {
	fams, _ := c.s.reg.Gather()
	return c.snapshotOf(fams)
}

// snapshotOf makes the console's sample of the metrics gathered.
func (c *console) snapshotOf(fams []*dto.MetricFamily) sample {
	x := sample{at: time.Now(), topics: c.tally.counts(), latency: map[string]latencyBuckets{}}
	for _, f := range fams {
		if f.GetName() != "eventkit_subscription_delivery_duration_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			x.latency[labelValue(m, "subscription")] = nativeBuckets(m.GetHistogram())
		}
	}
	return x
}

// labelValue is the value of m's label name ("" when absent).
func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// latencyBuckets are cumulative counts of observations by power of two:
// key k counts those in (2^(k-1), 2^k] seconds; zeroKey those at or
// below the native histogram's zero threshold.
type latencyBuckets map[int]uint64

// zeroKey is the key of latencyBuckets' zero bucket.
const zeroKey = math.MinInt32

// nativeBuckets reads h's native (exponential) buckets into powers of two,
// whatever its schema: at schema s > 0 bucket i holds
// (2^((i-1)/2^s), 2^(i/2^s)], inside the power-of-two bucket ceil(i/2^s).
func nativeBuckets(h *dto.Histogram) latencyBuckets {
	out := latencyBuckets{}
	if h == nil {
		return out
	}
	if z := h.GetZeroCount(); z > 0 {
		out[zeroKey] = z
	}
	schema := h.GetSchema()
	idx, count := int32(0), int64(0)
	deltas := h.GetPositiveDelta()
	k := 0
	for _, sp := range h.GetPositiveSpan() {
		idx += sp.GetOffset()
		for j := uint32(0); j < sp.GetLength() && k < len(deltas); j++ {
			count += deltas[k]
			k++
			if count > 0 {
				out[powerOfTwo(idx, schema)] += uint64(count)
			}
			idx++
		}
	}
	return out
}

// powerOfTwo is the power-of-two bucket holding native bucket i of schema.
func powerOfTwo(i, schema int32) int {
	if schema <= 0 {
		// Buckets of 2^(2^-schema): bucket i ends at 2^(i<<-schema).
		return int(i) << uint(-schema)
	}
	d := int32(1) << uint(schema)
	q := i / d
	if i%d > 0 {
		q++ // ceil for positive i; Go truncates toward zero for negative i
	}
	return int(q)
}
