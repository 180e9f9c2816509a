package inspect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
)

// MaxReplayBatch is the most events Replay publishes at once.
const MaxReplayBatch = 100

// Checkpoint is how far a replay went: enough to resume it.
type Checkpoint struct {
	// Query is the replay's range and filters, as it started (its After
	// and Since are those of the start, not of the resumption).
	Query Query `json:"query"`
	// ToTopic is the topic the events are published to ("" keeps each
	// event's own topic).
	ToTopic string `json:"to_topic,omitempty"`
	// ToURL is Replay.ToURL, kept for the caller that resumes.
	ToURL string `json:"to_url,omitempty"`
	// Position is the position of the last event published ("" before
	// the first, or on a transport without positions).
	Position string `json:"position,omitempty"`
	// Done is the number of events published.
	Done int64 `json:"done"`
	// Finished is true once the whole range is replayed.
	Finished bool `json:"finished,omitempty"`
}

// Progress is reported after each batch published.
type Progress struct {
	// Done is the number of events published so far, resumed ones
	// included.
	Done int64
	// Position is the position of the last one.
	Position string
	// Rate is the events per second published since the start of this
	// run.
	Rate float64
}

// Replay is a replay of a range of stored events to a publisher.
type Replay struct {
	// From is where the events are read.
	From Source
	// To is where they are published.
	To eventkit.Publisher
	// ToTopic is the topic they are published to; "" publishes each to
	// the topic it was read from.
	ToTopic string
	// ToURL, when To posts to a URL, is that URL: Run does not read it
	// but keeps it in the checkpoint, for the caller that resumes.
	ToURL string
	// Rate bounds the events published per second; 0 is no bound.
	Rate float64
	// Progress, when set, is called after each batch published.
	Progress func(Progress)
	// Save, when set, is called with the checkpoint after each batch
	// published and at the end; an error ends the replay. FileCheckpoint
	// writes it to a file.
	Save func(Checkpoint) error
}

// Run replays the events of q (at most q.Limit of them, when set), or resumes the replay of from when from
// is not nil (its Query is then used, and q is ignored). It returns the
// last checkpoint. A replay interrupted (ctx ended, a publish failed) can
// be resumed from the last checkpoint saved.
func (r *Replay) Run(ctx context.Context, q Query, from *Checkpoint) (Checkpoint, error) {
	cp := Checkpoint{Query: q, ToTopic: r.ToTopic, ToURL: r.ToURL}
	if from != nil {
		cp = *from
	}
	if cp.Finished {
		return cp, nil
	}
	if _, err := cp.Query.Compile(); err != nil {
		return cp, err
	}
	rq := cp.Query
	skip := int64(0)
	switch {
	case cp.Position != "":
		rq.After, rq.Since = cp.Position, time.Time{}
		if rq.Limit > 0 {
			rq.Limit -= int(cp.Done)
			if rq.Limit <= 0 {
				cp.Finished = true
				return cp, r.save(cp)
			}
		}
	case cp.Done > 0:
		skip = cp.Done // no positions: count from the range's start again
	}
	if rq.Until.IsZero() {
		// The end of a resumed replay is the end it had when it started:
		// fixed now, so that later events are not replayed.
		now := time.Now()
		rq.Until, cp.Query.Until = now, now
	}
	st := &replayState{ctx: ctx, r: r, cp: cp, skip: skip, start: time.Now()}
	var err error
	for {
		// A source may stop before the end (More), to be continued.
		var res Result
		res, err = r.From.Read(ctx, rq, st.add)
		if err != nil || !res.More || res.Next == "" || rq.Limit > 0 {
			break
		}
		rq.After, rq.Since = res.Next, time.Time{}
	}
	if err == nil {
		err = st.flush()
	}
	if err == nil {
		st.cp.Finished = true
		err = r.save(st.cp)
	}
	return st.cp, err
}

func (r *Replay) save(cp Checkpoint) error {
	if r.Save == nil {
		return nil
	}
	return r.Save(cp)
}

type replayState struct {
	ctx   context.Context
	r     *Replay
	cp    Checkpoint
	skip  int64
	batch []Item
	start time.Time
	sent  int64 // events published by this run
}

// batchSize is the events published at once: about a tenth of a second
// of the rate, at most MaxReplayBatch.
func (st *replayState) batchSize() int {
	if st.r.Rate <= 0 {
		return MaxReplayBatch
	}
	return max(1, min(MaxReplayBatch, int(st.r.Rate/10)))
}

func (st *replayState) add(it Item) error {
	if st.skip > 0 {
		st.skip--
		return nil
	}
	st.batch = append(st.batch, it)
	if len(st.batch) < st.batchSize() {
		return nil
	}
	return st.flush()
}

// flush publishes the batch (paced to the rate), then saves the
// checkpoint.
func (st *replayState) flush() error {
	ctx := st.ctx
	if len(st.batch) == 0 {
		return nil
	}
	if err := st.pace(ctx, len(st.batch)); err != nil {
		return err
	}
	// One publish per topic run, in order.
	for i := 0; i < len(st.batch); {
		j := i + 1
		t := st.topic(st.batch[i])
		for j < len(st.batch) && st.topic(st.batch[j]) == t {
			j++
		}
		evs := make([]event.Event, 0, j-i)
		for _, it := range st.batch[i:j] {
			evs = append(evs, it.Event)
		}
		if err := st.r.To.Publish(ctx, t, evs...); err != nil {
			return fmt.Errorf("inspect: replay to %s: %w", t, err)
		}
		i = j
	}
	last := st.batch[len(st.batch)-1]
	st.sent += int64(len(st.batch))
	st.cp.Done += int64(len(st.batch))
	st.cp.Position = last.Position
	st.batch = st.batch[:0]
	if err := st.r.save(st.cp); err != nil {
		return fmt.Errorf("inspect: checkpoint: %w", err)
	}
	if st.r.Progress != nil {
		p := Progress{Done: st.cp.Done, Position: st.cp.Position}
		if el := time.Since(st.start).Seconds(); el > 0 {
			p.Rate = float64(st.sent) / el
		}
		st.r.Progress(p)
	}
	return nil
}

func (st *replayState) topic(it Item) string {
	if st.r.ToTopic != "" {
		return st.r.ToTopic
	}
	return it.Topic
}

// pace waits until publishing n more events keeps to the rate.
func (st *replayState) pace(ctx context.Context, n int) error {
	if st.r.Rate <= 0 {
		return nil
	}
	due := st.start.Add(time.Duration(float64(st.sent+int64(n)-1) / st.r.Rate * float64(time.Second)))
	d := time.Until(due)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// FileCheckpoint returns a Save function that writes each checkpoint to
// path as JSON, atomically (a temporary file renamed over it).
func FileCheckpoint(path string) func(Checkpoint) error {
	return func(cp Checkpoint) error {
		b, err := json.MarshalIndent(cp, "", "  ")
		if err != nil {
			return err
		}
		tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
		if err != nil {
			return err
		}
		_, err = tmp.Write(append(b, '\n'))
		if err == nil {
			err = tmp.Sync()
		}
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp.Name(), path)
		}
		if err != nil {
			_ = os.Remove(tmp.Name())
		}
		return err
	}
}

// LoadCheckpoint reads a checkpoint FileCheckpoint wrote.
func LoadCheckpoint(path string) (*Checkpoint, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cp Checkpoint
	if err := json.Unmarshal(b, &cp); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	if cp.Done < 0 {
		return nil, errors.New("checkpoint " + path + ": negative done")
	}
	return &cp, nil
}
