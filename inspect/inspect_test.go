package inspect_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/inspect"
	"github.com/eventkit/eventkit/memory"
)

func newLogEnv(t *testing.T) *env {
	l := newStoreLog()
	return &env{pub: l, sub: l, ns: "t", idle: 200 * time.Millisecond, cut: func() time.Time {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.at = l.at.Add(time.Millisecond)
		return l.at
	}}
}

func TestReadReplayStoreLog(t *testing.T) { testReadReplay(t, newLogEnv) }

// TestReadEndsWhileEventsArrive: with events published all the time, the
// read of the current end still ends (the events stored after it started
// end it, not a quiet topic).
func TestReadEndsWhileEventsArrive(t *testing.T) {
	l := newStoreLog()
	e := &env{pub: l, sub: l, ns: "t"}
	e.publish(t, "t.a", numbered("old", 5, "x")...)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			l.setTime(time.Now()) // stored after the read started
			_ = e.pub.Publish(ctx, "t.a", newEvent("new"+string(rune('0'+i%10)), "x", ""))
			time.Sleep(time.Millisecond) // a steady producer, not a wait for the test
		}
	}()
	defer func() { cancel(); wg.Wait() }()
	rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer rcancel()
	n := 0
	_, err := inspect.Read(rctx, e.sub, inspect.Query{Idle: time.Hour}, func(inspect.Item) error { n++; return nil })
	if err != nil || n < 5 {
		t.Fatalf("read: %d events, %v", n, err)
	}
}

func TestReadFnErrorEndsRead(t *testing.T) {
	e := newLogEnv(t)
	e.publish(t, "t.a", numbered("e", 3, "x")...)
	boom := errors.New("boom")
	_, err := inspect.Read(context.Background(), e.sub, inspect.Query{Idle: time.Second}, func(inspect.Item) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want fn's error", err)
	}
}

func TestQueryRefused(t *testing.T) {
	now := time.Now()
	for _, q := range []inspect.Query{
		{Topic: "a..b"},
		{SQL: "type = = 'x'"},
		{Limit: -1},
		{Since: now, Until: now},
		{Filter: map[string]string{"": "x"}},
	} {
		if _, err := q.Compile(); !errors.Is(err, inspect.ErrInvalidQuery) {
			t.Errorf("%+v: %v, want ErrInvalidQuery", q, err)
		}
		if _, err := inspect.Read(context.Background(), newStoreLog(), q, nil); !errors.Is(err, inspect.ErrInvalidQuery) {
			t.Errorf("Read %+v: %v, want ErrInvalidQuery", q, err)
		}
	}
}

// TestReadNeedsSeek: a transport without the seek capabilities is
// refused with a CapabilityError, not read from its next event.
func TestReadNeedsSeek(t *testing.T) {
	bus := memory.New()
	defer bus.Close()
	_, err := inspect.Read(context.Background(), bus, inspect.Query{}, func(inspect.Item) error { return nil })
	var ce *eventkit.CapabilityError
	if !errors.As(err, &ce) || !ce.Missing.Has(eventkit.CapStartAtTime) {
		t.Fatalf("got %v, want a CapabilityError naming start-at-time", err)
	}
}

func TestItemJSON(t *testing.T) {
	it := inspect.Item{Position: "7", Topic: "a.b", Stored: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Event: newEvent("x1", "t", "s")}
	b, err := json.Marshal(it)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	_ = json.Unmarshal(b, &raw)
	if string(raw["position"]) != `"7"` || string(raw["stored"]) != `"2026-01-02T03:04:05.000000006Z"` || raw["event"][0] != '{' {
		t.Fatalf("item JSON %s", b)
	}
	var back inspect.Item
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Position != "7" || !back.Stored.Equal(it.Stored) || back.Event.ID() != "x1" || back.Event.Extensions()["shard"] != "s1" {
		t.Fatalf("round trip: %+v", back)
	}
}
