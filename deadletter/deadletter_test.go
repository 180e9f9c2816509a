package deadletter_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/deadletter"
	"github.com/eventkit/eventkit/inspect/stored"
)

// memStore is a Store in memory: one log of topics and events, dead
// letters under "deadletter.<subscription>".
type memStore struct {
	mu    sync.Mutex
	seq   int
	items []deadletter.Item
	keys  map[string]deadletter.Item
	fail  error // Republish's error
}

func (m *memStore) add(t *testing.T, topic string, e event.Event) deadletter.Item {
	t.Helper()
	b, err := eventkit.MarshalEvent(e)
	if err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seq++
	it := deadletter.Item{RawItem: stored.RawItem{Position: strconv.Itoa(m.seq), Topic: topic, Stored: time.Now(), Event: b}}
	if s, ok := strings.CutPrefix(topic, "deadletter."); ok {
		it.Subscription = s
	}
	m.items = append(m.items, it)
	return it
}

func (m *memStore) List(_ context.Context, q deadletter.Query) ([]deadletter.Item, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	after, _ := strconv.Atoi(q.After)
	var out []deadletter.Item
	for _, it := range m.items {
		p, _ := strconv.Atoi(it.Position)
		if p <= after || it.Subscription == "" || (q.Subscription != "" && it.Subscription != q.Subscription) {
			continue
		}
		if len(out) == q.Limit {
			break
		}
		out = append(out, it)
	}
	return out, nil
}

func (m *memStore) Get(_ context.Context, pos string) (deadletter.Item, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, it := range m.items {
		if it.Position == pos && it.Subscription != "" {
			return it, nil
		}
	}
	return deadletter.Item{}, deadletter.ErrNotFound
}

func (m *memStore) Delete(_ context.Context, pos string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, it := range m.items {
		if it.Position == pos && it.Subscription != "" {
			m.items = slices.Delete(m.items, i, i+1)
			return nil
		}
	}
	return deadletter.ErrNotFound
}

func (m *memStore) Republish(_ context.Context, topic string, e event.Event, key string) (deadletter.Item, error) {
	if m.fail != nil {
		return deadletter.Item{}, m.fail
	}
	b, err := eventkit.MarshalEvent(e)
	if err != nil {
		return deadletter.Item{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if it, ok := m.keys[key]; ok {
		return it, nil
	}
	m.seq++
	it := deadletter.Item{RawItem: stored.RawItem{Position: strconv.Itoa(m.seq), Topic: topic, Stored: time.Now(), Event: b}}
	m.items = append(m.items, it)
	if m.keys == nil {
		m.keys = map[string]deadletter.Item{}
	}
	m.keys[key] = it
	return it, nil
}

// published counts the events stored on topic.
func (m *memStore) published(topic string) []deadletter.Item {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []deadletter.Item
	for _, it := range m.items {
		if it.Topic == topic {
			out = append(out, it)
		}
	}
	return out
}

func deadLetterOf(id, topic, sub string) event.Event {
	e := event.New()
	e.SetID(id)
	e.SetSource("/test")
	e.SetType("order.created")
	e.SetExtension("correlationid", "c-1")
	_ = e.SetData("application/json", map[string]int{"n": 1})
	e.SetExtension(deadletter.ExtTopic, topic)
	e.SetExtension(deadletter.ExtHandler, sub)
	e.SetExtension(deadletter.ExtAttempts, int32(3))
	e.SetExtension(deadletter.ExtError, "503 from the webhook")
	e.SetExtension(deadletter.ExtTime, time.Now().UTC())
	return e
}

func TestPrepare(t *testing.T) {
	e := deadLetterOf("id-1", "orders", "hook")
	topic, out, err := deadletter.Prepare(e)
	if err != nil {
		t.Fatal(err)
	}
	if topic != "orders" || out.ID() != "id-1" || out.Source() != "/test" || out.Type() != "order.created" {
		t.Fatalf("topic %q, event %s", topic, out)
	}
	for _, x := range []string{deadletter.ExtTopic, deadletter.ExtHandler, deadletter.ExtAttempts, deadletter.ExtError, deadletter.ExtTime} {
		if _, ok := out.Extensions()[x]; ok {
			t.Errorf("re-driven event keeps %s", x)
		}
	}
	if got := deadletter.RedriveCount(&out); got != 1 {
		t.Errorf("redrivecount %d, want 1", got)
	}
	if out.Extensions()["correlationid"] != "c-1" || string(out.Data()) != `{"n":1}` {
		t.Errorf("re-driven event lost its extension or data: %s", out)
	}
	if !deadletter.For(&out, "hook") || deadletter.For(&out, "other") {
		t.Error("redrivefor does not single out the subscription")
	}
	if _, ok := e.Extensions()[deadletter.ExtRedriveCount]; ok {
		t.Error("Prepare changed its argument")
	}
	// Dead-lettered again (the extensions added anew), then re-driven again.
	out.SetExtension(deadletter.ExtTopic, "orders")
	_, again, err := deadletter.Prepare(out)
	if err != nil || deadletter.RedriveCount(&again) != 2 {
		t.Fatalf("second re-drive: count %d, err %v", deadletter.RedriveCount(&again), err)
	}
	plain := event.New()
	if _, _, err := deadletter.Prepare(plain); !errors.Is(err, deadletter.ErrNotDeadLetter) {
		t.Errorf("an event without dlqtopic: %v", err)
	}
}

func TestRedrive(t *testing.T) {
	ctx := context.Background()
	m := &memStore{}
	dl := m.add(t, "deadletter.hook", deadLetterOf("id-1", "orders", "hook"))
	it, repeated, err := deadletter.Redrive(ctx, m, dl.Position)
	if err != nil || repeated {
		t.Fatal(err)
	}
	if it.Topic != "orders" {
		t.Errorf("re-driven to %q", it.Topic)
	}
	e, _ := it.Decode()
	if e.ID() != "id-1" || deadletter.RedriveCount(&e) != 1 {
		t.Errorf("re-driven event %s", e)
	}
	if left, _ := m.List(ctx, deadletter.Query{Limit: 10}); len(left) != 0 {
		t.Errorf("dead letters left: %v", left)
	}
	// Again (a client that did not see the answer): the dead letter is gone.
	if _, _, err := deadletter.Redrive(ctx, m, dl.Position); !errors.Is(err, deadletter.ErrNotFound) {
		t.Errorf("second re-drive: %v", err)
	}
	if n := len(m.published("orders")); n != 1 {
		t.Errorf("published %d times", n)
	}
}

func TestRedriveFailureKeepsTheDeadLetter(t *testing.T) {
	ctx := context.Background()
	m := &memStore{fail: errors.New("broker down")}
	dl := m.add(t, "deadletter.hook", deadLetterOf("id-1", "orders", "hook"))
	if _, _, err := deadletter.Redrive(ctx, m, dl.Position); err == nil {
		t.Fatal("no error")
	}
	if _, err := m.Get(ctx, dl.Position); err != nil {
		t.Fatalf("the dead letter is gone after a failed re-drive: %v", err)
	}
}

func TestConcurrentRedrivesPublishOnce(t *testing.T) {
	ctx := context.Background()
	m := &memStore{}
	dl := m.add(t, "deadletter.hook", deadLetterOf("id-1", "orders", "hook"))
	var wg sync.WaitGroup
	var firsts atomic.Int32
	for range 8 {
		wg.Go(func() {
			if _, repeated, err := deadletter.Redrive(ctx, m, dl.Position); err == nil && !repeated {
				firsts.Add(1)
			}
		})
	}
	wg.Wait()
	if firsts.Load() != 1 {
		t.Errorf("%d re-drives report they re-drove it, want 1", firsts.Load())
	}
	if n := len(m.published("orders")); n != 1 {
		t.Errorf("published %d times", n)
	}
}

func TestRedriveAllAndPurge(t *testing.T) {
	ctx := context.Background()
	m := &memStore{}
	for i := range 2500 {
		sub := "a"
		if i%2 == 1 {
			sub = "b"
		}
		m.add(t, "deadletter."+sub, deadLetterOf("id-"+strconv.Itoa(i), "orders", sub))
	}
	n, err := deadletter.RedriveAll(ctx, m, "a")
	if err != nil || n != 1250 {
		t.Fatalf("RedriveAll: %d, %v", n, err)
	}
	if left, _ := m.List(ctx, deadletter.Query{Subscription: "a", Limit: 10}); len(left) != 0 {
		t.Errorf("a has dead letters left: %d", len(left))
	}
	n, err = deadletter.Purge(ctx, m, "")
	if err != nil || n != 1250 {
		t.Fatalf("Purge: %d, %v", n, err)
	}
	if left, _ := m.List(ctx, deadletter.Query{Limit: 10}); len(left) != 0 {
		t.Errorf("dead letters left: %d", len(left))
	}
	if n := len(m.published("orders")); n != 1250 {
		t.Errorf("published %d", n)
	}
}

// TestItemJSON: a dead letter's item is the inspection item's JSON object
// with the subscription after it; Decode returns its event.
func TestItemJSON(t *testing.T) {
	raw := json.RawMessage(`{"specversion":"1.0","id":"e-1","source":"/s","type":"t"}`)
	it := deadletter.Item{RawItem: stored.RawItem{Position: "4", Topic: "deadletter.hook", Stored: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Event: raw}, Subscription: "hook"}
	b, err := json.Marshal(it)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"position":"4","topic":"deadletter.hook","stored":"2026-01-02T03:04:05Z","event":` + string(raw) + `,"subscription":"hook"}`
	if string(b) != want {
		t.Fatalf("JSON\n%s\nwant\n%s", b, want)
	}
	var back deadletter.Item
	if err := json.Unmarshal(b, &back); err != nil || back.Subscription != "hook" || back.Position != "4" || !back.Stored.Equal(it.Stored) {
		t.Fatalf("read back %+v, %v", back, err)
	}
	if e, err := back.Decode(); err != nil || e.ID() != "e-1" {
		t.Fatalf("Decode: %v, %v", e, err)
	}
}
