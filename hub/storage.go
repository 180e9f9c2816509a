package hub

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventkit/eventkit/cehttp"
	"github.com/nats-io/nats.go/jetstream"
)

// JetStream's error codes of a store that cannot take more.
const (
	jsInsufficientResources = 10023
	jsStoreFailed           = 10077
)

// storageFull reports whether err says the broker's store is full: the
// stream at its max_bytes (with discard new), JetStream out of resources,
// or the disk full.
func storageFull(err error) bool {
	var api *jetstream.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode {
		case jsInsufficientResources:
			return true
		case jsStoreFailed:
			return strings.Contains(api.Description, "maximum bytes") || strings.Contains(api.Description, "no space")
		}
	}
	return strings.Contains(err.Error(), "no space left on device")
}

// insufficientStorage turns a store-full error into the 507 problem the
// ingress answers with; other errors are returned as they are.
func insufficientStorage(err error) error {
	if err == nil || !storageFull(err) {
		return err
	}
	return &storageError{err: err, p: &cehttp.Problem{Type: problemBase + "insufficient-storage", Title: "Insufficient Storage",
		Status: http.StatusInsufficientStorage,
		Detail: "the event store is full; nothing of the request was stored: " + err.Error()}}
}

// storageError is a store-full error that carries its problem.
type storageError struct {
	err error
	p   *cehttp.Problem
}

func (e *storageError) Error() string { return e.err.Error() }
func (e *storageError) Unwrap() []error {
	return []error{e.err, e.p}
}

// storeState remembers that the broker's store refused an event for want
// of room, until it has room again: /healthz and /readyz report it.
type storeState struct {
	isFull atomic.Bool // mirrors full != nil: a success costs no lock
	mu     sync.Mutex
	full   error
	// room reports whether the store has room again (nil when it cannot
	// be asked: the next successful publish clears the state).
	room func(context.Context) error
}

// note records the outcome of a publish.
func (st *storeState) note(err error) {
	if err != nil && !storageFull(err) || err == nil && !st.isFull.Load() {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.full = err
	st.isFull.Store(err != nil)
}

// check returns why the store cannot take events, or nil; a store found
// full is asked again, so that the server is ready again by itself once
// retention (or an operator) frees room.
func (st *storeState) check(ctx context.Context) error {
	st.mu.Lock()
	full, room := st.full, st.room
	st.mu.Unlock()
	if full == nil {
		return nil
	}
	if room != nil {
		if err := room(ctx); err == nil {
			st.note(nil)
			return nil
		}
	}
	return fmt.Errorf("event store full: %w", full)
}

// streamRoom asks JetStream whether the stream has room again: for an
// event of maxEvent bytes, or an eighth of the stream if that is less.
func streamRoom(js jetstream.JetStream, name string, maxBytes, maxEvent int64) func(context.Context) error {
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		st, err := js.Stream(ctx, name)
		if err != nil {
			return err
		}
		info, err := st.Info(ctx)
		if err != nil {
			return err
		}
		if maxBytes > 0 && int64(info.State.Bytes)+min(maxEvent, maxBytes/8) > maxBytes {
			return fmt.Errorf("stream %s holds %d of its %d bytes", name, info.State.Bytes, maxBytes)
		}
		return nil
	}
}
