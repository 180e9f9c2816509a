package cehttp_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/cehttp"
	"github.com/eventkit/eventkit/eventkittest"
)

// signed returns a binary-mode POST signed under secret, and a copy
// function that rebuilds it (same headers, signature included) with
// changes: what an attacker who captured it can send.
func signed(t *testing.T, secret []byte, path, body string, hdr map[string]string) func(change func(*http.Request)) *http.Request {
	t.Helper()
	req := post("application/json", body, binaryHeaders(hdr))
	req.URL.Path = path
	if err := cehttp.SignRequest(req, []byte(body), "k1", secret); err != nil {
		t.Fatal(err)
	}
	return func(change func(*http.Request)) *http.Request {
		c := post("", body, nil)
		c.URL.Path = path
		c.Header = req.Header.Clone()
		if change != nil {
			change(c)
		}
		return c
	}
}

// TestSignatureCoversTheWholeEvent: an RFC 9421 signature is accepted
// once; the same signed headers with another ce-id, ce-type, ce-source or
// ce-subject, an added ce- header, another body, path, method or content
// type, or the request itself replayed, are refused and nothing of them is
// published.
func TestSignatureCoversTheWholeEvent(t *testing.T) {
	rec := &recorder{}
	secret := []byte("shared")
	h := cehttp.NewHandler(rec, cehttp.WithHMACSecret(secret))
	body := `{"a":1}`
	replay := signed(t, secret, "/events", body, map[string]string{"ce-subject": "s1"})
	wantStatus(t, do(t, h, replay(nil)), http.StatusNoContent)
	changes := map[string]func(*http.Request){
		"replayed":        func(*http.Request) {},
		"ce-id":           func(r *http.Request) { r.Header.Set("ce-id", "b-2") },
		"ce-type":         func(r *http.Request) { r.Header.Set("ce-type", "dev.eventkit.other") },
		"ce-source":       func(r *http.Request) { r.Header.Set("ce-source", "/evil") },
		"ce-subject":      func(r *http.Request) { r.Header.Set("ce-subject", "s2") },
		"added ce- field": func(r *http.Request) { r.Header.Set("ce-extra", "x") },
		"content type":    func(r *http.Request) { r.Header.Set("Content-Type", "text/plain") },
		"topic header":    func(r *http.Request) { r.Header.Set(cehttp.TopicHeader, "other") },
		"path":            func(r *http.Request) { r.URL.Path = "/elsewhere" },
		"query":           func(r *http.Request) { r.URL.RawQuery = "x=1" },
		"body": func(r *http.Request) {
			r.Body = io.NopCloser(strings.NewReader(`{"a":2}`))
		},
		"chunked body": func(r *http.Request) {
			r.Body, r.ContentLength = io.NopCloser(strings.NewReader(`{"a":2}`)), -1
		},
		"digest": func(r *http.Request) {
			r.Header.Set(cehttp.ContentDigestHeader, "sha-256=:"+strings.Repeat("A", 43)+"=:")
		},
	}
	for name, change := range changes {
		// The handler that accepted the request remembers its nonce; a
		// fresh verifier does not, so it shows that each change breaks
		// the signature itself.
		problem(t, do(t, h, replay(change)), http.StatusForbidden)
		if name != "replayed" {
			fresh := cehttp.NewHandler(rec, cehttp.WithHMACSecret(secret))
			if p := problem(t, do(t, fresh, replay(change)), http.StatusForbidden); strings.Contains(p.Detail, "nonce") {
				t.Errorf("%s: refused as a replay only: %s", name, p.Detail)
			}
		}
	}
	if _, got := rec.got(); len(got) != 1 {
		t.Fatalf("%d events published, want the 1 signed", len(got))
	}
}

// TestSignatureClockSkewAndReplayCache: a signature created beyond the
// clock skew is refused; a full replay cache refuses with 503 instead of
// forgetting nonces; nonces are forgotten once their signatures are stale.
func TestSignatureClockSkewAndReplayCache(t *testing.T) {
	secret := []byte("shared")
	t0 := time.Unix(1_800_000_000, 0)
	var now atomic.Int64
	now.Store(t0.Unix())
	clock := func() time.Time { return time.Unix(now.Load(), 0) }
	v := cehttp.NewVerifier(secret, cehttp.WithClockSkew(30*time.Second), cehttp.WithReplayCacheSize(2), cehttp.WithVerifierClock(clock))
	h := cehttp.NewHandler(&recorder{}, cehttp.WithVerifier(v))
	at := func(created time.Time) *http.Request {
		req := post("", "", binaryHeaders(nil))
		if err := cehttp.SignRequestAt(req, nil, "k1", secret, created); err != nil {
			t.Fatal(err)
		}
		return req
	}
	problem(t, do(t, h, at(t0.Add(-31*time.Second))), http.StatusForbidden)
	problem(t, do(t, h, at(t0.Add(31*time.Second))), http.StatusForbidden)
	wantStatus(t, do(t, h, at(t0.Add(-30*time.Second))), http.StatusNoContent)
	wantStatus(t, do(t, h, at(t0)), http.StatusNoContent)
	problem(t, do(t, h, at(t0)), http.StatusServiceUnavailable)
	if v.Nonces() != 2 {
		t.Fatalf("%d nonces kept, want 2", v.Nonces())
	}
	now.Add(1) // the first nonce's signature is now stale
	wantStatus(t, do(t, h, at(t0)), http.StatusNoContent)
	if v.Nonces() != 2 {
		t.Fatalf("%d nonces kept after one expired, want 2", v.Nonces())
	}
}

// countingBody counts the bytes read from it.
type countingBody struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingBody) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}
func (countingBody) Close() error { return nil }

// TestBadSignatureRefusedBeforeTheBody: a request with a bogus signature
// or none is refused without its body being read.
func TestBadSignatureRefusedBeforeTheBody(t *testing.T) {
	secret := []byte("shared")
	h := cehttp.NewHandler(&recorder{}, cehttp.WithHMACSecret(secret))
	body := strings.Repeat("x", 1<<20)
	for name, change := range map[string]func(*http.Request){
		"wrong key": func(r *http.Request) {
			r.Header.Set(cehttp.SignatureValueHeader, "eventkit=:"+strings.Repeat("A", 43)+"=:")
		},
		"unsigned": func(r *http.Request) {
			r.Header.Del(cehttp.SignatureValueHeader)
			r.Header.Del(cehttp.SignatureInputHeader)
		},
	} {
		req := signed(t, secret, "/events", body, nil)(change)
		var n atomic.Int64
		req.Body = countingBody{r: strings.NewReader(body), n: &n}
		resp := do(t, h, req)
		if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%s: status %d", name, resp.StatusCode)
		}
		if n.Load() != 0 {
			t.Errorf("%s: %d bytes of the body read before refusing", name, n.Load())
		}
	}
}

// TestEgressSignatureVerifies: what the egress Publisher signs, a Handler
// with the same secret accepts, in every mode.
func TestEgressSignatureVerifies(t *testing.T) {
	secret := []byte("shared")
	for _, opts := range [][]cehttp.PublisherOption{nil, {cehttp.WithBatch()}, {cehttp.WithMode(eventkit.Structured)}} {
		rec := &recorder{}
		srv := httptest.NewServer(cehttp.NewHandler(rec, cehttp.WithHMACSecret(secret)))
		defer srv.Close()
		p, err := cehttp.NewPublisher(srv.URL, append(opts, cehttp.WithSigningSecret(secret))...)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Publish(t.Context(), "dev.eventkit.test", eventkittest.NewEvent("e1"), eventkittest.NewEvent("e2")); err != nil {
			t.Fatal(err)
		}
		if _, got := rec.got(); len(got) != 2 {
			t.Fatalf("%d events received, want 2", len(got))
		}
		_ = p.Close()
	}
}
