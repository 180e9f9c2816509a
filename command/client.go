package command

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/google/uuid"
)

// Client sends commands. It is safe for concurrent use. A Client that
// made a Request owns a goroutine reading its reply topic until Close.
type Client struct {
	pub   eventkit.Publisher
	sub   eventkit.Subscriber
	cfg   config
	reply string // this instance's reply topic

	mu       sync.Mutex
	closed   bool
	replies  eventkit.Subscription // nil until the first Request, or after it failed
	loopDone chan struct{}         // closed when the latest reply loop has ended
	pending  map[string]pending    // by reply token

	dropped  atomic.Uint64
	received atomic.Uint64
}

type pending struct {
	id string // the command id
	ch chan result
}

type result struct {
	e   event.Event
	err error
}

// Stats are counters of a Client.
type Stats struct {
	// Pending is the number of requests waiting for their reply.
	Pending int
	// Replies is the number of replies delivered to a waiting request.
	Replies uint64
	// DroppedReplies counts replies that named no waiting request (late,
	// duplicate or foreign) and were dropped.
	DroppedReplies uint64
}

// NewClient returns a client that publishes commands through pub and, for
// Request, receives replies through sub (nil: Send only). It does no I/O:
// the reply topic is subscribed at the first Request. It applies
// WithPrefix, WithReplyPrefix, WithSource, WithTimeout, WithMaxPending and
// WithLogger.
func NewClient(pub eventkit.Publisher, sub eventkit.Subscriber, opts ...Option) (*Client, error) {
	if pub == nil {
		return nil, errors.New("command: NewClient: nil publisher")
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	return &Client{
		pub:     pub,
		sub:     sub,
		cfg:     cfg,
		reply:   cfg.replyPrefix + "." + uuid.NewString(),
		pending: map[string]pending{},
	}, nil
}

// ReplyTopic returns the topic this client receives replies on.
func (c *Client) ReplyTopic() string { return c.reply }

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	n := len(c.pending)
	c.mu.Unlock()
	return Stats{Pending: n, Replies: c.received.Load(), DroppedReplies: c.dropped.Load()}
}

// CommandOption sets an attribute of a command event.
type CommandOption func(*event.Event)

// WithID sets the command's id (default a random UUID); handlers may use
// it to recognize a command sent twice.
func WithID(id string) CommandOption { return func(e *event.Event) { e.SetID(id) } }

// WithSubject sets the command's subject, such as the id of the aggregate
// it is for (HandleAggregate reads it when given no id function).
func WithSubject(s string) CommandOption { return func(e *event.Event) { e.SetSubject(s) } }

// WithExtension sets an extension attribute of the command.
func WithExtension(name string, value any) CommandOption {
	return func(e *event.Event) { e.SetExtension(name, value) }
}

// NewCommand returns the event of a command of type cmdType whose data is
// the JSON of payload (none when payload is nil).
func (c *Client) NewCommand(cmdType string, payload any, opts ...CommandOption) (event.Event, error) {
	e := event.New()
	e.SetID(uuid.NewString())
	e.SetSource(c.cfg.source)
	e.SetType(cmdType)
	if payload != nil {
		if err := e.SetData(event.ApplicationJSON, payload); err != nil {
			return e, fmt.Errorf("command: encode %q: %w", cmdType, err)
		}
	}
	for _, o := range opts {
		o(&e)
	}
	return e, nil
}

// Send publishes a command of type cmdType with payload as its data and
// returns once the transport accepted it. The handler's outcome is not
// reported.
func (c *Client) Send(ctx context.Context, cmdType string, payload any, opts ...CommandOption) error {
	e, err := c.NewCommand(cmdType, payload, opts...)
	if err != nil {
		return err
	}
	return c.SendEvent(ctx, e)
}

// SendEvent publishes the command event e to the topic of its type.
func (c *Client) SendEvent(ctx context.Context, e event.Event) error {
	t, err := Topic(c.cfg.prefix, e.Type())
	if err != nil {
		return err
	}
	if err := c.pub.Publish(ctx, t, e); err != nil {
		return fmt.Errorf("command: send %q: %w", e.Type(), err)
	}
	return nil
}

// Request publishes a command of type cmdType and waits for its reply: the
// reply event on success (its data is the handler's result), an *Error
// when the handler failed, ErrTimeout when no reply came within the
// timeout, ctx's error when ctx ended first, or the transport's error.
func (c *Client) Request(ctx context.Context, cmdType string, payload any, opts ...CommandOption) (event.Event, error) {
	e, err := c.NewCommand(cmdType, payload, opts...)
	if err != nil {
		return event.Event{}, err
	}
	return c.RequestEvent(ctx, e)
}

// Request sends a command like Client.Request and decodes the reply's data
// into an R (left zero when the reply has no data).
func Request[R any](ctx context.Context, c *Client, cmdType string, payload any, opts ...CommandOption) (R, error) {
	var r R
	reply, err := c.Request(ctx, cmdType, payload, opts...)
	if err != nil {
		return r, err
	}
	if len(reply.Data()) == 0 {
		return r, nil
	}
	if err := eventkit.DecodeData(reply, &r); err != nil {
		return r, fmt.Errorf("command: reply to %q: %w", cmdType, err)
	}
	return r, nil
}

// RequestEvent publishes the command event e and waits for its reply, as
// Request. Each call waits for the reply to its own publication: a retry
// that reuses the command id is not answered by the reply to an earlier
// attempt.
func (c *Client) RequestEvent(ctx context.Context, e event.Event) (event.Event, error) {
	t, err := Topic(c.cfg.prefix, e.Type())
	if err != nil {
		return event.Event{}, err
	}
	e = e.Clone() // the caller's event keeps no replyto
	ctx, cancel := context.WithTimeoutCause(ctx, c.cfg.timeout, ErrTimeout)
	defer cancel()
	token := uuid.NewString()
	ch, err := c.begin(ctx, token, e.ID())
	if err != nil {
		return event.Event{}, err
	}
	defer c.end(token)
	e.SetExtension(ReplyToExtension, c.reply)
	e.SetExtension(ReplyTokenExtension, token)
	if err := c.pub.Publish(ctx, t, e); err != nil {
		if ctx.Err() != nil {
			return event.Event{}, c.ended(ctx, e)
		}
		return event.Event{}, fmt.Errorf("command: request %q: %w", e.Type(), err)
	}
	select {
	case r := <-ch:
		return c.result(e, r)
	case <-ctx.Done():
		select {
		case r := <-ch:
			// The reply came as the wait ended: take it.
			return c.result(e, r)
		default:
		}
		return event.Event{}, c.ended(ctx, e)
	}
}

// ended returns the error of request e whose ctx ended: ErrTimeout (with
// context.DeadlineExceeded when it was the caller's deadline), or ctx's
// error.
func (c *Client) ended(ctx context.Context, e event.Event) error {
	if errors.Is(context.Cause(ctx), ErrTimeout) {
		return fmt.Errorf("%w: %q after %s", ErrTimeout, e.Type(), c.cfg.timeout)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w: %q: %w", ErrTimeout, e.Type(), ctx.Err())
	}
	return fmt.Errorf("command: request %q: %w", e.Type(), ctx.Err())
}

// begin subscribes the reply topic if needed and registers a pending
// request with token, for command id.
func (c *Client) begin(ctx context.Context, token, id string) (chan result, error) {
	if c.sub == nil {
		return nil, ErrNoSubscriber
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if len(c.pending) >= c.cfg.maxPending {
		return nil, fmt.Errorf("%w (%d)", ErrTooManyPending, c.cfg.maxPending)
	}
	if c.replies == nil {
		// The subscription outlives this request: it ends with Close.
		sub, err := c.sub.Subscribe(context.WithoutCancel(ctx), c.reply)
		if err != nil {
			return nil, fmt.Errorf("command: subscribe to replies %q: %w", c.reply, err)
		}
		c.replies = sub
		c.loopDone = make(chan struct{})
		go c.loop(sub, c.loopDone)
	}
	ch := make(chan result, 1)
	c.pending[token] = pending{id: id, ch: ch}
	return ch, nil
}

func (c *Client) end(token string) {
	c.mu.Lock()
	delete(c.pending, token)
	c.mu.Unlock()
}

// loop delivers replies to their pending requests until sub ends; then
// the pending requests fail and the next Request subscribes again.
func (c *Client) loop(sub eventkit.Subscription, done chan struct{}) {
	defer close(done)
	for m := range sub.Messages() {
		_ = m.Ack()
		ext := m.Event.Extensions()
		id, _ := ext[InReplyToExtension].(string)
		token, _ := ext[ReplyTokenExtension].(string)
		c.mu.Lock()
		p, ok := c.pending[token]
		ok = ok && p.id == id
		if ok {
			delete(c.pending, token)
		}
		c.mu.Unlock()
		if !ok {
			c.dropped.Add(1)
			c.cfg.logger.Debug("command: reply dropped: no pending request", "inreplyto", id, "topic", c.reply)
			continue
		}
		c.received.Add(1)
		p.ch <- result{e: m.Event}
	}
	err := sub.Err()
	if err == nil {
		err = errors.New("subscription ended")
	}
	err = fmt.Errorf("command: reply subscription %q: %w", c.reply, err)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.replies == sub {
		c.replies = nil
	}
	for token, p := range c.pending {
		delete(c.pending, token)
		p.ch <- result{err: err}
	}
}

// Close ends the reply subscription and fails the pending requests with
// ErrClosed; later calls return ErrClosed. It does not close the
// publisher or subscriber.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	c.closed = true
	sub, done := c.replies, c.loopDone
	for token, p := range c.pending {
		delete(c.pending, token)
		p.ch <- result{err: ErrClosed}
	}
	c.mu.Unlock()
	var err error
	if sub != nil {
		err = sub.Close()
	}
	if done != nil {
		<-done // also after a loop that ended on its own
	}
	return err
}

// result turns the reply r to the request e into Request's results.
func (c *Client) result(e event.Event, r result) (event.Event, error) {
	if r.err != nil {
		return event.Event{}, r.err
	}
	if r.e.Type() == ErrorReplyType {
		ce := &Error{}
		if err := json.Unmarshal(r.e.Data(), ce); err != nil || ce.Code == "" {
			return r.e, fmt.Errorf("command: malformed error reply to %q: %q", e.Type(), r.e.Data())
		}
		return r.e, ce
	}
	return r.e, nil
}
