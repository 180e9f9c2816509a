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
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/binding"
	"github.com/eventkit/eventkit/driver"
	"github.com/eventkit/eventkit/internal/opt"
	"github.com/eventkit/eventkit/internal/version"
	"github.com/eventkit/eventkit/transport"
)

// DefaultTimeout bounds each request of the egress Publisher.
const DefaultTimeout = 10 * time.Second

// PublisherOption configures a Publisher. An invalid value makes
// NewPublisher fail with an error wrapping eventkit.ErrInvalidOption.
type PublisherOption func(*poster) error

// WithMode sets the content mode: eventkit.Binary (the default) posts one
// request per event, attributes in ce- headers and data as the body;
// eventkit.Structured posts one application/cloudevents+json request per
// event. WithBatch overrides both.
func WithMode(m eventkit.Mode) PublisherOption {
	return func(p *poster) error {
		if !m.Valid() {
			return eventkit.InvalidOption("cehttp.WithMode", "unknown mode "+m.String())
		}
		p.structured = m == eventkit.Structured
		return nil
	}
}

// WithBatch posts one application/cloudevents-batch+json request per
// Publish call, whatever the mode.
func WithBatch() PublisherOption { return func(p *poster) error { p.batch = true; return nil } }

// WithHTTPClient sets the client, which the caller owns: Close does not
// close its idle connections, and its redirect policy and dialer apply
// (WithPublicTargetsOnly and WithSameOriginRedirects do not). By default the Publisher makes its own, with
// the request timeout. The client must not be nil.
func WithHTTPClient(c *http.Client) PublisherOption {
	return func(p *poster) error {
		if c == nil {
			return eventkit.InvalidOption("cehttp.WithHTTPClient", "the client must not be nil")
		}
		p.client = c
		return nil
	}
}

// WithTimeout bounds each request (DefaultTimeout by default); it must be
// positive.
func WithTimeout(d time.Duration) PublisherOption {
	return opt.Positive("cehttp.WithTimeout", d, func(p *poster) *time.Duration { return &p.timeout })
}

// WithToken sends "Authorization: Bearer token" with every request; the
// token must not be empty.
func WithToken(token string) PublisherOption {
	return func(p *poster) error {
		if token == "" {
			return eventkit.InvalidOption("cehttp.WithToken", "the token must not be empty")
		}
		p.token = token
		return nil
	}
}

// WithSigningSecret signs every request with HMAC-SHA256 under secret as
// RFC 9421 describes (SignRequest: the method, the path, the content type,
// Eventkit-Topic, every ce- header and the body's Content-Digest, with a
// creation time and a nonce), so that a Handler given WithHMACSecret(secret)
// accepts it; the secret must not be empty.
func WithSigningSecret(secret []byte) PublisherOption {
	return func(p *poster) error {
		if len(secret) == 0 {
			return eventkit.InvalidOption("cehttp.WithSigningSecret", "the secret must not be empty")
		}
		p.secret = append([]byte(nil), secret...)
		return nil
	}
}

// WithLegacySignature also sends SignatureHeader, the HMAC-SHA256 of the
// body alone under the signing secret, for receivers of earlier versions.
// It needs WithSigningSecret.
func WithLegacySignature() PublisherOption {
	return func(p *poster) error { p.legacy = true; return nil }
}

// WithHeader adds a header to every request. The name must be a valid
// header field name.
func WithHeader(name, value string) PublisherOption {
	return func(p *poster) error {
		if !validHeaderName(name) {
			return eventkit.InvalidOption("cehttp.WithHeader", fmt.Sprintf("invalid header name %q", name))
		}
		p.header.Add(name, value)
		return nil
	}
}

// validHeaderName reports whether name is an RFC 9110 token.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// WithoutTopicHeader leaves TopicHeader out of the requests (the receiver
// then chooses topics by its own rule, by default the event type).
func WithoutTopicHeader() PublisherOption {
	return func(p *poster) error { p.noTopic = true; return nil }
}

// WithCloseTimeout bounds Close (default transport.DefaultCloseTimeout):
// Close waits that long for the requests in flight. It must be positive;
// use Shutdown to give the bound with a context.
func WithCloseTimeout(d time.Duration) PublisherOption {
	return opt.Positive("cehttp.WithCloseTimeout", d, func(p *poster) *time.Duration { return &p.closeTimeout })
}

// userAgent names the egress publisher in its requests.
var userAgent = "eventkit/" + version.Get()

// Publisher is an eventkit.Publisher that posts events to a webhook URL,
// built on package transport (which validates the topic and the events
// before any request, and gives it its closed state and graceful stop). It
// sets TopicHeader to the topic published to (see WithoutTopicHeader), and
// User-Agent to "eventkit/VERSION" (WithHeader may set another). Only a 2xx
// answer counts as success; a 4xx answer other than 408 and 429 is
// returned as a permanent error (eventkit.IsPermanent), a 429 or 503 with
// Retry-After as an eventkit.RetryAfter error, so that retry middleware does
// the right thing. It is safe for concurrent use.
type Publisher struct {
	t *transport.Publisher
	d *poster
}

// poster is the Publisher's driver: it encodes and posts a batch.
type poster struct {
	url        string
	structured bool
	batch      bool
	client     *http.Client
	ownClient  bool
	timeout    time.Duration
	token      string
	secret     []byte
	legacy     bool
	publicOnly bool
	// sameOriginRedirects follows 307/308 to the same origin.
	sameOriginRedirects bool
	header              http.Header
	noTopic             bool
	closeTimeout        time.Duration
}

// NewPublisher returns a publisher posting to target, an http or https URL.
// It does no I/O: HTTP has no connection to open before the first request
// (Handshake is the sender's check, when the receiver asks for one).
func NewPublisher(target string, opts ...PublisherOption) (*Publisher, error) {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, eventkit.InvalidOption("cehttp.NewPublisher", fmt.Sprintf("webhook URL %q must be an absolute http or https URL", target))
	}
	d := &poster{url: target, timeout: DefaultTimeout, header: http.Header{}, closeTimeout: transport.DefaultCloseTimeout}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(d); err != nil {
			return nil, err
		}
	}
	if d.legacy && d.secret == nil {
		return nil, eventkit.InvalidOption("cehttp.WithLegacySignature", "needs WithSigningSecret")
	}
	if d.client == nil {
		d.client, d.ownClient = d.newClient(), true
	}
	t, err := transport.NewPublisher(d, transport.WithName("cehttp"), transport.WithCloseTimeout(d.closeTimeout))
	if err != nil {
		return nil, err
	}
	return &Publisher{t: t, d: d}, nil
}

// Capabilities returns eventkit.CapBatchPublish with WithBatch (one
// request per Publish), nothing otherwise.
func (p *Publisher) Capabilities() eventkit.Capabilities { return p.t.Capabilities() }

// Publish posts events to the URL, in order, and returns when every request
// was answered with 2xx. Invalid events are rejected before any request;
// after Close it returns eventkit.ErrClosed.
func (p *Publisher) Publish(ctx context.Context, name string, events ...event.Event) error {
	return p.t.Publish(ctx, name, events...)
}

// Shutdown refuses new publishes and waits, within ctx, for the requests
// in flight; then it releases the idle connections of the client it made.
func (p *Publisher) Shutdown(ctx context.Context) error { return p.t.Shutdown(ctx) }

// Close is Shutdown bounded by the close timeout (WithCloseTimeout).
func (p *Publisher) Close() error { return p.t.Close() }

// Capabilities implements driver.Publisher.
func (p *poster) Capabilities() eventkit.Capabilities {
	if p.batch {
		return eventkit.CapBatchPublish
	}
	return 0
}

// SendBatch implements driver.Publisher: one request for the batch, or one
// per event, in order.
func (p *poster) SendBatch(ctx context.Context, name string, events []event.Event) error {
	if p.batch {
		body, err := eventkit.MarshalBatch(events)
		if err != nil {
			return fmt.Errorf("cehttp: publish: %w", err)
		}
		h := http.Header{}
		h.Set("Content-Type", eventkit.MediaTypeCloudEventsBatch)
		return p.post(ctx, name, h, body)
	}
	for i := range events {
		h, body, err := Encode(events[i], p.structured)
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

// Close implements driver.Publisher: it releases the idle connections of
// the client the Publisher made (not of one the caller gave).
func (p *poster) Close() error {
	if p.ownClient {
		p.client.CloseIdleConnections()
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

func (p *poster) post(ctx context.Context, name string, h http.Header, body []byte) error {
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
		if p.legacy {
			req.Header.Set(SignatureHeader, Sign(p.secret, body))
		}
		if err := SignRequest(req, body, signatureLabel, p.secret); err != nil {
			return fmt.Errorf("cehttp: sign: %w", err)
		}
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

var (
	_ eventkit.Publisher = (*Publisher)(nil)
	_ driver.Publisher   = (*poster)(nil)
)

// Handshake performs the sender's side of the CloudEvents Web Hook
// abuse-protection handshake: an OPTIONS request with
// WebHook-Request-Origin: origin (and WebHook-Request-Rate when rate > 0).
// It returns nil when the target grants the origin (WebHook-Allowed-Origin
// is origin or "*"), and an error saying why otherwise.
func (p *Publisher) Handshake(ctx context.Context, origin string, rate int) error {
	ctx, cancel := context.WithTimeout(ctx, p.d.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodOptions, p.d.url, nil)
	if err != nil {
		return fmt.Errorf("cehttp: handshake: %w", err)
	}
	req.Header.Set("User-Agent", userAgent)
	for k, vs := range p.d.header {
		req.Header[k] = append([]string(nil), vs...)
	}
	req.Header.Set("WebHook-Request-Origin", origin)
	if rate > 0 {
		req.Header.Set("WebHook-Request-Rate", strconv.Itoa(rate))
	}
	if p.d.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.d.token)
	}
	if p.d.secret != nil {
		if err := SignRequest(req, nil, signatureLabel, p.d.secret); err != nil {
			return fmt.Errorf("cehttp: handshake: %w", err)
		}
	}
	resp, err := p.d.client.Do(req)
	if err != nil {
		return fmt.Errorf("cehttp: handshake with %s: %w", p.d.url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return fmt.Errorf("cehttp: handshake with %s: %w", p.d.url, &StatusError{Status: resp.StatusCode})
	}
	if got := resp.Header.Get("WebHook-Allowed-Origin"); got != "*" && !strings.EqualFold(got, origin) {
		return fmt.Errorf("cehttp: handshake with %s: origin %q not granted (WebHook-Allowed-Origin %q)", p.d.url, origin, got)
	}
	return nil
}
