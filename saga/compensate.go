package saga

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// compensate runs the due compensations of instance id, one store
// transaction each, until none is left or one fails.
func (s *Saga[S]) compensate(ctx context.Context, id string) error {
	for conflicts := 0; ; {
		more, err := s.compensateOnce(ctx, id)
		if errors.Is(err, ErrConflict) && conflicts < s.cfg.retries {
			conflicts++
			continue
		}
		if err != nil || !more {
			return err
		}
	}
}

// compensateOnce runs the next compensation of instance id if it is due;
// it reports whether another may follow at once.
func (s *Saga[S]) compensateOnce(ctx context.Context, id string) (bool, error) {
	rec, err := s.store.Load(ctx, s.name, id)
	if err != nil {
		return false, fmt.Errorf("saga %s: loading %q: %w", s.name, id, err)
	}
	now := s.cfg.now()
	if rec.Status != Compensating || rec.Wake.After(now) {
		return false, nil
	}
	i := len(rec.Done) - 1
	for i >= 0 && (s.byName[rec.Done[i]] == nil || s.byName[rec.Done[i]].Compensate == nil) {
		i-- // nothing to undo
	}
	next := rec
	next.History = rec.History[:len(rec.History):len(rec.History)]
	if i < 0 {
		next.Status, next.Wake, next.Done, next.Attempts = Compensated, time.Time{}, nil, 0
		next.History = append(next.History, Entry{Time: now, Kind: EntryEnded})
		if err := s.save(ctx, rec, next, "", nil); err != nil {
			return false, err
		}
		s.afterSave(rec, next, "")
		return false, nil
	}
	step := s.byName[rec.Done[i]]
	c, err := s.context(rec)
	if err != nil {
		return false, err
	}
	cerr := guard(func() error { return step.Compensate(ctx, c) })
	if cerr == nil {
		cerr = c.checkOut()
	}
	if cerr != nil && ctx.Err() != nil {
		return false, cerr // again later; a shutdown is no failed attempt
	}
	if cerr != nil {
		next.Attempts++
		next.Wake = now.Add(s.backoff(next.Attempts))
		if err := s.save(ctx, rec, next, "", nil); err != nil {
			return false, err
		}
		return false, fmt.Errorf("saga %s: compensating %q of %q (attempt %d): %w", s.name, step.Name, id, next.Attempts, cerr)
	}
	if next.State, err = json.Marshal(c.State); err != nil {
		return false, fmt.Errorf("saga %s: encoding the state of %q: %w", s.name, id, err)
	}
	next.Done = rec.Done[:i:i]
	next.Attempts, next.Wake = 0, now
	next.History = append(next.History, Entry{Time: now, Kind: EntryCompensated, Step: step.Name})
	if err := s.save(ctx, rec, next, "", c.out); err != nil {
		return false, err
	}
	s.cfg.metrics.Compensated(s.name, step.Name)
	return true, nil
}

// backoff returns the wait before attempt n+1 of a compensation.
func (s *Saga[S]) backoff(n int) time.Duration {
	d := s.cfg.backoff[0]
	for ; n > 1 && d < s.cfg.backoff[1]; n-- {
		d *= 2
	}
	return min(d, s.cfg.backoff[1])
}

// timeout turns instance id to compensating if its deadline passed.
func (s *Saga[S]) timeout(ctx context.Context, id string) error {
	for conflicts := 0; ; conflicts++ {
		rec, err := s.store.Load(ctx, s.name, id)
		if err != nil {
			return fmt.Errorf("saga %s: loading %q: %w", s.name, id, err)
		}
		now := s.cfg.now()
		if rec.Status != Running || rec.Deadline.IsZero() || rec.Deadline.After(now) {
			return nil
		}
		next := rec
		next.Status, next.Wake = Compensating, now
		next.History = append(rec.History[:len(rec.History):len(rec.History)], Entry{Time: now, Kind: EntryTimeout})
		err = s.save(ctx, rec, next, "", nil)
		if errors.Is(err, ErrConflict) && conflicts < s.cfg.retries {
			continue
		}
		if err == nil {
			s.afterSave(rec, next, "")
		}
		return err
	}
}

// FireDue handles the instances whose timers are due now: deadlines that
// passed start compensations, and due compensations run. It returns how
// many instances it looked at, and the first error (it goes on after one).
// Run calls it every poll interval.
func (s *Saga[S]) FireDue(ctx context.Context) (int, error) {
	ids, err := s.store.Due(ctx, s.name, s.cfg.now(), s.cfg.dueBatch)
	if err != nil {
		return 0, fmt.Errorf("saga %s: due timers: %w", s.name, err)
	}
	var first error
	for _, id := range ids {
		err := s.timeout(ctx, id)
		if err == nil {
			err = s.compensate(ctx, id)
		}
		if err != nil && first == nil {
			first = err
		}
	}
	return len(ids), first
}

// Run fires the saga's timers (FireDue) every poll interval until ctx ends,
// then returns nil. Errors are logged and retried at the next poll. Any
// number of processes may run it against one store.
func (s *Saga[S]) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.poll)
	defer t.Stop()
	for {
		for {
			n, err := s.FireDue(ctx)
			if err != nil && ctx.Err() == nil {
				s.cfg.logger.Warn("saga: timers", "saga", s.name, "err", err)
			}
			if err != nil || n < s.cfg.dueBatch {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
