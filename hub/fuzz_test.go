package hub_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/cehttp"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/hub"
	"github.com/eventkit/eventkit/internal/headerlines"
)

// FuzzIngress posts arbitrary requests (header lines "name: value", then
// the body) to the server's own routes on the embedded JetStream default:
// the publisher under test is the one "eventkit serve" uses (metrics,
// subject prefix, the nats transport and its PublishEach), not a stub.
// Every answer is 2xx with every accepted event stored, or a problem+json
// 4xx with nothing stored; no request makes the server panic. What is
// accepted is what a plain cehttp.Handler decodes from the same request;
// an event whose id, source and topic were stored before is stored once
// (JetStream's de-duplication). Each stored event equals the accepted one,
// attribute types and data form included.
func FuzzIngress(f *testing.F) {
	f.Add("Content-Type: application/cloudevents-batch+json", []byte(`[]`))
	f.Add("Content-Type: application/cloudevents-batch+json", []byte(` [ ] `))
	f.Add("Content-Type: application/cloudevents-batch+json", []byte(`[{"specversion":"1.0","id":"1","source":"/s","type":"a.x"},{"specversion":"1.0","id":"2","source":"/s","type":"b.y","extint":3,"extbool":true}]`))
	f.Add("Content-Type: application/cloudevents-batch+json", []byte(`[{"specversion":"1.0","id":"1","source":"/s","type":"a.x"}]`))
	f.Add("Content-Type: application/cloudevents+json", []byte(`{"specversion":"1.0","id":"x","source":"/s","type":"t","extint":-7,"extbool":false,"datacontenttype":"application/octet-stream","data_base64":"aGVsbG8="}`))
	f.Add("Content-Type: application/cloudevents+json", []byte(`{"specversion":"1.0","id":"x","source":"/s","type":"t","datacontenttype":"text/plain","data":"hi \u001b[31m"}`))
	f.Add("Content-Type: application/octet-stream\nce-specversion: 1.0\nce-id: 1\nce-source: /s\nce-type: t", []byte("hello"))
	f.Add("Content-Type: application/json\nce-specversion: 1.0\nce-id: 1\nce-source: /s\nce-type: t\nce-ext: 5", []byte(`{"a":1}`))
	f.Add("ce-specversion: 1.0\nce-id: 1\nce-source: /s\nce-type: t", []byte{0xff, 0})
	s := start(f, hub.Config{DataDir: f.TempDir()})
	ctx, cancel := context.WithCancel(context.Background())
	f.Cleanup(cancel)
	sub, err := s.Subscriber().Subscribe(ctx, ">")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { sub.Close() })
	h := s.Handler()
	stored := map[string]bool{} // the de-duplication keys stored so far
	f.Fuzz(func(t *testing.T, headers string, body []byte) {
		newReq := func() *http.Request { return headerlines.Post(headers, body) }
		// The reference: what the ingress decodes from this request.
		var want []event.Event
		var wantTopics []string
		ref := cehttp.NewHandler(recorderFunc(func(topic string, e event.Event) error {
			want, wantTopics = append(want, e), append(wantTopics, topic)
			return nil
		}), cehttp.WithLogger(quiet))
		ref.ServeHTTP(httptest.NewRecorder(), newReq())
		expect := map[string]event.Event{}
		for i, e := range want {
			if k := dedupKey(wantTopics[i], e); !stored[k] {
				expect[k] = e
				stored[k] = true
			}
		}

		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, newReq())
		resp := rec.Result()
		answer, _ := io.ReadAll(resp.Body)
		accepted := 0
		switch resp.StatusCode {
		case http.StatusNoContent:
			accepted = 1
		case http.StatusOK:
			var a struct{ Accepted *int }
			if err := json.Unmarshal(answer, &a); err != nil || a.Accepted == nil {
				t.Fatalf("200 with body %q", answer)
			}
			accepted = *a.Accepted
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
			var p cehttp.Problem
			if err := json.Unmarshal(answer, &p); err != nil || p.Status != resp.StatusCode {
				t.Fatalf("status %d with body %q", resp.StatusCode, answer)
			}
		default:
			t.Fatalf("unexpected status %d: %s", resp.StatusCode, answer)
		}
		if accepted != len(want) {
			t.Fatalf("answered %d (%d accepted), but the ingress decodes %d events", resp.StatusCode, accepted, len(want))
		}
		for len(expect) > 0 {
			select {
			case m := <-sub.Messages():
				_ = m.Ack()
				if err := eventkit.ValidateEvent(m.Event); err != nil {
					t.Fatalf("stored an invalid event: %v", err)
				}
				k := dedupKey(m.Topic, m.Event)
				w, ok := expect[k]
				if !ok {
					t.Fatalf("stored event %q (topic %q) was not expected", m.Event.ID(), m.Topic)
				}
				// Stored as accepted: attribute types and data form.
				if d := eventkittest.DiffEvents(w, m.Event); d != "" {
					t.Fatalf("event %q changed in the store: %s", w.ID(), d)
				}
				if w.DataBase64 != m.Event.DataBase64 {
					t.Fatalf("event %q: data_base64 %v, stored %v", w.ID(), w.DataBase64, m.Event.DataBase64)
				}
				delete(expect, k)
			case <-time.After(10 * time.Second):
				t.Fatalf("answered %d, but %d accepted events not stored", resp.StatusCode, len(expect))
			}
		}
		// Nothing more was stored than was acknowledged.
		select {
		case m := <-sub.Messages():
			t.Fatalf("event %q stored but not acknowledged as accepted (status %d)", m.Event.ID(), resp.StatusCode)
		default:
		}
	})
}

// dedupKey identifies an event for JetStream's de-duplication.
func dedupKey(topic string, e event.Event) string {
	return e.ID() + "\x00" + e.Source() + "\x00" + topic
}
