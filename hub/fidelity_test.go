package hub_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventkit/eventkit/hub"
)

// rawHook records the requests a webhook receives, as sent.
type rawHook struct {
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []rawReq
}

type rawReq struct {
	header http.Header
	body   []byte
}

func newRawHook(t *testing.T) *rawHook {
	h := &rawHook{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.reqs = append(h.reqs, rawReq{r.Header.Clone(), b})
		h.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *rawHook) got() []rawReq {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]rawReq(nil), h.reqs...)
}

// jsonObject decodes a JSON object keeping numbers as json.Number, so that
// 3 and "3" differ.
func jsonObject(t *testing.T, b []byte) map[string]any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("not a JSON object: %v: %s", err, b)
	}
	return m
}

// What the server accepts is delivered with the same attribute types and
// the same data form wherever the delivery format can express them: an
// integer or boolean extension stays a JSON number or boolean, and
// data_base64 stays data_base64 even when its bytes are valid UTF-8, on
// structured and batch webhooks and on the live tail, whichever ingress
// mode carried the event; a binary webhook gets the same bytes and
// Content-Type. Before, the hub stored events in NATS binary mode, which
// turned every extension into a string and forgot that data was binary.
func TestTypesAndDataFormArriveUnchanged(t *testing.T) {
	hooks := map[string]*rawHook{"binary": newRawHook(t), "structured": newRawHook(t), "batch": newRawHook(t)}
	cfg := hub.Config{DataDir: t.TempDir()}
	// FromStart: the subscriptions get every stored event even if they
	// subscribe after the first posts.
	for mode, h := range hooks {
		cfg.Subscriptions = append(cfg.Subscriptions, hub.SubscriptionConfig{Name: mode, Topic: "fidelity.>", URL: h.srv.URL, Mode: mode, FromStart: true})
	}
	s := start(t, cfg)
	items := sse(t, s.URL(), "fidelity.>")

	// The events as posted, in the JSON format; the binary-mode one is
	// what its headers and body mean.
	posted := map[string]string{
		"s-1": `{"specversion":"1.0","id":"s-1","source":"/f","type":"fidelity.structured","datacontenttype":"application/octet-stream","extbool":true,"extint":42,"extneg":-7,"extstr":"3","data_base64":"aGVsbG8="}`,
		"s-2": `{"specversion":"1.0","id":"s-2","source":"/f","type":"fidelity.structured","datacontenttype":"text/plain","extfalse":false,"data":"plain text"}`,
		"b-1": `{"specversion":"1.0","id":"b-1","source":"/f","type":"fidelity.batch","datacontenttype":"image/png","extint":0,"extbool":false,"data_base64":"dGV4dA=="}`,
		"b-2": `{"specversion":"1.0","id":"b-2","source":"/f","type":"fidelity.batch","datacontenttype":"application/json","extint":2147483647,"data":{"a":[1,true,null]}}`,
		"n-1": `{"specversion":"1.0","id":"n-1","source":"/f","type":"fidelity.binary","datacontenttype":"application/octet-stream","extstr":"x","data_base64":"aGVsbG8="}`,
	}
	post := func(ct string, body []byte, hdr map[string]string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, s.URL()+"/events", bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("POST %s: %d %s", ct, resp.StatusCode, b)
		}
	}
	post("application/cloudevents+json", []byte(posted["s-1"]), nil)
	post("application/cloudevents+json", []byte(posted["s-2"]), nil)
	post("application/cloudevents-batch+json", []byte("["+posted["b-1"]+","+posted["b-2"]+"]"), nil)
	post("application/octet-stream", []byte("hello"), map[string]string{
		"ce-specversion": "1.0", "ce-id": "n-1", "ce-source": "/f", "ce-type": "fidelity.binary", "ce-extstr": "x"})
	n := len(posted)

	check := func(where string, got []byte) {
		t.Helper()
		g := jsonObject(t, got)
		id, _ := g["id"].(string)
		want, ok := posted[id]
		if !ok {
			t.Fatalf("%s: unexpected event %s", where, got)
		}
		if w := jsonObject(t, []byte(want)); !reflect.DeepEqual(g, w) {
			t.Errorf("%s: event %s changed on its way:\n got %s\nwant %s", where, id, got, want)
		}
	}
	for i := 0; i < n; i++ {
		select {
		case it := <-items:
			check("live tail", it.Event)
		case <-time.After(30 * time.Second):
			t.Fatalf("live tail: %d of %d events", i, n)
		}
	}
	for _, mode := range []string{"structured", "batch", "binary"} {
		h := hooks[mode]
		waitFor(t, mode+" webhook deliveries", func() bool { return len(h.got()) >= n })
		for _, r := range h.got() {
			switch mode {
			case "structured":
				check("structured webhook", r.body)
			case "batch":
				var evs []json.RawMessage
				if err := json.Unmarshal(r.body, &evs); err != nil {
					t.Fatalf("batch webhook: %v: %s", err, r.body)
				}
				for _, e := range evs {
					check("batch webhook", e)
				}
			case "binary":
				w := jsonObject(t, []byte(posted[r.header.Get("Ce-Id")]))
				wantBody := []byte(nil)
				if d, ok := w["data"]; ok {
					wantBody, _ = json.Marshal(d)
					if s, ok := d.(string); ok {
						wantBody = []byte(s)
					}
				} else if d, ok := w["data_base64"].(string); ok {
					wantBody = base64Decode(t, d)
				}
				if ct := r.header.Get("Content-Type"); ct != w["datacontenttype"] {
					t.Errorf("binary webhook: event %v: Content-Type %q, want %v", w["id"], ct, w["datacontenttype"])
				}
				// JSON data may be re-spaced; compare it as JSON.
				if w["datacontenttype"] == "application/json" {
					if !reflect.DeepEqual(jsonObject(t, r.body), jsonObject(t, wantBody)) {
						t.Errorf("binary webhook: event %v: body %q, want %q", w["id"], r.body, wantBody)
					}
				} else if !bytes.Equal(r.body, wantBody) {
					t.Errorf("binary webhook: event %v: body %q, want %q", w["id"], r.body, wantBody)
				}
				for k, v := range w {
					switch k {
					case "data", "data_base64", "datacontenttype":
						continue
					}
					if got := r.header.Get("Ce-" + k); got != strings.Trim(jsonText(v), `"`) {
						t.Errorf("binary webhook: event %v: ce-%s %q, want %v", w["id"], k, got, v)
					}
				}
			}
		}
	}
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func base64Decode(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
