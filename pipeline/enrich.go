package pipeline

import (
	"container/list"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
)

// Lookup finds what to add to an event, by key: the fields of a JSON
// object, or found false when there is nothing for that key. An error is a
// failed lookup (a service down, a timeout): the stage applies its
// OnError policy.
type Lookup func(ctx context.Context, key string) (value map[string]any, found bool, err error)

// Policy is what an Enrich stage does with an event whose lookup failed
// or found nothing.
type Policy int

const (
	// Fail fails the event: the stage's retry middleware retries it, its
	// dead-letter middleware keeps it, else its source message is nacked
	// and redelivered. For a key not found the error is permanent (a retry
	// would find nothing either).
	Fail Policy = iota
	// Pass lets the event go on unchanged, with a Warn log naming it;
	// counted in StageStats.Skipped.
	Pass
	// Drop ends the event (its source message is acked once the other
	// branches settled it), with a Warn log naming it; counted in
	// StageStats.Skipped.
	Drop
)

// ParsePolicy reads "fail", "pass" or "drop".
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "fail", "":
		return Fail, nil
	case "pass":
		return Pass, nil
	case "drop":
		return Drop, nil
	}
	return Fail, fmt.Errorf("want fail, pass or drop, got %q", s)
}

// Enrichment configures an Enrich stage.
type Enrichment struct {
	// Key returns the lookup key of an event (required). An event whose
	// key is empty is treated as not found.
	Key func(e event.Event) (string, error)
	// Lookup finds the value of a key (required): a Go function, HTTPLookup
	// or MapLookup.
	Lookup Lookup
	// Into names the field of the event's data (a JSON object) that
	// receives the value; "" adds nothing to the data.
	Into string
	// Attributes maps extension attribute names to fields of the value:
	// each found field is set on the event as a string.
	Attributes map[string]string
	// Timeout bounds each lookup (default 5s).
	Timeout time.Duration
	// CacheSize bounds the values kept (default 10,000; negative: no
	// cache); CacheTTL is how long one is kept (default 1 minute). Keys not
	// found are cached too; failed lookups are not. Concurrent lookups of
	// one key wait for one call.
	CacheSize int
	CacheTTL  time.Duration
	// OnError is the policy of a failed lookup (default Fail), OnMissing
	// that of a key not found (default Fail).
	OnError, OnMissing Policy
}

// Enrich returns a stage that adds to each event what cfg.Lookup finds for
// its key: a field of its data (Into) and extension attributes
// (Attributes). A lookup that fails or finds nothing is handled by the
// OnError and OnMissing policies; no policy loses an event silently (Drop
// and Pass log each event at Warn and count it in StageStats.Skipped).
func Enrich(name string, cfg Enrichment, opts ...Option) *Stage {
	s := newStage(name, kindProcess, opts)
	if cfg.Key == nil || cfg.Lookup == nil {
		s.errs = append(s.errs, fmt.Errorf("pipeline: enrich %q: Key and Lookup are required", name))
		return s
	}
	if cfg.Into == "" && len(cfg.Attributes) == 0 {
		s.errs = append(s.errs, fmt.Errorf("pipeline: enrich %q: set Into or Attributes: where the value goes", name))
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = 10000
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = time.Minute
	}
	c := newLookupCache(cfg.CacheSize, cfg.CacheTTL)
	s.proc = func(ctx context.Context, e event.Event, _ string, outs []event.Event) ([]event.Event, error) {
		key, err := cfg.Key(e)
		if err != nil {
			return nil, eventkit.Permanent(fmt.Errorf("pipeline: enrich %q: key of event %s: %w", name, e.ID(), err))
		}
		var v map[string]any
		found := false
		if key != "" {
			v, found, err = c.get(ctx, key, func(ctx context.Context) (map[string]any, bool, error) {
				ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
				defer cancel()
				return cfg.Lookup(ctx, key)
			})
		}
		switch {
		case err != nil:
			err = fmt.Errorf("pipeline: enrich %q: lookup %q for event %s: %w", name, key, e.ID(), err)
			return s.apply(cfg.OnError, e, outs, err, false)
		case !found:
			err = fmt.Errorf("pipeline: enrich %q: nothing found for key %q of event %s", name, key, e.ID())
			return s.apply(cfg.OnMissing, e, outs, err, true)
		}
		out := CloneEvent(e)
		if err := enrichEvent(&out, v, cfg); err != nil {
			return nil, eventkit.Permanent(fmt.Errorf("pipeline: enrich %q: event %s: %w", name, e.ID(), err))
		}
		return append(outs, out), nil
	}
	return s
}

// apply carries out policy p for an event that was not enriched.
func (s *Stage) apply(p Policy, e event.Event, outs []event.Event, err error, permanent bool) ([]event.Event, error) {
	switch p {
	case Pass:
		s.skipped.Add(1)
		s.logger().Warn("pipeline: event passed on without enrichment", "stage", s.name, "id", e.ID(), "err", err)
		return append(outs, e), nil
	case Drop:
		s.skipped.Add(1)
		s.logger().Warn("pipeline: event dropped: not enriched", "stage", s.name, "id", e.ID(), "err", err)
		return nil, nil
	}
	if permanent {
		err = eventkit.Permanent(err)
	}
	return nil, err
}

// enrichEvent writes v into e as cfg says.
func enrichEvent(e *event.Event, v map[string]any, cfg Enrichment) error {
	for attr, field := range cfg.Attributes {
		if x, ok := v[field]; ok && x != nil {
			e.SetExtension(attr, stringOf(x))
		}
	}
	if cfg.Into == "" {
		return nil
	}
	var data map[string]json.RawMessage
	if len(e.Data()) > 0 {
		if err := json.Unmarshal(e.Data(), &data); err != nil {
			return fmt.Errorf("data is not a JSON object: %w", err)
		}
	}
	if data == nil {
		data = map[string]json.RawMessage{}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	data[cfg.Into] = b
	return e.SetData(event.ApplicationJSON, data)
}

func stringOf(x any) string {
	switch x := x.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	b, _ := json.Marshal(x)
	return string(b)
}

// MapLookup returns a Lookup over a fixed table (a file read at start, a
// map built in code).
func MapLookup(table map[string]map[string]any) Lookup {
	return func(_ context.Context, key string) (map[string]any, bool, error) {
		v, ok := table[key]
		return v, ok, nil
	}
}

// HTTPLookup returns a Lookup that GETs urlTemplate with "{key}" replaced
// by the path-escaped key, with the given headers. 200 with a JSON object
// is found; 404 is not found; 429 and 503 are errors marked with the
// answer's Retry-After (eventkit.RetryAfter); any other answer is an
// error. Bodies are read up to 1 MiB. client nil: a client with a 10s
// timeout.
func HTTPLookup(urlTemplate string, client *http.Client, header http.Header) Lookup {
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	return func(ctx context.Context, key string) (map[string]any, bool, error) {
		u := strings.ReplaceAll(urlTemplate, "{key}", url.PathEscape(key))
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, false, eventkit.Permanent(err)
		}
		for k, vs := range header {
			req.Header[k] = vs
		}
		req.Header.Set("Accept", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return nil, false, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return nil, false, err
		}
		switch {
		case resp.StatusCode == http.StatusNotFound:
			return nil, false, nil
		case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
			err := fmt.Errorf("GET %s: %s", u, resp.Status)
			if s, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && s >= 0 {
				return nil, false, eventkit.RetryAfter(err, time.Duration(s)*time.Second)
			}
			return nil, false, err
		case resp.StatusCode != http.StatusOK:
			return nil, false, fmt.Errorf("GET %s: %s", u, resp.Status)
		}
		var v map[string]any
		if err := json.Unmarshal(body, &v); err != nil {
			return nil, false, fmt.Errorf("GET %s: the answer is not a JSON object: %w", u, err)
		}
		return v, true, nil
	}
}

// lookupCache is a bounded LRU of lookup results with a TTL; concurrent
// misses of one key share one call.
type lookupCache struct {
	size int
	ttl  time.Duration

	mu      sync.Mutex
	order   *list.List // front: most recent; values *cacheEntry
	entries map[string]*list.Element
	calls   map[string]*lookupCall
}

type cacheEntry struct {
	key     string
	value   map[string]any
	found   bool
	expires time.Time
}

type lookupCall struct {
	done  chan struct{}
	value map[string]any
	found bool
	err   error
}

func newLookupCache(size int, ttl time.Duration) *lookupCache {
	return &lookupCache{size: size, ttl: ttl, order: list.New(), entries: map[string]*list.Element{}, calls: map[string]*lookupCall{}}
}

func (c *lookupCache) get(ctx context.Context, key string, load func(context.Context) (map[string]any, bool, error)) (map[string]any, bool, error) {
	if c.size < 0 {
		return load(ctx)
	}
	c.mu.Lock()
	if el, ok := c.entries[key]; ok {
		en := el.Value.(*cacheEntry)
		if time.Now().Before(en.expires) {
			c.order.MoveToFront(el)
			c.mu.Unlock()
			return en.value, en.found, nil
		}
		c.order.Remove(el)
		delete(c.entries, key)
	}
	if call, ok := c.calls[key]; ok {
		c.mu.Unlock()
		select {
		case <-call.done:
			return call.value, call.found, call.err
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
	call := &lookupCall{done: make(chan struct{})}
	c.calls[key] = call
	c.mu.Unlock()
	call.value, call.found, call.err = load(ctx)
	c.mu.Lock()
	delete(c.calls, key)
	if call.err == nil {
		c.entries[key] = c.order.PushFront(&cacheEntry{key: key, value: call.value, found: call.found, expires: time.Now().Add(c.ttl)})
		for c.order.Len() > c.size {
			old := c.order.Back()
			c.order.Remove(old)
			delete(c.entries, old.Value.(*cacheEntry).key)
		}
	}
	c.mu.Unlock()
	close(call.done)
	return call.value, call.found, call.err
}

// DataField returns a Key function that reads a field of the event's JSON
// data by a dotted path ("customer.id"); a string is taken as it is, a
// number or boolean as its JSON text.
func DataField(path string) func(e event.Event) (string, error) {
	parts := strings.Split(path, ".")
	return func(e event.Event) (string, error) {
		var v any
		if err := json.Unmarshal(e.Data(), &v); err != nil {
			return "", fmt.Errorf("data is not JSON: %w", err)
		}
		for _, p := range parts {
			m, ok := v.(map[string]any)
			if !ok {
				return "", nil
			}
			if v, ok = m[p]; !ok {
				return "", nil
			}
		}
		if v == nil {
			return "", nil
		}
		return stringOf(v), nil
	}
}
