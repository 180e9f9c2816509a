package hub

import (
	"errors"
	"net/http"
	"strings"

	"github.com/eventkit/eventkit/cehttp"
	"github.com/nats-io/nats.go/jetstream"
)

func discardPolicy(s string) jetstream.DiscardPolicy {
	if s == "old" {
		return jetstream.DiscardOld
	}
	return jetstream.DiscardNew
}

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
