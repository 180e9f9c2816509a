package nats

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/outbox"
	"github.com/eventkit/eventkit/saga"
	"github.com/eventkit/eventkit/topic"
)

// SagaStore is a saga.Store on a JetStream key-value bucket, shared by
// every process connected to the same JetStream. It needs nats-server 2.12
// or newer: a save is one JetStream atomic batch (ADR-50).
//
// What is stored, under keys of the bucket:
//
//   - i.<saga>.<id>: the instance (saga.MarshalRecord) with the ids of the
//     events it handled; a save replaces it by compare-and-set on its
//     revision (Nats-Expected-Last-Subject-Sequence), so concurrent saves
//     of one version have one winner (saga.ErrConflict for the others);
//   - o.<uuid>: one message a step emitted, the outbox row, published in
//     the same atomic batch as the instance: the server stores the
//     instance and every message of the save, or nothing. The bucket's
//     stream sequence is the row's position (outbox.Record.ID);
//     SagaStore.Outbox relays them and deletes each once published;
//   - relay.lease: which relay holds the outbox (compare-and-set).
//
// The saga and id parts of a key are base64url-encoded, so any name works.
//
// Limits: Due and List read every instance of the saga (the bucket has no
// secondary index), which suits thousands of live instances, not
// millions; a save emits at most 999 messages (the server's default
// atomic batch size is 1000, the instance included). The bucket is created
// with message deletes allowed (the relay deletes published rows), which a
// bucket made by jetstream.CreateKeyValue forbids: NewSagaStore refuses
// such a bucket.
type SagaStore struct {
	nc     *nats.Conn
	kv     jetstream.KeyValue
	stream jetstream.Stream
	subj   string // "$KV.<bucket>."
	outbox *SagaOutbox
}

var _ saga.Store = (*SagaStore)(nil)

// sagaDoc is the stored value of an instance.
type sagaDoc struct {
	saga.Record
	Seen []string `json:"seen,omitempty"`
}

const (
	sagaTopicHeader = "Eventkit-Topic"
	sagaLeaseKey    = "relay.lease"
	sagaMaxOutgoing = 999
)

// NewSagaStore opens (or creates) the bucket named bucketName for saga
// instances and their outbox. WithKVStorage and WithKVReplicas apply;
// instances never expire.
func NewSagaStore(ctx context.Context, js jetstream.JetStream, bucketName string, opts ...KVOption) (*SagaStore, error) {
	cfg := newKVConfig(opts)
	name := "KV_" + bucketName
	sc := jetstream.StreamConfig{
		Name: name, Description: "eventkit saga instances and their outbox",
		Subjects: []string{"$KV." + bucketName + ".>"}, MaxMsgsPerSubject: 1,
		Discard: jetstream.DiscardNew, AllowRollup: true, AllowDirect: true, AllowAtomicPublish: true,
		Duplicates: 2 * time.Minute, Storage: cfg.storage, Replicas: cfg.replicas,
	}
	st, err := js.CreateStream(ctx, sc)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		st, err = js.Stream(ctx, name)
	}
	if err != nil {
		return nil, fmt.Errorf("nats: saga store bucket %q: %w", bucketName, err)
	}
	if c := st.CachedInfo().Config; c.DenyDelete || !c.AllowAtomicPublish || c.MaxMsgsPerSubject != 1 {
		return nil, fmt.Errorf("nats: saga store bucket %q exists without atomic publish or message deletes, or with history: not a saga store bucket", bucketName)
	}
	kv, err := js.KeyValue(ctx, bucketName)
	if err != nil {
		return nil, fmt.Errorf("nats: saga store bucket %q: %w", bucketName, err)
	}
	s := &SagaStore{nc: js.Conn(), kv: kv, stream: st, subj: "$KV." + bucketName + "."}
	s.outbox = &SagaOutbox{s: s}
	return s, nil
}

// Outbox returns the outbox that receives the messages of saga steps: run
// an outbox.Relay on it to publish them.
func (s *SagaStore) Outbox() *SagaOutbox { return s.outbox }

func sagaKey(name, id string) string { return "i." + kvKey(name) + "." + kvKey(id) }

// load returns the instance's document and revision.
func (s *SagaStore) load(ctx context.Context, name, id string) (sagaDoc, uint64, error) {
	e, err := s.kv.Get(ctx, sagaKey(name, id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return sagaDoc{}, 0, fmt.Errorf("nats: saga %s %q: %w", name, id, saga.ErrNotFound)
	}
	if err != nil {
		return sagaDoc{}, 0, fmt.Errorf("nats: saga %s %q: %w", name, id, err)
	}
	var d sagaDoc
	if err := json.Unmarshal(e.Value(), &d); err != nil {
		return sagaDoc{}, 0, fmt.Errorf("nats: saga %s %q: bad value: %w", name, id, err)
	}
	return d, e.Revision(), nil
}

// Load implements saga.Store.
func (s *SagaStore) Load(ctx context.Context, name, id string) (saga.Record, error) {
	d, _, err := s.load(ctx, name, id)
	return d.Record, err
}

// Seen implements saga.Store.
func (s *SagaStore) Seen(ctx context.Context, name, id, eventID string) (bool, error) {
	d, _, err := s.load(ctx, name, id)
	if errors.Is(err, saga.ErrNotFound) {
		return false, nil
	}
	return slices.Contains(d.Seen, eventID), err
}

// Save implements saga.Store: one atomic batch of the outgoing messages
// and the instance, the instance's revision checked by the server.
func (s *SagaStore) Save(ctx context.Context, c saga.Change) error {
	r := c.Record
	conflict := func(why string) error {
		return fmt.Errorf("nats: saga %s %q version %d: %s: %w", r.Saga, r.ID, r.Version, why, saga.ErrConflict)
	}
	if r.Version == 0 {
		return conflict("version 0")
	}
	msgs, err := s.outgoing(c.Outgoing)
	if err != nil {
		return err
	}
	d, rev, err := s.load(ctx, r.Saga, r.ID)
	switch {
	case errors.Is(err, saga.ErrNotFound):
		if r.Version != 1 {
			return conflict("no such instance")
		}
	case err != nil:
		return err
	case d.Version != r.Version-1:
		return conflict(fmt.Sprintf("stored version %d", d.Version))
	case c.EventID != "" && slices.Contains(d.Seen, c.EventID):
		return conflict("event " + c.EventID + " already handled")
	}
	next := sagaDoc{Record: r, Seen: d.Seen}
	switch {
	case r.Status.Final(): // a final instance handles no event: forget their ids
		next.Seen = nil
	case c.EventID != "":
		next.Seen = append(slices.Clip(d.Seen), c.EventID)
	}
	val, err := json.Marshal(next)
	if err != nil {
		return fmt.Errorf("nats: saga %s %q: %w", r.Saga, r.ID, err)
	}
	inst := nats.NewMsg(s.subj + sagaKey(r.Saga, r.ID))
	inst.Data = val
	inst.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(rev, 10))
	if len(msgs) == 0 {
		err = s.publish(ctx, inst) // one message is atomic by itself
	} else {
		err = s.publishAtomic(ctx, append(msgs, inst))
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
		return conflict("changed concurrently")
	}
	if err != nil {
		return fmt.Errorf("nats: saga %s %q: save: %w", r.Saga, r.ID, err)
	}
	return nil
}

// outgoing validates the messages of a change and returns them as outbox
// rows.
func (s *SagaStore) outgoing(out []saga.Message) ([]*nats.Msg, error) {
	if len(out) > sagaMaxOutgoing {
		return nil, fmt.Errorf("nats: saga save: %d messages, at most %d in one save", len(out), sagaMaxOutgoing)
	}
	msgs := make([]*nats.Msg, 0, len(out)+1)
	for _, m := range out {
		if err := topic.ValidateName(m.Topic); err != nil {
			return nil, fmt.Errorf("nats: saga outbox write: %w", err)
		}
		if err := eventkit.ValidateEvents([]event.Event{m.Event}); err != nil {
			return nil, fmt.Errorf("nats: saga outbox write: %w", err)
		}
		data, err := json.Marshal(m.Event)
		if err != nil {
			return nil, fmt.Errorf("nats: saga outbox write: %w", err)
		}
		row := nats.NewMsg(s.subj + "o." + uuid.NewString())
		row.Header.Set(sagaTopicHeader, m.Topic)
		row.Data = data
		msgs = append(msgs, row)
	}
	return msgs, nil
}

// publish publishes one message and returns the stream's error, if any.
func (s *SagaStore) publish(ctx context.Context, m *nats.Msg) error {
	resp, err := s.nc.RequestMsgWithContext(ctx, m)
	if err != nil {
		return err
	}
	_, err = pubAckError(resp.Data)
	return err
}

// pubAckError decodes a JetStream publish acknowledgement: the number of
// messages of its batch, or the stream's error.
func pubAckError(data []byte) (int, error) {
	var ack struct {
		Error *jetstream.APIError `json:"error"`
		Count int                 `json:"count"`
	}
	if err := json.Unmarshal(data, &ack); err != nil {
		return 0, fmt.Errorf("bad publish acknowledgement %q: %w", data, err)
	}
	if ack.Error != nil {
		return 0, ack.Error
	}
	return ack.Count, nil
}

// publishAtomic publishes msgs as one JetStream atomic batch: the server
// stores all of them or none. The last message commits the batch; its
// acknowledgement, or error, is the batch's.
func (s *SagaStore) publishAtomic(ctx context.Context, msgs []*nats.Msg) error {
	id := uuid.NewString()
	for i, m := range msgs {
		m.Header.Set("Nats-Batch-Id", id)
		m.Header.Set("Nats-Batch-Sequence", strconv.Itoa(i+1))
		if i < len(msgs)-1 {
			if err := s.nc.PublishMsg(m); err != nil {
				return err
			}
			continue
		}
		m.Header.Set("Nats-Batch-Commit", "1")
	}
	resp, err := s.nc.RequestMsgWithContext(ctx, msgs[len(msgs)-1])
	if err != nil {
		return err
	}
	n, err := pubAckError(resp.Data)
	if err == nil && n != len(msgs) {
		err = fmt.Errorf("atomic batch: %d messages acknowledged, %d sent", n, len(msgs))
	}
	return err
}

// scan returns every instance of the saga.
func (s *SagaStore) scan(ctx context.Context, name string) ([]saga.Record, error) {
	w, err := s.kv.WatchFiltered(ctx, []string{"i." + kvKey(name) + ".*"}, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("nats: saga %s: scan: %w", name, err)
	}
	defer func() { _ = w.Stop() }()
	var out []saga.Record
	for {
		select {
		case e := <-w.Updates():
			if e == nil { // the initial values are all delivered
				return out, nil
			}
			var d sagaDoc
			if err := json.Unmarshal(e.Value(), &d); err != nil {
				return nil, fmt.Errorf("nats: saga %s: bad value of %q: %w", name, e.Key(), err)
			}
			out = append(out, d.Record)
		case <-ctx.Done():
			return nil, fmt.Errorf("nats: saga %s: scan: %w", name, ctx.Err())
		}
	}
}

// Due implements saga.Store.
func (s *SagaStore) Due(ctx context.Context, name string, now time.Time, limit int) ([]string, error) {
	recs, err := s.scan(ctx, name)
	if err != nil {
		return nil, err
	}
	recs = slices.DeleteFunc(recs, func(r saga.Record) bool { return r.Wake.IsZero() || r.Wake.After(now) })
	slices.SortFunc(recs, func(a, b saga.Record) int { return cmp.Or(a.Wake.Compare(b.Wake), cmp.Compare(a.ID, b.ID)) })
	recs = recs[:min(len(recs), limit)]
	ids := make([]string, len(recs))
	for i, r := range recs {
		ids[i] = r.ID
	}
	return ids, nil
}

// List implements saga.Store.
func (s *SagaStore) List(ctx context.Context, name string, f saga.Filter) ([]saga.Record, error) {
	recs, err := s.scan(ctx, name)
	if err != nil {
		return nil, err
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	recs = slices.DeleteFunc(recs, func(r saga.Record) bool {
		return r.ID <= f.After || f.Status != "" && r.Status != f.Status
	})
	slices.SortFunc(recs, func(a, b saga.Record) int { return cmp.Compare(a.ID, b.ID) })
	return recs[:min(len(recs), f.Limit)], nil
}

// SagaOutbox is the outbox of a SagaStore, as an outbox.Relay reads it: one
// partition (so the rows of every key are published in commit order),
// held by one relay at a time; other relays stand by and take over when
// its lease expires. A published row is deleted from the bucket.
type SagaOutbox struct {
	s *SagaStore
}

var _ outbox.Store = (*SagaOutbox)(nil)

type sagaLease struct {
	Owner string    `json:"owner"`
	Until time.Time `json:"until"`
}

// Partitions implements outbox.Store: 1.
func (o *SagaOutbox) Partitions() int { return 1 }

// lease returns the lease and its revision (zero when there is none).
func (o *SagaOutbox) lease(ctx context.Context) (sagaLease, uint64, error) {
	e, err := o.s.kv.Get(ctx, sagaLeaseKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return sagaLease{}, 0, nil
	}
	if err != nil {
		return sagaLease{}, 0, fmt.Errorf("nats: saga outbox lease: %w", err)
	}
	var l sagaLease
	if err := json.Unmarshal(e.Value(), &l); err != nil {
		return sagaLease{}, 0, fmt.Errorf("nats: saga outbox lease: bad value: %w", err)
	}
	return l, e.Revision(), nil
}

// Claim implements outbox.Store: owner gets the partition when it is free,
// expired or already its own.
func (o *SagaOutbox) Claim(ctx context.Context, owner string, ttl time.Duration) ([]int, error) {
	start := time.Now()
	val, err := json.Marshal(sagaLease{Owner: owner, Until: start.Add(ttl)})
	if err != nil {
		return nil, err
	}
	l, rev, err := o.lease(ctx)
	if err != nil {
		return nil, err
	}
	if rev != 0 && l.Owner != owner && l.Until.After(start) {
		return nil, nil // held by another relay
	}
	if rev == 0 {
		_, err = o.s.kv.Create(ctx, sagaLeaseKey, val)
	} else {
		_, err = o.s.kv.Update(ctx, sagaLeaseKey, val, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) {
		return nil, nil // another relay claimed it meanwhile
	}
	if err != nil {
		return nil, fmt.Errorf("nats: saga outbox claim: %w", err)
	}
	return []int{0}, nil
}

// Release implements outbox.Store.
func (o *SagaOutbox) Release(ctx context.Context, owner string) error {
	l, rev, err := o.lease(ctx)
	if err != nil || rev == 0 || l.Owner != owner {
		return err
	}
	err = o.s.kv.Delete(ctx, sagaLeaseKey, jetstream.LastRevision(rev))
	if err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("nats: saga outbox release: %w", err)
	}
	return nil
}

// Fetch implements outbox.Store.
func (o *SagaOutbox) Fetch(ctx context.Context, cursors []outbox.Cursor, limit int) ([]outbox.Record, error) {
	var out []outbox.Record
	for _, c := range cursors {
		if c.Partition != 0 {
			continue
		}
		for seq := c.After + 1; len(out) < limit; {
			m, err := o.s.stream.GetMsg(ctx, uint64(seq), jetstream.WithGetMsgSubject(o.s.subj+"o.>"))
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("nats: saga outbox fetch: %w", err)
			}
			var e event.Event
			if err := json.Unmarshal(m.Data, &e); err != nil {
				return nil, fmt.Errorf("nats: saga outbox fetch: row %d: %w", m.Sequence, err)
			}
			out = append(out, outbox.Record{ID: int64(m.Sequence), Topic: m.Header.Get(sagaTopicHeader), Event: e})
			seq = int64(m.Sequence) + 1
		}
	}
	return out, nil
}

// MarkDelivered implements outbox.Store: it deletes the rows, if owner
// still holds the lease.
func (o *SagaOutbox) MarkDelivered(ctx context.Context, owner string, records []outbox.Record) error {
	l, _, err := o.lease(ctx)
	if err != nil {
		return err
	}
	if l.Owner != owner || !l.Until.After(time.Now()) {
		return fmt.Errorf("nats: saga outbox mark: %w", outbox.ErrLeaseLost)
	}
	for _, r := range records {
		err := o.s.stream.DeleteMsg(ctx, uint64(r.ID))
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeMessageNotFound {
			continue // deleted already (marked twice)
		}
		if err != nil {
			return fmt.Errorf("nats: saga outbox mark %d: %w", r.ID, err)
		}
	}
	return nil
}
