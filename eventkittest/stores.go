package eventkittest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/dedup"
	"github.com/eventkit/eventkit/es"
)

// Migrated calls s.Migrate (which SQL stores have), failing t if it fails,
// and returns s: the last step of a store suite's factory.
func Migrated[S interface{ Migrate(context.Context) error }](t testing.TB, s S) S {
	t.Helper()
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return s
}

// TestDedupStore runs the conformance suite for a dedup.Store: a mark is
// seen until it expires and then may be taken again, keys (odd ones too) are
// independent, and of concurrent marks of one key exactly one is new.
// newStore returns an empty store for each test (isolated: unique names).
func TestDedupStore(t *testing.T, newStore func(t *testing.T) dedup.Store) {
	for _, c := range []struct {
		name string
		test func(*testing.T, dedup.Store)
	}{
		{"MarkThenSeen", dedupTestMarkThenSeen},
		{"KeysAreIndependent", dedupTestKeysIndependent},
		{"Expiry", dedupTestExpiry},
		{"ConcurrentMarkOneWinner", dedupTestConcurrentMark},
		{"ManyKeys", dedupTestManyKeys},
		{"OddKeys", dedupTestOddKeys},
	} {
		t.Run(c.name, func(t *testing.T) { c.test(t, newStore(t)) })
	}
}

// dedupMark marks key for ttl and fails t unless Mark reports fresh.
func dedupMark(t *testing.T, s dedup.Store, key string, ttl time.Duration, fresh bool) {
	t.Helper()
	if got, err := s.Mark(context.Background(), key, ttl); err != nil || got != fresh {
		t.Fatalf("Mark(%q) = %v, %v; want %v, nil", key, got, err, fresh)
	}
}

// dedupSeen fails t unless Seen(key) reports seen.
func dedupSeen(t *testing.T, s dedup.Store, key string, seen bool) {
	t.Helper()
	if got, err := s.Seen(context.Background(), key); err != nil || got != seen {
		t.Fatalf("Seen(%q) = %v, %v; want %v, nil", key, got, err, seen)
	}
}

func dedupTestMarkThenSeen(t *testing.T, s dedup.Store) {
	key := UniqueName("src/id-")
	dedupSeen(t, s, key, false)
	dedupMark(t, s, key, time.Minute, true)
	dedupSeen(t, s, key, true)
	dedupMark(t, s, key, time.Minute, false)
}

func dedupTestKeysIndependent(t *testing.T, s dedup.Store) {
	a, b := UniqueName("a-"), UniqueName("b-")
	dedupMark(t, s, a, time.Minute, true)
	dedupSeen(t, s, b, false)
	dedupMark(t, s, b, time.Minute, true)
}

func dedupTestExpiry(t *testing.T, s dedup.Store) {
	key := UniqueName("ttl-")
	dedupMark(t, s, key, 1100*time.Millisecond, true)
	deadline := time.Now().Add(10 * time.Second)
	for {
		seen, err := s.Seen(context.Background(), key)
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
	dedupMark(t, s, key, time.Minute, true)
}

func dedupTestConcurrentMark(t *testing.T, s dedup.Store) {
	key := UniqueName("race-")
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fresh, err := s.Mark(context.Background(), key, time.Minute)
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
}

func dedupTestManyKeys(t *testing.T, s dedup.Store) {
	prefix := UniqueName("many-")
	for i := 0; i < 500; i++ {
		if _, err := s.Mark(context.Background(), fmt.Sprintf("%s-%d", prefix, i), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 500; i += 37 {
		dedupSeen(t, s, fmt.Sprintf("%s-%d", prefix, i), true)
	}
}

func dedupTestOddKeys(t *testing.T, s dedup.Store) {
	for _, k := range []string{"https://example.com/src?x=1#frag/id 1", "ünïcødé/✓", "a.b.c*>", "key with\nnewline"} {
		k = UniqueName("") + k
		dedupMark(t, s, k, time.Minute, true)
		dedupSeen(t, s, k, true)
	}
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

// BadOption is an option value that a constructor must refuse, and the
// option name its error must give.
type BadOption[O any] struct {
	Name string
	Opt  O
}

// TestBadOptions fails t unless construct(c.Opt) fails with an error that
// wraps eventkit.ErrInvalidOption and names c.Name, for each case.
func TestBadOptions[O any](t *testing.T, construct func(O) error, cases ...BadOption[O]) {
	t.Helper()
	for _, c := range cases {
		err := construct(c.Opt)
		if !errors.Is(err, eventkit.ErrInvalidOption) || !strings.Contains(err.Error(), c.Name) {
			t.Errorf("an invalid %s: got %v; want an error wrapping eventkit.ErrInvalidOption that names it", c.Name, err)
		}
	}
}
