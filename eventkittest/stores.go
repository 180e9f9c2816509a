package eventkittest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventkit/eventkit/dedup"
	"github.com/eventkit/eventkit/es"
)

// TestDedupStore runs the conformance suite for a dedup.Store.
// newStore returns an empty store for each test (isolated: unique names).
func TestDedupStore(t *testing.T, newStore func(t *testing.T) dedup.Store) {
	ctx := context.Background()
	t.Run("MarkThenSeen", func(t *testing.T) {
		s := newStore(t)
		key := UniqueName("src/id-")
		if seen, err := s.Seen(ctx, key); err != nil || seen {
			t.Fatalf("Seen(new key) = %v, %v; want false, nil", seen, err)
		}
		if fresh, err := s.Mark(ctx, key, time.Minute); err != nil || !fresh {
			t.Fatalf("Mark(new key) = %v, %v; want true, nil", fresh, err)
		}
		if seen, err := s.Seen(ctx, key); err != nil || !seen {
			t.Fatalf("Seen(marked key) = %v, %v; want true, nil", seen, err)
		}
		if fresh, err := s.Mark(ctx, key, time.Minute); err != nil || fresh {
			t.Fatalf("Mark(marked key) = %v, %v; want false, nil", fresh, err)
		}
	})
	t.Run("KeysAreIndependent", func(t *testing.T) {
		s := newStore(t)
		a, b := UniqueName("a-"), UniqueName("b-")
		if _, err := s.Mark(ctx, a, time.Minute); err != nil {
			t.Fatal(err)
		}
		if seen, err := s.Seen(ctx, b); err != nil || seen {
			t.Fatalf("Seen(other key) = %v, %v; want false, nil", seen, err)
		}
	})
	t.Run("Expiry", func(t *testing.T) {
		s := newStore(t)
		key := UniqueName("ttl-")
		if _, err := s.Mark(ctx, key, 1100*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			seen, err := s.Seen(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if !seen {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("key marked with a TTL of 1.1s still seen after 10s")
			}
			time.Sleep(100 * time.Millisecond)
		}
		if fresh, err := s.Mark(ctx, key, time.Minute); err != nil || !fresh {
			t.Fatalf("Mark(expired key) = %v, %v; want true, nil", fresh, err)
		}
	})
	t.Run("ConcurrentMarkOneWinner", func(t *testing.T) {
		s := newStore(t)
		key := UniqueName("race-")
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := 0; i < 16; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				fresh, err := s.Mark(ctx, key, time.Minute)
				if err != nil {
					t.Error(err)
				}
				if fresh {
					wins.Add(1)
				}
			}()
		}
		wg.Wait()
		if n := wins.Load(); n != 1 {
			t.Fatalf("%d concurrent Marks of one key reported new; want exactly 1", n)
		}
	})
	t.Run("ManyKeys", func(t *testing.T) {
		s := newStore(t)
		prefix := UniqueName("many-")
		for i := 0; i < 500; i++ {
			if _, err := s.Mark(ctx, fmt.Sprintf("%s-%d", prefix, i), time.Minute); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < 500; i += 37 {
			if seen, err := s.Seen(ctx, fmt.Sprintf("%s-%d", prefix, i)); err != nil || !seen {
				t.Fatalf("key %d: Seen = %v, %v", i, seen, err)
			}
		}
	})
	t.Run("OddKeys", func(t *testing.T) {
		s := newStore(t)
		for _, k := range []string{"https://example.com/src?x=1#frag/id 1", "ünïcødé/✓", "a.b.c*>", "key with\nnewline"} {
			k = UniqueName("") + k
			if fresh, err := s.Mark(ctx, k, time.Minute); err != nil || !fresh {
				t.Fatalf("Mark(%q) = %v, %v", k, fresh, err)
			}
			if seen, err := s.Seen(ctx, k); err != nil || !seen {
				t.Fatalf("Seen(%q) = %v, %v", k, seen, err)
			}
		}
	})
}

// TestCheckpointStore runs the conformance suite for an es.CheckpointStore.
func TestCheckpointStore(t *testing.T, newStore func(t *testing.T) es.CheckpointStore) {
	ctx := context.Background()
	t.Run("MissingIsNotOK", func(t *testing.T) {
		s := newStore(t)
		pos, ok, err := s.Load(ctx, UniqueName("none-"))
		if err != nil || ok || pos != 0 {
			t.Fatalf("Load(missing) = %d, %v, %v; want 0, false, nil", pos, ok, err)
		}
	})
	t.Run("SaveLoadOverwrite", func(t *testing.T) {
		s := newStore(t)
		name := UniqueName("proj-")
		for _, p := range []uint64{0, 1, 42, 1 << 40, 7} {
			if err := s.Save(ctx, name, p); err != nil {
				t.Fatal(err)
			}
			got, ok, err := s.Load(ctx, name)
			if err != nil || !ok || got != p {
				t.Fatalf("after Save(%d): Load = %d, %v, %v", p, got, ok, err)
			}
		}
	})
	t.Run("NamesAreIndependent", func(t *testing.T) {
		s := newStore(t)
		a, b := UniqueName("a-"), UniqueName("b-")
		if err := s.Save(ctx, a, 10); err != nil {
			t.Fatal(err)
		}
		if err := s.Save(ctx, b, 20); err != nil {
			t.Fatal(err)
		}
		if got, _, _ := s.Load(ctx, a); got != 10 {
			t.Fatalf("Load(a) = %d, want 10", got)
		}
		if got, _, _ := s.Load(ctx, b); got != 20 {
			t.Fatalf("Load(b) = %d, want 20", got)
		}
	})
	t.Run("ConcurrentSaves", func(t *testing.T) {
		s := newStore(t)
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				name := fmt.Sprintf("%s-%d", UniqueName("c-"), i)
				for p := uint64(1); p <= 20; p++ {
					if err := s.Save(ctx, name, p); err != nil {
						t.Error(err)
						return
					}
				}
				if got, ok, err := s.Load(ctx, name); err != nil || !ok || got != 20 {
					t.Errorf("Load = %d, %v, %v; want 20", got, ok, err)
				}
			}()
		}
		wg.Wait()
	})
}
