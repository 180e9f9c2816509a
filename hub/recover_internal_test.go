package hub

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
)

// TestJetStreamOutOfSpaceRecovers: when nats-server disables JetStream
// because its store ran out of space (what it does on "no space left on
// device"), a publish is answered 507 at once, not after the publish
// timeout; /healthz and /readyz say so; once the file system has room
// again, JetStream is enabled again by itself and what was stored before
// is still there.
func TestJetStreamOutOfSpaceRecovers(t *testing.T) {
	s, err := New(Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0"}, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	post := func(id string) int {
		for deadline := time.Now().Add(30 * time.Second); ; {
			req, _ := http.NewRequest(http.MethodPost, s.URL()+"/events", strings.NewReader(`{}`))
			for k, v := range map[string]string{"Content-Type": "application/json", "ce-specversion": "1.0", "ce-id": id, "ce-source": "/s", "ce-type": "oos.t"} {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
				return resp.StatusCode
			}
			if time.Now().After(deadline) {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond) // the listener is not serving yet
		}
	}
	if code := post("before"); code != http.StatusNoContent {
		t.Fatalf("before: %d", code)
	}
	var free atomic.Bool // the simulated file system's state
	s.js.free = func(dir string) (uint64, error) {
		if !free.Load() {
			return 0, nil
		}
		return freeBytes(dir)
	}
	if err := s.js.emb.Server().ShutdownJetStream(); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if code := post("during"); code != http.StatusInsufficientStorage {
		t.Fatalf("with JetStream disabled: %d, want 507", code)
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Fatalf("the 507 took %v", d)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(s.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), "event store full") {
			t.Fatalf("%s with JetStream disabled: %d %s", path, resp.StatusCode, b)
		}
	}
	free.Store(true)
	deadline := time.Now().Add(30 * time.Second)
	for post("after") != http.StatusNoContent {
		if time.Now().After(deadline) {
			t.Fatal("JetStream not enabled again once the store had room")
		}
		time.Sleep(100 * time.Millisecond) // re-enabling is tried at most once a second
	}
	if n := storedCount(t, s, "oos.t"); n != 2 {
		t.Fatalf("%d events stored, want 2 (before and after)", n)
	}
}

// storedCount counts the events stored under pattern, up to the one
// with id "after".
func storedCount(t *testing.T, s *Server, pattern string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sub, err := s.Subscriber().Subscribe(ctx, pattern, eventkit.FromStart())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for n := 0; ; {
		select {
		case m := <-sub.Messages():
			n++
			_ = m.Ack()
			if m.Event.ID() == "after" {
				return n
			}
		case <-ctx.Done():
			return n
		}
	}
}
