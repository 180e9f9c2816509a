// Package hub is the eventkit server behind "eventkit serve": CloudEvents
// ingress over HTTP into a broker (by default an embedded NATS JetStream
// server storing on disk), a live tail over Server-Sent Events, webhook
// subscriptions with retry and dead letter that survive restarts, health
// and Prometheus metrics.
//
// Routes:
//
//	POST    /events                     ingress (binary, structured, batch; see package cehttp)
//	OPTIONS /events                     webhook validation handshake
//	GET     /events/stream?topic=PATTERN live tail (text/event-stream, one structured event per message;
//	                                    since=TIME|start replays the stored events first)
//	GET     /events?topic=&since=&until=&after=&limit=&sql=&ATTR=VALUE
//	                                    stored events as NDJSON items, then {"next","more"} (read)
//	GET     /events/{position}          one stored event (read)
//	POST    /replays, GET /replays      replay a range to a topic or a URL (admin); list (read)
//	GET, DELETE /replays/{id}           a replay's state (read); cancel it (admin)
//	GET     /healthz, /readyz           200 when the broker is connected and its store has room, 503
//	                                    otherwise; a Health body ({"status":"ok","name":"eventkit","version":"v0.1.0"})
//	GET     /metrics                    Prometheus metrics, eventkit_build_info{version,goversion} included
//	GET     /subscriptions              the CloudEvents Subscriptions API: list (read scope)
//	POST    /subscriptions              create (admin scope); 201 with Location
//	GET, PUT, DELETE /subscriptions/{id} retrieve (read), update, delete (admin)
//	GET     /discovery                  the event types accepted, per source, with an example of each (read)
//	GET     /deadletters[/{position}]   dead letters (read); POST .../redrive, DELETE: re-drive, purge (admin)
//	GET     /probe?correlationid=ID     the timeline of a flow across topics, as JSON, Mermaid or HTML (read)
//	GET     /console/                   the web console (its assets need no credentials; its data does)
//	GET     /console/api/topics         the console's topics: stored, accepted, rates and sizes (read)
//	GET     /console/api/subscriptions  the console's subscriptions: outcomes, lag, latency heatmap (read)
//
// A browser's cross-origin write (POST, PUT, DELETE from a page of another
// origin, told by Sec-Fetch-Site or Origin) is refused with 403 on every
// route but /events, whose cross-origin use is CORS's to decide: a page
// elsewhere cannot make an open server re-drive, delete or subscribe.
//
// Subscriptions made through the API are kept in the embedded store (a
// JetStream key-value bucket), survive a restart, and are delivered by the
// same code as those of the configuration file (retry, dead letter,
// ordering); see APISubscription and docs/operate.md.
//
// An event is answered 2xx only after the broker stored it (a JetStream
// publish ack), so an acknowledged event survives a crash of the process.
// Events are stored in the CloudEvents JSON format, and delivered as they
// were accepted: integer and boolean extensions and binary data
// (data_base64) keep their form on structured and batch webhooks and on
// the live tail.
//
// With credentials configured (AuthConfig), every route but the probes
// requires them, with its scope. Every error is application/problem+json,
// net/http's own answers to requests it cannot parse included (a malformed
// request line or header, an unknown transfer coding, headers beyond twice
// the limit): ProblemListener rewrites them.
// Resources are bounded (LimitsConfig: concurrent requests, buffered body
// bytes, header size, stream write timeout; 503 with Retry-After at a
// bound). A request is checked whole, against the broker's limits too,
// before any of its events is published; a full store is answered 507 and
// never makes room by dropping acknowledged events unless configured to
// (BrokerConfig.Discard), and then each drop is counted, logged and
// reported to the subscriptions that had not delivered the event. Webhooks are refused on non-public addresses and
// redirects unless allowed. docs/security.md states the threat model.
package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/cehttp"
	"github.com/eventkit/eventkit/internal/version"
	eknats "github.com/eventkit/eventkit/nats"
	"github.com/eventkit/eventkit/nats/natsserver"
	"github.com/eventkit/eventkit/pipeline/pipeconf"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Option configures a Server.
type Option func(*options)

type options struct {
	log    *slog.Logger
	pub    eventkit.Publisher
	sub    eventkit.Subscriber
	health func() error
	ln     net.Listener

	pipeLoader *pipeconf.Loader // pipelines.go
}

// WithLogger sets the server's logger (slog.Default by default).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithBroker makes the server use pub and sub instead of opening the
// configured broker (for tests, or to embed the hub on another
// transport). The server closes them at shutdown.
func WithBroker(pub eventkit.Publisher, sub eventkit.Subscriber) Option {
	return func(o *options) { o.pub, o.sub = pub, sub }
}

// WithHealthCheck makes GET /healthz answer 503 with the error check
// returns (with WithBroker, whose broker the server cannot check itself;
// the default answers healthy). It replaces the check of the configured
// NATS broker.
func WithHealthCheck(check func() error) Option { return func(o *options) { o.health = check } }

// WithListener serves on ln instead of listening on Config.Listen.
func WithListener(ln net.Listener) Option { return func(o *options) { o.ln = ln } }

// Server is a running hub. Create it with New, run it with Run.
type Server struct {
	cfg     Config
	log     *slog.Logger
	pub     eventkit.Publisher
	sub     eventkit.Subscriber
	health  func() error
	closers []func(context.Context) error
	dataDir string

	ln      net.Listener
	http    *http.Server
	reg     *prometheus.Registry
	metrics *metrics
	router  *eventkit.Router
	auth    *authn
	limits  *brokerLimits // nil with WithBroker
	store   storeState
	js      *jsGuard            // the embedded JetStream (nil otherwise)
	jsAPI   jetstream.JetStream // the broker's JetStream API (nil with WithBroker)
	api     *apiSubs            // the Subscriptions API
	replays *replays            // the replays API
	disc    *discovery          // the Discovery API
	discard *discarder          // broker.discard old (nil otherwise)
	dlq     *deadLetterAPI      // /deadletters
	tel     *telemetry          // OpenTelemetry traces (a no-op without an exporter)
	console *console            // the web console (/console/)

	streamStop chan struct{}
	streams    sync.WaitGroup
	streamSem  chan struct{}

	pipes pipelines // pipelines.go
}

// New opens the broker and binds the listener; Run serves.
func New(cfg Config, opts ...Option) (*Server, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := options{log: slog.Default()}
	for _, f := range opts {
		f(&o)
	}
	s := &Server{cfg: cfg, log: slog.New(traceLog{o.log.Handler()}), auth: newAuthn(cfg.Auth), streamStop: make(chan struct{}), streamSem: make(chan struct{}, cfg.MaxStreamClients)}
	ok := false
	defer func() {
		if !ok {
			s.closeBroker(context.Background())
		}
	}()
	if err := s.openBroker(o); err != nil {
		return nil, err
	}
	tel, err := newTelemetry(cfg.Telemetry)
	if err != nil {
		return nil, err
	}
	s.tel = tel
	s.closers = append(s.closers, tel.shutdown)
	s.reg = prometheus.NewRegistry()
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.metrics = newMetrics(s.reg)
	if s.discard != nil {
		s.discard.dropped, s.discard.lost = s.metrics.discarded, s.metrics.lost
	}

	if err := s.setupSubscriptions(); err != nil {
		return nil, err
	}
	if err := s.setupSubscriptionsAPI(); err != nil {
		return nil, err
	}
	if err := s.setupReplays(); err != nil {
		return nil, err
	}
	s.disc = newDiscovery(cfg.Discovery)
	s.dlq = newDeadLetterAPI(s)
	s.console = newConsole(s)
	s.closers = append(s.closers, s.console.close)
	if err := s.loadPipelines(context.Background(), o.pipeLoader); err != nil {
		return nil, err
	}
	s.http = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		// net/http's own 431 only far beyond the limit the handler
		// answers itself (ProblemListener makes it problem+json too).
		MaxHeaderBytes: 2 * cfg.Limits.MaxHeaderBytes,
		ReadTimeout:    2 * time.Minute,
		IdleTimeout:    2 * time.Minute,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	if err := s.listen(o.ln); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// openBroker takes the broker given with WithBroker, or opens the
// embedded (or configured) NATS one, and sets the health check.
func (s *Server) openBroker(o options) error {
	if (o.pub == nil) != (o.sub == nil) {
		return errors.New("hub: WithBroker needs both a publisher and a subscriber")
	}
	if o.pub != nil {
		s.pub, s.sub, s.health = o.pub, o.sub, o.health
		s.closers = append(s.closers, func(context.Context) error {
			err := o.sub.Close()
			if any(o.pub) != any(o.sub) {
				err = errors.Join(err, o.pub.Close())
			}
			return err
		})
	} else if err := s.openNATS(); err != nil {
		return err
	}
	if o.health != nil {
		s.health = o.health
	}
	if s.health == nil {
		s.health = func() error { return nil }
	}
	return nil
}

// listen binds Config.Listen, or takes ln, behind ProblemListener so that
// net/http's own answers (to a request it cannot parse) are problem+json.
func (s *Server) listen(ln net.Listener) error {
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", s.cfg.Listen); err != nil {
			return fmt.Errorf("hub: listen: %w", err)
		}
	}
	s.ln = ProblemListener(ln)
	return nil
}

// openNATS starts the embedded server (or connects to Broker.URL) and
// makes the transport, with one stream for every topic.
func (s *Server) openNATS() error {
	nc, err := s.connectNATS()
	if err != nil {
		return err
	}
	s.closers = append(s.closers, func(context.Context) error {
		// Flush what the connection buffered, then close it.
		_ = nc.FlushTimeout(5 * time.Second)
		nc.Close()
		return nil
	})
	prefix := s.cfg.Broker.SubjectPrefix
	t, err := eknats.New(nc, eknats.WithLogger(s.log.With("component", "transport")), eknats.WithStream(eknats.StreamConfig{
		Name:      s.cfg.Broker.Stream,
		Subjects:  []string{prefix + ".>"},
		Storage:   jetstream.FileStorage,
		Retention: jetstream.LimitsPolicy,
		MaxAge:    time.Duration(s.cfg.Broker.Retention),
		MaxBytes:  s.cfg.Broker.MaxBytes,
		Replicas:  s.cfg.Broker.Replicas,
		// At the bound the stream refuses; with discard old the hub
		// drops the oldest events itself, reporting them (discarder).
		Discard: jetstream.DiscardNew,
	}), eknats.WithStreamUpdate(),
		// The CloudEvents JSON format keeps what binary mode's headers
		// cannot: the type of integer and boolean extensions, and whether
		// data is binary (data_base64). Events stored in binary mode by an
		// earlier version are still read.
		eknats.WithMode(eventkit.Structured))
	if err != nil {
		return fmt.Errorf("hub: broker: %w", err)
	}
	s.closers = append(s.closers, func(context.Context) error { return t.Close() })
	p := &prefixed{pub: t, sub: t, prefix: prefix + "."}
	s.limits = &brokerLimits{prefix: p.prefix, maxPayload: nc.MaxPayload()}
	if js, err := jetstream.New(nc); err == nil {
		s.jsAPI = js
		maxEvent := s.cfg.Limits.MaxEventBytes
		if maxEvent <= 0 {
			maxEvent = cehttp.DefaultMaxEventSize
		}
		s.store.room = streamRoom(js, s.cfg.Broker.Stream, s.cfg.Broker.MaxBytes, maxEvent)
		if s.cfg.Broker.Discard == "old" && s.cfg.Broker.MaxBytes > 0 {
			s.discard = &discarder{js: js, stream: s.cfg.Broker.Stream, prefix: p.prefix, maxBytes: s.cfg.Broker.MaxBytes,
				log: s.log.With("component", "store")}
		}
	}
	s.pub, s.sub = p, p
	s.health = func() error {
		if !nc.IsConnected() {
			return fmt.Errorf("broker connection %s", nc.Status())
		}
		if err := s.js.check(); err != nil {
			return fmt.Errorf("event store full: %w", errJSDisabled)
		}
		return nil
	}
	return nil
}

// connectNATS starts the embedded server, or connects to Broker.URL.
func (s *Server) connectNATS() (*natsgo.Conn, error) {
	if s.cfg.Broker.URL != "" {
		nc, err := natsgo.Connect(s.cfg.Broker.URL, natsgo.Name("eventkit-hub"), natsgo.MaxReconnects(-1))
		if err != nil {
			return nil, fmt.Errorf("hub: connect to %s: %w", s.cfg.Broker.URL, err)
		}
		return nc, nil
	}
	dir, err := filepath.Abs(s.cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("hub: data directory: %w", err)
	}
	s.dataDir = dir
	// The broker's notices (its banner) stay out of the log; its
	// warnings and errors go in.
	natsLog := slog.New(minLevel{h: s.log.Handler(), min: slog.LevelWarn}).With("component", "nats")
	eopts := []natsserver.Option{natsserver.WithStoreDir(filepath.Join(dir, "nats")), natsserver.WithServerLogger(natsLog)}
	if s.cfg.Broker.Listen != "" {
		host, port, _ := net.SplitHostPort(s.cfg.Broker.Listen)
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("hub: broker.listen: %w", err)
		}
		tok := secret(s.cfg.Broker.Token)
		if tok == "" {
			return nil, errors.New("hub: broker.listen needs broker.token, and " + s.cfg.Broker.Token + " is empty")
		}
		eopts = append(eopts, natsserver.WithListen(host, p), natsserver.WithAuthToken(tok))
	} else {
		eopts = append(eopts, natsserver.WithoutListener())
	}
	emb, err := natsserver.Run(eopts...)
	if err != nil {
		return nil, fmt.Errorf("hub: embedded broker: %w", err)
	}
	s.closers = append(s.closers, emb.Shutdown)
	s.js = newJSGuard(emb)
	nc, err := emb.Connect()
	if err != nil {
		return nil, fmt.Errorf("hub: embedded broker: %w", err)
	}
	return nc, nil
}

// closeBroker runs the closers in reverse order.
func (s *Server) closeBroker(ctx context.Context) error {
	var err error
	for i := len(s.closers) - 1; i >= 0; i-- {
		err = errors.Join(err, s.closers[i](ctx))
	}
	s.closers = nil
	return err
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// URL returns the base URL of the server ("http://127.0.0.1:8080").
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// DataDir returns the absolute data directory of the embedded broker,
// which stores events under DataDir()/nats ("" with another broker).
func (s *Server) DataDir() string { return s.dataDir }

// Publisher returns the server's publisher (topics as the hub names them).
func (s *Server) Publisher() eventkit.Publisher { return s.pub }

// Subscriber returns the server's subscriber (topics as the hub names
// them).
func (s *Server) Subscriber() eventkit.Subscriber { return s.sub }

// Handler returns the server's HTTP routes, each behind the configured
// credentials (see AuthConfig), every error answered as
// application/problem+json.
func (s *Server) Handler() http.Handler {
	hopts := s.ingressOptions()
	ingress := cehttp.NewHandler(s.tel.publisher(&countingPublisher{Publisher: s.disc.publisher(&observedPublisher{Publisher: s.pub, seen: s.console.tally.record}), m: s.metrics, limits: s.limits, store: &s.store, js: s.js, discard: s.discard}), hopts...)
	admitted := newAdmission(s.cfg, s.metrics).wrap(ingress)
	events := s.tel.ingress(s.metrics.instrument(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The ingress checks a POST's signature itself, with its body.
		if s.auth.allow(w, r, ScopePublish, r.Method == http.MethodPost) {
			admitted.ServeHTTP(w, r)
		}
	})))
	metricsH := promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg})
	return limitHeaders(s.cfg.Limits.MaxHeaderBytes, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !sameOriginWrite(w, r) {
			return
		}
		switch r.URL.Path {
		case "/events":
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				if s.auth.allow(w, r, ScopeRead, false) {
					s.events(w, r)
				}
				return
			}
			events.ServeHTTP(w, r)
		case "/events/stream":
			if getOnly(w, r) && s.auth.allow(w, r, ScopeRead, false) {
				s.stream(w, r)
			}
		case "/metrics":
			if getOnly(w, r) && s.auth.allow(w, r, ScopeMetrics, false) {
				metricsH.ServeHTTP(w, r)
			}
		case "/subscriptions":
			s.api.ServeHTTP(w, r)
		case "/replays":
			s.replaysAPI(w, r, "")
		case "/discovery":
			if getOnly(w, r) && s.auth.allow(w, r, ScopeRead, false) {
				s.disc.ServeHTTP(w, r)
			}
		case "/deadletters":
			s.dlq.ServeHTTP(w, r)
		case "/probe":
			s.probe(w, r)
		case "/healthz", "/readyz":
			if getOnly(w, r) {
				s.healthz(w, r)
			}
		default:
			if !s.prefixRoute(w, r) {
				problem(w, http.StatusNotFound, "no route "+strconv.Quote(r.URL.Path))
			}
		}
	}))
}

// ingressOptions are the options of the POST /events handler: credentials,
// origins, size limits and where the topic comes from.
func (s *Server) ingressOptions() []cehttp.Option {
	hopts := append([]cehttp.Option{cehttp.WithLogger(s.log)}, s.auth.ingressOptions()...)
	a := s.cfg.Auth
	if len(a.AllowedOrigins) > 0 {
		hopts = append(hopts, cehttp.WithAllowedOrigins(a.AllowedOrigins...))
	}
	if l := s.cfg.Limits; l.MaxEventBytes > 0 {
		hopts = append(hopts, cehttp.WithMaxEventSize(l.MaxEventBytes))
	}
	if l := s.cfg.Limits; l.MaxBatchBytes > 0 {
		hopts = append(hopts, cehttp.WithMaxBatchSize(l.MaxBatchBytes))
	}
	if l := s.cfg.Limits; l.MaxBatchEvents > 0 {
		hopts = append(hopts, cehttp.WithMaxBatchEvents(l.MaxBatchEvents))
	}
	if s.cfg.TopicHeader {
		hopts = append(hopts, cehttp.WithTopic(cehttp.TopicFromHeader("")))
	}
	return hopts
}

// prefixRoute serves the routes known by a path prefix (the console, one
// subscription, one dead letter, the inspection API's items) and reports
// whether r was one of them.
func (s *Server) prefixRoute(w http.ResponseWriter, r *http.Request) bool {
	switch {
	case r.URL.Path == "/console" || strings.HasPrefix(r.URL.Path, "/console/"):
		s.console.ServeHTTP(w, r)
	case strings.HasPrefix(r.URL.Path, "/subscriptions/"):
		s.api.ServeHTTP(w, r)
	case strings.HasPrefix(r.URL.Path, "/deadletters/"):
		s.dlq.ServeHTTP(w, r)
	default:
		return s.inspectRoute(w, r)
	}
	return true
}

// getOnly answers 405 to a method other than GET or HEAD.
func getOnly(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	problem(w, http.StatusMethodNotAllowed, r.URL.Path+" answers GET")
	return false
}

// Health is the body of GET /healthz.
type Health struct {
	// Status is "ok" (answered 200) or "unavailable" (503).
	Status string `json:"status"`
	// Name is "eventkit".
	Name string `json:"name"`
	// Version is the version of eventkit the server runs ("v0.1.0").
	Version string `json:"version"`
	// Error says why the server is unavailable.
	Error string `json:"error,omitempty"`
}

// healthz answers GET /healthz and /readyz: 200 while the broker is
// connected and its store has room, else 503, with a Health body. A store
// found full is asked again at each probe, so the server is ready again by
// itself once room returns.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	h := Health{Status: "ok", Name: "eventkit", Version: version.Get()}
	code := http.StatusOK
	err := s.health()
	if err == nil {
		err = s.store.check(r.Context())
	}
	if err != nil {
		h.Status, h.Error, code = "unavailable", err.Error(), http.StatusServiceUnavailable
	}
	b, _ := json.Marshal(h)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// Run makes the webhook subscriptions, serves once every one is in place
// (so that an event accepted from the first request on reaches them) and
// until ctx ends, then shuts down gracefully: it stops
// accepting requests, lets the requests in flight finish (their events are
// stored before they are answered), ends the live tails, stops the
// subscriptions (deliveries in flight finish or are redelivered later),
// and closes the broker, which flushes to disk.
func (s *Server) Run(ctx context.Context) error {
	var routerDone chan error // nil (never ready) without subscriptions
	rctx, stopRouter := context.WithCancel(context.Background())
	defer stopRouter()
	var runErr error
	routerEnded := false
	if s.router != nil {
		routerDone = make(chan error, 1)
		go func() { routerDone <- s.router.Run(rctx) }()
		// Serve only once every subscription is in place: an event
		// accepted before would be stored ahead of a new subscription
		// (which starts with the next event) and never reach its webhook.
		// Meanwhile connections wait in the listener's backlog.
		select {
		case <-s.router.Running():
		case err := <-routerDone:
			routerEnded = true
			runErr = fmt.Errorf("hub: subscriptions: %w", err)
		case <-ctx.Done():
		}
	}
	if runErr == nil && ctx.Err() == nil {
		// A stop asked for while the workers start is a shutdown, not a
		// failure: whatever they failed on, it was the stop.
		if err := s.startWorkers(ctx); err != nil && ctx.Err() == nil {
			runErr = err
		}
	}
	serving := runErr == nil && ctx.Err() == nil
	if serving {
		s.log.Info("eventkit hub ready",
			"events", "POST "+s.URL()+"/events",
			"tail", "GET "+s.URL()+"/events/stream?topic=>",
			"data", s.dataDirOrBroker(),
			"subscriptions", len(s.cfg.Subscriptions))
		errc := make(chan error, 1)
		go func() {
			if err := s.http.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("hub: serve: %w", err)
			}
		}()
		select {
		case <-ctx.Done():
		case runErr = <-errc:
		case err := <-routerDone:
			// The subscriptions ended by themselves: a subscription failed.
			routerEnded = true
			runErr = fmt.Errorf("hub: subscriptions: %w", err)
		}
	}
	s.log.Info("eventkit hub shutting down")
	close(s.streamStop)
	s.stopHTTP(serving)
	s.streams.Wait()
	stopRouter()
	if s.router != nil && !routerEnded {
		if err := <-routerDone; err != nil && !errors.Is(err, context.Canceled) {
			runErr = errors.Join(runErr, fmt.Errorf("hub: subscriptions: %w", err))
		}
	}
	runErr = errors.Join(runErr, s.stopWorkers())
	// The broker gets its own share of the budget, whatever the clients
	// took: it flushes what was acknowledged.
	bctx, cancel := context.WithTimeout(context.Background(), s.brokerShutdownBudget())
	defer cancel()
	if err := s.closeBroker(bctx); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("hub: broker: %w", err))
	}
	s.log.Info("eventkit hub stopped")
	return runErr
}

// startWorkers starts what runs beside the subscriptions once they are
// in place: the Subscriptions API's deliveries, the replays and the
// pipelines.
func (s *Server) startWorkers(ctx context.Context) error {
	if err := s.api.start(ctx); err != nil {
		return err
	}
	if err := s.replays.start(ctx); err != nil {
		return err
	}
	return s.startPipelines(ctx)
}

// stopWorkers stops what startWorkers started, the pipelines and the
// Subscriptions API's deliveries with a quarter of the shutdown budget
// each.
func (s *Server) stopWorkers() error {
	s.replays.stop()
	budget := time.Duration(s.cfg.ShutdownTimeout) / 4
	pctx, cancelPipes := context.WithTimeout(context.Background(), budget)
	err := s.stopPipelines(pctx)
	cancelPipes()
	actx, cancelAPI := context.WithTimeout(context.Background(), budget)
	defer cancelAPI()
	if aerr := s.api.stop(actx); aerr != nil {
		err = errors.Join(err, fmt.Errorf("hub: subscriptions API: %w", aerr))
	}
	return err
}

// stopHTTP stops serving: requests in flight get half of the shutdown
// budget to finish (each is answered only once its events are stored);
// the connections still open then (a client sending its body slowly, one
// not reading its answer) are cut, their requests unanswered and so not
// acknowledged. Cutting them is the bound working, not a failure.
func (s *Server) stopHTTP(serving bool) {
	if !serving {
		// Never served: Shutdown would not close the listener.
		_ = s.ln.Close()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(s.cfg.ShutdownTimeout)/2)
	defer cancel()
	if err := s.http.Shutdown(ctx); err != nil {
		s.log.Warn("eventkit hub: cutting the connections still open at the shutdown deadline", "err", err)
		_ = s.http.Close()
	}
}

// brokerShutdownBudget is the time the broker has to close: a quarter of
// the shutdown budget, at least 5 seconds.
func (s *Server) brokerShutdownBudget() time.Duration {
	return max(time.Duration(s.cfg.ShutdownTimeout)/4, 5*time.Second)
}

func (s *Server) dataDirOrBroker() string {
	switch {
	case s.dataDir != "":
		return s.dataDir
	case s.cfg.Broker.URL != "":
		return s.cfg.Broker.URL
	}
	return "(in memory)"
}

// minLevel drops records below min.
type minLevel struct {
	h   slog.Handler
	min slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.h.Enabled(ctx, l)
}
func (m minLevel) Handle(ctx context.Context, r slog.Record) error { return m.h.Handle(ctx, r) }
func (m minLevel) WithAttrs(a []slog.Attr) slog.Handler {
	return minLevel{h: m.h.WithAttrs(a), min: m.min}
}
func (m minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h: m.h.WithGroup(name), min: m.min}
}
