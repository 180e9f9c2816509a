package cehttp

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/binding"
	"github.com/eventkit/eventkit/internal/jsonvalid"
	"github.com/eventkit/eventkit/topic"
)

// Default limits of a Handler.
const (
	// DefaultMaxEventSize bounds the body of a binary or structured request.
	DefaultMaxEventSize = 1 << 20
	// DefaultMaxBatchSize bounds the body of a batch request.
	DefaultMaxBatchSize = 16 << 20
	// DefaultMaxBatchEvents bounds the number of events in a batch.
	DefaultMaxBatchEvents = 10000
	// DefaultPublishTimeout bounds the wait for the publisher's confirmation.
	DefaultPublishTimeout = 30 * time.Second
)

// SignatureHeader carries the HMAC-SHA256 signature of a request body, as
// "sha256=" followed by the lower-case hex digest, when a signing secret is
// configured (WithHMACSecret, WithSigningSecret).
const SignatureHeader = "X-Eventkit-Signature"

// TopicHeader is the request header from which TopicFromHeader takes the
// topic; the egress Publisher sets it to the topic it publishes to.
const TopicHeader = "Eventkit-Topic"

// The media types of the HTTP binding.
const (
	mediaStructured = eventkit.MediaTypeCloudEvents
	mediaBatch      = eventkit.MediaTypeCloudEventsBatch
	mediaProblem    = "application/problem+json"
)

// TopicFunc chooses the topic of an accepted event. It returns an error to
// reject the request (answered with 400).
type TopicFunc func(r *http.Request, e event.Event) (string, error)

// TypeAsTopic is the default TopicFunc: the topic is the event's type.
func TypeAsTopic(_ *http.Request, e event.Event) (string, error) {
	if err := topic.ValidateName(e.Type()); err != nil {
		return "", &eventkit.ValidationError{Attribute: "type", Reason: "cannot be used as a topic name: " + err.Error()}
	}
	return e.Type(), nil
}

// TopicFromHeader returns a TopicFunc that takes the topic from the request
// header name (TopicHeader when name is empty) and falls back to the event's
// type when the header is absent. Use it only behind authentication: it lets
// the client choose the topic.
func TopicFromHeader(name string) TopicFunc {
	if name == "" {
		name = TopicHeader
	}
	return func(r *http.Request, e event.Event) (string, error) {
		t := r.Header.Get(name)
		if t == "" {
			return TypeAsTopic(r, e)
		}
		if err := topic.ValidateName(t); err != nil {
			return "", fmt.Errorf("header %s: %w", name, err)
		}
		return t, nil
	}
}

// Option configures a Handler.
type Option func(*Handler)

// WithTopic sets how the topic of an event is chosen (TypeAsTopic by
// default).
func WithTopic(fn TopicFunc) Option { return func(h *Handler) { h.topic = fn } }

// WithMaxEventSize bounds the body of a binary or structured request, in
// bytes (DefaultMaxEventSize by default). Larger requests get 413.
func WithMaxEventSize(n int64) Option { return func(h *Handler) { h.maxEvent = n } }

// WithMaxBatchSize bounds the body of a batch request, in bytes
// (DefaultMaxBatchSize by default). Larger requests get 413.
func WithMaxBatchSize(n int64) Option { return func(h *Handler) { h.maxBatch = n } }

// WithMaxBatchEvents bounds the number of events of a batch
// (DefaultMaxBatchEvents by default). Larger batches get 413.
func WithMaxBatchEvents(n int) Option { return func(h *Handler) { h.maxBatchEvents = n } }

// WithBearerToken requires "Authorization: Bearer token" on every POST.
// Without it a request gets 401, with another token 403.
func WithBearerToken(token string) Option {
	return func(h *Handler) {
		sum := sha256.Sum256([]byte(token))
		h.token = sum[:]
	}
}

// WithHMACSecret requires every POST to be signed under secret as RFC 9421
// describes, with hmac-sha256 (SignRequest makes such signatures): the
// signature covers the method, the path, the content type, every ce-
// header and the body's Content-Digest, and carries a creation time and a
// nonce, so that a captured request can be neither altered nor replayed
// (see Verifier). Without a signature a request gets 401, with a wrong,
// stale, replayed or partial one 403. The body-only signature of earlier
// versions (SignatureHeader) is refused unless WithLegacyBodySignature is
// given too.
func WithHMACSecret(secret []byte, opts ...VerifierOption) Option {
	return func(h *Handler) { h.verifier = NewVerifier(secret, opts...) }
}

// WithVerifier requires every POST to be signed, checked by v (share one
// Verifier between the routes of a server, so that a nonce used on one is
// refused on all).
func WithVerifier(v *Verifier) Option { return func(h *Handler) { h.verifier = v } }

// WithLegacyBodySignature also accepts the signature of earlier versions:
// SignatureHeader with the HMAC-SHA256 of the body alone under secret. It
// does not cover the attributes of a binary-mode event, nor protect from
// replays: a captured request can be replayed, or its ce- headers changed.
// Use it only while senders move to RFC 9421 signatures.
func WithLegacyBodySignature(secret []byte) Option {
	return func(h *Handler) { h.legacySecret = append([]byte(nil), secret...) }
}

// WithAllowedOrigins limits the origins granted by the webhook validation
// handshake; by default every origin is granted (the handler exists to
// receive events). "*" grants every origin.
func WithAllowedOrigins(origins ...string) Option {
	return func(h *Handler) {
		h.origins = map[string]bool{}
		for _, o := range origins {
			h.origins[strings.ToLower(o)] = true
		}
	}
}

// WithAllowedRate sets the WebHook-Allowed-Rate answered in the handshake
// (requests per minute); 0 (the default) answers "*".
func WithAllowedRate(perMinute int) Option { return func(h *Handler) { h.rate = perMinute } }

// A publish error that holds a *Problem (errors.As) is answered with that
// problem; any other publish error is answered 503 with Retry-After.

// WithPublishTimeout bounds the wait for the publisher's confirmation
// (DefaultPublishTimeout by default); a request whose events are not
// confirmed in time gets 503.
func WithPublishTimeout(d time.Duration) Option { return func(h *Handler) { h.timeout = d } }

// WithLogger sets the logger of publish failures (slog.Default by default).
func WithLogger(l *slog.Logger) Option { return func(h *Handler) { h.log = l } }

// Handler is the ingress http.Handler. It is safe for concurrent use.
type Handler struct {
	pub            eventkit.Publisher
	topic          TopicFunc
	maxEvent       int64
	maxBatch       int64
	maxBatchEvents int
	token          []byte // sha256 of the bearer token
	verifier       *Verifier
	legacySecret   []byte
	origins        map[string]bool
	rate           int
	timeout        time.Duration
	log            *slog.Logger
}

// NewHandler returns a handler that publishes accepted events with pub.
func NewHandler(pub eventkit.Publisher, opts ...Option) *Handler {
	h := &Handler{
		pub:            pub,
		topic:          TypeAsTopic,
		maxEvent:       DefaultMaxEventSize,
		maxBatch:       DefaultMaxBatchSize,
		maxBatchEvents: DefaultMaxBatchEvents,
		timeout:        DefaultPublishTimeout,
		log:            slog.Default(),
	}
	for _, o := range opts {
		o(h)
	}
	if h.topic == nil {
		h.topic = TypeAsTopic
	}
	return h
}

// Problem is the application/problem+json body (RFC 9457) of an error
// answer. Attribute names the offending CloudEvents attribute, Index the
// offending event of a batch.
type Problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	Attribute string `json:"attribute,omitempty"`
	Index     *int   `json:"index,omitempty"`
}

// Error lets a *Problem be returned as an error (by the egress Publisher).
func (p *Problem) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s", p.Status, p.Title)
	if p.Index != nil {
		fmt.Fprintf(&b, " (event %d)", *p.Index)
	}
	if p.Attribute != "" {
		fmt.Fprintf(&b, ": attribute %q", p.Attribute)
	}
	if p.Detail != "" {
		b.WriteString(": " + p.Detail)
	}
	return b.String()
}

// problem types
const problemBase = "https://eventkit.dev/problems/"

// WriteProblem answers p as application/problem+json (RFC 9457), its
// Title defaulting to the status text and its Type to "about:blank".
func WriteProblem(w http.ResponseWriter, p *Problem) { writeProblem(w, p) }

func writeProblem(w http.ResponseWriter, p *Problem) {
	if p.Type == "" {
		p.Type = "about:blank"
	}
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	b, _ := json.Marshal(p)
	w.Header().Set("Content-Type", mediaProblem)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_, _ = w.Write(b)
}

// invalid answers 400 for err, naming the attribute when err holds a
// *eventkit.ValidationError.
func invalid(w http.ResponseWriter, err error, index int) {
	p := &Problem{Type: problemBase + "invalid-event", Title: "Invalid CloudEvent", Status: http.StatusBadRequest, Detail: err.Error()}
	var ve *eventkit.ValidationError
	if errors.As(err, &ve) {
		p.Attribute = ve.Attribute
	}
	if index >= 0 {
		p.Index = &index
	}
	writeProblem(w, p)
}

// ServeHTTP accepts POST (events) and OPTIONS (the webhook handshake).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
		h.post(w, r)
	case http.MethodOptions:
		h.handshake(w, r)
	default:
		w.Header().Set("Allow", "POST, OPTIONS")
		writeProblem(w, &Problem{Status: http.StatusMethodNotAllowed, Detail: "send events with POST"})
	}
}

// handshake answers the CloudEvents Web Hook abuse-protection validation
// request.
func (h *Handler) handshake(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Allow", "POST, OPTIONS")
	origin := r.Header.Get("WebHook-Request-Origin")
	if origin == "" {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if h.origins != nil && !h.origins["*"] && !h.origins[strings.ToLower(origin)] {
		writeProblem(w, &Problem{Type: problemBase + "origin-not-allowed", Title: "Origin not allowed", Status: http.StatusForbidden,
			Detail: "this endpoint does not accept events from " + origin})
		return
	}
	if rr := r.Header.Get("WebHook-Request-Rate"); rr != "" {
		if n, err := strconv.Atoi(rr); err != nil || n <= 0 {
			writeProblem(w, &Problem{Status: http.StatusBadRequest, Detail: "WebHook-Request-Rate must be a positive integer, got " + strconv.Quote(rr)})
			return
		}
	}
	w.Header().Set("WebHook-Allowed-Origin", origin)
	if h.rate > 0 {
		w.Header().Set("WebHook-Allowed-Rate", strconv.Itoa(h.rate))
	} else {
		w.Header().Set("WebHook-Allowed-Rate", "*")
	}
	w.WriteHeader(http.StatusOK)
}

// checkToken answers 401/403 and returns false when the bearer token is
// required and missing or wrong.
func (h *Handler) checkToken(w http.ResponseWriter, r *http.Request) bool {
	if h.token == nil {
		return true
	}
	auth := r.Header.Get("Authorization")
	scheme, tok, _ := strings.Cut(auth, " ")
	tok = strings.TrimSpace(tok)
	if tok == "" || !strings.EqualFold(scheme, "Bearer") {
		w.Header().Set("WWW-Authenticate", `Bearer realm="eventkit"`)
		writeProblem(w, &Problem{Type: problemBase + "unauthenticated", Status: http.StatusUnauthorized, Detail: "a bearer token is required"})
		return false
	}
	sum := sha256.Sum256([]byte(tok))
	if subtle.ConstantTimeCompare(sum[:], h.token) != 1 {
		writeProblem(w, &Problem{Type: problemBase + "forbidden", Status: http.StatusForbidden, Detail: "the bearer token is not valid"})
		return false
	}
	return true
}

// checkSignature checks the signature of r before its body is read: an RFC
// 9421 signature's headers (its Content-Digest is checked as the body is
// read), or, with WithLegacyBodySignature, the presence of SignatureHeader
// (returned, to be checked against the body by checkLegacy).
func (h *Handler) checkSignature(w http.ResponseWriter, r *http.Request) (legacy string, ok bool) {
	if h.verifier == nil && h.legacySecret == nil {
		return "", true
	}
	if h.verifier != nil && Signed(r) {
		if err := h.verifier.Verify(r); err != nil {
			writeError(w, err)
			return "", false
		}
		return "", true
	}
	if sig := r.Header.Get(SignatureHeader); sig != "" {
		if h.legacySecret != nil {
			return sig, true
		}
		writeProblem(w, &Problem{Type: problemBase + "unauthenticated", Status: http.StatusUnauthorized,
			Detail: "the body-only signature " + SignatureHeader + " is not accepted (it covers neither the attributes nor replays); sign the request as RFC 9421 describes (Signature-Input, Signature, Content-Digest)"})
		return "", false
	}
	detail := "a request signature (RFC 9421 Signature-Input, Signature, Content-Digest) is required"
	if h.verifier == nil {
		detail = "the body signature header " + SignatureHeader + " is required"
	}
	writeProblem(w, &Problem{Type: problemBase + "unauthenticated", Status: http.StatusUnauthorized, Detail: detail})
	return "", false
}

// writeError answers err: its *Problem when it holds one, else 400.
func writeError(w http.ResponseWriter, err error) {
	var p *Problem
	if errors.As(err, &p) {
		cp := *p
		writeProblem(w, &cp)
		return
	}
	writeProblem(w, &Problem{Status: http.StatusBadRequest, Detail: err.Error()})
}

// checkLegacy verifies the legacy SignatureHeader against body.
func (h *Handler) checkLegacy(w http.ResponseWriter, sig string, body []byte) bool {
	if sig == "" {
		return true
	}
	hexSum, ok := strings.CutPrefix(sig, "sha256=")
	got, err := hex.DecodeString(hexSum)
	want := Sign(h.legacySecret, body)
	wantRaw, _ := hex.DecodeString(strings.TrimPrefix(want, "sha256="))
	if !ok || err != nil || !hmac.Equal(got, wantRaw) {
		writeProblem(w, &Problem{Type: problemBase + "forbidden", Status: http.StatusForbidden, Detail: "the body signature (" + SignatureHeader + ") does not match"})
		return false
	}
	return true
}

// Sign returns the SignatureHeader value of body under secret:
// "sha256=" and the hex HMAC-SHA256.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

type mode int

const (
	modeBinary mode = iota
	modeStructured
	modeBatch
)

func (h *Handler) post(w http.ResponseWriter, r *http.Request) {
	if !h.checkToken(w, r) {
		return
	}
	sig, ok := h.checkSignature(w, r)
	if !ok {
		return
	}
	m, ok := h.mode(w, r)
	if !ok {
		return
	}
	limit := h.maxEvent
	if m == modeBatch {
		limit = h.maxBatch
	}
	body, ok := readBody(w, r, limit)
	if !ok {
		return
	}
	if err := CheckBody(r); err != nil {
		writeError(w, err)
		return
	}
	if !h.checkLegacy(w, sig, body) {
		return
	}
	events, ok := h.decode(w, r, m, body)
	if !ok {
		return
	}
	topics, ok := h.topics(w, r, m, events)
	if !ok {
		return
	}
	// An empty batch publishes nothing and is answered {"accepted":0}.
	if len(events) > 0 {
		if err := h.publish(r.Context(), topics, events); err != nil {
			h.fail(w, r, err)
			return
		}
	}
	if m == modeBatch {
		b := []byte(`{"accepted":` + strconv.Itoa(len(events)) + "}")
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(b)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// decode returns the events of body in mode m, answering 400 (or 413 for
// a batch of too many events) when it cannot.
func (h *Handler) decode(w http.ResponseWriter, r *http.Request, m mode, body []byte) ([]event.Event, bool) {
	if m != modeBinary && !utf8.Valid(body) {
		// JSON text is UTF-8 (RFC 8259); decoding would silently replace
		// the bad bytes with U+FFFD, which binary mode refuses.
		invalid(w, errors.New("the body is not valid UTF-8, as JSON text must be (RFC 8259)"), -1)
		return nil, false
	}
	var e event.Event
	var err error
	switch m {
	case modeBinary:
		e, err = decodeBinary(r.Header, body)
	case modeStructured:
		e, err = eventkit.UnmarshalEvent(body)
	case modeBatch:
		evs, err := eventkit.UnmarshalBatch(body)
		if err != nil {
			invalid(w, err, badIndex(body))
			return nil, false
		}
		if len(evs) > h.maxBatchEvents {
			writeProblem(w, &Problem{Type: problemBase + "too-large", Status: http.StatusRequestEntityTooLarge,
				Detail: fmt.Sprintf("a batch holds at most %d events, got %d", h.maxBatchEvents, len(evs))})
			return nil, false
		}
		return evs, true
	}
	if err != nil {
		invalid(w, err, -1)
		return nil, false
	}
	return []event.Event{e}, true
}

// topics chooses the topic of each event, answering 400 when it cannot.
func (h *Handler) topics(w http.ResponseWriter, r *http.Request, m mode, events []event.Event) ([]string, bool) {
	topics := make([]string, len(events))
	for i := range events {
		t, err := h.topic(r, events[i])
		if err != nil {
			idx := -1
			if m == modeBatch {
				idx = i
			}
			invalid(w, err, idx)
			return nil, false
		}
		topics[i] = t
	}
	return topics, true
}

// EachPublisher is implemented by publishers that publish events to a
// topic each in one call, events[i] to topics[i], keeping the order of the
// events of each topic (the nats Transport does). The Handler uses it for
// a batch whose events go to several topics: the batch then waits once for
// the broker, not once per run of events of one topic.
type EachPublisher interface {
	PublishEach(ctx context.Context, topics []string, events []event.Event) error
}

// publish publishes events, in order, in runs of one topic (in one call
// when the publisher is an EachPublisher). It publishes nothing when
// events is empty.
func (h *Handler) publish(ctx context.Context, topics []string, events []event.Event) error {
	if len(events) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	if ep, ok := h.pub.(EachPublisher); ok {
		for _, t := range topics[1:] {
			if t != topics[0] {
				return ep.PublishEach(ctx, topics, events)
			}
		}
	}
	return PublishRuns(ctx, h.pub, topics, events)
}

// PublishRuns publishes events[i] to topics[i] with pub, in order, one
// Publish call per run of consecutive events of one topic.
func PublishRuns(ctx context.Context, pub eventkit.Publisher, topics []string, events []event.Event) error {
	for start := 0; start < len(events); {
		end := start + 1
		for end < len(events) && topics[end] == topics[start] {
			end++
		}
		if err := pub.Publish(ctx, topics[start], events[start:end]...); err != nil {
			return err
		}
		start = end
	}
	return nil
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ve *eventkit.ValidationError
	if errors.As(err, &ve) {
		invalid(w, err, -1)
		return
	}
	if isProblem(err) {
		// The publisher said how to answer (507 when the store is full).
		if r.Context().Err() == nil {
			h.log.Warn("cehttp: publish refused", "err", err, "remote", r.RemoteAddr)
		}
		writeError(w, err)
		return
	}
	// Always answer, even when the client seems gone: a handler that
	// writes nothing would be answered 200 by net/http.
	if r.Context().Err() == nil {
		h.log.Warn("cehttp: publish failed", "err", err, "remote", r.RemoteAddr)
	}
	w.Header().Set("Retry-After", "1")
	writeProblem(w, &Problem{Type: problemBase + "unavailable", Title: "Events not accepted", Status: http.StatusServiceUnavailable,
		Detail: "the events could not be stored; retry the request: " + err.Error()})
}

// mode determines the content mode from Content-Type and the ce- headers,
// answering 415 for a content type it cannot take.
func (h *Handler) mode(w http.ResponseWriter, r *http.Request) (mode, bool) {
	ct := r.Header.Get("Content-Type")
	if ct != "" {
		base, _, err := parseMediaType(ct)
		if err != nil {
			if r.Header.Get("Ce-Specversion") != "" {
				// Binary mode: a malformed Content-Type is a bad datacontenttype.
				return modeBinary, true
			}
			writeProblem(w, &Problem{Status: http.StatusUnsupportedMediaType, Detail: "malformed Content-Type: " + err.Error()})
			return 0, false
		}
		switch {
		case base == mediaStructured:
			return modeStructured, true
		case base == mediaBatch:
			return modeBatch, true
		case strings.HasPrefix(base, "application/cloudevents"):
			writeProblem(w, &Problem{Status: http.StatusUnsupportedMediaType,
				Detail: "unsupported event format " + strconv.Quote(base) + "; use binary mode, " + mediaStructured + " or " + mediaBatch})
			return 0, false
		}
	}
	for k := range r.Header {
		if len(k) > 3 && strings.EqualFold(k[:3], "ce-") {
			return modeBinary, true
		}
	}
	writeProblem(w, &Problem{Status: http.StatusUnsupportedMediaType,
		Detail: "not a CloudEvent: send binary mode (ce- headers), " + mediaStructured + " or " + mediaBatch})
	return 0, false
}

// parseMediaType returns the lower-case media type of a Content-Type
// value. A bare type/subtype of token characters (the usual
// "application/json") is taken as it is, lower-cased; anything else goes
// through mime.ParseMediaType.
func parseMediaType(ct string) (string, map[string]string, error) {
	slash := -1
	lower := true
	for i := 0; i < len(ct); i++ {
		c := ct[i]
		switch {
		case c == '/' && slash < 0 && i > 0:
			slash = i
		case c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		case c >= 'A' && c <= 'Z':
			lower = false
		default:
			return mime.ParseMediaType(ct)
		}
	}
	if slash < 0 || slash == len(ct)-1 {
		return mime.ParseMediaType(ct)
	}
	if !lower {
		ct = strings.ToLower(ct)
	}
	return ct, nil, nil
}

// readBody reads at most limit bytes, answering 413 above it.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	tooLarge := func() {
		writeProblem(w, &Problem{Type: problemBase + "too-large", Status: http.StatusRequestEntityTooLarge,
			Detail: fmt.Sprintf("the body exceeds the limit of %d bytes", limit)})
	}
	if r.ContentLength > limit {
		tooLarge()
		return nil, false
	}
	if r.ContentLength > 0 {
		// The usual case: the length is known, so the body is read into a
		// buffer of exactly that size (net/http ends the body there).
		buf := make([]byte, r.ContentLength)
		n, err := io.ReadFull(r.Body, buf)
		if err != nil {
			if isProblem(err) {
				writeError(w, err)
				return nil, false
			}
			writeProblem(w, &Problem{Status: http.StatusBadRequest, Detail: fmt.Sprintf("reading the body: %v (%d of the %d bytes of Content-Length)", err, n, r.ContentLength)})
			return nil, false
		}
		return buf, true
	}
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(r.Body, limit+1))
	if err != nil {
		if isProblem(err) {
			writeError(w, err)
			return nil, false
		}
		writeProblem(w, &Problem{Status: http.StatusBadRequest, Detail: "reading the body: " + err.Error()})
		return nil, false
	}
	if n > limit {
		tooLarge()
		return nil, false
	}
	return buf.Bytes(), true
}

func isProblem(err error) bool {
	var p *Problem
	return errors.As(err, &p)
}

// decodeBinary builds the event of a binary-mode request.
func decodeBinary(hdr http.Header, body []byte) (event.Event, error) {
	e := event.New(event.CloudEventsVersionV1)
	hasVersion := false
	for k, vs := range hdr {
		if len(k) <= 3 || !strings.EqualFold(k[:3], "ce-") {
			continue
		}
		name := strings.ToLower(k[3:])
		if !binding.IsAttributeName(name) {
			return e, &eventkit.ValidationError{Attribute: name, Reason: "attribute names must consist of lower-case letters and digits only"}
		}
		if len(vs) != 1 {
			return e, &eventkit.ValidationError{Attribute: name, Reason: "given more than once"}
		}
		switch name {
		case "datacontenttype":
			return e, &eventkit.ValidationError{Attribute: name, Reason: "in binary mode datacontenttype is the Content-Type header, not ce-datacontenttype"}
		case "data", "data_base64":
			return e, &eventkit.ValidationError{Attribute: name, Reason: "in binary mode the data is the body"}
		case "specversion":
			hasVersion = true
		}
		v, err := binding.DecodeHeaderValue(vs[0])
		if err != nil {
			return e, &eventkit.ValidationError{Attribute: name, Reason: err.Error()}
		}
		if err := binding.Set(&e, name, v); err != nil {
			return e, err
		}
	}
	if !hasVersion {
		return e, &eventkit.ValidationError{Attribute: "specversion", Reason: "required (ce-specversion header)"}
	}
	ct := hdr.Get("Content-Type")
	if ct != "" {
		e.SetDataContentType(ct)
	}
	if len(body) > 0 {
		b64, err := dataBase64(ct, body)
		if err != nil {
			return e, err
		}
		if ct == "" && b64 {
			// RFC 9110: a body without a media type may be taken as
			// application/octet-stream; without one, CloudEvents would
			// take it for JSON.
			e.SetDataContentType("application/octet-stream")
		}
		e.DataEncoded = body
		e.DataBase64 = b64
	}
	if err := eventkit.ValidateEvent(e); err != nil {
		return e, err
	}
	return e, nil
}

// dataBase64 reports whether the data of a binary-mode request must be
// kept as binary (data_base64 in the JSON format) for the event to survive
// a structured encoding unchanged: JSON data of a JSON media type (or of
// none) stays JSON, valid UTF-8 of a text/* type stays text, anything else
// is binary. Data that is not JSON under a JSON media type is rejected.
func dataBase64(ct string, body []byte) (bool, error) {
	mt := ct
	if i := strings.IndexByte(mt, ';'); i >= 0 {
		mt = mt[:i]
	}
	mt = strings.ToLower(strings.TrimSpace(mt))
	switch {
	case mt == "application/json" || mt == "text/json":
		if !jsonvalid.Valid(body) {
			return false, &eventkit.ValidationError{Attribute: "data", Reason: "the body is not valid JSON, but the Content-Type is " + ct}
		}
		return false, nil
	case mt == "":
		return !jsonvalid.Valid(body), nil
	case strings.HasPrefix(mt, "text/"):
		return !utf8.Valid(body), nil
	}
	return true, nil
}

// badIndex finds the index of the first invalid event of a batch that
// UnmarshalBatch rejected, or -1 when the batch itself is malformed.
func badIndex(body []byte) int {
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		return -1
	}
	for i, r := range raws {
		if _, err := eventkit.UnmarshalEvent(r); err != nil {
			return i
		}
	}
	return -1
}
