package nats

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/topic"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Subscribe starts a subscription to pattern (a NATS subject: "*" matches
// one token, ">" the rest), which must fall in one stream.
//
// With eventkit.WithGroup, the subscription is a member of a durable pull
// consumer named after the group: members share its messages, and the
// consumer keeps its position while no member runs. Without group, the
// subscription has a consumer of its own, deleted when it closes (and by
// the server after WithInactiveThreshold if the process dies). A new
// consumer starts at the next event published, or at the oldest retained
// one with eventkit.FromStart. Every message is acked explicitly; Nack and
// NackAfter send a negative ack (with the delay), and Message.Attempt is
// JetStream's delivery count.
//
// While JetStream is unavailable (the server restarting, or recovering its
// streams), Subscribe waits for it until ctx ends, as Publish does; each
// management call to the server is bounded by WithSetupTimeout.
func (t *Transport) Subscribe(ctx context.Context, pattern string, opts ...eventkit.SubscribeOption) (eventkit.Subscription, error) {
	if t.closed.Load() {
		return nil, eventkit.ErrClosed
	}
	if err := topic.ValidatePattern(pattern); err != nil {
		return nil, fmt.Errorf("nats: subscribe: %w", err)
	}
	cfg := eventkit.NewSubscribeConfig(opts...)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	stream, err := t.streamFor(ctx, pattern)
	if err != nil {
		return nil, fmt.Errorf("nats: subscribe to %q: %w", pattern, err)
	}
	s := &subscription{
		t: t, stream: stream, pattern: pattern, cfg: cfg,
		unsettled: make(map[*delivery]struct{}),
		done:      make(chan struct{}),
	}
	var cons jetstream.Consumer
	err = t.retryJS(ctx, func(ctx context.Context) (err error) {
		cons, err = s.consumer(ctx, 0)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("nats: subscribe to %q: %w", pattern, err)
	}
	s.cons = cons
	size := cfg.Buffer
	if size <= 0 {
		size = t.cfg.buffer
	}
	// At least one message must fit, or nothing would ever be pulled.
	s.size = max(size, 1)
	s.out = make(chan *eventkit.Message)
	s.ctx, s.cancel = context.WithCancel(context.Background())

	t.mu.Lock()
	if t.closed.Load() {
		t.mu.Unlock()
		s.cancel()
		s.deleteConsumer()
		return nil, eventkit.ErrClosed
	}
	t.subs[s] = struct{}{}
	t.wg.Add(1)
	t.mu.Unlock()

	s.stopAfter = context.AfterFunc(ctx, s.cancel)
	var wg sync.WaitGroup
	if t.cfg.ackExtension >= 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.extend()
		}()
	}
	go func() {
		defer t.wg.Done()
		s.run()
		s.cancel()
		wg.Wait()
		s.finish()
	}()
	return s, nil
}

type subscription struct {
	t       *Transport
	stream  string
	pattern string
	cfg     eventkit.SubscribeConfig

	name      string // consumer name
	ephemeral bool
	cons      jetstream.Consumer
	lastSeq   uint64 // stream sequence of the last delivery (run goroutine only)
	inbox     string
	sub       *nats.Subscription
	ch        chan *nats.Msg

	size      int  // most messages held received and not taken
	held      fifo // received, not yet taken by the reader (run goroutine, then finish)
	out       chan *eventkit.Message
	ctx       context.Context
	cancel    context.CancelFunc
	stopAfter func() bool
	done      chan struct{}
	err       error

	mu        sync.Mutex
	unsettled map[*delivery]struct{}
	left      []*nats.Msg // received, not delivered: nacked by finish
}

// consumer creates (or, for a group, joins) the subscription's consumer.
// A consumer made again after it was lost starts after startAfter.
func (s *subscription) consumer(ctx context.Context, startAfter uint64) (jetstream.Consumer, error) {
	t := s.t
	cc := jetstream.ConsumerConfig{
		FilterSubject: s.pattern,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       t.cfg.ackWait,
		MaxDeliver:    t.cfg.maxDeliver,
		MaxAckPending: t.cfg.maxAckPending,
		DeliverPolicy: jetstream.DeliverNewPolicy,
	}
	if s.cfg.FromStart {
		cc.DeliverPolicy = jetstream.DeliverAllPolicy
	}
	if startAfter > 0 {
		cc.DeliverPolicy, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, startAfter+1
	}
	if s.cfg.Group == "" {
		if s.name == "" {
			var b [8]byte
			_, _ = rand.Read(b[:])
			s.name = "eventkit_" + hex.EncodeToString(b[:])
		}
		s.ephemeral = true
		if startAfter > 0 {
			// Restoring: the consumer may have survived.
			if c, err := t.js.Consumer(ctx, s.stream, s.name); err == nil {
				return c, nil
			}
		}
		cc.Name = s.name
		cc.InactiveThreshold = t.cfg.inactive
		c, err := t.js.CreateOrUpdateConsumer(ctx, s.stream, cc)
		if err != nil {
			return nil, fmt.Errorf("create consumer on stream %q: %w", s.stream, err)
		}
		return c, nil
	}
	s.name = safeName(s.cfg.Group)
	cc.Durable = s.name
	for try := 0; ; try++ {
		c, err := t.js.Consumer(ctx, s.stream, s.name)
		if err == nil {
			have := c.CachedInfo().Config
			if have.FilterSubject != s.pattern {
				return nil, fmt.Errorf("group %q (consumer %q on stream %q) subscribes to %q, not %q", s.cfg.Group, s.name, s.stream, have.FilterSubject, s.pattern)
			}
			if have.AckPolicy != jetstream.AckExplicitPolicy {
				return nil, fmt.Errorf("consumer %q on stream %q does not use explicit acks", s.name, s.stream)
			}
			if have.AckWait != cc.AckWait || have.MaxDeliver != cc.MaxDeliver || have.MaxAckPending != cc.MaxAckPending {
				upd := have
				upd.AckWait, upd.MaxDeliver, upd.MaxAckPending = cc.AckWait, cc.MaxDeliver, cc.MaxAckPending
				if c, err = t.js.UpdateConsumer(ctx, s.stream, upd); err != nil {
					return nil, fmt.Errorf("update consumer %q on stream %q: %w", s.name, s.stream, err)
				}
			}
			return c, nil
		}
		if !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, fmt.Errorf("consumer %q on stream %q: %w", s.name, s.stream, err)
		}
		c, err = t.js.CreateConsumer(ctx, s.stream, cc)
		if errors.Is(err, jetstream.ErrConsumerExists) && try < 3 {
			continue // another member created it first
		}
		if err != nil {
			return nil, fmt.Errorf("create consumer %q on stream %q: %w", s.name, s.stream, err)
		}
		return c, nil
	}
}

// run pulls messages into s.queue until the subscription ends, recovering
// from lost connections and consumers. Every received message is tracked
// (and so extended) from the moment it arrives; a pull asks for no more
// than the queue has room for, so that the client holds at most about one
// buffer of messages.
func (s *subscription) run() {
	t := s.t
	backoff := t.cfg.retryBackoff
	defer s.unsubscribe()
	for s.ctx.Err() == nil {
		err := s.subscribe()
		if err == nil {
			err = s.pull()
		}
		if err == nil {
			backoff = t.cfg.retryBackoff
			continue
		}
		if s.ctx.Err() != nil {
			return
		}
		if s.nc().IsClosed() {
			s.err = fmt.Errorf("nats: subscription to %q: %w", s.pattern, nats.ErrConnectionClosed)
			return
		}
		t.log.Warn("nats: subscription interrupted; resuming", "pattern", s.pattern, "consumer", s.name, "error", err)
		if !s.sleep(backoff) {
			return
		}
		backoff = min(backoff*2, t.cfg.maxRetryBackof)
		if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, nats.ErrNoResponders) {
			ctx, cancel := context.WithTimeout(s.ctx, t.cfg.setupTimeout)
			if c, cerr := s.consumer(ctx, s.lastSeq); cerr == nil {
				s.cons = c
			} else if s.ctx.Err() == nil {
				t.log.Warn("nats: consumer not restored yet", "pattern", s.pattern, "consumer", s.name, "error", cerr)
			}
			cancel()
		}
	}
}

func (s *subscription) nc() *nats.Conn { return s.t.nc }

func (s *subscription) sleep(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-s.ctx.Done():
		return false
	}
}

// subscribe makes the inbox subscription that pull requests answer to.
// nats.go restores it by itself after a reconnect.
func (s *subscription) subscribe() error {
	if s.sub != nil {
		return nil
	}
	s.inbox = s.nc().NewInbox()
	s.ch = make(chan *nats.Msg, s.size+2*s.t.cfg.fetchBatch+64)
	sub, err := s.nc().ChanSubscribe(s.inbox, s.ch)
	if err != nil {
		return err
	}
	s.sub = sub
	return nil
}

// unsubscribe ends the inbox subscription before anything is nacked, so
// that the server drops a pull request still waiting (it has no interest
// any more) instead of sending it the nacked messages; messages that
// arrived are kept for finish to nack.
//
// It drains rather than unsubscribes: after the drain's round trip, every
// message the server sent to the inbox before it took the unsubscription
// is in s.ch (and is nacked by finish). A plain unsubscribe drops those
// in flight, and the server, which counts them delivered, sends them
// again only after the ack wait.
func (s *subscription) unsubscribe() {
	if s.sub == nil {
		return
	}
	if err := s.sub.Drain(); err == nil {
		deadline := time.Now().Add(drainTimeout)
		for s.sub.IsValid() && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	if s.sub.IsValid() {
		_ = s.sub.Unsubscribe()
	}
	for {
		select {
		case msg := <-s.ch:
			if !isStatus(msg) {
				s.leftover(msg)
			}
		default:
			return
		}
	}
}

func (s *subscription) leftover(msg *nats.Msg) {
	s.mu.Lock()
	s.left = append(s.left, msg)
	s.mu.Unlock()
}

// settleTimeout bounds the wait for the server's confirmation of a nack.
const settleTimeout = 5 * time.Second

// drainTimeout bounds the wait for the inbox's drain when a subscription
// ends (one round trip to the server).
const drainTimeout = 2 * time.Second

// fetchExpiry is how long one pull request waits for messages.
const fetchExpiry = 3 * time.Second

func isStatus(msg *nats.Msg) bool {
	return len(msg.Data) == 0 && msg.Header.Get("Status") != ""
}

// pull keeps pull requests outstanding for as many messages as the
// subscription may hold, and hands what arrives to the reader through the
// unbuffered s.out (so that the moment each is taken is known), until the
// subscription ends or a request fails. A new request goes out as soon as
// there is room for half a batch, while earlier ones are still being
// served, so that the reader does not wait for round trips. Receiving and
// handing over in one goroutine saves a goroutine switch per message.
func (s *subscription) pull() error {
	batch := s.t.cfg.fetchBatch
	want := max(min(batch, s.size)/2, 1)
	subject := s.t.apiPrefix + "CONSUMER.MSG.NEXT." + s.stream + "." + s.name
	outstanding := 0 // messages requested and not yet received
	last := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		if free := s.size - s.held.len() - outstanding; free >= want {
			n := min(batch, free)
			req := []byte(`{"batch":` + strconv.Itoa(n) + `,"expires":` + strconv.FormatInt(fetchExpiry.Nanoseconds(), 10) + `}`)
			if err := s.nc().PublishRequest(subject, s.inbox, req); err != nil {
				return err
			}
			outstanding += n
			last = time.Now()
			continue
		}
		var out chan<- *eventkit.Message // nil (never ready) with nothing held
		var head *eventkit.Message
		if d := s.held.peek(); d != nil {
			out, head = s.out, d.m
		}
		select {
		case out <- head:
			s.held.pop().taken.Store(time.Now().UnixNano())
		case msg := <-s.ch:
			last = time.Now()
			if isStatus(msg) {
				switch code := msg.Header.Get("Status"); code {
				case "100":
					// heartbeat
				case "404", "408":
					// A request expired: what it still owed will not come.
					if p, err := strconv.Atoi(msg.Header.Get("Nats-Pending-Messages")); err == nil {
						outstanding = max(outstanding-p, 0)
					} else {
						outstanding = 0
					}
				case "503":
					return nats.ErrNoResponders
				default:
					desc := strings.ToLower(msg.Header.Get("Description"))
					switch {
					case strings.Contains(desc, "consumer deleted"):
						return jetstream.ErrConsumerDeleted
					case strings.Contains(desc, "leadership change"), strings.Contains(desc, "exceeded max"):
						outstanding = 0
					default:
						return fmt.Errorf("pull request: status %s %s", code, msg.Header.Get("Description"))
					}
				}
				continue
			}
			outstanding = max(outstanding-1, 0)
			if d := s.track(msg); d != nil {
				s.held.push(d)
			}
		case now := <-tick.C:
			// Requests lost in a reconnect never answer: forget them.
			if outstanding > 0 && now.Sub(last) > fetchExpiry+time.Second {
				outstanding = 0
			}
		case <-s.ctx.Done():
			return nil
		}
	}
}

// track decodes msg and records it as unsettled; nil for a message that
// is not a CloudEvent (terminated).
func (s *subscription) track(msg *nats.Msg) *delivery {
	seq, delivered, ok := ackReplyMeta(msg.Reply)
	if !ok {
		meta, err := msg.Metadata()
		if err != nil {
			s.t.log.Warn("nats: message without JetStream metadata dropped", "subject", msg.Subject, "error", err)
			return nil
		}
		seq, delivered = meta.Sequence.Stream, meta.NumDelivered
	}
	if seq > s.lastSeq {
		s.lastSeq = seq
	}
	ev, err := DecodeMsg(msg.Header, msg.Data)
	if err != nil {
		s.t.log.Warn("nats: message is not a valid CloudEvent; terminated (never redelivered)",
			"subject", msg.Subject, "stream", s.stream, "sequence", seq, "error", err)
		_ = s.reply(msg, ackTerm)
		return nil
	}
	d := &delivery{msg: msg, s: s}
	d.m = eventkit.NewMessage(msg.Subject, ev, int(delivered), d, msg)
	s.mu.Lock()
	s.unsettled[d] = struct{}{}
	s.mu.Unlock()
	return d
}

// Acknowledgement bodies of the JetStream protocol.
var (
	ackAck = []byte("+ACK")
	// ackNak asks for redelivery now, as a delayed NAK of 1ns: JetStream
	// keeps a plain NAK only in memory (a server restart forgets it, and
	// the message then waits for the ack wait), while a delayed NAK is
	// written to the consumer's state as an expired delivery, which a
	// restarted server redelivers at once. The server acts on it within
	// about 10ms.
	ackNak      = []byte(`-NAK {"delay":1}`)
	ackProgress = []byte("+WPI")
	ackTerm     = []byte("+TERM")
)

func (s *subscription) reply(msg *nats.Msg, body []byte) error {
	return s.nc().Publish(msg.Reply, body)
}

// finish nacks the messages received and not taken (they come back at
// once), closes s.out and releases the consumer of a subscription without
// group.
func (s *subscription) finish() {
	// The other goroutines have stopped, and the inbox is unsubscribed.
	var left []*nats.Msg
	s.mu.Lock()
	left, s.left = s.left, nil
	s.mu.Unlock()
	for d := s.held.pop(); d != nil; d = s.held.pop() {
		s.forget(d)
		left = append(left, d.msg)
	}
	s.nakAll(left)
	close(s.out)
	if s.ephemeral && !s.nc().IsClosed() {
		s.deleteConsumer()
	}
	s.stopAfter()
	s.t.removeSub(s)
	close(s.done)
}

// nakAll nacks msgs and waits (up to settleTimeout) until the server
// confirmed each: a confirmed nack is in the consumer's state, while one
// still queued in the server when it stops is lost (the message then
// waits for the ack wait).
func (s *subscription) nakAll(msgs []*nats.Msg) {
	if len(msgs) == 0 || s.nc().IsClosed() {
		return
	}
	inbox := s.nc().NewInbox()
	confirmed := make(chan *nats.Msg, len(msgs))
	sub, err := s.nc().ChanSubscribe(inbox, confirmed)
	if err != nil {
		for _, msg := range msgs {
			_ = s.reply(msg, ackNak)
		}
		return
	}
	defer func() { _ = sub.Unsubscribe() }()
	for _, msg := range msgs {
		_ = s.nc().PublishRequest(msg.Reply, inbox, ackNak)
	}
	timeout := time.NewTimer(settleTimeout)
	defer timeout.Stop()
	for range msgs {
		select {
		case <-confirmed:
		case <-timeout.C:
			return
		}
	}
}

func (s *subscription) deleteConsumer() {
	if !s.ephemeral || s.name == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.t.js.DeleteConsumer(ctx, s.stream, s.name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		s.t.log.Debug("nats: delete consumer", "consumer", s.name, "error", err)
	}
}

// extend sends in-progress acks for unsettled messages, up to the ack
// extension, every third of the ack wait.
func (s *subscription) extend() {
	t := s.t
	every := max(t.cfg.ackWait/3, 10*time.Millisecond)
	tick := time.NewTicker(every)
	defer tick.Stop()
	var batch []*delivery
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		batch = batch[:0]
		s.mu.Lock()
		for d := range s.unsettled {
			// Queued messages are extended until taken, taken ones up to
			// the ack extension.
			if tk := d.taken.Load(); tk == 0 || now.Sub(time.Unix(0, tk)) < t.cfg.ackExtension {
				batch = append(batch, d)
			}
		}
		s.mu.Unlock()
		for _, d := range batch {
			_ = s.reply(d.msg, ackProgress)
		}
	}
}

func (s *subscription) forget(d *delivery) {
	s.mu.Lock()
	delete(s.unsettled, d)
	s.mu.Unlock()
}

// Messages implements eventkit.Subscription.
func (s *subscription) Messages() <-chan *eventkit.Message { return s.out }

// Err implements eventkit.Subscription.
func (s *subscription) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// Close ends the subscription: the messages buffered and not yet taken are
// nacked, so that they come back at once (to another member of the group);
// messages taken and not settled come back after the ack wait. It waits
// for the subscription's goroutines to stop.
func (s *subscription) Close() error {
	s.cancel()
	<-s.done
	return nil
}

// delivery settles one JetStream message.
type delivery struct {
	msg   *nats.Msg
	m     *eventkit.Message
	s     *subscription
	taken atomic.Int64 // unix nanoseconds when the reader took it; 0 before
}

// Ack implements eventkit.Acknowledger.
func (d *delivery) Ack(*eventkit.Message) error {
	d.s.forget(d)
	if err := d.s.reply(d.msg, ackAck); err != nil {
		return fmt.Errorf("nats: ack: %w", err)
	}
	return nil
}

// Nack implements eventkit.Acknowledger: a negative ack, with the delay
// when there is one. It returns when the server has taken it: JetStream
// processes acknowledgements asynchronously and drops those still queued
// when it stops, and a nack lost that way would hold the message back for
// the ack wait.
func (d *delivery) Nack(_ *eventkit.Message, _ error, delay time.Duration) error {
	d.s.forget(d)
	body := ackNak
	if delay > 0 {
		body = []byte(`-NAK {"delay":` + strconv.FormatInt(delay.Nanoseconds(), 10) + `}`)
	}
	// Sent as a request, so that it returns once the server took it (see
	// nakAll).
	if _, err := d.s.nc().Request(d.msg.Reply, body, settleTimeout); err != nil {
		return fmt.Errorf("nats: nack: %w", err)
	}
	return nil
}

// fifo is a queue of deliveries, reusing its array.
type fifo struct {
	buf  []*delivery
	head int
}

func (f *fifo) len() int { return len(f.buf) - f.head }

func (f *fifo) push(d *delivery) {
	if f.head > 0 && len(f.buf) == cap(f.buf) {
		n := copy(f.buf, f.buf[f.head:])
		clear(f.buf[n:])
		f.buf, f.head = f.buf[:n], 0
	}
	f.buf = append(f.buf, d)
}

// peek returns the oldest delivery, nil when empty.
func (f *fifo) peek() *delivery {
	if f.head == len(f.buf) {
		return nil
	}
	return f.buf[f.head]
}

// pop removes and returns the oldest delivery, nil when empty.
func (f *fifo) pop() *delivery {
	if f.head == len(f.buf) {
		return nil
	}
	d := f.buf[f.head]
	f.buf[f.head] = nil
	f.head++
	if f.head == len(f.buf) {
		f.buf, f.head = f.buf[:0], 0
	}
	return d
}

// ackReplyMeta reads the stream sequence and the delivery count from a
// JetStream message's reply subject without allocating. The subject is
// $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>,
// or, from newer servers, with <domain>.<account hash> before the stream
// and possibly more tokens after the pending count (nats.go accepts 11
// tokens or more). ok is false for any other form.
func ackReplyMeta(reply string) (streamSeq, delivered uint64, ok bool) {
	rest, found := strings.CutPrefix(reply, "$JS.ACK.")
	if !found {
		return 0, 0, false
	}
	skip := 0 // tokens before <delivered>
	switch n := strings.Count(rest, ".") + 1; {
	case n == 7:
		skip = 2
	case n >= 9:
		skip = 4
	default:
		return 0, 0, false
	}
	for range skip {
		_, rest, _ = strings.Cut(rest, ".")
	}
	d, rest, _ := strings.Cut(rest, ".")
	q, _, _ := strings.Cut(rest, ".")
	dv, err1 := strconv.ParseUint(d, 10, 64)
	sv, err2 := strconv.ParseUint(q, 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return sv, dv, true
}
