package hub_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/hub"
	"github.com/eventkit/eventkit/memory"
)

func discover(t *testing.T, base, query string) hub.Discovery {
	t.Helper()
	return getJSON[hub.Discovery](t, base+"/discovery"+query)
}

// TestDiscoveryListsTypesWithExamples: the event types accepted, per
// source, counted, with the first event of each as example.
func TestDiscoveryListsTypesWithExamples(t *testing.T) {
	bus := memory.New()
	s := start(t, hub.Config{}, hub.WithBroker(bus, bus))
	for _, p := range [][3]string{{"1", "orders.created", "/a"}, {"2", "orders.created", "/a"}, {"3", "orders.created", "/b"}, {"4", "orders.paid", "/a"}} {
		if r := postEvent(t, s.URL(), p[0], p[1], "ce-source", p[2]); r.StatusCode != http.StatusNoContent {
			t.Fatalf("POST: %d", r.StatusCode)
		}
	}
	d := discover(t, s.URL(), "")
	var got []string
	for _, ty := range d.Types {
		e, err := eventkit.UnmarshalEvent(ty.Example)
		if err != nil {
			t.Fatalf("example of %s %s: %v", ty.Source, ty.Type, err)
		}
		got = append(got, fmt.Sprintf("%s %s count=%d example=%s", ty.Source, ty.Type, ty.Count, e.ID()))
		if ty.FirstSeen.IsZero() || ty.LastSeen.Before(ty.FirstSeen) || ty.ExampleDataOmitted {
			t.Errorf("%+v", ty)
		}
	}
	want := []string{"/a orders.created count=2 example=1", "/a orders.paid count=1 example=4", "/b orders.created count=1 example=3"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("types %q, want %q", got, want)
	}
	if d.MaxTypes != hub.DefaultDiscoveryMaxTypes || d.UntrackedEvents != 0 {
		t.Fatalf("maxtypes %d untracked %d", d.MaxTypes, d.UntrackedEvents)
	}
	if d := discover(t, s.URL(), "?source=/a&type=orders.paid"); len(d.Types) != 1 || d.Types[0].Type != "orders.paid" {
		t.Fatalf("selected: %+v", d.Types)
	}
}

// TestDiscoveryBounded: beyond max_types, events of new types are counted,
// not kept; an example larger than max_example_bytes loses its data.
func TestDiscoveryBounded(t *testing.T) {
	bus := memory.New()
	s := start(t, hub.Config{Discovery: hub.DiscoveryConfig{MaxTypes: 2, MaxExampleBytes: 200}}, hub.WithBroker(bus, bus))
	for i, typ := range []string{"a", "b", "c", "a", "d", "c"} {
		postEvent(t, s.URL(), string(rune('0'+i)), typ)
	}
	postBig(t, s.URL())
	d := discover(t, s.URL(), "")
	if len(d.Types) != 2 || d.Types[0].Type != "a" || d.Types[0].Count != 2 || d.Types[1].Type != "b" {
		t.Fatalf("types %+v, want a (2) and b", d.Types)
	}
	if d.UntrackedEvents != 4 || d.MaxTypes != 2 {
		t.Fatalf("untracked %d (want 4: c, d, c, big), maxtypes %d", d.UntrackedEvents, d.MaxTypes)
	}

	bus2 := memory.New()
	s2 := start(t, hub.Config{Discovery: hub.DiscoveryConfig{MaxExampleBytes: 200}}, hub.WithBroker(bus2, bus2))
	postBig(t, s2.URL())
	d = discover(t, s2.URL(), "")
	if len(d.Types) != 1 || !d.Types[0].ExampleDataOmitted || strings.Contains(string(d.Types[0].Example), "xxx") || len(d.Types[0].Example) > 200 {
		t.Fatalf("big example: %+v", d.Types)
	}
	if e, err := eventkit.UnmarshalEvent(d.Types[0].Example); err != nil || e.ID() != "big" {
		t.Fatalf("big example: %v %v", e, err)
	}
}

// postBig posts an event "big" whose data is 300 bytes.
func postBig(t *testing.T, base string) {
	t.Helper()
	big := `{"n":"` + strings.Repeat("x", 300) + `"}`
	req, _ := http.NewRequest(http.MethodPost, base+"/events", strings.NewReader(big))
	for k, v := range map[string]string{"Content-Type": "application/json", "ce-specversion": "1.0", "ce-id": "big", "ce-source": "/big", "ce-type": "big"} {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST big: %d", resp.StatusCode)
	}
}
