package cehttp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/binding"
	"github.com/eventkit/eventkit/internal/version"
	"github.com/eventkit/eventkit/topic"
)

// Mode is the content mode of the egress Publisher.
type Mode int

const (
	// Binary posts one request per event: attributes in ce- headers, data
	// as the body (the default).
	Binary Mode = iota
	// Structured posts one application/cloudevents+json request per event.
	Structured
	// Batch posts one application/cloudevents-batch+json request per
	// Publish call.
	Batch
)

// DefaultTimeout bounds each request of the egress Publisher.
const DefaultTimeout = 10 * time.Second

// PublisherOption configures a Publisher.
type PublisherOption func(*Publisher)

// WithMode sets the content mode (Binary by default).
func WithMode(m Mode) PublisherOption { return func(p *Publisher) { p.mode = m } }

// WithHTTPClient sets the client (a client with DefaultTimeout by default).
func WithHTTPClient(c *http.Client) PublisherOption { return func(p *Publisher) { p.client = c } }

// WithTimeout bounds each request (DefaultTimeout by default).
func WithTimeout(d time.Duration) PublisherOption { return func(p *Publisher) { p.timeout = d } }

// WithToken sends "Authorization: Bearer token" with every request.
func WithToken(token string) PublisherOption { return func(p *Publisher) { p.token = token } }

// WithSigningSecret signs every body with HMAC-SHA256 in SignatureHeader.
func WithSigningSecret(secret []byte) PublisherOption {
	return func(p *Publisher) { p.secret = append([]byte(nil), secret...) }
}

// WithHeader adds a header to every request.
func WithHeader(name, value string) PublisherOption {
	return func(p *Publisher) { p.header.Add(name, value) }
}

// WithoutTopicHeader leaves TopicHeader out of the requests (the receiver
// then chooses topics by its own rule, by default the event type).
func WithoutTopicHeader() PublisherOption { return func(p *Publisher) { p.noTopic = true } }

// userAgent names the egress publisher in its requests.
var userAgent = "eventkit/" + version.Get()

// Publisher is an eventkit.Publisher that posts events to a webhook URL. It
// sets TopicHeader to the topic published to (see WithoutTopicHeader), and
// User-Agent to "eventkit/VERSION" (WithHeader may set another). Only a 2xx answer counts as
// success; a 4xx answer other than 408 and 429 is returned as a permanent
// error (eventkit.IsPermanent), a 429 or 503 with Retry-After as an
// eventkit.RetryAfter error, so that retry middleware does the right thing.
// It is safe for concurrent use.
type Publisher struct {
	url     string
	mode    Mode
	client  *http.Client
	timeout time.Duration
	token   string
	secret  []byte
	header  http.Header
	noTopic bool
	closed  atomic.Bool
}

// NewPublisher returns a publisher posting to target, an http or https URL.
func NewPublisher(target string, opts ...PublisherOption) (*Publisher, error) {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("cehttp: webhook URL %q must be an absolute http or https URL", target)
	}
	p := &Publisher{url: target, timeout: DefaultTimeout, header: http.Header{}}
	for _, o := range opts {
		o(p)
	}
	if p.client == nil {
		p.client = &http.Client{Timeout: p.timeout}
	}
	return p, nil
}

// Publish posts events to the URL, in order, and returns when every request
// was answered with 2xx. Invalid events are rejected before any request.
func (p *Publisher) Publish(ctx context.Context, name string, events ...event.Event) error {
	if p.closed.Load() {
		return eventkit.ErrClosed
	}
	if err := topic.ValidateName(name); err != nil {
		return fmt.Errorf("cehttp: publish: %w", err)
	}
	if err := eventkit.ValidateEvents(events); err != nil {
		return fmt.Errorf("cehttp: publish: %w", err)
	}
	if len(events) == 0 {
		return nil
	}
	if p.mode == Batch {
		body, err := eventkit.MarshalBatch(events)
		if err != nil {
			return fmt.Errorf("cehttp: publish: %w", err)
		}
		h := http.Header{}
		h.Set("Content-Type", eventkit.MediaTypeCloudEventsBatch)
		return p.post(ctx, name, h, body)
	}
	for i := range events {
		h, body, err := Encode(events[i], p.mode == Structured)
		if err != nil {
			return fmt.Errorf("cehttp: publish: %w", err)
		}
		if err := p.post(ctx, name, h, body); err != nil {
			if len(events) > 1 {
				return fmt.Errorf("event %d: %w", i, err)
			}
			return err
		}
	}
	return nil
}

// Encode returns the headers and body of e in binary mode, or in structured
// mode when structured is true.
func Encode(e event.Event, structured bool) (http.Header, []byte, error) {
	h := http.Header{}
	if structured {
		b, err := eventkit.MarshalEvent(e)
		if err != nil {
			return nil, nil, err
		}
		h.Set("Content-Type", eventkit.MediaTypeCloudEvents)
		return h, b, nil
	}
	binding.Attributes(e, false, func(name, value string) {
		h[http.CanonicalHeaderKey("ce-"+name)] = []string{binding.EncodeHeaderValue(value)}
	})
	if ct := e.DataContentType(); ct != "" {
		h.Set("Content-Type", ct)
	}
	return h, e.Data(), nil
}

func (p *Publisher) post(ctx context.Context, name string, h http.Header, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("cehttp: %w", err)
	}
	req.Header.Set("User-Agent", userAgent)
	for k, vs := range p.header {
		req.Header[k] = append([]string(nil), vs...)
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	if !p.noTopic {
		req.Header.Set(TopicHeader, name)
	}
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	if p.secret != nil {
		req.Header.Set(SignatureHeader, Sign(p.secret, body))
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("cehttp: post to %s: %w", p.url, err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	var herr error = &StatusError{Status: resp.StatusCode, Body: string(rb)}
	var prob Problem
	if json.Unmarshal(rb, &prob) == nil && prob.Status != 0 {
		herr = &StatusError{Status: resp.StatusCode, Problem: &prob, Body: string(rb)}
	}
	herr = fmt.Errorf("cehttp: post to %s: %w", p.url, herr)
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
			return eventkit.RetryAfter(herr, time.Duration(s)*time.Second)
		}
		return herr
	case resp.StatusCode == http.StatusRequestTimeout:
		return herr
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		return eventkit.Permanent(herr)
	}
	return herr
}

// Close makes later publishes return eventkit.ErrClosed and releases idle
// connections.
func (p *Publisher) Close() error {
	if p.closed.CompareAndSwap(false, true) {
		p.client.CloseIdleConnections()
	}
	return nil
}

// StatusError is a non-2xx answer to a request of the Publisher.
type StatusError struct {
	Status  int
	Problem *Problem // the problem+json body, if the answer had one
	Body    string
}

func (e *StatusError) Error() string {
	if e.Problem != nil {
		return e.Problem.Error()
	}
	if e.Body != "" {
		return fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), clip(e.Body))
	}
	return fmt.Sprintf("%d %s", e.Status, http.StatusText(e.Status))
}

func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

var _ eventkit.Publisher = (*Publisher)(nil)

// Handshake performs the sender's side of the CloudEvents Web Hook
// abuse-protection handshake: an OPTIONS request with
// WebHook-Request-Origin: origin (and WebHook-Request-Rate when rate > 0).
// It returns nil when the target grants the origin (WebHook-Allowed-Origin
// is origin or "*"), and an error saying why otherwise.
func (p *Publisher) Handshake(ctx context.Context, origin string, rate int) error {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodOptions, p.url, nil)
	if err != nil {
		return fmt.Errorf("cehttp: handshake: %w", err)
	}
	req.Header.Set("User-Agent", userAgent)
	for k, vs := range p.header {
		req.Header[k] = append([]string(nil), vs...)
	}
	req.Header.Set("WebHook-Request-Origin", origin)
	if rate > 0 {
		req.Header.Set("WebHook-Request-Rate", strconv.Itoa(rate))
	}
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("cehttp: handshake with %s: %w", p.url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return fmt.Errorf("cehttp: handshake with %s: %w", p.url, &StatusError{Status: resp.StatusCode})
	}
	if got := resp.Header.Get("WebHook-Allowed-Origin"); got != "*" && !strings.EqualFold(got, origin) {
		return fmt.Errorf("cehttp: handshake with %s: origin %q not granted (WebHook-Allowed-Origin %q)", p.url, origin, got)
	}
	return nil
}
