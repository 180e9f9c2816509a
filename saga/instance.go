package saga

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Instance is an instance of a Saga[S] with its decoded state, for
// inspection.
type Instance[S any] struct {
	ID       string
	Version  uint64
	Status   Status
	State    S
	Done     []string // completed steps not compensated, in order
	Deadline time.Time
	Wake     time.Time
	Attempts int // failed attempts of the next compensation
	History  []Entry
	Created  time.Time
	Updated  time.Time
}

// Get returns instance id (ErrNotFound, wrapped, if there is none).
func (s *Saga[S]) Get(ctx context.Context, id string) (Instance[S], error) {
	rec, err := s.store.Load(ctx, s.name, id)
	if err != nil {
		return Instance[S]{}, fmt.Errorf("saga %s: get %q: %w", s.name, id, err)
	}
	return s.instance(rec)
}

// List returns the saga's instances that pass f, by ID.
func (s *Saga[S]) List(ctx context.Context, f Filter) ([]Instance[S], error) {
	recs, err := s.store.List(ctx, s.name, f)
	if err != nil {
		return nil, fmt.Errorf("saga %s: list: %w", s.name, err)
	}
	out := make([]Instance[S], 0, len(recs))
	for _, r := range recs {
		in, err := s.instance(r)
		if err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	return out, nil
}

func (s *Saga[S]) instance(r Record) (Instance[S], error) {
	in := Instance[S]{ID: r.ID, Version: r.Version, Status: r.Status, Done: r.Done,
		Deadline: r.Deadline, Wake: r.Wake, Attempts: r.Attempts, History: r.History, Created: r.Created, Updated: r.Updated}
	if len(r.State) > 0 {
		if err := json.Unmarshal(r.State, &in.State); err != nil {
			return in, fmt.Errorf("saga %s: decoding the state of %q: %w", s.name, r.ID, err)
		}
	}
	return in, nil
}
