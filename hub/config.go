package hub

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/eventkit/eventkit/cehttp"
	"github.com/eventkit/eventkit/topic"
	"gopkg.in/yaml.v3"
)

// Defaults of a Config.
const (
	DefaultListen  = "127.0.0.1:8080"
	DefaultDataDir = "./eventkit-data"
	// DefaultRetention is how long the embedded broker keeps events.
	DefaultRetention = 7 * 24 * time.Hour
)

// Config is the configuration of the server, as read from YAML by
// LoadConfig. The zero value, after Defaults, runs the embedded broker
// under ./eventkit-data and listens on 127.0.0.1:8080.
type Config struct {
	// Listen is the HTTP address (host:port).
	Listen string `yaml:"listen"`
	// DataDir is where the embedded broker stores events.
	DataDir string `yaml:"data_dir"`
	// Broker selects the broker.
	Broker BrokerConfig `yaml:"broker"`
	// Auth protects POST /events (and the stream endpoint).
	Auth AuthConfig `yaml:"auth"`
	// Limits bounds requests.
	Limits LimitsConfig `yaml:"limits"`
	// TopicHeader lets clients choose the topic with the Eventkit-Topic
	// header; otherwise the topic is the event's type.
	TopicHeader bool `yaml:"topic_header"`
	// Subscriptions deliver topics to webhooks.
	Subscriptions []SubscriptionConfig `yaml:"subscriptions"`
	// SubscriptionsAPI configures the CloudEvents Subscriptions API
	// (/subscriptions).
	SubscriptionsAPI SubscriptionsAPIConfig `yaml:"subscriptions_api"`
	// Discovery bounds the Discovery API (/discovery).
	Discovery DiscoveryConfig `yaml:"discovery"`
	// MaxStreamClients bounds concurrent GET /events/stream clients.
	MaxStreamClients int `yaml:"max_stream_clients"`
	// ShutdownTimeout bounds the graceful shutdown.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// Telemetry exports OpenTelemetry traces (none by default).
	Telemetry TelemetryConfig `yaml:"telemetry"`
	// Pipelines run with the server (see PipelineConfig).
	Pipelines []PipelineConfig `yaml:"pipelines"`
}

// BrokerConfig selects the broker: the embedded NATS JetStream server
// (URL empty, the default) or a NATS server at URL.
type BrokerConfig struct {
	// URL of a NATS server with JetStream ("nats://host:4222"); empty runs
	// the embedded server. For a cluster, list several servers separated
	// by commas ("nats://a:4222,nats://b:4222"): the connection starts
	// with any that answers and moves to another when it fails.
	URL string `yaml:"url"`
	// Replicas is the number of copies of the stream in a NATS cluster
	// (1 to 5; 0 means 1). An event is answered 2xx only after a majority
	// of the replicas stored it, so with 3 the stream survives the loss of
	// one server. Needs URL: the embedded server is a single node.
	Replicas int `yaml:"replicas"`
	// Listen makes the embedded server accept NATS clients on this address
	// too (host:port); empty keeps it in-process only. It needs Token.
	Listen string `yaml:"listen"`
	// Token is the credential NATS clients of the embedded server's
	// listener must present (nats.Token; "env:NAME" reads the
	// environment). Required with Listen: without it, anyone reaching the
	// port could publish, read and delete the stored events.
	Token string `yaml:"token"`
	// Stream is the JetStream stream holding the events ("EVENTKIT").
	Stream string `yaml:"stream"`
	// SubjectPrefix is prepended to topics to make NATS subjects
	// ("events": topic orders.created is subject events.orders.created).
	SubjectPrefix string `yaml:"subject_prefix"`
	// Retention is how long events are kept (7 days).
	Retention Duration `yaml:"retention"`
	// MaxBytes bounds the stream's size (0: no bound).
	MaxBytes int64 `yaml:"max_bytes"`
	// Discard is what happens at MaxBytes: "new" (the default) refuses
	// new events with 507 Insufficient Storage, so that nothing accepted
	// is dropped; "old" drops the oldest events to make room, each drop
	// counted (eventkit_broker_discarded_total), logged, and for each
	// subscription that had not delivered them,
	// eventkit_subscription_lost_total.
	Discard string `yaml:"discard"`
}

// AuthConfig holds the credentials of the server. When any is set, every
// route but /healthz and /readyz requires it: each configured scheme (a
// bearer token, a request signature) is required, and must grant the
// route's scope (ScopePublish, ScopeRead, ScopeAdmin, ScopeMetrics).
// Values of the form "env:NAME" are read from the environment variable
// NAME.
type AuthConfig struct {
	// Token, when set, is required as "Authorization: Bearer <token>"; it
	// grants every scope.
	Token string `yaml:"token"`
	// Tokens are more bearer tokens, each with its scopes.
	Tokens []TokenConfig `yaml:"tokens"`
	// HMACSecret, when set, requires requests signed as RFC 9421 describes
	// with hmac-sha256 (see cehttp.SignRequest).
	HMACSecret string `yaml:"hmac_secret"`
	// HMACScopes are the scopes a signature grants (every scope when
	// empty).
	HMACScopes []string `yaml:"hmac_scopes"`
	// LegacyBodySignature also accepts, on POST /events, the body-only
	// X-Eventkit-Signature of earlier versions (no protection of the
	// attributes nor from replays).
	LegacyBodySignature bool `yaml:"legacy_body_signature"`
	// ClockSkew bounds the age of a signature (cehttp.DefaultClockSkew).
	ClockSkew Duration `yaml:"clock_skew"`
	// ReplayCacheSize bounds the nonces remembered
	// (cehttp.DefaultReplayCacheSize); when full, signed requests get 503.
	ReplayCacheSize int `yaml:"replay_cache_size"`
	// AllowedOrigins limits the webhook handshake (default: any origin).
	AllowedOrigins []string `yaml:"allowed_origins"`
}

// LimitsConfig bounds requests and resources (zero values take the
// defaults: cehttp's for the sizes, DefaultMax… for the others). Each is
// visible as eventkit_limit{name}.
type LimitsConfig struct {
	MaxEventBytes  int64 `yaml:"max_event_bytes"`
	MaxBatchBytes  int64 `yaml:"max_batch_bytes"`
	MaxBatchEvents int   `yaml:"max_batch_events"`
	// MaxHeaderBytes bounds a request's header (431 above it).
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// MaxConcurrentRequests bounds the requests to /events in progress
	// (503 with Retry-After above it).
	MaxConcurrentRequests int `yaml:"max_concurrent_requests"`
	// MaxBufferedBytes bounds the request bodies held at once, each
	// counted at its Content-Length, or at its limit when the length is
	// unknown (503 with Retry-After above it).
	MaxBufferedBytes int64 `yaml:"max_buffered_bytes"`
	// StreamWriteTimeout bounds each write to a stream client: a client
	// that does not read for that long is dropped.
	StreamWriteTimeout Duration `yaml:"stream_write_timeout"`
}

// SubscriptionConfig delivers the events of the topics matching Topic to
// a webhook. Its progress is kept by the broker in a durable consumer
// group named "hub-<name>", so a restarted server continues where it
// stopped.
type SubscriptionConfig struct {
	// Name identifies the subscription (letters, digits, '-', '_').
	Name string `yaml:"name"`
	// Topic is the topic pattern ("orders.>").
	Topic string `yaml:"topic"`
	// URL is the webhook (http or https).
	URL string `yaml:"url"`
	// Mode is "binary" (the default), "structured" or "batch".
	Mode string `yaml:"mode"`
	// Token is sent as a bearer token; HMACSecret signs each request as
	// RFC 9421 describes (hmac-sha256 over the method, the path, the
	// content type, every ce- header and the body's Content-Digest, with a
	// creation time and a nonce), so that another eventkit verifies it.
	Token      string `yaml:"token"`
	HMACSecret string `yaml:"hmac_secret"`
	// LegacySignature also sends the body-only X-Eventkit-Signature of
	// earlier versions (needs HMACSecret).
	LegacySignature bool `yaml:"legacy_signature"`
	// Timeout bounds each request (10s).
	Timeout Duration `yaml:"timeout"`
	// MaxAttempts is the number of deliveries before the event is
	// dead-lettered (5).
	MaxAttempts int `yaml:"max_attempts"`
	// Backoff is the first retry delay (1s), doubling up to MaxBackoff (1m).
	Backoff    Duration `yaml:"backoff"`
	MaxBackoff Duration `yaml:"max_backoff"`
	// DeadLetter is the topic that receives events given up on
	// ("deadletter.<name>").
	DeadLetter string `yaml:"dead_letter"`
	// Concurrency is the number of deliveries in flight (1: in order).
	Concurrency int `yaml:"concurrency"`
	// FromStart makes a new subscription start with the oldest stored
	// event instead of the next one.
	FromStart bool `yaml:"from_start"`
	// AllowPrivateTargets lets the webhook be on a loopback, link-local or
	// private address (refused by default, checked at connect time, so a
	// name resolving to one is refused too).
	AllowPrivateTargets bool `yaml:"allow_private_targets"`
	// FollowRedirects is "none" (the default: a 3xx fails the delivery)
	// or "same_origin" (307 and 308 to the same scheme, host and port are
	// followed).
	FollowRedirects string `yaml:"follow_redirects"`
	// HandshakeOrigin, when set, makes the server perform the CloudEvents
	// Web Hook validation handshake with this origin at startup; a webhook
	// that does not grant it stops the start.
	HandshakeOrigin string `yaml:"handshake_origin"`
}

// Duration is a time.Duration written as "10s", "1m30s" in YAML.
type Duration time.Duration

// UnmarshalYAML parses a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// LoadConfig reads a YAML configuration file strictly (unknown keys are
// errors), applies Defaults and validates it.
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("hub: config: %w", err)
	}
	return ParseConfig(b)
}

// ParseConfig parses YAML configuration like LoadConfig.
func ParseConfig(b []byte) (Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("hub: config: %w", err)
	}
	c.Defaults()
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Defaults fills the zero fields with their defaults.
func (c *Config) Defaults() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.Broker.Stream == "" {
		c.Broker.Stream = "EVENTKIT"
	}
	if c.Broker.SubjectPrefix == "" {
		c.Broker.SubjectPrefix = "events"
	}
	if c.Broker.Discard == "" {
		c.Broker.Discard = "new"
	}
	if c.Broker.Retention == 0 {
		c.Broker.Retention = Duration(DefaultRetention)
	}
	if c.Limits.MaxHeaderBytes == 0 {
		c.Limits.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.Limits.MaxConcurrentRequests == 0 {
		c.Limits.MaxConcurrentRequests = DefaultMaxConcurrentRequests
	}
	if c.Limits.MaxBufferedBytes == 0 {
		c.Limits.MaxBufferedBytes = DefaultMaxBufferedBytes
	}
	if c.Limits.StreamWriteTimeout == 0 {
		c.Limits.StreamWriteTimeout = DefaultStreamWriteTimeout
	}
	if c.MaxStreamClients == 0 {
		c.MaxStreamClients = 64
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = Duration(30 * time.Second)
	}
	for i := range c.Subscriptions {
		s := &c.Subscriptions[i]
		if s.Mode == "" {
			s.Mode = "binary"
		}
		if s.Timeout == 0 {
			s.Timeout = Duration(cehttp.DefaultTimeout)
		}
		if s.MaxAttempts == 0 {
			s.MaxAttempts = 5
		}
		if s.Backoff == 0 {
			s.Backoff = Duration(time.Second)
		}
		if s.MaxBackoff == 0 {
			s.MaxBackoff = Duration(time.Minute)
		}
		if s.DeadLetter == "" {
			s.DeadLetter = "deadletter." + s.Name
		}
		if s.Concurrency == 0 {
			s.Concurrency = 1
		}
		if s.FollowRedirects == "" {
			s.FollowRedirects = "none"
		}
	}
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// Validate checks the configuration.
func (c *Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return configError("listen %q: %v", c.Listen, err)
	}
	if err := c.validateBroker(); err != nil {
		return err
	}
	if l := c.Limits; l.MaxEventBytes < 0 || l.MaxBatchBytes < 0 || l.MaxBatchEvents < 0 || l.MaxHeaderBytes < 0 ||
		l.MaxConcurrentRequests < 0 || l.MaxBufferedBytes < 0 || l.StreamWriteTimeout < 0 || c.MaxStreamClients < 0 {
		return configError("limits and max_stream_clients must not be negative")
	}
	if err := c.validateAuth(); err != nil {
		return err
	}
	if err := c.Telemetry.validate(); err != nil {
		return err
	}
	if c.SubscriptionsAPI.MaxSubscriptions < 0 || c.Discovery.MaxTypes < 0 || c.Discovery.MaxExampleBytes < 0 {
		return configError("subscriptions_api.max_subscriptions, discovery.max_types and discovery.max_example_bytes must not be negative")
	}
	seen := map[string]bool{}
	for i, s := range c.Subscriptions {
		if !nameRE.MatchString(s.Name) {
			return configError("subscriptions[%d].name %q: use letters, digits, '-' and '_'", i, s.Name)
		}
		if seen[s.Name] {
			return configError("subscriptions[%d].name %q is used twice", i, s.Name)
		}
		seen[s.Name] = true
		if err := s.validate(); err != nil {
			return err
		}
	}
	return nil
}

// configError is an error of Validate.
func configError(format string, a ...any) error { return fmt.Errorf("hub: config: "+format, a...) }

func (c *Config) validateBroker() error {
	b := c.Broker
	if b.URL != "" {
		u, err := url.Parse(b.URL)
		if err != nil || (u.Scheme != "nats" && u.Scheme != "tls" && u.Scheme != "nats+tls") {
			return configError("broker.url %q must be a nats:// URL", b.URL)
		}
	}
	if b.Replicas < 0 || b.Replicas > 5 {
		return configError("broker.replicas %d (want 1 to 5)", b.Replicas)
	}
	if b.Replicas > 1 && b.URL == "" {
		return configError("broker.replicas %d needs broker.url: the embedded server is a single node", b.Replicas)
	}
	if b.Listen != "" {
		if _, _, err := net.SplitHostPort(b.Listen); err != nil {
			return configError("broker.listen %q: %v", b.Listen, err)
		}
		if b.Token == "" {
			return configError("broker.listen needs broker.token: NATS clients of the listener must authenticate")
		}
	}
	if b.Discard != "new" && b.Discard != "old" {
		return configError("broker.discard %q (want new or old)", b.Discard)
	}
	if !nameRE.MatchString(b.Stream) {
		return configError("broker.stream %q: use letters, digits, '-' and '_'", b.Stream)
	}
	if err := topic.ValidateName(b.SubjectPrefix); err != nil {
		return configError("broker.subject_prefix: %v", err)
	}
	return nil
}

// validate checks one subscription of the configuration file (its name
// is checked by Validate, which sees them all).
func (s SubscriptionConfig) validate() error {
	if err := topic.ValidatePattern(s.Topic); err != nil {
		return configError("subscription %s: topic: %v", s.Name, err)
	}
	if _, err := cehttp.NewPublisher(s.URL); err != nil {
		return configError("subscription %s: %v", s.Name, err)
	}
	switch s.Mode {
	case "binary", "structured", "batch":
	default:
		return configError("subscription %s: mode %q (want binary, structured or batch)", s.Name, s.Mode)
	}
	if err := topic.ValidateName(s.DeadLetter); err != nil {
		return configError("subscription %s: dead_letter: %v", s.Name, err)
	}
	if topic.Match(s.Topic, s.DeadLetter) {
		return configError("subscription %s: its dead-letter topic %q matches its own pattern", s.Name, s.DeadLetter)
	}
	if s.FollowRedirects != "none" && s.FollowRedirects != "same_origin" {
		return configError("subscription %s: follow_redirects %q (want none or same_origin)", s.Name, s.FollowRedirects)
	}
	if s.LegacySignature && s.HMACSecret == "" {
		return configError("subscription %s: legacy_signature needs hmac_secret", s.Name)
	}
	if s.MaxAttempts < 1 || s.Concurrency < 1 {
		return configError("subscription %s: max_attempts and concurrency must be positive", s.Name)
	}
	return nil
}

func (c *Config) validateAuth() error {
	a := c.Auth
	for i, t := range a.Tokens {
		if t.Token == "" {
			return fmt.Errorf("hub: config: auth.tokens[%d]: the token is empty", i)
		}
		if err := validScopes(fmt.Sprintf("auth.tokens[%d].scopes", i), t.Scopes); err != nil {
			return err
		}
	}
	if a.LegacyBodySignature && a.HMACSecret == "" {
		return errors.New("hub: config: auth.legacy_body_signature needs auth.hmac_secret")
	}
	if a.ClockSkew < 0 || a.ReplayCacheSize < 0 {
		return errors.New("hub: config: auth.clock_skew and auth.replay_cache_size must not be negative")
	}
	return validScopes("auth.hmac_scopes", a.HMACScopes)
}

// secret resolves "env:NAME" values.
func secret(v string) string {
	if name, ok := strings.CutPrefix(v, "env:"); ok {
		return os.Getenv(name)
	}
	return v
}
