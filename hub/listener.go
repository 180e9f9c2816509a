package hub

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/eventkit/eventkit/cehttp"
)

// ProblemListener wraps ln so that the answers net/http writes on its own,
// before any handler runs, are application/problem+json (RFC 9457) like
// every other answer of the hub, with the same status.
//
// http.Server answers a request it cannot parse (a malformed request line
// or header, an invalid or repeated Content-Length, a missing Host: 400;
// an unknown Transfer-Encoding: 501; headers beyond MaxHeaderBytes: 431)
// by writing a fixed text/plain answer straight to the connection and
// closing it, with no hook. That answer is one Write of exactly
//
//	HTTP/1.1 <code> <text>\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n<text>
//
// (checked in Go 1.26, (*conn).serve in net/http/server.go). A handler's
// answer never has that shape: net/http adds a Date header to every
// response written by a handler unless the handler removes it, which the
// hub's handlers never do. The wrapped connections recognise that one
// Write and replace it with a problem+json answer; every other byte
// passes unchanged. No request byte is parsed here.
//
// TLS: when ln yields *tls.Conn (tls.NewListener), the rewrite has to sit
// on the plaintext side, but net/http treats a connection that is not a
// *tls.Conn as plaintext: it would not run the handshake, set
// Request.TLS, nor serve HTTP/2. So the listener completes the handshake
// itself, in a goroutine per connection bounded by handshakeTimeout (as
// net/http would, whose handshake timeout is its read timeouts), before
// Accept returns the connection: a connection that negotiated HTTP/2 is
// returned as the *tls.Conn itself (HTTP/2 answers errors with frames,
// never with text/plain), an HTTP/1.1 one wrapped, with ConnectionState so
// that Request.TLS is set. A plaintext request sent to the TLS port is
// answered 400 as problem+json, where net/http answers it in text. A
// failed handshake closes the connection, as in net/http, but is not
// logged (net/http logs it through ErrorLog).
func ProblemListener(ln net.Listener) net.Listener {
	return &problemListener{Listener: ln, handshakeTimeout: 10 * time.Second}
}

// problemListener: see ProblemListener.
type problemListener struct {
	net.Listener
	handshakeTimeout time.Duration

	once    sync.Once
	conns   chan net.Conn // handshaken TLS connections
	done    chan struct{} // closed by Close
	errc    chan error    // the inner Accept's error, once
	pending sync.WaitGroup
	closed  sync.Once
}

// Accept returns the next connection, wrapped (see ProblemListener).
func (l *problemListener) Accept() (net.Conn, error) {
	l.once.Do(l.start)
	select {
	case c := <-l.conns:
		return c, nil
	case err := <-l.errc:
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// start runs the inner Accept in a goroutine, so that TLS handshakes run
// beside it and a connection is handed to Accept once it is ready.
func (l *problemListener) start() {
	l.conns = make(chan net.Conn)
	l.done = make(chan struct{})
	l.errc = make(chan error)
	l.pending.Add(1)
	go l.acceptLoop()
}

func (l *problemListener) acceptLoop() {
	defer l.pending.Done()
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			select {
			case l.errc <- err:
			case <-l.done:
				return
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // http.Server retries a temporary error, or returns
		}
		tc, ok := c.(*tls.Conn)
		if !ok {
			l.hand(&problemConn{Conn: c})
			continue
		}
		l.pending.Add(1)
		go func() {
			defer l.pending.Done()
			if pc := l.handshake(tc); pc != nil {
				l.hand(pc)
			}
		}()
	}
}

// hand gives c to Accept, or closes it once the listener is closed.
func (l *problemListener) hand(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		_ = c.Close()
	}
}

// handshake completes tc's handshake within the timeout (and the
// listener's life). It returns tc itself for HTTP/2, a wrapped connection
// for HTTP/1.x, or nil after a failure (the connection closed).
func (l *problemListener) handshake(tc *tls.Conn) net.Conn {
	ctx, cancel := context.WithTimeout(context.Background(), l.handshakeTimeout)
	defer cancel()
	go func() { // Close ends the handshakes in progress
		select {
		case <-l.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := tc.HandshakeContext(ctx); err != nil {
		var re tls.RecordHeaderError
		if errors.As(err, &re) && re.Conn != nil && looksLikeHTTP(re.RecordHeader) {
			_, _ = re.Conn.Write(problemAnswer(http.StatusBadRequest, "client sent an HTTP request to an HTTPS server"))
			_ = re.Conn.Close()
		}
		_ = tc.Close()
		return nil
	}
	if tc.ConnectionState().NegotiatedProtocol == "h2" {
		return tc
	}
	return &problemTLSConn{problemConn{Conn: tc}, tc}
}

// looksLikeHTTP reports whether a TLS record header is the start of an
// HTTP request (the test net/http makes).
func looksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO":
		return true
	}
	return false
}

// Close closes the inner listener and every connection still in its
// handshake, and waits for them.
func (l *problemListener) Close() error {
	err := l.Listener.Close()
	l.once.Do(l.start)
	l.closed.Do(func() { close(l.done) })
	l.pending.Wait()
	return err
}

// problemConn rewrites net/http's own text/plain error answer (see
// ProblemListener).
type problemConn struct {
	net.Conn
}

// Write passes p, or its problem+json form if p is net/http's own answer.
func (c *problemConn) Write(p []byte) (int, error) {
	if code, detail, ok := plainHTTPError(p); ok {
		if _, err := c.Conn.Write(problemAnswer(code, detail)); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// CloseWrite half-closes the connection when it can (net/http does before
// its 431, to let the client read the answer).
func (c *problemConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// problemTLSConn is a problemConn over a TLS connection whose handshake is
// done; its ConnectionState makes net/http set Request.TLS.
type problemTLSConn struct {
	problemConn
	tc *tls.Conn
}

// ConnectionState returns the TLS connection's state.
func (c *problemTLSConn) ConnectionState() tls.ConnectionState { return c.tc.ConnectionState() }

// errorHeaders follows the status line of net/http's own answers.
const errorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// plainHTTPError recognises net/http's own error answer in one Write:
// "HTTP/1.1 ddd text" errorHeaders body, the body a single line. detail is
// what the status text does not already say ("missing required Host
// header" for "400 Bad Request: missing required Host header").
func plainHTTPError(p []byte) (code int, detail string, ok bool) {
	const proto = "HTTP/1.1 "
	if len(p) > 1024 || !bytes.HasPrefix(p, []byte(proto)) || len(p) < len(proto)+4 {
		return 0, "", false
	}
	code, err := strconv.Atoi(string(p[len(proto) : len(proto)+3]))
	if err != nil || code < 400 || code > 599 || p[len(proto)+3] != ' ' {
		return 0, "", false
	}
	line, rest, found := bytes.Cut(p[len(proto)+4:], []byte(errorHeaders))
	if !found || bytes.ContainsAny(line, "\r\n") || bytes.ContainsAny(rest, "\r\n") {
		return 0, "", false
	}
	text, body, st := string(line), string(rest), http.StatusText(code)
	switch {
	case text == st && body == strconv.Itoa(code)+" "+st: // 400, 431
		return code, "", true
	case text == st: // 501: "Unsupported transfer encoding"
		return code, body, true
	case len(text) > len(st)+2 && text[:len(st)+2] == st+": " && body == strconv.Itoa(code)+" "+text:
		return code, text[len(st)+2:], true // "400 Bad Request: missing required Host header"
	}
	return 0, "", false
}

// problemAnswer is a whole HTTP/1.1 answer with a problem+json body that
// closes the connection.
func problemAnswer(code int, detail string) []byte {
	body, _ := json.Marshal(&cehttp.Problem{Type: "about:blank", Title: http.StatusText(code), Status: code, Detail: detail})
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 " + strconv.Itoa(code) + " " + http.StatusText(code) + "\r\n")
	b.WriteString("Content-Type: application/problem+json\r\n")
	b.WriteString("X-Content-Type-Options: nosniff\r\n")
	b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n")
	b.WriteString("Connection: close\r\n\r\n")
	b.Write(body)
	return b.Bytes()
}
