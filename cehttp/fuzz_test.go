package cehttp_test

import (
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"testing"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/cehttp"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/internal/headerlines"
)

// checkAnswer asserts what every answer of the handler must be: 2xx only
// with every event published and valid, otherwise a problem+json body and
// nothing published.
//
// With roundTrip, every accepted event must also survive a structured
// encoding (eventkit.MarshalEvent, then UnmarshalEvent) unchanged: the
// binary-mode decoder chooses how data is kept (text, JSON or binary) so
// that it does.
func checkAnswer(t *testing.T, rec *recorder, resp *http.Response, roundTrip bool) {
	t.Helper()
	body, _ := io.ReadAll(resp.Body)
	_, got := rec.got()
	switch {
	case resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusOK:
		for _, e := range got {
			if err := eventkit.ValidateEvent(e); err != nil {
				t.Fatalf("accepted an invalid event: %v", err)
			}
			if !roundTrip {
				continue
			}
			b, err := eventkit.MarshalEvent(e)
			if err != nil {
				t.Fatalf("accepted event does not marshal: %v", err)
			}
			back, err := eventkit.UnmarshalEvent(b)
			if err != nil {
				t.Fatalf("accepted event does not round-trip: %v\n%s", err, b)
			}
			if eventkit.IsJSONContentType(e.DataContentType()) && len(e.Data()) > 0 && !e.DataBase64 {
				var x, y any
				if json.Unmarshal(e.Data(), &x) != nil || json.Unmarshal(back.Data(), &y) != nil || !reflect.DeepEqual(x, y) {
					t.Fatalf("JSON data changed in a structured round trip: %q -> %q", e.Data(), back.Data())
				}
				back.DataEncoded = e.DataEncoded
			}
			if d := eventkittest.DiffEvents(e, back); d != "" {
				t.Fatalf("accepted event changes in a structured round trip: %s\n%s", d, b)
			}
		}
	case resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusRequestEntityTooLarge || resp.StatusCode == http.StatusUnsupportedMediaType:
		if len(got) != 0 {
			t.Fatalf("status %d but %d events published", resp.StatusCode, len(got))
		}
		var p cehttp.Problem
		if err := json.Unmarshal(body, &p); err != nil || p.Status != resp.StatusCode {
			t.Fatalf("status %d with body %q", resp.StatusCode, body)
		}
	default:
		t.Fatalf("unexpected status %d: %s", resp.StatusCode, body)
	}
}

// fuzzHandler returns a handler on a recording publisher that is, like the
// server's (hub) publisher, a cehttp.EachPublisher, so that the fuzzers
// take the path the server takes (an empty batch used to panic there), and
// the recorder of what it publishes. The hub's own fuzzer (hub.FuzzIngress)
// runs the same requests through the server's real publisher.
func fuzzHandler() (*recorder, *cehttp.Handler) {
	pub := &eachRecorder{}
	return &pub.recorder, cehttp.NewHandler(pub)
}

func seedEvents(f *testing.F) {
	e := eventkittest.NewEvent("seed")
	e.SetSubject("Euro € 😀")
	e.SetExtension("extint", 3)
	b, _ := json.Marshal(e)
	f.Add(b)
	f.Add([]byte(`{"specversion":"1.0","id":"x","source":"/s","type":"t","data_base64":"TWE="}`))
	f.Add([]byte(`[{"specversion":"1.0","id":"x","source":"/s","type":"t"}]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`[{"specversion":"1.0","id":"x","source":"/s","type":"a.x"},{"specversion":"1.0","id":"y","source":"/s","type":"b.y"}]`))
	f.Add([]byte(`{"specversion":"1.0","id":"x","source":"/s","type":"t","time":"2018-04-05T17:31:00+01:00","datacontenttype":"text/plain","data":"hi"}`))
}

// FuzzIngressStructured posts arbitrary bodies in structured mode.
func FuzzIngressStructured(f *testing.F) {
	seedEvents(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		rec, h := fuzzHandler()
		resp := do(t, h, post("application/cloudevents+json", string(body), nil))
		checkAnswer(t, rec, resp, false)
		// What is published is exactly what the strict decoder decodes.
		if resp.StatusCode == http.StatusNoContent {
			want, err := eventkit.UnmarshalEvent(body)
			_, got := rec.got()
			if err != nil || len(got) != 1 {
				t.Fatalf("accepted, but the decoder says %v (%d published)", err, len(got))
			}
			if d := eventkittest.DiffEvents(want, got[0]); d != "" {
				t.Fatalf("published event differs from the decoded one: %s", d)
			}
		}
	})
}

// FuzzIngressBatch posts arbitrary bodies in batch mode.
func FuzzIngressBatch(f *testing.F) {
	seedEvents(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		rec, h := fuzzHandler()
		resp := do(t, h, post("application/cloudevents-batch+json", string(body), nil))
		checkAnswer(t, rec, resp, false)
		if resp.StatusCode == http.StatusOK {
			evs, err := eventkit.UnmarshalBatch(body)
			if _, got := rec.got(); err != nil || len(got) != len(evs) {
				t.Fatalf("batch accepted: %d events published, decoder says %d (%v)", len(got), len(evs), err)
			}
		}
	})
}

// FuzzIngressBinary posts binary-mode requests with arbitrary header lines
// ("name: value" per line), content type and body.
func FuzzIngressBinary(f *testing.F) {
	f.Add("ce-specversion: 1.0\nce-id: 1\nce-source: /s\nce-type: t\nce-subject: Euro%20%E2%82%AC%20%F0%9F%98%80", "application/json", []byte(`{"a":1}`))
	f.Add("ce-specversion: 1.0\nce-id: 1\nce-source: /s\nce-type: t\nce-subject: %C0%A0", "", []byte(nil))
	f.Add("ce-specversion: 1.0\nce-id: \"q%22\"\nce-source: /s\nce-type: t\nce-time: 2018-04-05T17:31:00Z", "text/plain; charset=utf-8", []byte("hi"))
	f.Fuzz(func(t *testing.T, headers, contentType string, body []byte) {
		req := headerlines.Post(headers, body)
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		rec, h := fuzzHandler()
		checkAnswer(t, rec, do(t, h, req), true)
	})
}
