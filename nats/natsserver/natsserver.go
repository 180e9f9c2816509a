// Package natsserver runs a JetStream-enabled NATS server inside the
// process (github.com/nats-io/nats-server/v2): storing to a directory, and
// listening on loopback only or on no port at all (Embedded.Connect gives
// in-process connections). The nats transport works the same on it and on
// a NATS cluster: only the *nats.Conn changes.
//
// It is a package of its own so that a program that only connects to a
// NATS server (package nats) does not link the server.
package natsserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Option configures Run.
type Option func(*config)

type config struct {
	storeDir   string
	host       string
	port       int
	listen     bool
	name       string
	logger     *slog.Logger
	maxMemory  int64
	maxStore   int64
	maxPayload int32
	ready      time.Duration
	token      string
}

// WithStoreDir sets the directory where JetStream keeps its streams. The
// directory is created if missing and kept at shutdown. Without it,
// Run uses a new temporary directory that Shutdown removes (nothing
// survives the process).
func WithStoreDir(dir string) Option {
	return func(c *config) { c.storeDir = dir }
}

// WithListen makes the server accept client connections on host:port
// (port 0 or -1: a free port, see ClientURL). Listen on a loopback host
// ("127.0.0.1", "::1") unless other machines must connect. By default the
// server has no listener at all.
func WithListen(host string, port int) Option {
	return func(c *config) {
		c.host, c.port, c.listen = host, port, true
		if c.port == 0 {
			c.port = server.RANDOM_PORT
		}
	}
}

// WithoutListener starts the server with no network listener: clients
// connect in-process with Embedded.Connect only. This is the default.
func WithoutListener() Option {
	return func(c *config) { c.listen = false }
}

// WithServerName sets the server's name (default "eventkit").
func WithServerName(name string) Option {
	return func(c *config) { c.name = name }
}

// WithServerLogger sends the server's notices, warnings and errors to l
// (debug and trace output stay off). By default the server logs nothing.
func WithServerLogger(l *slog.Logger) Option {
	return func(c *config) { c.logger = l }
}

// WithJetStreamLimits bounds the memory and disk that JetStream may use
// (bytes; 0 lets the server choose from the machine's resources).
func WithJetStreamLimits(maxMemory, maxStore int64) Option {
	return func(c *config) { c.maxMemory, c.maxStore = maxMemory, maxStore }
}

// WithMaxPayload sets the largest message the server accepts (bytes;
// default 8 MiB, the server's own default being 1 MiB).
func WithMaxPayload(n int32) Option {
	return func(c *config) { c.maxPayload = n }
}

// WithAuthToken requires every client, the connections Connect makes
// included, to present token (nats.Token). Use it whenever the server
// listens on a port: without it, anyone who reaches the port can publish,
// read and delete the streams.
func WithAuthToken(token string) Option { return func(c *config) { c.token = token } }

// WithReadyTimeout bounds how long Run and Restart wait for the
// server to accept connections (default 30s).
func WithReadyTimeout(d time.Duration) Option {
	return func(c *config) { c.ready = d }
}

// DefaultMaxPayload is the embedded server's largest message unless
// WithMaxPayload says otherwise.
const DefaultMaxPayload = 8 << 20

// Embedded is a JetStream-enabled NATS server running inside the process.
// It is safe for concurrent use. Connections made with Connect are
// in-process (no sockets) and reconnect by themselves across Restart.
type Embedded struct {
	cfg     config
	tempDir bool

	mu     sync.Mutex
	srv    *server.Server
	port   int
	closed bool
}

// Run starts a NATS server with JetStream in the process and waits
// until it accepts connections. By default it has no network listener
// (connect with Connect) and stores to a temporary directory; see the
// options. Stop it with Shutdown.
func Run(opts ...Option) (*Embedded, error) {
	cfg := config{name: "eventkit", maxPayload: DefaultMaxPayload, ready: 30 * time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	e := &Embedded{cfg: cfg, port: cfg.port}
	if e.cfg.storeDir == "" {
		dir, err := os.MkdirTemp("", "eventkit-nats-")
		if err != nil {
			return nil, fmt.Errorf("natsserver: store directory: %w", err)
		}
		e.cfg.storeDir, e.tempDir = dir, true
	} else if err := os.MkdirAll(e.cfg.storeDir, 0o750); err != nil {
		return nil, fmt.Errorf("natsserver: store directory: %w", err)
	}
	srv, err := e.start()
	if err != nil {
		if e.tempDir {
			_ = os.RemoveAll(e.cfg.storeDir)
		}
		return nil, err
	}
	e.srv = srv
	return e, nil
}

func (e *Embedded) start() (*server.Server, error) {
	o := &server.Options{
		ServerName:         e.cfg.name,
		JetStream:          true,
		StoreDir:           e.cfg.storeDir,
		JetStreamMaxMemory: e.cfg.maxMemory,
		JetStreamMaxStore:  e.cfg.maxStore,
		MaxPayload:         e.cfg.maxPayload,
		NoSigs:             true,
		NoLog:              e.cfg.logger == nil,
		Authorization:      e.cfg.token,
	}
	if e.cfg.listen {
		o.Host, o.Port = e.cfg.host, e.port
	} else {
		o.DontListen = true
	}
	srv, err := server.NewServer(o)
	if err != nil {
		return nil, fmt.Errorf("natsserver: %w", err)
	}
	if e.cfg.logger != nil {
		srv.SetLogger(slogAdapter{e.cfg.logger}, false, false)
	}
	srv.Start()
	if !srv.ReadyForConnections(e.cfg.ready) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("natsserver: server not ready within %s", e.cfg.ready)
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, errors.New("natsserver: server started without JetStream")
	}
	if e.cfg.listen {
		if a, ok := srv.Addr().(*net.TCPAddr); ok {
			e.port = a.Port // keep the port across Restart
		}
	}
	return srv, nil
}

// Server returns the running nats-server (for monitoring or advanced
// configuration); nil after Shutdown.
func (e *Embedded) Server() *server.Server {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.srv
}

// StoreDir returns the directory where JetStream stores its data.
func (e *Embedded) StoreDir() string { return e.cfg.storeDir }

// ClientURL returns the URL that other processes connect to
// ("nats://127.0.0.1:4222"), or "" when the server has no listener.
func (e *Embedded) ClientURL() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.cfg.listen || e.srv == nil {
		return ""
	}
	return e.srv.ClientURL()
}

// InProcessConn implements nats.InProcessConnProvider: it returns a new
// in-process connection to the running server. Connections made with
// Connect call it again to reconnect after Restart.
func (e *Embedded) InProcessConn() (net.Conn, error) {
	e.mu.Lock()
	srv := e.srv
	e.mu.Unlock()
	if srv == nil {
		return nil, errors.New("natsserver: server is not running")
	}
	return srv.InProcessConn()
}

// Connect returns a client connection to the server. It is in-process (no
// socket, whether or not the server listens) and reconnects forever,
// every 100ms, across Restart; opts are applied after these defaults.
// The caller closes the connection.
func (e *Embedded) Connect(opts ...nats.Option) (*nats.Conn, error) {
	e.mu.Lock()
	closed := e.closed
	e.mu.Unlock()
	if closed {
		return nil, errors.New("natsserver: server is shut down")
	}
	all := append([]nats.Option{
		nats.InProcessServer(e),
		nats.Name("eventkit-embedded"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(100 * time.Millisecond),
		nats.ReconnectJitter(0, 0),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if errors.Is(err, io.ErrClosedPipe) {
				return // the in-process pipe closes on every restart
			}
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			slog.Warn("nats: asynchronous error", "subject", subject, "error", err)
		}),
	}, opts...)
	if e.cfg.token != "" {
		all = append([]nats.Option{nats.Token(e.cfg.token)}, all...)
	}
	nc, err := nats.Connect("nats://in-process", all...)
	if err != nil {
		return nil, fmt.Errorf("natsserver: connect: %w", err)
	}
	return nc, nil
}

// Restart shuts the server down and starts it again on the same store
// directory (and the same port when it listens). Connections made with
// Connect reconnect by themselves. It exists for fault tests and for
// applying a restart without dropping the Embedded value.
func (e *Embedded) Restart(ctx context.Context) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return errors.New("natsserver: server is shut down")
	}
	srv := e.srv
	e.srv = nil
	e.mu.Unlock()
	if srv != nil {
		if err := shutdownServer(ctx, srv); err != nil {
			return err
		}
	}
	var next *server.Server
	var err error
	for {
		// The port may take a moment to be released.
		next, err = e.start()
		if err == nil || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err != nil {
		return fmt.Errorf("natsserver: restart: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		next.Shutdown()
		next.WaitForShutdown()
		return errors.New("natsserver: server is shut down")
	}
	e.srv = next
	return nil
}

// Shutdown stops the server, waiting for it (or for ctx) to finish; it
// removes the store directory only when Run made a temporary one.
// A second Shutdown returns nil.
func (e *Embedded) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	srv := e.srv
	e.srv = nil
	e.mu.Unlock()
	var err error
	if srv != nil {
		err = shutdownServer(ctx, srv)
	}
	if e.tempDir && err == nil {
		if rerr := os.RemoveAll(e.cfg.storeDir); rerr != nil {
			err = fmt.Errorf("natsserver: remove store directory: %w", rerr)
		}
	}
	return err
}

func shutdownServer(ctx context.Context, srv *server.Server) error {
	done := make(chan struct{})
	go func() {
		srv.Shutdown()
		srv.WaitForShutdown()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("natsserver: server shutdown: %w", ctx.Err())
	}
}

// slogAdapter routes nats-server logs to slog.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Noticef(format string, v ...any) { a.l.Info(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Warnf(format string, v ...any)   { a.l.Warn(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Fatalf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Errorf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Debugf(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Tracef(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }
