package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/eventkit/eventkit/hub"
)

// TestConsole drives every view of the console in headless Chromium
// against an in-process hub: the token is required, then each view shows
// the server's data; a tail filter keeps only what it names; a dead letter
// is re-driven with a click.
func TestConsole(t *testing.T) {
	b := newBrowser(t)
	c := startConsole(t)
	for i := range 3 {
		c.publish(t, fmt.Sprint("o-", i), "order.created", fmt.Sprint("order-", i), fmt.Sprintf(`{"order":%d,"items":[{"sku":"A-1","qty":2}]}`, i))
	}
	c.publish(t, "p-0", "order.paid", "order-0", `{"order":0,"amount":42.5}`)
	c.publish(t, "u-0", "user.joined", "user-7", `{"user":7}`)
	// billing's webhook answers 410: four dead letters.
	waitFor(t, "4 dead letters of billing", func() bool {
		var out hub.ConsoleSubscriptions
		return getJSON(c.s.URL()+"/console/api/subscriptions", &out) == nil &&
			len(out.Subscriptions) == 1 && out.Subscriptions[0].Outcomes["dead_lettered"] == 4
	})

	t.Run("token", func(t *testing.T) { checkToken(t, b.on(t), c) })
	t.Run("topics", func(t *testing.T) { checkTopics(t, b.on(t)) })
	t.Run("subscriptions", func(t *testing.T) { checkSubscriptions(t, b.on(t)) })
	t.Run("types", func(t *testing.T) { checkTypes(t, b.on(t)) })
	t.Run("tail", func(t *testing.T) { checkTail(t, b.on(t), c) })
	t.Run("events", func(t *testing.T) { checkEvents(t, b.on(t)) })
	t.Run("deadletters", func(t *testing.T) { checkDeadLetters(t, b.on(t), c) })
}

// getJSON reads a console API answer with the token.
func getJSON(url string, v any) error {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func checkToken(t *testing.T, b *browser, c *console) {
	// Without the token, the console shows no data: its API answers 401
	// and the UI asks for the token.
	for _, p := range []string{"/console/api/topics", "/console/api/subscriptions", "/discovery", "/events/stream"} {
		if code, _ := request(c.url, http.MethodGet, p, "", ""); code != http.StatusUnauthorized {
			t.Errorf("GET %s without the token: %d, want 401", p, code)
		}
	}
	b.do("open the console", chromedp.Navigate(c.url+"/console/"))
	b.waitTrue("the token form", `!document.querySelector("#login").hidden`)
	if rows := b.cells("#topics-table"); len(rows) != 0 {
		t.Errorf("topics shown without the token: %v", rows)
	}
	b.shot("console-token")
	b.do("a wrong token", chromedp.SendKeys(chromedp.CSS("#token"), "wrong"), chromedp.Click(chromedp.CSS(`#login-form button`)))
	b.waitTrue("the wrong token refused", `!document.querySelector("#login").hidden && document.querySelector("#status").textContent.includes("not valid")`)
	b.do("the token", chromedp.SendKeys(chromedp.CSS("#token"), token), chromedp.Click(chromedp.CSS(`#login-form button`)))
	b.waitTrue("the topics after the token", `document.body.dataset.loaded === "topics"`)
	if tok := eval[string](b, `sessionStorage.getItem("eventkit.token")`); tok != token {
		t.Errorf("sessionStorage holds %q", tok)
	}
}

func checkTopics(t *testing.T, b *browser) {
	b.goTo("topics")
	// topic, stored, events/s, accepted, accepted bytes, mean size, last
	want := map[string]string{"order.created": "3", "order.paid": "1", "user.joined": "1", "deadletter.billing": "4"}
	for topic, stored := range want {
		r := b.rowWith("#topics-table", 0, topic)
		if r == nil || r[1] != stored {
			t.Errorf("topic %s: row %q, want %s stored", topic, r, stored)
			continue
		}
		if topic == "deadletter.billing" {
			continue // not through the ingress
		}
		if r[3] != stored || r[2] == "0.00" || !strings.HasSuffix(r[5], " B") {
			t.Errorf("topic %s: row %q, want %s accepted, a rate and a mean size", topic, r, stored)
		}
	}
	if s := eval[string](b, `document.querySelector("#stream-summary").textContent`); !strings.Contains(s, "9 events") {
		t.Errorf("stream summary %q, want 9 events (5 published, 4 dead letters)", s)
	}
	b.shot("console-topics")
}

func checkSubscriptions(t *testing.T, b *browser) {
	b.goTo("subscriptions")
	for field, want := range map[string]string{"dead_lettered": "4", "failed": "4", "delivered": "0", "lag": "0", "ack_pending": "0"} {
		got := eval[string](b, `document.querySelector('.sub[data-id="billing"] [data-field="`+field+`"]').textContent`)
		if got != want {
			t.Errorf("billing %s: %q, want %s", field, got, want)
		}
	}
	// The heatmap holds the 4 attempts.
	n := eval[int](b, `Array.from(document.querySelectorAll('.sub[data-id="billing"] .heatmap td')).reduce((n, td) => n + Number(td.dataset.count), 0)`)
	if n != 4 {
		t.Errorf("heatmap of %d deliveries, want 4", n)
	}
	b.shot("console-subscriptions")
}

func checkTypes(t *testing.T, b *browser) {
	b.goTo("types")
	for typ, count := range map[string]string{"order.created": "3", "order.paid": "1", "user.joined": "1"} {
		if r := b.rowWith("#types-table", 1, typ); r == nil || r[0] != "/shop" || r[2] != count {
			t.Errorf("type %s: row %q, want source /shop, count %s", typ, r, count)
		}
	}
	b.do("open the example of order.paid", chromedp.Click(chromedp.CSS(`#types-table tr[data-type="order.paid"]`)))
	b.waitTrue("the example", `!document.querySelector("#detail").hidden`)
	if got := eval[string](b, `document.querySelector("#detail-data").textContent`); got != "{\n  \"order\": 0,\n  \"amount\": 42.5\n}" {
		t.Errorf("example data %q, want it pretty-printed", got)
	}
}

func checkTail(t *testing.T, b *browser, c *console) {
	b.goTo("tail")
	b.waitTrue("the tail live", `document.querySelector("#tail-state").dataset.state === "live"`)
	b.setInput("#tail-topic", "invoice.>")
	b.setInput("#tail-filter", "type=invoice.paid subject=inv-9")
	b.do("apply the filter", chromedp.Click(chromedp.CSS(`#tail-form button[type="submit"]`)))
	b.waitTrue("the filtered tail live", `document.querySelector("#tail-state").dataset.state === "live" && document.querySelector("#tail-state").textContent.includes("type=invoice.paid")`)
	c.publish(t, "t-1", "invoice.created", "inv-9", `{"invoice":9}`)
	c.publish(t, "t-2", "invoice.paid", "inv-8", `{"invoice":8}`)
	c.publish(t, "t-3", "invoice.paid", "inv-9", `{"invoice":9,"amount":10,"lines":[{"sku":"B-2"}]}`)
	b.waitTrue("t-3 in the tail", `document.querySelector('#tail-table tr[data-id="t-3"]') !== null`)
	// The events are streamed in order: t-1 and t-2 came before t-3.
	if ids := eval[[]string](b, `Array.from(document.querySelectorAll("#tail-table tbody tr")).map(tr => tr.dataset.id)`); !slices.Equal(ids, []string{"t-3"}) {
		t.Errorf("tail shows %v, want only t-3", ids)
	}
	b.do("open t-3", chromedp.Click(chromedp.CSS(`#tail-table tr[data-id="t-3"]`)))
	b.waitTrue("t-3's detail", `!document.querySelector("#detail").hidden`)
	want := "{\n  \"invoice\": 9,\n  \"amount\": 10,\n  \"lines\": [\n    {\n      \"sku\": \"B-2\"\n    }\n  ]\n}"
	if got := eval[string](b, `document.querySelector("#detail-data").textContent`); got != want {
		t.Errorf("t-3's data %q, want %q", got, want)
	}
	attrs := eval[string](b, `document.querySelector("#detail-attrs").textContent`)
	for _, s := range []string{"topicinvoice.paid", "subjectinv-9", "trace id4bf92f3577b34da6a3ce929d0e0e4736"} {
		if !strings.Contains(attrs, s) {
			t.Errorf("t-3's attributes %q lack %q", attrs, s)
		}
	}
	b.shot("console-tail")
}

func checkEvents(t *testing.T, b *browser) {
	b.goTo("topics")
	b.setInput("#events-topic", "order.created")
	b.setInput("#events-filter", "type=order.created")
	b.goTo("events")
	rows := b.cells("#events-table")
	var ids []string
	for _, r := range rows {
		ids = append(ids, r[5])
		if r[3] != "order.created" {
			t.Errorf("row %q is not of type order.created", r)
		}
	}
	if !slices.Equal(ids, []string{"o-0", "o-1", "o-2"}) {
		t.Errorf("stored order.created events %v, want o-0 o-1 o-2", ids)
	}
	b.do("open o-1", chromedp.Click(chromedp.CSS(`#events-table tbody tr:nth-child(2)`)))
	b.waitTrue("o-1's detail", `!document.querySelector("#detail").hidden && document.querySelector("#detail-attrs").textContent.includes("o-1")`)
	want := "{\n  \"order\": 1,\n  \"items\": [\n    {\n      \"sku\": \"A-1\",\n      \"qty\": 2\n    }\n  ]\n}"
	if got := eval[string](b, `document.querySelector("#detail-data").textContent`); got != want {
		t.Errorf("o-1's data %q, want %q", got, want)
	}
	b.shot("console-event")
}

func checkDeadLetters(t *testing.T, b *browser, c *console) {
	b.goTo("deadletters")
	rows := b.cells("#dl-table")
	if len(rows) != 4 {
		t.Fatalf("dead letters %q, want 4", rows)
	}
	// position, subscription, original topic, type, id, attempts, error
	var target []string
	for _, r := range rows {
		if r[1] != "billing" || r[6] == "" {
			t.Errorf("dead letter %q: want subscription billing and an error", r)
		}
		if r[4] == "p-0" {
			target = r
		}
	}
	if target == nil || target[2] != "order.paid" {
		t.Fatalf("no dead letter p-0 from order.paid in %q", rows)
	}
	b.shot("console-deadletters")
	c.hook.failing.Store(false)
	b.do("re-drive p-0", chromedp.Click(chromedp.CSS(`#dl-table tr[data-position="`+target[0]+`"] button.redrive`)))
	b.waitTrue("p-0 re-driven", `document.querySelector("#status").textContent.startsWith("re-driven p-0")`)
	waitFor(t, "p-0 delivered to the webhook", func() bool { return c.hook.has("p-0") })
	b.waitTrue("p-0 gone from the list", `document.querySelectorAll("#dl-table tbody tr").length === 3 && !document.querySelector('#dl-table tr[data-position="`+target[0]+`"]')`)
}
