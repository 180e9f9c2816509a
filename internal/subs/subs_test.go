package subs

import (
	"sync/atomic"
	"testing"
)

type sub struct{ closed *atomic.Int32 }

func (s *sub) Close() error { s.closed.Add(1); return nil }

func TestRegistry(t *testing.T) {
	var r Registry[*sub]
	var n atomic.Int32
	a, b, c := &sub{&n}, &sub{&n}, &sub{&n}
	if !r.Add(a) || !r.Add(b) || !r.Add(c) {
		t.Fatal("Add before CloseAll must succeed")
	}
	r.Remove(b)
	r.CloseAll()
	if n.Load() != 2 {
		t.Fatalf("closed %d subscriptions, want 2 (b was removed)", n.Load())
	}
	if r.Add(&sub{&n}) {
		t.Fatal("Add after CloseAll must fail")
	}
	r.CloseAll()
	if n.Load() != 2 {
		t.Fatalf("second CloseAll closed again: %d", n.Load())
	}
}
