package hub_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/eventkit/eventkit/hub"
	"github.com/eventkit/eventkit/memory"
	ekprobe "github.com/eventkit/eventkit/probe"
)

// tagRef finds, in a tag, an attribute that loads or links something.
var tagRef = regexp.MustCompile(`(?i)<[a-z][^>]*\b(src|href|action|srcset|data)\s*=`)

// TestProbeFollowsCorrelationID is the done-when test of the probe: the
// events of one correlation id, published to three topics among others,
// come back in order; the Mermaid diagram draws them and the HTML page
// holds no external URL.
func TestProbeFollowsCorrelationID(t *testing.T) {
	s := start(t, hub.Config{DataDir: t.TempDir()})
	for _, p := range []struct{ id, topic, corr string }{
		{"1", "orders.created", "c-1"}, {"x", "orders.created", "c-2"},
		{"2", "payments.taken", "c-1"}, {"y", "payments.taken", ""},
		{"3", "shipping.started", "c-1"}, {"z", "shipping.started", "c-10"},
	} {
		hdr := []string{"ce-source", "https://shop.example.com/" + p.topic}
		if p.corr != "" {
			hdr = append(hdr, "ce-correlationid", p.corr)
		}
		if r := postEvent(t, s.URL(), p.id, p.topic, hdr...); r.StatusCode != http.StatusNoContent {
			t.Fatalf("POST %s: %d", p.id, r.StatusCode)
		}
	}
	code, b := call(t, http.MethodGet, s.URL()+"/probe?correlationid=c-1", "")
	var tl ekprobe.Timeline
	if code != http.StatusOK || json.Unmarshal(b, &tl) != nil {
		t.Fatalf("GET /probe: %d %s", code, b)
	}
	var got []string
	for _, it := range tl.Items {
		got = append(got, it.Topic)
	}
	if strings.Join(got, " ") != "orders.created payments.taken shipping.started" || tl.Key.CorrelationID != "c-1" {
		t.Fatalf("timeline %v (%s)", got, b)
	}
	code, b = call(t, http.MethodGet, s.URL()+"/probe?correlationid=c-1&format=mermaid", "")
	if m := string(b); code != http.StatusOK || !strings.HasPrefix(m, "sequenceDiagram\n") || strings.Count(m, "->>") != 3 {
		t.Errorf("mermaid: %d\n%s", code, b)
	}
	code, b = call(t, http.MethodGet, s.URL()+"/probe?correlationid=c-1&format=html", "")
	page := string(b)
	if code != http.StatusOK || !strings.Contains(page, "shipping.started") {
		t.Fatalf("html: %d %s", code, b)
	}
	if loc := tagRef.FindStringIndex(page); loc != nil {
		t.Errorf("the page links something: %q", page[loc[0]:loc[1]])
	}
	if strings.Contains(page, "://") {
		t.Errorf("the page holds a URL")
	}
	for _, q := range []string{"", "correlationid=a&subject=b", "correlationid=a&format=pdf", "subject=a&since=yesterday"} {
		if code, _ := call(t, http.MethodGet, s.URL()+"/probe?"+q, ""); code != http.StatusBadRequest {
			t.Errorf("GET /probe?%s: %d, want 400", q, code)
		}
	}
}

// TestInspectionNeedsTheEmbeddedStore: on another broker the dead letters
// and the probe answer 501, as problem+json.
func TestInspectionNeedsTheEmbeddedStore(t *testing.T) {
	bus := memory.New()
	s := start(t, hub.Config{}, hub.WithBroker(bus, bus))
	for _, path := range []string{"/deadletters", "/deadletters/1", "/probe?subject=a"} {
		code, b := call(t, http.MethodGet, s.URL()+path, "")
		if code != http.StatusNotImplemented || !strings.Contains(string(b), `"status":501`) {
			t.Errorf("GET %s: %d %s", path, code, b)
		}
	}
}
