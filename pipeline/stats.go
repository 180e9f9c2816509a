package pipeline

import "time"

// StageStats is a snapshot of one source or stage of a running pipeline:
// what back-pressure looks like from outside.
type StageStats struct {
	Name   string
	Source bool // a source rather than a stage
	// Queue is the number of events waiting in the stage's input queue
	// (in batches, or being put there), QueueCap its bound in events. For
	// a source: the messages taken and not yet settled, and
	// WithMaxInFlight.
	Queue, QueueCap int
	// Blocked is the total time spent waiting for room: by the senders to
	// this stage's full queue, or by a source for an in-flight slot (the
	// time it did not pull from its subscription because the pipeline
	// was full).
	Blocked time.Duration
	// Waiting is the number of senders blocked now (upstream workers, or
	// the source waiting for a slot).
	Waiting int
	// In counts the events the stage handled (a source: messages taken),
	// Out the events it emitted (a source: messages acked), Failed the
	// events that failed in it (a source: messages nacked).
	In, Out, Failed uint64
	// Skipped counts the events the stage let through undone or dropped by
	// its policy (an Enrich stage whose lookup failed or found nothing,
	// with Pass or Drop); each was logged at Warn.
	Skipped uint64
}

// Stats returns a snapshot of every source and stage, in the order they
// were added; zero values before Start.
func (p *Pipeline) Stats() []StageStats {
	p.mu.Lock()
	nodes := p.nodes
	maxInFlight := p.maxInFlight
	started := p.run != nil
	p.mu.Unlock()
	out := make([]StageStats, 0, len(nodes))
	for _, n := range nodes {
		s := n.stats
		st := StageStats{Name: n.name, Source: n.src != nil, In: s.in.Load()}
		st.Blocked, st.Waiting = s.blockedNow()
		if st.Source {
			st.Queue, st.QueueCap = int(s.inFlight.Load()), maxInFlight
			st.Out, st.Failed = s.acked.Load(), s.nacked.Load()
		} else {
			st.Out, st.Failed, st.Skipped = s.out.Load(), s.failed.Load(), n.stage.skipped.Load()
			if started {
				rn := s.run
				st.Queue, st.QueueCap = int(max(rn.queued.Load(), 0)), rn.bound
			}
		}
		out = append(out, st)
	}
	return out
}
