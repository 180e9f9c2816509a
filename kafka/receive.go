package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/driver"
	"github.com/twmb/franz-go/pkg/kgo"
)

type tp struct {
	topic string
	part  int32
}

// pstate is the delivery and commit state of one assigned partition.
type pstate struct {
	tp
	entries   []*entry // handed out and not finished, or finished and waiting for those before them; offset order
	next      int64    // lowest offset not yet handed out in this assignment (-1: any)
	commit    kgo.EpochOffset
	committed int64 // last commit sent successfully (-1: none)
	inflight  int   // messages handed out and not settled
	revoking  bool
	dead      bool
}

// entry is one record being handled, and the AckID of its messages. A poll
// allocates the entries of its records in slabs (slabEntries), each with
// the decoded context of its event.
type entry struct {
	owner *pstate // the state of the record's partition when it was polled
	p     *pstate // owner, once handed out (nil before)
	rec   *kgo.Record
	bad   bool // not a CloudEvent, or outside the topic mapping: finished at once
	done  bool
	dec   decoded // what dm.Event points to (binary mode)
	// dm is the message handed out, so that ReceiveBatch returns a pointer
	// to it without copying the event or allocating. Its Topic, ID and Raw
	// are set when the entry is made, its Event and Position when the
	// record is decoded; a nack sets the next Attempt and Event. Package
	// transport copies what it needs before it delivers the message, so
	// before the entry can be nacked and taken again.
	dm driver.Message
}

// mapped is the eventkit topic of a Kafka topic.
type mapped struct {
	name string
	ok   bool
}

// fetchedPart is what a poll fetched of one partition, not yet batched.
type fetchedPart struct {
	recs  []*kgo.Record
	owner *pstate
	topic mapped
}

// poll takes everything the client has fetched, decodes it and hands it
// to ReceiveBatch in batches of the subscription's buffer size.
//
// Taking the whole fetch at once lets the client fetch the next one while
// this one is delivered (so a subscription holds up to two fetches of
// records: kgo.FetchMaxBytes each), and lets each record be collected as
// soon as it is settled instead of when the last record of its fetch is
// taken.
func (s *subscription) poll() {
	defer s.wg.Done()
	names := map[string]mapped{} // Kafka topic -> eventkit topic
	var parts []fetchedPart
	for {
		fs := s.cl.PollFetches(s.ctx)
		if s.ctx.Err() != nil || fs.IsClientClosed() {
			return
		}
		if s.fetchErrors(fs) > 0 && fs.NumRecords() == 0 {
			// An error that repeats (authorization, a deleted topic) must
			// not spin: franz-go retries internally; look again shortly.
			select {
			case <-time.After(250 * time.Millisecond):
			case <-s.ctx.Done():
				return
			}
		}
		parts = s.partitions(fs, names, parts[:0])
		for len(parts) > 0 {
			batch := s.decodeBatch(nextBatch(&parts, s.buffer))
			select {
			case s.fetched <- batch:
			case <-s.ctx.Done():
				return
			}
		}
	}
}

// fetchErrors logs the errors of fs and counts them.
func (s *subscription) fetchErrors(fs kgo.Fetches) int {
	n := 0
	fs.EachError(func(t string, p int32, err error) {
		if !errors.Is(err, context.Canceled) {
			n++
			s.d.cfg.logger.Warn("kafka: fetch error", "group", s.group, "topic", t, "partition", p, "err", err)
		}
	})
	return n
}

// partitions appends the records of fs to parts, partition by partition.
//
// Each record belongs to the assignment of its partition as it is right
// after the poll: franz-go hands out records of a partition only after
// OnPartitionsAssigned made its state, and a record polled before a
// revocation keeps the revoked state (and is dropped), instead of binding
// to a later assignment of the same partition.
func (s *subscription) partitions(fs kgo.Fetches, names map[string]mapped, parts []fetchedPart) []fetchedPart {
	s.mu.Lock()
	defer s.mu.Unlock()
	fs.EachPartition(func(fp kgo.FetchTopicPartition) {
		if len(fp.Records) == 0 {
			return
		}
		m, seen := names[fp.Topic]
		if !seen {
			m.name, m.ok = s.d.cfg.mapper.FromKafka(fp.Topic)
			if len(names) > 4096 {
				clear(names)
			}
			names[fp.Topic] = m
		}
		parts = append(parts, fetchedPart{recs: fp.Records, owner: s.parts[tp{fp.Topic, fp.Partition}], topic: m})
	})
	return parts
}

// slabEntries is how many entries nextBatch allocates together: 64
// entries stay under 32 KiB, the largest small object. A larger slab is a
// large object, which the runtime allocates from the heap under its lock
// and frees span by span, which costs more than the allocations it saves
// (TestSlabsAreSmallObjects; a profile of the decoding showed the heap
// lock among its hottest functions).
const slabEntries = 64

// slabBytes bounds the buffers decodeBatch copies data into, for the same
// reason.
const slabBytes = 32 << 10

// nextBatch takes up to size records off the front of *parts, as entries
// allocated slabEntries at a time.
func nextBatch(parts *[]fetchedPart, size int) []*entry {
	n := 0
	for _, p := range *parts {
		if n += len(p.recs); n >= size {
			n = size
			break
		}
	}
	var slab []entry
	batch := make([]*entry, 0, n)
	for len(batch) < n {
		p := &(*parts)[0]
		for len(p.recs) > 0 && len(batch) < n {
			if len(slab) == 0 {
				slab = make([]entry, min(n-len(batch), slabEntries))
			}
			e := &slab[0]
			slab = slab[1:]
			e.owner, e.rec, e.bad = p.owner, p.recs[0], !p.topic.ok
			e.dm.Topic, e.dm.Attempt, e.dm.ID, e.dm.Raw = p.topic.name, 1, e, e.rec
			p.recs[0] = nil // the entry holds it now
			p.recs = p.recs[1:]
			batch = append(batch, e)
		}
		if len(p.recs) == 0 {
			(*parts)[0] = fetchedPart{}
			*parts = (*parts)[1:]
		}
	}
	return batch
}

// decodeBatch decodes the events of batch. The data of these first
// deliveries is copied out of the records into buffers of up to slabBytes: a
// handler that changes its data in place must not change the record, which
// a redelivery decodes again. The attribute values and the positions of
// the batch share one string buffer. A record that is no CloudEvent is
// logged and marked bad.
func (s *subscription) decodeBatch(batch []*entry) []*entry {
	dataSize, textSize := 0, 0
	for _, e := range batch {
		dataSize += len(e.rec.Value)
		textSize += 24 // the position
		for i := range e.rec.Headers {
			textSize += len(e.rec.Headers[i].Value)
		}
	}
	var data []byte // slabBytes at most, unless one record's data is more
	var v values
	v.sb.Grow(textSize)
	for _, e := range batch {
		if e.bad {
			continue
		}
		ev, err := e.dec.decode(e.rec, &v)
		if err != nil {
			r := e.rec
			if !errors.Is(err, eventkit.ErrNotCloudEvent) {
				err = fmt.Errorf("%w: %w", eventkit.ErrNotCloudEvent, err)
			}
			s.d.cfg.logger.Error("kafka: skipping a record that is not a valid CloudEvent", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
			e.bad = true
			continue
		}
		if n := len(ev.DataEncoded); n > 0 {
			if cap(data)-len(data) < n {
				data = make([]byte, 0, max(n, min(dataSize, slabBytes)))
			}
			start := len(data)
			data = append(data, ev.DataEncoded...)
			ev.DataEncoded = data[start:len(data):len(data)]
		}
		dataSize -= len(e.rec.Value)
		e.dm.Event = ev
		e.dm.Position = v.position(e.rec.Partition, e.rec.Offset)
	}
	return batch
}

// ReceiveBatch implements driver.Subscription: it returns the entries
// fetched, in partition order, redeliveries first, dropping those of
// partitions being revoked or given up. An entry is in flight from the
// moment it is returned: a revocation waits for it to be settled. In an
// observed subscription, it waits while max messages or more that it
// returned are still waiting for the application (see observed).
func (s *subscription) ReceiveBatch(ctx context.Context, max int) ([]*driver.Message, error) {
	for {
		if !s.observe || s.pending.Load() < s.gate {
			if out := s.take(max); len(out) > 0 {
				return out, nil
			}
			select {
			case b := <-s.fetched:
				s.queue = b
			case <-s.wake:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			continue
		}
		select {
		case <-s.wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// take returns up to max messages of the redeliveries, then of the queue.
func (s *subscription) take(max int) []*driver.Message {
	s.mu.Lock()
	if len(s.redo) > 0 {
		s.queue = append(append(make([]*entry, 0, len(s.redo)+len(s.queue)), s.redo...), s.queue...)
		s.redo = s.redo[:0]
	}
	n, i := 0, 0
	for ; i < len(s.queue) && n < max; i++ {
		e := s.queue[i]
		s.queue[i] = nil
		if s.offerLocked(e) {
			s.queue[n] = e // the front of the queue holds what is taken
			n++
		}
	}
	taken := s.queue[:n:n]
	s.queue = s.queue[i:]
	s.mu.Unlock()
	if n == 0 {
		return nil
	}
	if s.observe {
		s.pending.Add(int64(n))
	}
	out := make([]*driver.Message, n)
	for i, e := range taken {
		out[i] = &e.dm
	}
	return out
}

// offerLocked registers e as handed out; false drops it: its partition's
// assignment (the one it was polled in) is being revoked or is over. A bad
// record is finished here. s.mu is held.
func (s *subscription) offerLocked(e *entry) bool {
	if e.p == nil { // first delivery: bind to the assignment it was polled in
		p := e.owner
		if p == nil || p.revoking || p.dead || e.rec.Offset < p.next {
			return false
		}
		e.p = p
		p.next = e.rec.Offset + 1
		p.entries = append(p.entries, e)
		if e.bad {
			e.done = true
			p.advance()
			return false
		}
	} else if e.p.revoking || e.p.dead {
		return false
	}
	e.p.inflight++
	return true
}

// advance pops the finished prefix of p's entries and moves the commit
// offset past it.
func (p *pstate) advance() {
	i := 0
	for ; i < len(p.entries) && p.entries[i].done; i++ {
		r := p.entries[i].rec
		p.commit = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset + 1}
	}
	if i > 0 {
		// Reslice (amortised O(1)); append reallocates, copying only the
		// live part, when the capacity runs out.
		clear(p.entries[:i])
		p.entries = p.entries[i:]
	}
}

// settleLocked takes e out of its partition's messages in flight, or
// returns ErrRevoked when the partition was given up. s.mu is held.
func (s *subscription) settleLocked(e *entry) (*pstate, error) {
	p := e.p
	if p == nil || p.dead {
		return nil, ErrRevoked
	}
	p.inflight--
	if p.revoking {
		s.cond.Broadcast()
	}
	return p, nil
}

// SendAcks implements driver.Subscription: the records are finished, and
// the next commit (every WithCommitInterval, and at the close) moves each
// partition's offset past those before which every record is finished.
func (s *subscription) SendAcks(_ context.Context, ids []driver.AckID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	late := 0
	for _, id := range ids {
		if s.ackLocked(id.(*entry)) != nil {
			late++
		}
	}
	if late > 0 {
		return fmt.Errorf("%d of %d acks: %w", late, len(ids), ErrRevoked)
	}
	return nil
}

// AckInline implements driver.InlineAcker: an ack only marks the record
// finished and moves its partition's commit offset, in memory, so package
// transport calls it from eventkit.Message.Ack, which returns ErrRevoked
// when the partition was given up first.
func (s *subscription) AckInline(id driver.AckID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ackLocked(id.(*entry))
}

// ackLocked finishes e, or returns ErrRevoked. s.mu is held.
func (s *subscription) ackLocked(e *entry) error {
	p, err := s.settleLocked(e)
	if err != nil {
		return err
	}
	e.done = true
	p.advance()
	return nil
}

// SendNacks implements driver.Subscription: each record is delivered
// again after its delay, and its partition's commit stays before it until
// it is acked. The redelivery carries the event decoded again from the
// record, not the event of the nacked message, which its handler may have
// changed. A record nacked while its partition is revoked stays unfinished:
// the next owner delivers it.
func (s *subscription) SendNacks(_ context.Context, nacks []driver.Nack) error {
	var errs []error
	for _, n := range nacks {
		errs = append(errs, s.nack(n.ID.(*entry), n.Delay))
	}
	return errors.Join(errs...)
}

func (s *subscription) nack(e *entry, delay time.Duration) error {
	fresh, ferr := redecode(e.rec)
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.settleLocked(e)
	if err != nil {
		return err
	}
	e.dm.Attempt++
	if ferr == nil {
		e.dm.Event = fresh
	} else { // it decoded before: not expected
		s.d.cfg.logger.Warn("kafka: decoding a nacked record again failed; redelivering the event as handled", "topic", e.rec.Topic, "partition", e.rec.Partition, "offset", e.rec.Offset, "err", ferr)
	}
	if p.revoking {
		return nil
	}
	if delay <= 0 {
		s.redo = append(s.redo, e)
		s.signal()
		return nil
	}
	var tm *time.Timer
	tm = time.AfterFunc(delay, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.timers == nil {
			return
		}
		delete(s.timers, tm)
		if !p.dead && !p.revoking {
			s.redo = append(s.redo, e)
			s.signal()
		}
	})
	s.timers[tm] = struct{}{}
	return nil
}

// redecode decodes r into an event that shares nothing with an earlier
// delivery: its own context and its own copy of the data.
func redecode(r *kgo.Record) (event.Event, error) {
	ev, err := new(decoded).decode(r, nil)
	if err != nil {
		return ev, err
	}
	if ev.DataEncoded != nil {
		ev.DataEncoded = append([]byte(nil), ev.DataEncoded...)
	}
	return ev, nil
}

var _ driver.InlineAcker = (*subscription)(nil)
