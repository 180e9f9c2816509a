package hub_test

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/eventkit/eventkit/hub"
	"github.com/eventkit/eventkit/memory"
)

// rawCase is a request net/http refuses before any handler runs.
var rawCases = []struct {
	status  int
	name    string
	request string
}{
	{http.StatusBadRequest, "bad request line", "GARBAGE\r\n\r\n"},
	{http.StatusBadRequest, "bad header line", "GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n"},
	{http.StatusBadRequest, "missing host", "GET /healthz HTTP/1.1\r\n\r\n"},
	{http.StatusBadRequest, "duplicate content-length", "POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"},
	{http.StatusNotImplemented, "unknown transfer-encoding", "POST /events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"},
	{http.StatusRequestHeaderFieldsTooLarge, "oversize headers", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 200<<10) + "\r\n\r\n"},
}

// rawExchange sends request on c and reads the answer.
func rawExchange(t *testing.T, c net.Conn, request string) *http.Response {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	go func() { _, _ = io.WriteString(c, request) }() // a 431 comes before the whole request is read
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	return resp
}

// checkProblem fails t unless resp is a problem+json answer of status.
func checkProblem(t *testing.T, resp *http.Response, status int) {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("body: %v", err)
	}
	if resp.StatusCode != status || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("answer %d %q %q, want %d application/problem+json", resp.StatusCode, resp.Header.Get("Content-Type"), b, status)
	}
	var p map[string]any // RFC 9457 members
	if err := json.Unmarshal(b, &p); err != nil || p["status"] != float64(status) || p["title"] != http.StatusText(status) || p["type"] != "about:blank" {
		t.Fatalf("problem %q (%v), want status %d", b, err, status)
	}
}

// testCert makes a TLS configuration with httptest's certificate and a
// client configuration that trusts it.
func testCert(t *testing.T) (server, client *tls.Config) {
	ts := httptest.NewUnstartedServer(nil)
	ts.EnableHTTP2 = true
	ts.StartTLS()
	t.Cleanup(ts.Close)
	server = ts.TLS.Clone()
	client = ts.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	return server, client
}

// TestNetHTTPOwnAnswersAreProblems sends, over plain TCP and over TLS,
// requests that net/http answers itself before the hub's handler runs:
// each answer is problem+json with net/http's status (they were text/plain
// before ProblemListener).
func TestNetHTTPOwnAnswersAreProblems(t *testing.T) {
	bus := memory.New()
	plain := start(t, hub.Config{}, hub.WithBroker(bus, bus))

	srvTLS, cliTLS := testCert(t)
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bus2 := memory.New()
	secure, err := hub.New(hub.Config{}, hub.WithLogger(quiet), hub.WithBroker(bus2, bus2), hub.WithListener(tls.NewListener(raw, srvTLS)))
	if err != nil {
		t.Fatal(err)
	}
	runUntilCleanup(t, secure)

	dial := map[string]func(t *testing.T) net.Conn{
		"plain": func(t *testing.T) net.Conn {
			c, err := net.Dial("tcp", plain.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
		"tls": func(t *testing.T) net.Conn {
			cfg := cliTLS.Clone()
			cfg.NextProtos = []string{"http/1.1"}
			c, err := tls.Dial("tcp", secure.Addr().String(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
	}
	for _, mode := range []string{"plain", "tls"} {
		for _, tc := range rawCases {
			t.Run(mode+"/"+tc.name, func(t *testing.T) {
				c := dial[mode](t)
				defer c.Close()
				checkProblem(t, rawExchange(t, c, tc.request), tc.status)
			})
		}
	}

	// What the handlers answer passes unchanged, on both.
	for name, cl := range map[string]*http.Client{
		"plain": http.DefaultClient,
		"tls":   {Transport: &http.Transport{TLSClientConfig: cliTLS.Clone(), ForceAttemptHTTP2: true}},
	} {
		base := plain.URL()
		if name == "tls" {
			base = "https://" + secure.Addr().String()
		}
		resp, err := cl.Get(base + "/healthz")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("%s /healthz: %d %s", name, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if name == "tls" && (resp.TLS == nil || resp.ProtoMajor != 2) {
			t.Fatalf("tls /healthz over %s, want HTTP/2 (ALPN kept)", resp.Proto)
		}
		resp, err = cl.Get(base + "/nowhere")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		checkProblem(t, resp, http.StatusNotFound)
	}

	// A plaintext request to the TLS port: 400 as problem+json.
	c, err := net.Dial("tcp", secure.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	checkProblem(t, rawExchange(t, c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"), http.StatusBadRequest)
}

// TestProblemListenerKeepsRequestTLS checks that a handler behind
// ProblemListener over TLS sees Request.TLS, over HTTP/1.1.
func TestProblemListenerKeepsRequestTLS(t *testing.T) {
	srvTLS, cliTLS := testCert(t)
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || !r.TLS.HandshakeComplete {
			http.Error(w, "no TLS state", http.StatusInternalServerError)
		}
	})}
	ln := hub.ProblemListener(tls.NewListener(raw, srvTLS))
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	cl := &http.Client{Transport: &http.Transport{TLSClientConfig: cliTLS.Clone()}}
	resp, err := cl.Get("https://" + raw.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 1 {
		t.Fatalf("answer %d over %s", resp.StatusCode, resp.Proto)
	}
}

// TestProblemListenerPassesHandlerAnswers: a handler's own text/plain
// error, on a closing connection, is not mistaken for net/http's.
func TestProblemListenerPassesHandlerAnswers(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "400 Bad Request", http.StatusBadRequest)
	})}
	go func() { _ = srv.Serve(hub.ProblemListener(raw)) }()
	t.Cleanup(func() { _ = srv.Close() })
	c, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp := rawExchange(t, c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" || string(b) != "400 Bad Request\n" {
		t.Fatalf("handler's answer changed: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
}
