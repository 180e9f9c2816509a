package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/cefilter"
	"github.com/eventkit/eventkit/cehttp"
	"github.com/eventkit/eventkit/topic"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
)

// Defaults of the Subscriptions API.
const (
	// DefaultMaxAPISubscriptions bounds the subscriptions made through the
	// API.
	DefaultMaxAPISubscriptions = 100
	// maxAPIConcurrency bounds config.concurrency of a subscription made
	// through the API.
	maxAPIConcurrency = 64
	// maxSubscriptionBody bounds the body of POST and PUT /subscriptions.
	maxSubscriptionBody = 64 << 10
)

// SubscriptionsAPIConfig configures the CloudEvents Subscriptions API
// (/subscriptions).
type SubscriptionsAPIConfig struct {
	// AllowPrivateSinks lets a subscription's sink be on a loopback,
	// link-local or private address (refused by default, when the
	// subscription is made and again at each connection).
	AllowPrivateSinks bool `yaml:"allow_private_sinks"`
	// MaxSubscriptions bounds the subscriptions made through the API
	// (DefaultMaxAPISubscriptions); beyond it POST answers 409.
	MaxSubscriptions int `yaml:"max_subscriptions"`
}

// APISubscription is a subscription of the CloudEvents Subscriptions API,
// in the shape of the specification's subscription object. The server
// delivers over HTTP only: Protocol is "HTTP".
type APISubscription struct {
	// ID is chosen by the server (an id given to POST is ignored).
	ID string `json:"id"`
	// Source, when set, passes only the events of this source.
	Source string `json:"source,omitempty"`
	// Types, when set, passes only the events of these types.
	Types []string `json:"types,omitempty"`
	// Config holds the server's settings of the subscription, each a
	// string (numbers and booleans are accepted too): topic (the topic
	// pattern, by default every topic but the dead-letter ones), mode
	// (binary, structured or batch), max_attempts, backoff, max_backoff,
	// timeout, concurrency, dead_letter, from_start and follow_redirects,
	// as in SubscriptionConfig. A subscription returned by the server has
	// every one, defaults applied; one of the configuration file, which the
	// API lists but does not change, has from_configuration "true" too.
	Config map[string]any `json:"config,omitempty"`
	// Filters pass an event when every one does (see package cefilter for
	// the dialects).
	Filters json.RawMessage `json:"filters,omitempty"`
	// Sink is the webhook (http or https).
	Sink string `json:"sink"`
	// SinkCredential is sent with each delivery. Only the ACCESSTOKEN type
	// is supported, sent as a bearer token; the token is write-only.
	SinkCredential *SinkCredential `json:"sinkcredential,omitempty"`
	// Protocol is "HTTP".
	Protocol string `json:"protocol"`
	// ProtocolSettings are the HTTP settings.
	ProtocolSettings *HTTPSettings `json:"protocolsettings,omitempty"`
}

// SinkCredential is the credential a subscription presents to its sink.
type SinkCredential struct {
	// CredentialType is "ACCESSTOKEN".
	CredentialType string `json:"credentialtype"`
	// AccessToken is sent as "Authorization: Bearer <token>"; it is never
	// returned.
	AccessToken string `json:"accesstoken,omitempty"`
	// AccessTokenExpiresUTC is kept and returned, not enforced.
	AccessTokenExpiresUTC string `json:"accesstokenexpiresutc,omitempty"`
	// AccessTokenType is "bearer" (the default).
	AccessTokenType string `json:"accesstokentype,omitempty"`
}

// HTTPSettings are the protocol settings of an HTTP subscription.
type HTTPSettings struct {
	// Headers are added to each delivery (not ce-* headers, nor those the
	// delivery sets itself).
	Headers map[string]string `json:"headers,omitempty"`
	// Method is "POST" (the only one supported, the default).
	Method string `json:"method,omitempty"`
}

// fieldError is a subscription refused because of one field.
type fieldError struct{ field, reason string }

func (e *fieldError) Error() string { return e.field + ": " + e.reason }

// apiConfigKeys are the keys of APISubscription.Config.
var apiConfigKeys = []string{"topic", "mode", "max_attempts", "backoff", "max_backoff", "timeout",
	"concurrency", "dead_letter", "from_start", "follow_redirects"}

// reservedHeaders are headers a subscription may not set: the delivery
// sets them itself.
var reservedHeaders = []string{"authorization", "content-type", "content-length", "content-digest", "host",
	"signature", "signature-input", "x-eventkit-signature", "transfer-encoding", "connection"}

// realized is a subscription of the API made ready to run.
type realized struct {
	sc      SubscriptionConfig
	skip    func(*eventkit.Message) bool
	headers []cehttp.PublisherOption
	public  APISubscription // as answered: defaults applied, no secret
}

// realize checks sub and makes its SubscriptionConfig, its filter and the
// subscription as the API answers it. Every error is a *fieldError.
func (a *apiSubs) realize(sub APISubscription) (*realized, error) {
	if sub.Protocol != "HTTP" {
		return nil, &fieldError{"protocol", fmt.Sprintf("%q is not supported (want \"HTTP\", case sensitive)", sub.Protocol)}
	}
	if u, err := url.Parse(sub.Sink); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, &fieldError{"sink", "want an absolute http or https URL"}
	}
	sc := SubscriptionConfig{Name: sub.ID, Topic: ">", URL: sub.Sink, AllowPrivateTargets: a.cfg.AllowPrivateSinks}
	rz := &realized{}
	if err := applyAPIConfig(&sc, sub.Config); err != nil {
		return nil, err
	}
	defaultTopic := sub.Config["topic"] == nil
	if err := a.applyCredential(&sc, sub.SinkCredential); err != nil {
		return nil, err
	}
	var err error
	if rz.headers, err = headerOptions(sub.ProtocolSettings); err != nil {
		return nil, err
	}
	match, err := subscriptionFilter(sub)
	if err != nil {
		return nil, err
	}
	c := Config{Subscriptions: []SubscriptionConfig{sc}}
	c.Defaults()
	sc = c.Subscriptions[0]
	if err := a.validate(sc); err != nil {
		return nil, err
	}
	dlq := sc.DeadLetter
	rz.sc = sc
	// A subscription never receives its own dead letters, nor, on its
	// default topic (every topic), anyone's: a dead-lettered event keeps
	// its attributes and would pass the filters again.
	rz.skip = func(m *eventkit.Message) bool {
		if m.Topic == dlq || (defaultTopic && strings.HasPrefix(m.Topic, "deadletter.")) {
			return true
		}
		return !match.Match(m.Event)
	}
	rz.public = publicView(sub, sc)
	return rz, nil
}

// validate checks sc as a subscription of the configuration file is
// checked (Config.Validate), but for its dead-letter topic matching its
// pattern, which a subscription of the API skips instead.
func (a *apiSubs) validate(sc SubscriptionConfig) error {
	vc := sc
	if topic.Match(vc.Topic, vc.DeadLetter) {
		vc.Topic = vc.DeadLetter + ".x"
	}
	c := a.s.cfg
	c.Subscriptions = []SubscriptionConfig{vc}
	if err := c.Validate(); err != nil {
		return &fieldError{"config", strings.TrimPrefix(err.Error(), "hub: config: ")}
	}
	return nil
}

// applyAPIConfig sets the fields of sc from the config map of the API.
func applyAPIConfig(sc *SubscriptionConfig, cfg map[string]any) error {
	for k, v := range cfg {
		field := "config." + k
		s, ok := configString(v)
		if !ok {
			return &fieldError{field, "want a string, a number or a boolean"}
		}
		if err := applyAPIConfigKey(sc, k, s); err != nil {
			return &fieldError{field, err.Error()}
		}
	}
	return nil
}

func applyAPIConfigKey(sc *SubscriptionConfig, k, s string) error {
	positive := func(max int) (int, error) {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > max {
			return 0, fmt.Errorf("want an integer from 1 to %d", max)
		}
		return n, nil
	}
	duration := func() (Duration, error) {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return 0, errors.New(`want a positive duration ("1s", "500ms")`)
		}
		return Duration(d), nil
	}
	var err error
	switch k {
	case "topic":
		sc.Topic, err = s, topic.ValidatePattern(s)
	case "mode":
		sc.Mode = s
		if s != "binary" && s != "structured" && s != "batch" {
			err = errors.New("want binary, structured or batch")
		}
	case "max_attempts":
		sc.MaxAttempts, err = positive(1000)
	case "concurrency":
		sc.Concurrency, err = positive(maxAPIConcurrency)
	case "backoff":
		sc.Backoff, err = duration()
	case "max_backoff":
		sc.MaxBackoff, err = duration()
	case "timeout":
		sc.Timeout, err = duration()
	case "dead_letter":
		sc.DeadLetter, err = s, topic.ValidateName(s)
	case "from_start":
		sc.FromStart, err = strconv.ParseBool(s)
	case "follow_redirects":
		sc.FollowRedirects = s
		if s != "none" && s != "same_origin" {
			err = errors.New("want none or same_origin")
		}
	default:
		err = fmt.Errorf("unknown key (want one of %s)", strings.Join(apiConfigKeys, ", "))
	}
	return err
}

// configString reads a config value: a string, a number or a boolean.
func configString(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(v), true
	}
	return "", false
}

func (a *apiSubs) applyCredential(sc *SubscriptionConfig, c *SinkCredential) error {
	if c == nil {
		return nil
	}
	if c.CredentialType != "ACCESSTOKEN" {
		return &fieldError{"sinkcredential.credentialtype", fmt.Sprintf("%q is not supported (want ACCESSTOKEN)", c.CredentialType)}
	}
	if c.AccessToken == "" {
		return &fieldError{"sinkcredential.accesstoken", "required with ACCESSTOKEN"}
	}
	if c.AccessTokenType != "" && !strings.EqualFold(c.AccessTokenType, "bearer") {
		return &fieldError{"sinkcredential.accesstokentype", "only bearer tokens are supported"}
	}
	if strings.HasPrefix(c.AccessToken, "env:") {
		// The configuration file's "env:NAME" must not let an API client
		// read the server's environment.
		return &fieldError{"sinkcredential.accesstoken", `a token starting with "env:" is refused`}
	}
	sc.Token = c.AccessToken
	return nil
}

func headerOptions(ps *HTTPSettings) ([]cehttp.PublisherOption, error) {
	if ps == nil {
		return nil, nil
	}
	if ps.Method != "" && ps.Method != http.MethodPost {
		return nil, &fieldError{"protocolsettings.method", fmt.Sprintf("%q is not supported (want POST)", ps.Method)}
	}
	var opts []cehttp.PublisherOption
	for name, v := range ps.Headers {
		l := strings.ToLower(name)
		if strings.HasPrefix(l, "ce-") || slices.Contains(reservedHeaders, l) {
			return nil, &fieldError{"protocolsettings.headers." + name, "set by the delivery itself"}
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			return nil, &fieldError{"protocolsettings.headers." + name, "the value has a control character"}
		}
		opts = append(opts, cehttp.WithHeader(name, v))
	}
	// An invalid header name is refused by the option.
	if _, err := cehttp.NewPublisher("http://check.invalid", opts...); err != nil {
		return nil, &fieldError{"protocolsettings.headers", err.Error()}
	}
	return opts, nil
}

// subscriptionFilter is the filter of sub: its source, its types and its
// filters, all of which must pass.
func subscriptionFilter(sub APISubscription) (cefilter.Filter, error) {
	f, err := cefilter.ParseList(sub.Filters, "filters")
	if err != nil {
		var fe *cefilter.Error
		if errors.As(err, &fe) {
			return nil, &fieldError{fe.Field, fe.Reason}
		}
		return nil, &fieldError{"filters", err.Error()}
	}
	for i, t := range sub.Types {
		if t == "" {
			return nil, &fieldError{fmt.Sprintf("types[%d]", i), "must not be empty"}
		}
	}
	if sub.Source == "" && len(sub.Types) == 0 {
		return f, nil
	}
	return sourceAndTypes{source: sub.Source, types: sub.Types, next: f}, nil
}

type sourceAndTypes struct {
	source string
	types  []string
	next   cefilter.Filter
}

func (s sourceAndTypes) Match(e event.Event) bool {
	if s.source != "" && e.Source() != s.source {
		return false
	}
	if len(s.types) > 0 && !slices.Contains(s.types, e.Type()) {
		return false
	}
	return s.next.Match(e)
}

// publicView is sub as answered: its config with every default, and no
// secret.
func publicView(sub APISubscription, sc SubscriptionConfig) APISubscription {
	sub.Config = map[string]any{
		"topic":            sc.Topic,
		"mode":             sc.Mode,
		"max_attempts":     strconv.Itoa(sc.MaxAttempts),
		"backoff":          time.Duration(sc.Backoff).String(),
		"max_backoff":      time.Duration(sc.MaxBackoff).String(),
		"timeout":          time.Duration(sc.Timeout).String(),
		"concurrency":      strconv.Itoa(sc.Concurrency),
		"dead_letter":      sc.DeadLetter,
		"from_start":       strconv.FormatBool(sc.FromStart),
		"follow_redirects": sc.FollowRedirects,
	}
	if c := sub.SinkCredential; c != nil {
		sub.SinkCredential = &SinkCredential{CredentialType: c.CredentialType, AccessTokenExpiresUTC: c.AccessTokenExpiresUTC,
			AccessTokenType: c.AccessTokenType}
	}
	ps := HTTPSettings{Method: http.MethodPost}
	if sub.ProtocolSettings != nil {
		ps.Headers = sub.ProtocolSettings.Headers
	}
	sub.ProtocolSettings = &ps
	return sub
}

// apiSubs runs the subscriptions of the API, each on its own router
// built like those of the configuration (Server.addSubscription), and
// keeps them in the store.
type apiSubs struct {
	s     *Server
	cfg   SubscriptionsAPIConfig
	store subStore

	fixed map[string]APISubscription // the configuration file's, read-only

	mu     sync.Mutex
	live   map[string]*liveSub
	closed bool           // stop was called: nothing starts any more
	wg     sync.WaitGroup // the goroutines watching the routers
}

// liveSub is a subscription of the API and its router.
type liveSub struct {
	stored APISubscription // as stored, secrets included
	public APISubscription
	router *eventkit.Router
	hook   *cehttp.Publisher
}

// setupSubscriptionsAPI makes the API's manager on the embedded store
// (the JetStream key-value bucket "<stream>_subscriptions"), or in memory
// with WithBroker.
func (s *Server) setupSubscriptionsAPI() error {
	cfg := s.cfg.SubscriptionsAPI
	if cfg.MaxSubscriptions == 0 {
		cfg.MaxSubscriptions = DefaultMaxAPISubscriptions
	}
	a := &apiSubs{s: s, cfg: cfg, live: map[string]*liveSub{}, store: newMemStore(), fixed: map[string]APISubscription{}}
	for _, sc := range s.cfg.Subscriptions {
		sub := APISubscription{ID: sc.Name, Sink: sc.URL, Protocol: "HTTP"}
		if sc.Token != "" {
			sub.SinkCredential = &SinkCredential{CredentialType: "ACCESSTOKEN"}
		}
		sub = publicView(sub, sc)
		sub.Config["from_configuration"] = "true"
		a.fixed[sc.Name] = sub
	}
	if s.jsAPI != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		kv, err := newKVStore(ctx, s.jsAPI, s.cfg.Broker.Stream+"_subscriptions")
		if err != nil {
			return fmt.Errorf("hub: subscriptions API store: %w", err)
		}
		a.store = kv
	}
	s.api = a
	return nil
}

// start runs the stored subscriptions (Run calls it before serving). One
// that cannot start is logged and kept, so that it can be fixed with PUT
// or removed with DELETE.
func (a *apiSubs) start(ctx context.Context) error {
	subs, err := a.store.all(ctx)
	if err != nil {
		return fmt.Errorf("hub: subscriptions API store: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, sub := range subs {
		if _, ok := a.live[sub.ID]; ok {
			continue // made through the API already (Handler used before Run)
		}
		ls, err := a.run(sub)
		if err != nil {
			a.s.log.Error("eventkit hub: stored subscription not started", "subscription", sub.ID, "err", err)
			ls = &liveSub{stored: sub, public: sub}
			ls.public.SinkCredential = nil
		}
		a.live[sub.ID] = ls
	}
	return nil
}

// stop stops every subscription of the API (Run calls it at shutdown);
// deliveries in flight finish or are redelivered later.
func (a *apiSubs) stop(ctx context.Context) error {
	a.mu.Lock()
	a.closed = true
	var err error
	for _, ls := range a.live {
		err = errors.Join(err, ls.halt(ctx))
	}
	a.mu.Unlock()
	a.wg.Wait()
	return err
}

// errStopped is the error of a subscription started after stop (a
// request still running when the server cut its connection).
var errStopped = errors.New("hub: the server is shutting down")

// run starts the router of sub. a.mu is held.
func (a *apiSubs) run(sub APISubscription) (*liveSub, error) {
	if a.closed {
		return nil, errStopped
	}
	rz, err := a.realize(sub)
	if err != nil {
		return nil, err
	}
	s := a.s
	r := eventkit.NewRouter(s.sub, eventkit.WithLogger(s.log.With("component", "subscriptions")),
		eventkit.WithShutdownTimeout(time.Duration(s.cfg.ShutdownTimeout)/4))
	hook, err := s.addSubscription(r, rz.sc, rz.skip, rz.headers...)
	if err != nil {
		return nil, err
	}
	if err := r.Start(context.Background()); err != nil {
		_ = hook.Shutdown(context.Background())
		return nil, fmt.Errorf("hub: subscription %s: %w", sub.ID, err)
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := r.Wait(); err != nil {
			s.log.Error("eventkit hub: subscription ended", "subscription", sub.ID, "err", err)
		}
	}()
	return &liveSub{stored: sub, public: rz.public, router: r, hook: hook}, nil
}

// halt stops the router of ls (when it runs) and its webhook publisher.
func (ls *liveSub) halt(ctx context.Context) error {
	if ls.router == nil {
		return nil
	}
	err := ls.router.Shutdown(ctx)
	err = errors.Join(err, ls.hook.Shutdown(ctx))
	ls.router, ls.hook = nil, nil
	return err
}

// haltCtx bounds the stop of one subscription.
func (a *apiSubs) haltCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), time.Duration(a.s.cfg.ShutdownTimeout)/4)
}

// forgetProgress deletes the broker's record of the subscription's
// progress (its durable consumer), when the broker is JetStream.
func (a *apiSubs) forgetProgress(ctx context.Context, id string) error {
	if a.s.jsAPI == nil {
		return nil
	}
	err := a.s.jsAPI.DeleteConsumer(ctx, a.s.cfg.Broker.Stream, "hub-"+id)
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return err
	}
	return nil
}

// ServeHTTP answers /subscriptions and /subscriptions/{id}.
func (a *apiSubs) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, item := strings.CutPrefix(r.URL.Path, "/subscriptions/")
	if item && (id == "" || strings.Contains(id, "/")) {
		problem(w, http.StatusNotFound, "no route "+strconv.Quote(r.URL.Path))
		return
	}
	allow := "GET, HEAD, POST, OPTIONS"
	if item {
		allow = "GET, HEAD, PUT, DELETE, OPTIONS"
	}
	scope := ScopeAdmin
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		scope = ScopeRead
	case http.MethodPost, http.MethodPut, http.MethodDelete:
	default:
		w.Header().Set("Allow", allow)
		problem(w, http.StatusMethodNotAllowed, r.URL.Path+" answers "+allow)
		return
	}
	if !a.s.auth.allow(w, r, scope, false) {
		return
	}
	switch {
	case r.Method == http.MethodOptions:
		w.Header().Set("Allow", allow)
		w.WriteHeader(http.StatusNoContent)
	case !item && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		a.list(w)
	case !item && r.Method == http.MethodPost:
		a.create(w, r)
	case item && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		a.get(w, id)
	case item && r.Method == http.MethodPut:
		a.update(w, r, id)
	case item && r.Method == http.MethodDelete:
		a.remove(w, r, id)
	default:
		w.Header().Set("Allow", allow)
		problem(w, http.StatusMethodNotAllowed, r.URL.Path+" answers "+allow)
	}
}

func (a *apiSubs) list(w http.ResponseWriter) {
	writeJSON(w, http.StatusOK, a.all())
}

func (a *apiSubs) get(w http.ResponseWriter, id string) {
	if sub, ok := a.fixed[id]; ok {
		writeJSON(w, http.StatusOK, sub)
		return
	}
	a.mu.Lock()
	ls, ok := a.found(w, id)
	a.mu.Unlock()
	if ok {
		writeJSON(w, http.StatusOK, ls.public)
	}
}

// found returns the subscription id of the API, or answers 404 (409 for
// one of the configuration file). a.mu is held.
func (a *apiSubs) found(w http.ResponseWriter, id string) (*liveSub, bool) {
	ls, ok := a.live[id]
	switch {
	case ok:
	case a.fixed[id].ID != "":
		problem(w, http.StatusConflict, "the subscription "+strconv.Quote(id)+" is defined in the configuration file: change it there")
	default:
		problem(w, http.StatusNotFound, "no subscription "+strconv.Quote(id))
	}
	return ls, ok
}

func (a *apiSubs) create(w http.ResponseWriter, r *http.Request) {
	sub, ok := readSubscription(w, r)
	if !ok {
		return
	}
	sub.ID = uuid.NewString()
	if !a.check(w, r, sub) {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.live) >= a.cfg.MaxSubscriptions {
		// The configuration file's are not counted.
		problem(w, http.StatusConflict, fmt.Sprintf("the server holds its limit of %d subscriptions (subscriptions_api.max_subscriptions)", a.cfg.MaxSubscriptions))
		return
	}
	if err := a.store.put(r.Context(), sub); err != nil {
		writeStoreErr(w, err)
		return
	}
	ls, err := a.run(sub)
	if err != nil {
		_ = a.store.del(context.Background(), sub.ID)
		problem(w, http.StatusInternalServerError, err.Error())
		return
	}
	a.live[sub.ID] = ls
	w.Header().Set("Location", "/subscriptions/"+sub.ID)
	writeJSON(w, http.StatusCreated, ls.public)
}

func (a *apiSubs) update(w http.ResponseWriter, r *http.Request, id string) {
	sub, ok := readSubscription(w, r)
	if !ok {
		return
	}
	if sub.ID != "" && sub.ID != id {
		writeFieldErr(w, &fieldError{"id", fmt.Sprintf("%q differs from the id of the URL, %q", sub.ID, id)})
		return
	}
	sub.ID = id
	a.mu.Lock()
	defer a.mu.Unlock()
	old, ok := a.found(w, id)
	if !ok || !a.check(w, r, sub) {
		return
	}
	ctx, cancel := a.haltCtx()
	defer cancel()
	if err := old.halt(ctx); err != nil {
		a.s.log.Warn("eventkit hub: stop of the replaced subscription", "subscription", id, "err", err)
	}
	if topicOf(sub) != topicOf(old.stored) {
		// The broker's group is bound to the pattern: a new pattern starts
		// from the next event (or the oldest, with from_start).
		if err := a.forgetProgress(ctx, id); err != nil {
			a.restore(old)
			problem(w, http.StatusInternalServerError, "the topic cannot change: "+err.Error())
			return
		}
	}
	if err := a.store.put(r.Context(), sub); err != nil {
		a.restore(old)
		writeStoreErr(w, err)
		return
	}
	ls, err := a.run(sub)
	if err != nil {
		_ = a.store.put(context.Background(), old.stored)
		a.restore(old)
		problem(w, http.StatusInternalServerError, err.Error())
		return
	}
	a.live[id] = ls
	writeJSON(w, http.StatusOK, ls.public)
}

// restore runs old again after a failed update. a.mu is held.
func (a *apiSubs) restore(old *liveSub) {
	if ls, err := a.run(old.stored); err == nil {
		a.live[old.stored.ID] = ls
	} else {
		a.s.log.Error("eventkit hub: subscription not restarted", "subscription", old.stored.ID, "err", err)
	}
}

func topicOf(sub APISubscription) string {
	if s, ok := configString(sub.Config["topic"]); ok && sub.Config["topic"] != nil {
		return s
	}
	return ">"
}

func (a *apiSubs) remove(w http.ResponseWriter, r *http.Request, id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ls, ok := a.found(w, id)
	if !ok {
		return
	}
	ctx, cancel := a.haltCtx()
	defer cancel()
	if err := ls.halt(ctx); err != nil {
		a.s.log.Warn("eventkit hub: stop of the deleted subscription", "subscription", id, "err", err)
	}
	if err := a.store.del(r.Context(), id); err != nil {
		a.restore(ls)
		writeStoreErr(w, err)
		return
	}
	delete(a.live, id)
	a.s.metrics.deliveries.DeletePartialMatch(map[string]string{"subscription": id})
	a.s.metrics.deliveryTime.DeleteLabelValues(id)
	if err := a.forgetProgress(ctx, id); err != nil {
		a.s.log.Warn("eventkit hub: the deleted subscription's consumer is left", "subscription", id, "err", err)
	}
	writeJSON(w, http.StatusOK, ls.public)
}

// check answers 400 and returns false when sub cannot run, or when its
// sink is not public and private sinks are not allowed.
func (a *apiSubs) check(w http.ResponseWriter, r *http.Request, sub APISubscription) bool {
	if _, err := a.realize(sub); err != nil {
		writeFieldErr(w, err)
		return false
	}
	if a.cfg.AllowPrivateSinks {
		return true
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	// A name that does not resolve now is accepted: the address is checked
	// again at each connection.
	if err := cehttp.CheckPublicTarget(ctx, sub.Sink); errors.Is(err, cehttp.ErrTargetRefused) {
		writeFieldErr(w, &fieldError{"sink", err.Error() + " (allowed by subscriptions_api.allow_private_sinks)"})
		return false
	}
	return true
}

// readSubscription decodes the body of POST or PUT strictly, answering
// 415, 413 or 400.
func readSubscription(w http.ResponseWriter, r *http.Request) (APISubscription, bool) {
	var sub APISubscription
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		problem(w, http.StatusUnsupportedMediaType, "the subscription must be application/json")
		return sub, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSubscriptionBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			problem(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the subscription is larger than %d bytes", maxSubscriptionBody))
		} else {
			problem(w, http.StatusBadRequest, "reading the body: "+err.Error())
		}
		return sub, false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(&sub); err != nil {
		writeFieldErr(w, decodeFieldError(err))
		return sub, false
	}
	if dec.More() {
		writeFieldErr(w, &fieldError{"", "one JSON object expected"})
		return sub, false
	}
	if len(bytes.TrimSpace(sub.Filters)) > 0 {
		var c bytes.Buffer
		if json.Compact(&c, sub.Filters) == nil {
			sub.Filters = c.Bytes()
		}
	}
	return sub, true
}

// decodeFieldError names the field of a JSON decoding error.
func decodeFieldError(err error) *fieldError {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return &fieldError{te.Field, "want a JSON " + te.Type.String()}
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return &fieldError{strings.Trim(f, `"`), "unknown field"}
	}
	return &fieldError{"", "not a JSON subscription object: " + msg}
}

// fieldProblem is the problem+json of a refused subscription: the
// problem of RFC 9457 with the member "field" naming the faulty field.
type fieldProblem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Field  string `json:"field,omitempty"`
}

func writeFieldErr(w http.ResponseWriter, err error) {
	var fe *fieldError
	if !errors.As(err, &fe) {
		problem(w, http.StatusInternalServerError, err.Error())
		return
	}
	detail := fe.reason
	if fe.field != "" {
		detail = fe.field + ": " + fe.reason
	}
	b, _ := json.Marshal(fieldProblem{Type: problemBase + "invalid-subscription", Title: "Bad Request",
		Status: http.StatusBadRequest, Detail: detail, Field: fe.field})
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(http.StatusBadRequest)
	_, _ = w.Write(append(b, '\n'))
}

func writeStoreErr(w http.ResponseWriter, err error) {
	if storageFull(err) {
		writeErr(w, insufficientStorage(err))
		return
	}
	problem(w, http.StatusServiceUnavailable, "the subscription store: "+err.Error())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		problem(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
