package hub

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/deadletter"
	"github.com/eventkit/eventkit/inspect"
	eknats "github.com/eventkit/eventkit/nats"
	"github.com/eventkit/eventkit/topic"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// defaultDeadLetterPattern holds the dead-letter topics of the
// subscriptions that do not name their own.
const defaultDeadLetterPattern = "deadletter.>"

// jsDeadLetters is a deadletter.Store on the hub's JetStream stream: a
// dead letter is an event stored on a subscription's dead-letter topic
// (deadletter.<name> unless configured otherwise) that carries the
// dlqtopic extension; its position is its stream sequence.
type jsDeadLetters struct {
	s  *Server
	rd *storeReader // of the hub's stream
}

var _ deadletter.Store = jsDeadLetters{}

func (d jsDeadLetters) stream(ctx context.Context) (jetstream.Stream, error) {
	return d.rd.js.Stream(ctx, d.rd.stream)
}

// prefix is the subject prefix of the hub's topics, with its '.'.
func (d jsDeadLetters) prefix() string { return d.rd.prefix }

// deadLetterTopics maps each known subscription to its dead-letter topic:
// those of the configuration file and those of the Subscriptions API.
func (s *Server) deadLetterTopics() map[string]string {
	out := map[string]string{}
	for _, sc := range s.cfg.Subscriptions {
		out[sc.Name] = sc.DeadLetter
	}
	if s.api != nil {
		s.api.mu.Lock()
		for id, l := range s.api.live {
			if t, ok := l.public.Config["dead_letter"].(string); ok && t != "" {
				out[id] = t
			}
		}
		s.api.mu.Unlock()
	}
	return out
}

// filters returns the topic patterns that hold the dead letters of
// subscription ("": of every subscription).
func (d jsDeadLetters) filters(subscription string) ([]string, error) {
	known := d.s.deadLetterTopics()
	if subscription != "" {
		if t, ok := known[subscription]; ok {
			return []string{t}, nil
		}
		t := "deadletter." + subscription
		if err := topic.ValidateName(t); err != nil {
			return nil, &badRequest{"subscription: " + err.Error()}
		}
		return []string{t}, nil
	}
	out := []string{defaultDeadLetterPattern}
	for _, t := range known {
		if !topic.Match(defaultDeadLetterPattern, t) && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out, nil
}

// isDeadLetterTopic reports whether t is a dead-letter topic.
func (d jsDeadLetters) isDeadLetterTopic(t string) bool {
	if topic.Match(defaultDeadLetterPattern, t) {
		return true
	}
	for _, dl := range d.s.deadLetterTopics() {
		if dl == t {
			return true
		}
	}
	return false
}

// subscriptionOf names the subscription that dead-lettered e on topic t.
func (d jsDeadLetters) subscriptionOf(t string, e *event.Event) string {
	if s := deadletter.Subscription(e); s != "" {
		return s
	}
	for name, dl := range d.s.deadLetterTopics() {
		if dl == t {
			return name
		}
	}
	return strings.TrimPrefix(t, "deadletter.")
}

// List reads, for each filter, the dead letters after q.After with
// JetStream's next-message-for-subject lookups, and merges them in stream
// order.
func (d jsDeadLetters) List(ctx context.Context, q deadletter.Query) ([]deadletter.Item, error) {
	if q.Limit <= 0 {
		q.Limit = deadletter.DefaultLimit
	}
	q.Limit = min(q.Limit, deadletter.MaxLimit)
	var after uint64
	if q.After != "" {
		var err error
		if after, err = strconv.ParseUint(q.After, 10, 64); err != nil {
			return nil, &badRequest{"after: want a position (a decimal sequence)"}
		}
	}
	filters, err := d.filters(q.Subscription)
	if err != nil {
		return nil, err
	}
	st, err := d.stream(ctx)
	if err != nil {
		return nil, err
	}
	// The first q.Limit of all are among the first q.Limit of each filter.
	var out []deadletter.Item
	for _, f := range filters {
		n := 0
		for seq := after + 1; n < q.Limit; {
			raw, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(d.prefix()+f))
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				break
			}
			if err != nil {
				return nil, err
			}
			seq = raw.Sequence + 1
			if it, ok := d.item(rawMsg(raw)); ok && (q.Subscription == "" || it.Subscription == q.Subscription) {
				out = append(out, it)
				n++
			}
		}
	}
	slices.SortFunc(out, func(a, b deadletter.Item) int { return cmpPosition(a.Position, b.Position) })
	return out[:min(len(out), q.Limit)], nil
}

func cmpPosition(a, b string) int {
	x, _ := strconv.ParseUint(a, 10, 64)
	y, _ := strconv.ParseUint(b, 10, 64)
	return cmp.Compare(x, y)
}

// item turns a stored message into a dead letter's item; false when it is
// not one (another topic, undecodable, no dlqtopic extension).
func (d jsDeadLetters) item(m streamMsg) (deadletter.Item, bool) {
	it, ok, err := d.rd.item(m, d.isDeadLetterTopic)
	if !ok || err != nil {
		return deadletter.Item{}, false
	}
	return d.deadLetter(it)
}

// deadLetter is the dead letter's item of a stored event; false when the
// event carries no dlqtopic extension.
func (d jsDeadLetters) deadLetter(it inspect.Item) (deadletter.Item, bool) {
	if _, ok := deadletter.OriginalTopic(&it.Event); !ok {
		return deadletter.Item{}, false
	}
	dl, err := deadLetterItem(it)
	if err != nil {
		return deadletter.Item{}, false
	}
	dl.Subscription = d.subscriptionOf(it.Topic, &it.Event)
	return dl, true
}

// deadLetterItem is it as the dead-letter API answers it.
func deadLetterItem(it inspect.Item) (deadletter.Item, error) {
	raw, err := it.Raw()
	return deadletter.Item{RawItem: raw}, err
}

// parsePosition reads a position; an error wrapping deadletter.ErrNotFound
// when it is not one.
func parsePosition(p string) (uint64, error) {
	seq, err := strconv.ParseUint(p, 10, 64)
	if err != nil || seq == 0 {
		return 0, fmt.Errorf("%q: %w", p, deadletter.ErrNotFound)
	}
	return seq, nil
}

// Get returns the dead letter at position.
func (d jsDeadLetters) Get(ctx context.Context, position string) (deadletter.Item, error) {
	if _, err := parsePosition(position); err != nil {
		return deadletter.Item{}, err
	}
	it, err := d.rd.get(ctx, position, d.isDeadLetterTopic)
	var undecodable *undecodableError
	if errors.Is(err, jetstream.ErrMsgNotFound) || errors.As(err, &undecodable) {
		return deadletter.Item{}, fmt.Errorf("%s: %w", position, deadletter.ErrNotFound)
	}
	if err != nil {
		return deadletter.Item{}, err
	}
	dl, ok := d.deadLetter(it)
	if !ok {
		return deadletter.Item{}, fmt.Errorf("%s: %w", position, deadletter.ErrNotFound)
	}
	return dl, nil
}

// Delete removes the dead letter at position, after checking that it is
// one: no other event can be deleted through it.
func (d jsDeadLetters) Delete(ctx context.Context, position string) error {
	if _, err := d.Get(ctx, position); err != nil {
		return err
	}
	seq, _ := parsePosition(position)
	st, err := d.stream(ctx)
	if err != nil {
		return err
	}
	if err := st.DeleteMsg(ctx, seq); err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) || errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) {
			return fmt.Errorf("%s: %w", position, deadletter.ErrNotFound)
		}
		return err
	}
	return nil
}

// Republish stores e on topic with a Nats-Msg-Id made of its usual one and
// key: the stream's duplicate window drops a repeat of this re-drive, not
// the re-drive as a repeat of the event's first publish.
func (d jsDeadLetters) Republish(ctx context.Context, t string, e event.Event, key string) (deadletter.Item, error) {
	if err := topic.ValidateName(t); err != nil {
		return deadletter.Item{}, fmt.Errorf("original topic: %w", err)
	}
	subject := d.prefix() + t
	m, err := eknats.EncodeMsg(subject, e, eventkit.Structured)
	if err != nil {
		return deadletter.Item{}, err
	}
	m.Header.Set(natsgo.MsgIdHdr, eknats.DefaultMsgID(subject, e.ID(), e.Source())+" "+key)
	ack, err := d.s.jsAPI.PublishMsg(ctx, m)
	if err != nil {
		d.s.store.note(err)
		return deadletter.Item{}, insufficientStorage(err)
	}
	stored := time.Now()
	if st, err := d.stream(ctx); err == nil {
		if raw, err := st.GetMsg(ctx, ack.Sequence); err == nil {
			stored = raw.Time
		}
	}
	return deadLetterItem(inspect.Item{Position: strconv.FormatUint(ack.Sequence, 10), Topic: t, Stored: stored, Event: e})
}

// badRequest is an error of the request: answered 400.
type badRequest struct{ detail string }

func (e *badRequest) Error() string { return e.detail }
