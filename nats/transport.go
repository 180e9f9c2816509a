package nats

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// StreamConfig is the part of a JetStream stream's configuration that
// eventkit manages. Zero fields take the server's defaults (limits
// retention, file storage, one replica, no age or size limit), except
// Duplicates, whose zero keeps the server's two-minute window.
type StreamConfig struct {
	// Name of the stream (letters, digits, '-' and '_').
	Name string
	// Subjects the stream stores (NATS subjects, wildcards allowed):
	// "orders.>" stores every topic under orders.
	Subjects []string
	// Retention: jetstream.LimitsPolicy (keep until a limit), InterestPolicy
	// (keep until every consumer acked), WorkQueuePolicy (keep until one
	// consumer acked; consumers must not overlap).
	Retention jetstream.RetentionPolicy
	// MaxAge drops events older than this (0: no limit).
	MaxAge time.Duration
	// MaxBytes bounds the stream's size; the oldest events go first (0 or
	// negative: no limit).
	MaxBytes int64
	// MaxMsgs bounds the number of events kept (0 or negative: no limit).
	MaxMsgs int64
	// Replicas is the number of copies in a cluster (0: 1).
	Replicas int
	// Storage: jetstream.FileStorage (the default) or MemoryStorage.
	Storage jetstream.StorageType
	// Duplicates is the window in which a re-published event (same
	// Nats-Msg-Id) is dropped (0: the server's default of two minutes).
	Duplicates time.Duration
}

func (c StreamConfig) js() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:       c.Name,
		Subjects:   slices.Clone(c.Subjects),
		Retention:  c.Retention,
		MaxAge:     c.MaxAge,
		MaxBytes:   orUnlimited(c.MaxBytes),
		MaxMsgs:    orUnlimited(c.MaxMsgs),
		Replicas:   max(c.Replicas, 1),
		Storage:    c.Storage,
		Duplicates: c.Duplicates,
		Discard:    jetstream.DiscardOld,
	}
}

func orUnlimited(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}

// DefaultStreamConfig is the template of streams made by WithAutoStreams
// when the transport is given no stream: file storage, limits retention,
// events kept 7 days.
var DefaultStreamConfig = StreamConfig{Storage: jetstream.FileStorage, Retention: jetstream.LimitsPolicy, MaxAge: 7 * 24 * time.Hour}

// Option configures a Transport.
type Option func(*config)

type config struct {
	streams        []StreamConfig
	auto           *StreamConfig
	autoPrefix     string
	updateStreams  bool
	mode           Mode
	maxInFlight    int
	pubAckTimeout  time.Duration
	ackWait        time.Duration
	maxDeliver     int
	maxAckPending  int
	fetchBatch     int
	buffer         int
	ackExtension   time.Duration
	inactive       time.Duration
	setupTimeout   time.Duration
	logger         *slog.Logger
	msgID          func(topic string, id, source string) string
	retryBackoff   time.Duration
	maxRetryBackof time.Duration
}

// WithStream declares a stream: it is created if missing, and checked if it
// exists; an existing stream with other settings is an error (a
// *StreamMismatchError) unless WithStreamUpdate is given. Topics are NATS
// subjects: every topic published or subscribed must fall in the subjects
// of a declared stream (or of an automatic one, see WithAutoStreams).
// Give the option once per stream.
func WithStream(c StreamConfig) Option {
	return func(cfg *config) { cfg.streams = append(cfg.streams, c) }
}

// WithAutoStreams makes the transport create, on first use of a topic
// whose first token has no declared stream, a stream named
// "EVENTKIT_<token>" for the subjects "<token>" and "<token>.>", with the
// settings of template (its Name and Subjects are ignored). A transport
// given no WithStream uses automatic streams with DefaultStreamConfig.
func WithAutoStreams(template StreamConfig) Option {
	return func(cfg *config) { t := template; cfg.auto = &t }
}

// WithStreamUpdate lets the transport update a declared stream that exists
// with other settings, instead of failing. The server refuses some
// changes (storage type, for instance).
func WithStreamUpdate() Option { return func(c *config) { c.updateStreams = true } }

// WithMode sets how events are encoded: Binary (the default) or
// Structured.
func WithMode(m Mode) Option { return func(c *config) { c.mode = m } }

// WithMaxInFlight bounds the publishes awaiting their JetStream ack
// (default 4096), over all the transport's Publish calls; a publisher
// waits for room.
func WithMaxInFlight(n int) Option { return func(c *config) { c.maxInFlight = n } }

// WithPublishAckTimeout bounds the wait for one publish ack before the
// event is sent again (default 5s).
func WithPublishAckTimeout(d time.Duration) Option { return func(c *config) { c.pubAckTimeout = d } }

// WithAckWait sets the consumers' ack wait: a delivered message that is
// neither settled nor extended for this long is delivered again (default
// 30s). See WithAckExtension.
func WithAckWait(d time.Duration) Option { return func(c *config) { c.ackWait = d } }

// WithAckExtension keeps a delivered, unsettled message from being
// redelivered for up to d in total, by sending in-progress acks every
// third of the ack wait (default 5 minutes). After d the message is left
// to the ack wait and redelivered. d < 0 turns extension off.
func WithAckExtension(d time.Duration) Option { return func(c *config) { c.ackExtension = d } }

// WithMaxDeliver bounds the deliveries of one message (default -1, no
// bound; use the dead-letter middleware to give up on a message). After
// the last delivery JetStream stops delivering it to the consumer.
func WithMaxDeliver(n int) Option { return func(c *config) { c.maxDeliver = n } }

// WithMaxAckPending bounds the messages a consumer (a group, or a
// subscription without group) has delivered and not yet settled (default
// 2048).
func WithMaxAckPending(n int) Option { return func(c *config) { c.maxAckPending = n } }

// WithFetchBatch sets the most messages one pull request asks for
// (default 512). Requests never ask for more than the subscription's
// buffer has room for, so the messages a subscription holds received and
// not yet taken stay within its buffer.
func WithFetchBatch(n int) Option { return func(c *config) { c.fetchBatch = n } }

// WithSubscriptionBuffer sets the buffer of subscriptions that do not set
// one with eventkit.WithBuffer (default 512).
func WithSubscriptionBuffer(n int) Option { return func(c *config) { c.buffer = n } }

// WithInactiveThreshold sets how long the server keeps the consumer of a
// subscription without group after its client disappears without closing
// it (default 1 minute). Group consumers are durable and kept.
func WithInactiveThreshold(d time.Duration) Option { return func(c *config) { c.inactive = d } }

// WithSetupTimeout bounds the stream and consumer management calls (New,
// Subscribe, the first publish to an automatic stream; default 10s). New
// gives up after it; Subscribe and Publish retry a call that timed out
// (or met JetStream unavailable) until their ctx ends.
func WithSetupTimeout(d time.Duration) Option { return func(c *config) { c.setupTimeout = d } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithMsgID replaces how the JetStream de-duplication id (Nats-Msg-Id) of
// an event is made. The default is DefaultMsgID.
func WithMsgID(fn func(topic, id, source string) string) Option {
	return func(c *config) { c.msgID = fn }
}

// DefaultMsgID is the default Nats-Msg-Id of an event: its id, and, when
// the id is not alone enough to identify one publication, its source and
// topic. The id comes first, so that it reads in monitoring tools. The
// result is "<id>" percent-encoded, then " <source> <topic>" when the
// source is not empty.
func DefaultMsgID(topic, id, source string) string {
	var b strings.Builder
	b.Grow(len(id) + len(source) + len(topic) + 2)
	b.WriteString(id)
	b.WriteByte(' ')
	b.WriteString(source)
	b.WriteByte(' ')
	b.WriteString(topic)
	s := b.String()
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			// Header values must not carry control characters: hash them.
			sum := sha256.Sum256([]byte(s))
			return "sha256:" + hex.EncodeToString(sum[:16])
		}
	}
	return s
}

// Transport publishes and subscribes through NATS JetStream. It implements
// eventkit.Publisher and eventkit.Subscriber, and is safe for concurrent
// use. The connection stays the caller's: Close does not close it.
type Transport struct {
	nc        *nats.Conn
	js        jetstream.JetStream
	cfg       config
	log       *slog.Logger
	apiPrefix string // "$JS.API." unless a domain or prefix is set
	pub       *pubInbox

	mu       sync.Mutex
	streams  map[string]*jetstream.StreamConfig // ensured streams by name
	autoDone map[string]string                  // first token -> stream name
	subs     map[*subscription]struct{}
	closed   atomic.Bool
	wg       sync.WaitGroup
}

// New returns a transport on nc. Declared streams (WithStream) are created
// or checked before New returns.
func New(nc *nats.Conn, opts ...Option) (*Transport, error) {
	if nc == nil {
		return nil, errors.New("nats: New: nil connection")
	}
	cfg := config{
		maxInFlight:    4096,
		pubAckTimeout:  5 * time.Second,
		ackWait:        30 * time.Second,
		maxDeliver:     -1,
		maxAckPending:  2048,
		fetchBatch:     512,
		buffer:         512,
		ackExtension:   5 * time.Minute,
		inactive:       time.Minute,
		setupTimeout:   10 * time.Second,
		msgID:          DefaultMsgID,
		retryBackoff:   50 * time.Millisecond,
		maxRetryBackof: time.Second,
		autoPrefix:     "EVENTKIT_",
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	if cfg.auto == nil && len(cfg.streams) == 0 {
		d := DefaultStreamConfig
		cfg.auto = &d
	}
	if cfg.maxInFlight <= 0 || cfg.fetchBatch <= 0 || cfg.maxAckPending <= 0 || cfg.buffer < 0 || cfg.ackWait <= 0 || cfg.pubAckTimeout <= 0 {
		return nil, errors.New("nats: New: max in flight, fetch batch, max ack pending, ack wait and publish ack timeout must be positive")
	}
	for _, s := range cfg.streams {
		if err := checkStreamConfig(s); err != nil {
			return nil, err
		}
	}
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(cfg.setupTimeout))
	if err != nil {
		return nil, fmt.Errorf("nats: New: %w", err)
	}
	t := &Transport{
		nc: nc, js: js, cfg: cfg, log: cfg.logger, apiPrefix: apiPrefix(js.Options()),
		pub:      newPubInbox(nc, cfg.maxInFlight, cfg.pubAckTimeout),
		streams:  make(map[string]*jetstream.StreamConfig),
		autoDone: make(map[string]string),
		subs:     make(map[*subscription]struct{}),
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.setupTimeout)
	defer cancel()
	for _, s := range cfg.streams {
		if err := t.ensureStream(ctx, s.js(), cfg.updateStreams); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func apiPrefix(o jetstream.JetStreamOptions) string {
	p := o.APIPrefix
	switch {
	case p != "":
	case o.Domain != "":
		p = "$JS." + o.Domain + ".API."
	default:
		p = jetstream.DefaultAPIPrefix
	}
	if !strings.HasSuffix(p, ".") {
		p += "."
	}
	return p
}

// JetStream returns the transport's JetStream context (for administration).
func (t *Transport) JetStream() jetstream.JetStream { return t.js }

func checkStreamConfig(s StreamConfig) error {
	if !validName(s.Name) {
		return fmt.Errorf("nats: stream name %q: use letters, digits, '-' and '_'", s.Name)
	}
	if len(s.Subjects) == 0 {
		return fmt.Errorf("nats: stream %q has no subjects", s.Name)
	}
	return nil
}

func validName(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// safeName turns s into a stream or consumer name: characters outside
// letters, digits, '-' and '_' become '_', and a short hash of s is added
// when anything was replaced, so that distinct inputs stay distinct.
func safeName(s string) string {
	if validName(s) && len(s) <= 200 {
		return s
	}
	b := []byte(s)
	if len(b) > 180 {
		b = b[:180]
	}
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	sum := sha256.Sum256([]byte(s))
	return string(b) + "_" + hex.EncodeToString(sum[:4])
}

// StreamMismatchError reports a stream that exists with settings other
// than those declared.
type StreamMismatchError struct {
	Stream      string
	Differences []string // "max_age: want 1h0m0s, have 24h0m0s", ...
}

func (e *StreamMismatchError) Error() string {
	return fmt.Sprintf("nats: stream %q exists with other settings (%s); change the declaration, update the stream yourself, or allow updates with WithStreamUpdate", e.Stream, strings.Join(e.Differences, "; "))
}

func streamDiff(want, have jetstream.StreamConfig) []string {
	var d []string
	add := func(name string, w, h any) { d = append(d, fmt.Sprintf("%s: want %v, have %v", name, w, h)) }
	ws, hs := slices.Clone(want.Subjects), slices.Clone(have.Subjects)
	slices.Sort(ws)
	slices.Sort(hs)
	if !slices.Equal(ws, hs) {
		add("subjects", ws, hs)
	}
	if want.Retention != have.Retention {
		add("retention", want.Retention, have.Retention)
	}
	if want.Storage != have.Storage {
		add("storage", want.Storage, have.Storage)
	}
	if want.MaxAge != have.MaxAge {
		add("max_age", want.MaxAge, have.MaxAge)
	}
	if want.MaxBytes != have.MaxBytes {
		add("max_bytes", want.MaxBytes, have.MaxBytes)
	}
	if want.MaxMsgs != have.MaxMsgs {
		add("max_msgs", want.MaxMsgs, have.MaxMsgs)
	}
	if max(want.Replicas, 1) != max(have.Replicas, 1) {
		add("replicas", want.Replicas, have.Replicas)
	}
	if want.Duplicates != 0 && want.Duplicates != have.Duplicates {
		add("duplicate_window", want.Duplicates, have.Duplicates)
	}
	return d
}

// ensureStream creates the stream if missing, or checks (and with update,
// updates) an existing one, waiting for JetStream while it is unavailable
// (until ctx ends).
func (t *Transport) ensureStream(ctx context.Context, want jetstream.StreamConfig, update bool) error {
	return t.retryJS(ctx, func(ctx context.Context) error {
		return t.ensureStreamOnce(ctx, want, update)
	})
}

func (t *Transport) ensureStreamOnce(ctx context.Context, want jetstream.StreamConfig, update bool) error {
	t.mu.Lock()
	_, done := t.streams[want.Name]
	t.mu.Unlock()
	if done {
		return nil
	}
	s, err := t.js.Stream(ctx, want.Name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		_, err = t.js.CreateStream(ctx, want)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			// Created concurrently by another client: check it.
			return t.ensureStreamOnce(ctx, want, update)
		}
		if err != nil {
			return fmt.Errorf("nats: create stream %q: %w", want.Name, err)
		}
	case err != nil:
		return fmt.Errorf("nats: stream %q: %w", want.Name, err)
	default:
		have := s.CachedInfo().Config
		if diff := streamDiff(want, have); len(diff) > 0 {
			if !update {
				return &StreamMismatchError{Stream: want.Name, Differences: diff}
			}
			next := have
			next.Subjects, next.Retention, next.Storage = want.Subjects, want.Retention, want.Storage
			next.MaxAge, next.MaxBytes, next.MaxMsgs, next.Replicas = want.MaxAge, want.MaxBytes, want.MaxMsgs, want.Replicas
			if want.Duplicates != 0 {
				next.Duplicates = want.Duplicates
			}
			if _, err := t.js.UpdateStream(ctx, next); err != nil {
				return fmt.Errorf("nats: update stream %q (%s): %w", want.Name, strings.Join(diff, "; "), err)
			}
			t.log.Info("nats: stream updated", "stream", want.Name, "changes", strings.Join(diff, "; "))
		}
	}
	t.mu.Lock()
	c := want
	t.streams[want.Name] = &c
	t.mu.Unlock()
	return nil
}

// ErrNoStream is returned for a topic or pattern that no declared stream
// stores (and automatic streams are off, or cannot apply).
var ErrNoStream = errors.New("nats: no stream stores this topic")

// streamFor returns the name of the stream that stores every subject
// matching pattern (a topic is a pattern without wildcards), making an
// automatic stream if needed.
func (t *Transport) streamFor(ctx context.Context, pattern string) (string, error) {
	for _, s := range t.cfg.streams {
		for _, subj := range s.Subjects {
			if subjectCovers(subj, pattern) {
				return s.Name, nil
			}
		}
	}
	if t.cfg.auto == nil {
		return "", fmt.Errorf("%w: %q (declared streams: %s)", ErrNoStream, pattern, t.declaredSubjects())
	}
	tok, _, _ := strings.Cut(pattern, ".")
	if tok == "*" || tok == ">" {
		return "", fmt.Errorf("%w: %q starts with a wildcard, which no single automatic stream stores; declare a stream with WithStream", ErrNoStream, pattern)
	}
	t.mu.Lock()
	name, ok := t.autoDone[tok]
	t.mu.Unlock()
	if ok {
		return name, nil
	}
	c := *t.cfg.auto
	c.Name = safeName(t.cfg.autoPrefix + tok)
	c.Subjects = []string{tok, tok + ".>"}
	if err := t.ensureStream(ctx, c.js(), false); err != nil {
		return "", err
	}
	t.mu.Lock()
	t.autoDone[tok] = c.Name
	t.mu.Unlock()
	return c.Name, nil
}

func (t *Transport) declaredSubjects() string {
	var all []string
	for _, s := range t.cfg.streams {
		all = append(all, s.Subjects...)
	}
	return strings.Join(all, ", ")
}

// subjectCovers reports whether every subject matching pattern also
// matches the stream subject filter.
func subjectCovers(filter, pattern string) bool {
	f := strings.Split(filter, ".")
	p := strings.Split(pattern, ".")
	for i, ft := range f {
		if ft == ">" {
			return len(p) > i
		}
		if i >= len(p) {
			return false
		}
		pt := p[i]
		switch {
		case pt == ">":
			return false
		case ft == "*":
			continue
		case pt == "*" || pt != ft:
			return false
		}
	}
	return len(p) == len(f)
}

// Close ends every subscription and makes later publishes fail with
// eventkit.ErrClosed. Publish calls in progress keep the acks of the
// events they sent (their inbox goes away with the last of them), send no
// more, and fail with eventkit.ErrClosed if an event is left unacked. It
// does not close the NATS connection. Calling it again returns nil.
func (t *Transport) Close() error {
	if t.closed.Swap(true) {
		return nil
	}
	t.pub.close()
	t.mu.Lock()
	subs := make([]*subscription, 0, len(t.subs))
	for s := range t.subs {
		subs = append(subs, s)
	}
	t.mu.Unlock()
	for _, s := range subs {
		_ = s.Close()
	}
	t.wg.Wait()
	return nil
}

func (t *Transport) removeSub(s *subscription) {
	t.mu.Lock()
	delete(t.subs, s)
	t.mu.Unlock()
}
