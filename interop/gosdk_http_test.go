package interop

import (
	"context"
	"net/http"
	"testing"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/client"
	"github.com/cloudevents/sdk-go/v2/protocol"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/eventkit/eventkit/hub"
)

// The Go SDK's HTTP client posts to "eventkit serve" in binary, structured
// and batch mode; eventkit stores the events and its subscriber reads them
// with every attribute, type and data byte as the SDK sent them.
func TestInteropGoSDKHTTPToServe(t *testing.T) {
	s := startHub(t)
	sub := subscribe(t, s.Subscriber(), "com.example.interop.>")

	p, err := cehttp.New(cehttp.WithTarget(s.URL() + "/events"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"binary", "structured"} {
		ctx := context.Background()
		if mode == "structured" {
			ctx = binding.WithForceStructured(ctx)
		} else {
			ctx = binding.WithForceBinary(ctx)
		}
		want := testEvents("go-http-" + mode)
		if mode == "binary" {
			// The Go SDK does not percent-encode header values.
			want = withoutPercent(want)
		}
		for _, e := range want {
			if res := c.Send(ctx, e); !isACK(res) {
				t.Fatalf("%s: Send %s: %v", mode, e.ID(), res)
			}
		}
		checkEvents(t, "Go SDK "+mode+" → eventkit serve", modeComparison(mode), want, receive(t, sub, len(want)))
	}

	// Batch: the SDK's batch request (application/cloudevents-batch+json).
	want := testEvents("go-http-batch")
	req, err := cehttp.NewHTTPRequestFromEvents(context.Background(), s.URL()+"/events", want)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("batch POST: %s", resp.Status)
	}
	checkEvents(t, "Go SDK batch → eventkit serve", modeComparison("batch"), want, receive(t, sub, len(want)))
}

func isACK(res error) bool {
	return protocol.IsACK(res)
}

// eventkit serve's webhooks (binary, structured, batch) deliver to a
// receiver that decodes them with the Go SDK.
func TestInteropServeWebhooksToGoSDK(t *testing.T) {
	one := func(r *http.Request) ([]described, error) {
		e, err := cehttp.NewEventFromHTTPRequest(r)
		if err != nil {
			return nil, err
		}
		return []described{describe(*e)}, nil
	}
	batch := func(r *http.Request) ([]described, error) {
		evs, err := cehttp.NewEventsFromHTTPRequest(r)
		if err != nil {
			return nil, err
		}
		return describeAll(evs), nil
	}
	type hook struct {
		mode string
		cmp  comparison
	}
	hooks := []hook{
		// In binary mode every extension is a header string, and the SDK
		// does not know the extension types: it keeps strings.
		// The Go SDK does not percent-decode header values.
		{"binary", comparison{untyped: true, pctEncoded: true}},
		// The JSON format tells integers and booleans from strings, and
		// nothing else.
		{"structured", comparison{jsonLike: true}},
		{"batch", comparison{jsonLike: true}},
	}
	var subs []hub.SubscriptionConfig
	cols := map[string]*collector{}
	for _, h := range hooks {
		dec := one
		if h.mode == "batch" {
			dec = batch
		}
		srv, col := webhook(t, dec)
		cols[h.mode] = col
		subs = append(subs, hub.SubscriptionConfig{Name: h.mode, Topic: "interop.>", URL: srv.URL, Mode: h.mode})
	}
	s := startHub(t, subs...)
	want := testEvents("go-webhook")
	publish(t, s.Publisher(), "interop.go", want...)
	for _, h := range hooks {
		checkEvents(t, "eventkit serve "+h.mode+" webhook → Go SDK", h.cmp, want, cols[h.mode].wait(t, len(want), h.mode+" webhook"))
	}
}
