package memory_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eventkit/eventkit/dedup"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/memory"
)

var _ dedup.Store = (*memory.DedupStore)(nil)

func TestDedupStoreConformance(t *testing.T) {
	eventkittest.TestDedupStore(t, func(t *testing.T) dedup.Store {
		return memory.NewDedupStore()
	})
}

func TestDedupStoreBounded(t *testing.T) {
	ctx := context.Background()
	s := memory.NewDedupStore(memory.DedupCapacity(3))
	for i := 0; i < 5; i++ {
		if fresh, err := s.Mark(ctx, fmt.Sprint("k", i), time.Hour); err != nil || !fresh {
			t.Fatalf("Mark(k%d) = %v, %v", i, fresh, err)
		}
	}
	if n := s.Len(); n != 3 {
		t.Fatalf("Len = %d after 5 marks with capacity 3; want 3", n)
	}
	for i, want := range []bool{false, false, true, true, true} {
		if seen, _ := s.Seen(ctx, fmt.Sprint("k", i)); seen != want {
			t.Errorf("Seen(k%d) = %v, want %v (oldest evicted first)", i, seen, want)
		}
	}
}

func TestDedupStoreDefaultTTL(t *testing.T) {
	ctx := context.Background()
	s := memory.NewDedupStore(memory.DedupDefaultTTL(50 * time.Millisecond))
	if _, err := s.Mark(ctx, "k", 0); err != nil {
		t.Fatal(err)
	}
	if seen, _ := s.Seen(ctx, "k"); !seen {
		t.Fatal("key not seen right after Mark")
	}
	time.Sleep(60 * time.Millisecond)
	if seen, _ := s.Seen(ctx, "k"); seen {
		t.Fatal("key marked with the default TTL of 50ms still seen after 60ms")
	}
	if n := s.Len(); n != 0 {
		t.Fatalf("expired key not removed: Len = %d", n)
	}
}

func TestDedupStoreCancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := memory.NewDedupStore()
	if _, err := s.Mark(ctx, "k", time.Minute); err == nil {
		t.Fatal("Mark with a cancelled context succeeded")
	}
	if _, err := s.Seen(ctx, "k"); err == nil {
		t.Fatal("Seen with a cancelled context succeeded")
	}
}
