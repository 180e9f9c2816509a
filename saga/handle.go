package saga

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/topic"
)

// Handler returns an eventkit.Handler that feeds the saga (for
// Router.Handle): it acks once the event was handled or ignored, and nacks
// when it must be redelivered.
func (s *Saga[S]) Handler() eventkit.Handler {
	return eventkit.HandlerFunc(func(ctx context.Context, m *eventkit.Message) error {
		return s.HandleEvent(ctx, m.Event)
	})
}

// HandleEvent handles one event: it runs the step for the event's type on
// the instance the event correlates to, and saves the result. It returns
// nil when the event was handled, or ignored (no step for its type, no
// correlation key, no instance and the step does not start one, an event
// the instance already handled, an instance that no longer runs); it
// returns an error when the event must be delivered again (a store error, a
// Transient step error, a version conflict that outlasted the retries).
func (s *Saga[S]) HandleEvent(ctx context.Context, e event.Event) error {
	step := s.steps[e.Type()]
	if step == nil {
		return nil
	}
	id := s.cfg.correlate(e)
	if id == "" {
		s.cfg.logger.Warn("saga: event without correlation key ignored", "saga", s.name, "type", e.Type(), "id", e.ID())
		return nil
	}
	for attempt := 0; ; attempt++ {
		compensate, err := s.handleOnce(ctx, step, id, e)
		if errors.Is(err, ErrConflict) && attempt < s.cfg.retries {
			continue
		}
		if err != nil {
			return err
		}
		if compensate {
			// Best effort now; Run finishes it after an error or a crash.
			if err := s.compensate(ctx, id); err != nil && ctx.Err() == nil {
				s.cfg.logger.Warn("saga: compensation deferred", "saga", s.name, "instance", id, "err", err)
			}
		}
		return nil
	}
}

// handleOnce runs step on instance id once; it reports whether the instance
// now compensates.
func (s *Saga[S]) handleOnce(ctx context.Context, step *Step[S], id string, e event.Event) (bool, error) {
	rec, err := s.store.Load(ctx, s.name, id)
	switch {
	case errors.Is(err, ErrNotFound):
		if !step.Starts {
			return false, nil
		}
		rec = s.newRecord(id)
	case err != nil:
		return false, fmt.Errorf("saga %s: loading %q: %w", s.name, id, err)
	case rec.Status != Running:
		return false, nil
	default:
		seen, err := s.store.Seen(ctx, s.name, id, e.ID())
		if err != nil {
			return false, fmt.Errorf("saga %s: loading %q: %w", s.name, id, err)
		}
		if seen {
			return false, nil
		}
	}
	c, err := s.context(rec)
	if err != nil {
		return false, err
	}
	start := time.Now()
	err = guard(func() error { return step.Do(ctx, c, e) })
	if err == nil {
		err = c.checkOut() // an invalid message would block the instance: fail it
	}
	s.cfg.metrics.StepDone(s.name, step.Name, time.Since(start), err)
	var transient *transientError
	if errors.As(err, &transient) || err != nil && ctx.Err() != nil {
		return false, err // again later; a shutdown fails no instance
	}
	now := s.cfg.now()
	entry := Entry{Time: now, Kind: EntryStep, Step: step.Name, EventID: e.ID(), EventType: e.Type()}
	next := rec
	if err != nil {
		// The failed step's state and messages are dropped.
		c.out = nil
		entry.Kind, entry.Error = EntryFailed, err.Error()
		next.Status, next.Wake = Compensating, now
	} else if next, err = s.applyStep(rec, c, step.Name); err != nil {
		return false, err
	}
	next.History = append(next.History[:len(next.History):len(next.History)], entry)
	if next.Status == Completed {
		next.History = append(next.History, Entry{Time: now, Kind: EntryCompleted})
	}
	if err := s.save(ctx, rec, next, e.ID(), c.out); err != nil {
		return false, err
	}
	s.afterSave(rec, next, step.Name)
	return next.Status == Compensating, nil
}

// applyStep returns rec after the step that ran in c succeeded.
func (s *Saga[S]) applyStep(rec Record, c *Context[S], step string) (Record, error) {
	state, err := json.Marshal(c.State)
	if err != nil {
		return rec, fmt.Errorf("saga %s: encoding the state of %q: %w", s.name, rec.ID, err)
	}
	rec.State = state
	rec.Done = append(rec.Done[:len(rec.Done):len(rec.Done)], step)
	if c.setDL {
		rec.Deadline = c.deadline
	}
	rec.Wake = rec.Deadline
	if c.completed {
		rec.Status, rec.Wake = Completed, time.Time{}
	}
	return rec, nil
}

// afterSave reports the metrics of a committed change from prev to next.
func (s *Saga[S]) afterSave(prev, next Record, step string) {
	if prev.Version == 0 {
		s.cfg.metrics.Active(s.name, 1)
	}
	if next.Status == Compensating && prev.Status == Running {
		if len(next.History) > 0 && next.History[len(next.History)-1].Kind == EntryTimeout {
			s.cfg.metrics.TimedOut(s.name)
		} else {
			s.cfg.metrics.Failed(s.name, step)
		}
	}
	if next.Status.Final() && !prev.Status.Final() {
		s.cfg.metrics.Active(s.name, -1)
	}
}

func (s *Saga[S]) newRecord(id string) Record {
	rec := Record{Saga: s.name, ID: id, Status: Running}
	if s.cfg.timeout > 0 {
		rec.Deadline = s.cfg.now().Add(s.cfg.timeout)
	}
	return rec
}

// context returns the step context of rec.
func (s *Saga[S]) context(rec Record) (*Context[S], error) {
	state := new(S)
	if len(rec.State) > 0 {
		if err := json.Unmarshal(rec.State, state); err != nil {
			return nil, fmt.Errorf("saga %s: decoding the state of %q: %w", s.name, rec.ID, err)
		}
	}
	c := &Context[S]{Saga: s.name, ID: rec.ID, State: state}
	version, n := rec.Version+1, 0
	c.defaults = func(e *event.Event) {
		if e.ID() == "" {
			e.SetID(fmt.Sprintf("%s/%s/%d/%d", s.name, rec.ID, version, n))
		}
		n++
		if e.Source() == "" {
			e.SetSource(s.cfg.eventSource)
		}
		if s.cfg.extension != "" && extensionString(*e, s.cfg.extension) == "" {
			e.SetExtension(s.cfg.extension, rec.ID)
		}
	}
	return c, nil
}

// save commits next as the version after prev.
func (s *Saga[S]) save(ctx context.Context, prev, next Record, eventID string, out []Message) error {
	now := s.cfg.now()
	next.Version = prev.Version + 1
	next.Updated = now
	if prev.Version == 0 {
		next.Created = now
	}
	err := s.store.Save(ctx, Change{Record: next, EventID: eventID, Outgoing: out})
	if err != nil {
		return fmt.Errorf("saga %s: saving %q: %w", s.name, next.ID, err)
	}
	return nil
}

// checkOut validates the emitted messages (topic and event), so that an
// invalid one fails the step rather than every save of it.
func (c *Context[S]) checkOut() error {
	for _, m := range c.out {
		if err := topic.ValidateName(m.Topic); err != nil {
			return fmt.Errorf("saga: emitted to an invalid topic: %w", err)
		}
		if err := eventkit.ValidateEvent(m.Event); err != nil {
			return fmt.Errorf("saga: emitted an invalid event: %w", err)
		}
	}
	return nil
}

// guard runs fn and returns its error, or its panic as an error.
func guard(fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("saga: panic: %v", p)
		}
	}()
	return fn()
}
