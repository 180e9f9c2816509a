package saga

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

// ErrConflict is returned (wrapped) by Store.Save when the instance's
// version is not the one the change expected.
var ErrConflict = errors.New("saga: version conflict")

// ErrNotFound is returned (wrapped) by Store.Load and Saga.Get when there is
// no such instance.
var ErrNotFound = errors.New("saga: instance not found")

// Status is the state of an instance's life.
type Status string

// The statuses of an instance.
const (
	// Running: the instance handles events.
	Running Status = "running"
	// Compensating: a step failed or the deadline passed; the compensations
	// of the completed steps are running, last step first.
	Compensating Status = "compensating"
	// Completed: a step called Context.Complete. Final.
	Completed Status = "completed"
	// Compensated: every compensation ran. Final.
	Compensated Status = "compensated"
)

// Final reports whether s is a final status (Completed or Compensated).
func (s Status) Final() bool { return s == Completed || s == Compensated }

// Entry kinds of an instance's history.
const (
	EntryStep        = "step"        // a step ran
	EntryFailed      = "failed"      // a step failed: compensation starts
	EntryTimeout     = "timeout"     // the deadline passed: compensation starts
	EntryCompensated = "compensated" // a step's compensation ran
	EntryCompleted   = "completed"   // the instance completed
	EntryEnded       = "ended"       // every compensation ran
)

// Entry is one line of an instance's history.
type Entry struct {
	Time      time.Time `json:"time"`
	Kind      string    `json:"kind"`
	Step      string    `json:"step,omitempty"`
	EventID   string    `json:"eventId,omitempty"`
	EventType string    `json:"eventType,omitempty"`
	Error     string    `json:"error,omitempty"`
}

// Record is an instance as a Store keeps it, its state as JSON. Its JSON
// encoding (MarshalRecord) is the stored document of the database stores.
type Record struct {
	// Saga is the name of the saga; ID the instance's correlation key.
	Saga string `json:"saga"`
	ID   string `json:"id"`
	// Version counts the saves of the instance: 1 after the first.
	Version uint64 `json:"version"`
	// Status is where the instance is in its life.
	Status Status `json:"status"`
	// State is the instance's state as JSON (a store may reformat it:
	// compare decoded values).
	State json.RawMessage `json:"state,omitempty"`
	// Done lists the completed steps, in order (compensation runs them
	// from the end).
	Done []string `json:"done,omitempty"`
	// Deadline is when the instance times out (zero: never).
	Deadline time.Time `json:"deadline,omitzero"`
	// Wake is when the timer loop must look at the instance (zero: never):
	// the deadline while running, the next compensation while
	// compensating. Stores index it (Store.Due).
	Wake time.Time `json:"wake,omitzero"`
	// Attempts counts the failed attempts of the next compensation.
	Attempts int `json:"attempts,omitempty"`
	// History is what happened to the instance, oldest first.
	History []Entry `json:"history,omitempty"`
	// Created and Updated are the times of the first and last saves.
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// Message is an event to publish to a topic, emitted by a step.
type Message struct {
	Topic string
	Event event.Event
}

// Change is one atomic save of an instance.
type Change struct {
	// Record is the instance after the change. Record.Version is the new
	// version: 1 creates the instance (ErrConflict if it exists), n > 1
	// replaces version n-1 (ErrConflict if the stored version differs).
	Record Record
	// EventID, when not empty, is remembered as handled by the instance
	// (Store.Seen); ErrConflict if it already was.
	EventID string
	// Outgoing are written to the store's outbox in the same transaction.
	Outgoing []Message
}

// Filter selects instances for Store.List.
type Filter struct {
	// Status keeps only the instances in this status ("" for all).
	Status Status
	// After keeps the instances whose ID sorts after it (paging).
	After string
	// Limit bounds the result (0: 100).
	Limit int
}

// Store keeps the instances of sagas. Stores live in the technology
// packages (memory, sqlite, postgres); eventkittest.TestSagaStore is their
// conformance suite. Implementations are safe for concurrent use.
type Store interface {
	// Load returns the instance, or an error matching ErrNotFound.
	Load(ctx context.Context, saga, id string) (Record, error)
	// Seen reports whether the instance handled the event id.
	Seen(ctx context.Context, saga, id, eventID string) (bool, error)
	// Save applies a change atomically: the record, the handled event id
	// and the outgoing messages, or none of them (ErrConflict, wrapped, on
	// a version or event id conflict). A save whose record has a final
	// status forgets the instance's handled event ids (Seen then reports
	// false): a final instance handles no event, so they are not needed.
	Save(ctx context.Context, c Change) error
	// Due returns up to limit ids of the saga's instances whose Wake is set
	// and not after now, earliest first.
	Due(ctx context.Context, saga string, now time.Time, limit int) ([]string, error)
	// List returns the saga's instances that pass the filter, by ID.
	List(ctx context.Context, saga string, f Filter) ([]Record, error)
}
