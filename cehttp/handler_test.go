package cehttp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/cehttp"
	"github.com/eventkit/eventkit/eventkittest"
)

func TestBinaryPercentDecoding(t *testing.T) {
	rec := &recorder{}
	h := cehttp.NewHandler(rec)
	cases := []struct {
		header, want string
	}{
		{"Euro%20%E2%82%AC%20%F0%9F%98%80", "Euro € 😀"},
		{`"Euro%20%E2%82%AC"`, "Euro €"}, // unquoted, then decoded once
		{"100%2525", "100%25"},           // decoded once only
		{"plain", "plain"},
	}
	for _, c := range cases {
		rec.reset()
		wantStatus(t, do(t, h, post("", "", binaryHeaders(map[string]string{"ce-subject": c.header}))), http.StatusNoContent)
		_, got := rec.got()
		if len(got) != 1 || got[0].Subject() != c.want {
			t.Fatalf("ce-subject %q: got %v, want subject %q", c.header, got, c.want)
		}
	}
	for _, bad := range []string{"%C0%A0", "%G1", "abc%2", "%FF"} {
		rec.reset()
		p := problem(t, do(t, h, post("", "", binaryHeaders(map[string]string{"ce-subject": bad}))), http.StatusBadRequest)
		if p.Attribute != "subject" {
			t.Errorf("ce-subject %q: problem names %q, want subject", bad, p.Attribute)
		}
		if _, got := rec.got(); len(got) != 0 {
			t.Errorf("ce-subject %q was published", bad)
		}
	}
}

func TestEgressPercentEncoding(t *testing.T) {
	e := eventkittest.NewEvent("enc")
	e.SetSubject("Euro € 😀")
	hdr, _, err := cehttp.Encode(e, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := hdr.Get("ce-subject"); got != "Euro%20%E2%82%AC%20%F0%9F%98%80" {
		t.Fatalf("ce-subject %q", got)
	}
	if got := hdr.Get("Content-Type"); got != "application/json" {
		t.Fatalf("Content-Type %q", got)
	}
}

func TestBinaryErrorsNameTheAttribute(t *testing.T) {
	rec := &recorder{}
	h := cehttp.NewHandler(rec)
	cases := []struct {
		name string
		hdr  map[string]string
		ct   string
		attr string
	}{
		{"no specversion", map[string]string{"ce-specversion": ""}, "", "specversion"},
		{"bad specversion", map[string]string{"ce-specversion": "0.3"}, "", "specversion"},
		{"empty id", map[string]string{"ce-id": ""}, "", "id"},
		{"bad time", map[string]string{"ce-time": "yesterday"}, "", "time"},
		{"bad extension name", map[string]string{"ce-my_ext": "x"}, "", "my_ext"},
		{"bad content type", nil, "xyz", "datacontenttype"},
		{"ce-datacontenttype", map[string]string{"ce-datacontenttype": "text/plain"}, "", "datacontenttype"},
		{"relative dataschema", map[string]string{"ce-dataschema": "/x"}, "", "dataschema"},
		{"type unusable as topic", map[string]string{"ce-type": "has space"}, "", "type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec.reset()
			hdr := binaryHeaders(c.hdr)
			req := post(c.ct, "{}", nil)
			for k, v := range hdr {
				if v == "" && k == "ce-specversion" {
					continue
				}
				req.Header.Set(k, v)
			}
			p := problem(t, do(t, h, req), http.StatusBadRequest)
			if p.Attribute != c.attr {
				t.Errorf("problem names %q, want %q: %s", p.Attribute, c.attr, p.Detail)
			}
			if _, got := rec.got(); len(got) != 0 {
				t.Errorf("published %d events", len(got))
			}
		})
	}
}

func TestBinaryModeData(t *testing.T) {
	rec := &recorder{}
	h := cehttp.NewHandler(rec)
	body := []byte{0, 1, 2, 0xff}
	wantStatus(t, do(t, h, post("application/octet-stream", string(body), binaryHeaders(map[string]string{"ce-extint": "42"}))), http.StatusNoContent)
	_, got := rec.got()
	if len(got) != 1 || !bytes.Equal(got[0].Data(), body) || got[0].DataContentType() != "application/octet-stream" {
		t.Fatalf("got %v", got)
	}
	if v := got[0].Extensions()["extint"]; v != "42" {
		t.Fatalf("extension extint = %#v", v)
	}
}

func TestLimits(t *testing.T) {
	rec := &recorder{}
	h := cehttp.NewHandler(rec, cehttp.WithMaxBatchSize(4<<20), cehttp.WithMaxBatchEvents(3))
	// Exactly 1 MiB of data in binary mode is accepted, one byte more is not.
	big := strings.Repeat("a", cehttp.DefaultMaxEventSize)
	wantStatus(t, do(t, h, post("text/plain", big, binaryHeaders(nil))), http.StatusNoContent)
	problem(t, do(t, h, post("text/plain", big+"a", binaryHeaders(nil))), http.StatusRequestEntityTooLarge)
	// The limit holds without a Content-Length too (chunked).
	req := post("text/plain", "", binaryHeaders(nil))
	req.Body = io.NopCloser(strings.NewReader(big + "a"))
	req.ContentLength = -1
	problem(t, do(t, h, req), http.StatusRequestEntityTooLarge)
	// Structured: 1 MiB per event.
	ev := eventkittest.NewEvent("s")
	_ = ev.SetData("text/plain", []byte(big))
	b, _ := json.Marshal(ev)
	problem(t, do(t, h, post("application/cloudevents+json", string(b), nil)), http.StatusRequestEntityTooLarge)
	// Batches may be larger than one event...
	ev2 := eventkittest.NewEvent("s2")
	_ = ev2.SetData("text/plain", []byte(strings.Repeat("b", 1<<20)))
	bb, _ := json.Marshal([]event.Event{ev2})
	rec.reset()
	wantStatus(t, do(t, h, post("application/cloudevents-batch+json", string(bb), nil)), http.StatusOK)
	// ...up to their own limit, in bytes and in events.
	bb, _ = json.Marshal([]event.Event{ev2, ev2, ev2, ev2})
	problem(t, do(t, h, post("application/cloudevents-batch+json", string(bb), nil)), http.StatusRequestEntityTooLarge)
	small := eventkittest.NewEvent("x")
	bb, _ = json.Marshal([]event.Event{small, small, small, small})
	rec.reset()
	problem(t, do(t, h, post("application/cloudevents-batch+json", string(bb), nil)), http.StatusRequestEntityTooLarge)
	if _, got := rec.got(); len(got) != 0 {
		t.Fatalf("an oversized batch published %d events", len(got))
	}
}

func TestUnsupportedMediaTypeAndMethods(t *testing.T) {
	h := cehttp.NewHandler(&recorder{})
	problem(t, do(t, h, post("text/plain", "hello", nil)), http.StatusUnsupportedMediaType)
	problem(t, do(t, h, post("application/cloudevents+avro", "x", nil)), http.StatusUnsupportedMediaType)
	problem(t, do(t, h, post("", "", nil)), http.StatusUnsupportedMediaType)
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		resp := do(t, h, httptest.NewRequest(m, "/events", nil))
		problem(t, resp, http.StatusMethodNotAllowed)
		if a := resp.Header.Get("Allow"); a != "POST, OPTIONS" {
			t.Errorf("%s: Allow %q", m, a)
		}
	}
}

func TestBatchAllOrNothing(t *testing.T) {
	rec := &recorder{}
	h := cehttp.NewHandler(rec)
	good := eventkittest.NewEvent("ok")
	// A batch whose third event is invalid, or has a type unusable as a
	// topic: refused whole, the problem naming the event and attribute.
	badType := eventkittest.NewEvent("t")
	badType.SetType("no spaces allowed")
	for _, bad := range []struct {
		event any
		attr  string
	}{
		{map[string]any{"specversion": "1.0", "id": "bad", "source": "/x", "type": "dev.eventkit.test", "time": "noon"}, "time"},
		{badType, "type"},
	} {
		b, _ := json.Marshal([]any{good, good, bad.event})
		p := problem(t, do(t, h, post("application/cloudevents-batch+json", string(b), nil)), http.StatusBadRequest)
		if p.Index == nil || *p.Index != 2 || p.Attribute != bad.attr {
			t.Fatalf("problem %+v, want index 2 attribute %s", p, bad.attr)
		}
		if _, got := rec.got(); len(got) != 0 {
			t.Fatalf("published %d events of a rejected batch", len(got))
		}
	}
	// Events of a batch go to their own topics, in order.
	other := eventkittest.NewEvent("other")
	other.SetType("dev.eventkit.other")
	b, _ := json.Marshal([]event.Event{good, other, good})
	wantStatus(t, do(t, h, post("application/cloudevents-batch+json", string(b), nil)), http.StatusOK)
	topics, got := rec.got()
	if len(got) != 3 || topics[0] != "dev.eventkit.test" || topics[1] != "dev.eventkit.other" || topics[2] != "dev.eventkit.test" || got[1].ID() != "other" {
		t.Fatalf("topics %v", topics)
	}
}

func TestPublisherFailureIs503(t *testing.T) {
	rec := &recorder{err: errBroker}
	h := cehttp.NewHandler(rec)
	resp := do(t, h, post("", "", binaryHeaders(nil)))
	problem(t, resp, http.StatusServiceUnavailable)
	if resp.Header.Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After")
	}
}

func TestTopicFromHeader(t *testing.T) {
	rec := &recorder{}
	h := cehttp.NewHandler(rec, cehttp.WithTopic(cehttp.TopicFromHeader("")))
	wantStatus(t, do(t, h, post("", "", binaryHeaders(map[string]string{cehttp.TopicHeader: "orders.eu"}))), http.StatusNoContent)
	wantStatus(t, do(t, h, post("", "", binaryHeaders(nil))), http.StatusNoContent)
	problem(t, do(t, h, post("", "", binaryHeaders(map[string]string{cehttp.TopicHeader: "orders.*"}))), http.StatusBadRequest)
	topics, _ := rec.got()
	if len(topics) != 2 || topics[0] != "orders.eu" || topics[1] != "dev.eventkit.test" {
		t.Fatalf("topics %v", topics)
	}
}

func TestWebhookHandshake(t *testing.T) {
	h := cehttp.NewHandler(&recorder{}, cehttp.WithBearerToken("secret"))
	req := httptest.NewRequest(http.MethodOptions, "/events", nil)
	req.Header.Set("WebHook-Request-Origin", "eventemitter.example.com")
	req.Header.Set("WebHook-Request-Rate", "120")
	resp := do(t, h, req)
	wantStatus(t, resp, http.StatusOK)
	if got := resp.Header.Get("WebHook-Allowed-Origin"); got != "eventemitter.example.com" {
		t.Errorf("WebHook-Allowed-Origin %q", got)
	}
	if got := resp.Header.Get("WebHook-Allowed-Rate"); got != "*" {
		t.Errorf("WebHook-Allowed-Rate %q", got)
	}
	if got := resp.Header.Get("Allow"); !strings.Contains(got, "POST") {
		t.Errorf("Allow %q", got)
	}
	// A restricted handler grants its origins only, with its rate.
	h = cehttp.NewHandler(&recorder{}, cehttp.WithAllowedOrigins("good.example.com"), cehttp.WithAllowedRate(60))
	req.Header.Set("WebHook-Request-Origin", "Good.Example.com")
	resp = do(t, h, req)
	wantStatus(t, resp, http.StatusOK)
	if got := resp.Header.Get("WebHook-Allowed-Rate"); got != "60" {
		t.Errorf("WebHook-Allowed-Rate %q", got)
	}
	req.Header.Set("WebHook-Request-Origin", "evil.example.com")
	resp = do(t, h, req)
	problem(t, resp, http.StatusForbidden)
	if resp.Header.Get("WebHook-Allowed-Origin") != "" {
		t.Errorf("a refused origin got WebHook-Allowed-Origin")
	}
	req.Header.Set("WebHook-Request-Origin", "good.example.com")
	req.Header.Set("WebHook-Request-Rate", "fast")
	problem(t, do(t, h, req), http.StatusBadRequest)
}

func TestBearerToken(t *testing.T) {
	rec := &recorder{}
	h := cehttp.NewHandler(rec, cehttp.WithBearerToken("s3cret"))
	resp := do(t, h, post("", "", binaryHeaders(nil)))
	problem(t, resp, http.StatusUnauthorized)
	if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("401 without WWW-Authenticate: Bearer")
	}
	problem(t, do(t, h, post("", "", binaryHeaders(map[string]string{"Authorization": "Basic czNjcmV0"}))), http.StatusUnauthorized)
	problem(t, do(t, h, post("", "", binaryHeaders(map[string]string{"Authorization": "Bearer "}))), http.StatusUnauthorized)
	problem(t, do(t, h, post("", "", binaryHeaders(map[string]string{"Authorization": "Bearer wrong"}))), http.StatusForbidden)
	problem(t, do(t, h, post("", "", binaryHeaders(map[string]string{"Authorization": "Bearer s3cret2"}))), http.StatusForbidden)
	if _, got := rec.got(); len(got) != 0 {
		t.Fatalf("unauthenticated requests published %d events", len(got))
	}
	wantStatus(t, do(t, h, post("", "", binaryHeaders(map[string]string{"Authorization": "Bearer s3cret"}))), http.StatusNoContent)
}

// TestHMACSignature: the body-only signature of earlier versions is
// refused unless the legacy switch is on; with it, it is checked.
func TestHMACSignature(t *testing.T) {
	rec := &recorder{}
	secret := []byte("shared")
	body := `{"a":1}`
	legacyOK := binaryHeaders(map[string]string{cehttp.SignatureHeader: cehttp.Sign(secret, []byte(body))})
	problem(t, do(t, cehttp.NewHandler(rec, cehttp.WithHMACSecret(secret)), post("application/json", body, legacyOK)), http.StatusUnauthorized)
	h := cehttp.NewHandler(rec, cehttp.WithHMACSecret(secret), cehttp.WithLegacyBodySignature(secret))
	problem(t, do(t, h, post("application/json", body, binaryHeaders(nil))), http.StatusUnauthorized)
	problem(t, do(t, h, post("application/json", body, binaryHeaders(map[string]string{cehttp.SignatureHeader: cehttp.Sign([]byte("other"), []byte(body))}))), http.StatusForbidden)
	problem(t, do(t, h, post("application/json", body, binaryHeaders(map[string]string{cehttp.SignatureHeader: "sha256=zz"}))), http.StatusForbidden)
	problem(t, do(t, h, post("application/json", body+" ", binaryHeaders(map[string]string{cehttp.SignatureHeader: cehttp.Sign(secret, []byte(body))}))), http.StatusForbidden)
	if _, got := rec.got(); len(got) != 0 {
		t.Fatalf("unsigned requests published %d events", len(got))
	}
	wantStatus(t, do(t, h, post("application/json", body, binaryHeaders(map[string]string{cehttp.SignatureHeader: cehttp.Sign(secret, []byte(body))}))), http.StatusNoContent)
}

// blockingPublisher waits until the request's context ends.
type blockingPublisher struct{}

func (blockingPublisher) Publish(ctx context.Context, _ string, _ ...event.Event) error {
	<-ctx.Done()
	return ctx.Err()
}
func (blockingPublisher) Close() error { return nil }

// TestNoAnswerBeforeConfirmation: a publish that does not confirm in time
// gets 503, never a 2xx, also when the client has gone away.
func TestNoAnswerBeforeConfirmation(t *testing.T) {
	h := cehttp.NewHandler(blockingPublisher{}, cehttp.WithPublishTimeout(50*time.Millisecond), cehttp.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	problem(t, do(t, h, post("", "", binaryHeaders(nil))), http.StatusServiceUnavailable)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := post("", "", binaryHeaders(nil)).WithContext(ctx)
	if resp := do(t, h, req); resp.StatusCode/100 == 2 {
		t.Fatalf("a request whose client left was answered %d", resp.StatusCode)
	}
}

// TestInvalidUTF8AndControlCharactersRefused: bytes that are not UTF-8 in
// an attribute, and control characters, are refused the same way in
// binary, structured and batch mode, and nothing is published.
func TestInvalidUTF8AndControlCharactersRefused(t *testing.T) {
	rec := &recorder{}
	h := cehttp.NewHandler(rec)
	for name, bad := range map[string]struct{ header, json string }{
		"invalid UTF-8": {"%FF", `\xff`},
		"ESC":           {"%1B[2J", `\u001b[2J`},
		"NUL":           {"%00", `\u0000`},
		"CR LF":         {"%0D%0A", `\r\n`},
	} {
		js := strings.ReplaceAll(`{"specversion":"1.0","id":"1","source":"/s","type":"t","subject":"a`+bad.json+`b"}`, `\xff`, "\xff")
		for mode, req := range map[string]*http.Request{
			"binary":     post("application/json", "{}", binaryHeaders(map[string]string{"ce-subject": "a" + bad.header + "b"})),
			"structured": post("application/cloudevents+json", js, nil),
			"batch":      post("application/cloudevents-batch+json", "["+js+"]", nil),
		} {
			resp := do(t, h, req)
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("%s in %s mode: %d, want 400", name, mode, resp.StatusCode)
			}
		}
	}
	if _, got := rec.got(); len(got) != 0 {
		t.Fatalf("%d events published", len(got))
	}
}
