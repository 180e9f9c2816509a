package kafka

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/topic"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TransformFunc handles one input message of a Transactor. The events it
// publishes through out join the transaction of the input's batch: they
// become visible to read_committed consumers if and only if the input
// offsets are committed with them. out.Publish returns once the records are
// buffered in the transaction, not when they are committed. Ack and Nack of
// m do nothing: the transaction settles it. A non-nil error aborts the
// transaction; the batch is then processed again (see WithTxMaxAttempts).
type TransformFunc func(ctx context.Context, m *eventkit.Message, out eventkit.Publisher) error

// TxOption configures a Transactor. An invalid value makes NewTransactor
// fail with an error wrapping eventkit.ErrInvalidOption.
type TxOption func(*txConfig) error

type txConfig struct {
	fromStart   bool
	batch       int
	maxAttempts int
	backoff     time.Duration
	opts        []kgo.Opt
}

// WithTxFromStart makes a group with no committed offsets start at the
// oldest retained record instead of the end offsets found at Run.
func WithTxFromStart() TxOption { return func(c *txConfig) error { c.fromStart = true; return nil } }

// WithTxBatch bounds the records handled in one transaction (default 500);
// n must be positive.
func WithTxBatch(n int) TxOption {
	return func(c *txConfig) error {
		if n <= 0 {
			return eventkit.InvalidOption("kafka.WithTxBatch", "must be positive, got "+strconv.Itoa(n))
		}
		c.batch = n
		return nil
	}
}

// WithTxMaxAttempts sets how many times a record whose handler fails is
// tried (each failure aborts its transaction) before Run returns the error
// (default 10). A handler error marked eventkit.Permanent ends Run at once.
// n must be positive.
func WithTxMaxAttempts(n int) TxOption {
	return func(c *txConfig) error {
		if n <= 0 {
			return eventkit.InvalidOption("kafka.WithTxMaxAttempts", "must be positive, got "+strconv.Itoa(n))
		}
		c.maxAttempts = n
		return nil
	}
}

// WithTxClientOptions adds franz-go options to the transactional client
// (for example kgo.TransactionTimeout, kgo.SessionTimeout).
func WithTxClientOptions(opts ...kgo.Opt) TxOption {
	return func(c *txConfig) error { c.opts = append(c.opts, opts...); return nil }
}

// Transactor is the exactly-once consume-transform-produce loop on
// franz-go's GroupTransactSession. Each batch of input records is handled
// inside one Kafka transaction that holds both the events the handler
// publishes and the group's input offsets: either both commit or neither
// does. After a crash, a rebalance or a handler error the transaction
// aborts and the input is processed again from the last committed offsets,
// so the output topics, read with read_committed isolation (the default of
// this package's subscriptions), hold each output exactly once.
type Transactor struct {
	t       *Transport
	pattern string
	group   string
	txnID   string
	fn      TransformFunc
	cfg     txConfig
	runMu   sync.Mutex
}

// NewTransactor returns a loop that consumes pattern as a member of group
// and runs fn for each event, with the Kafka transactional id txnID. The
// transactional id must be stable for a processing instance across
// restarts (a restarted instance fences its predecessor and aborts its open
// transaction) and unique among concurrently running instances.
func (t *Transport) NewTransactor(pattern, group, txnID string, fn TransformFunc, opts ...TxOption) (*Transactor, error) {
	if err := topic.ValidatePattern(pattern); err != nil {
		return nil, err
	}
	if group == "" || txnID == "" {
		return nil, errors.New("kafka: a transactor needs a group and a transactional id")
	}
	if fn == nil {
		return nil, errors.New("kafka: a transactor needs a TransformFunc")
	}
	cfg := txConfig{batch: 500, maxAttempts: 10, backoff: 100 * time.Millisecond}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	return &Transactor{t: t, pattern: pattern, group: group, txnID: txnID, fn: fn, cfg: cfg}, nil
}

// Run consumes, transforms and produces until ctx ends (then it returns
// nil, aborting the transaction in progress) or an error that cannot be
// retried.
func (x *Transactor) Run(ctx context.Context) error {
	x.runMu.Lock()
	defer x.runMu.Unlock()
	t := x.t
	if t.closed.Load() {
		return eventkit.ErrClosed
	}
	var (
		consume  []kgo.Opt
		existing []string
	)
	if topic.IsPattern(x.pattern) {
		re := t.cfg.mapper.Regexp(x.pattern)
		rx := regexp.MustCompile(re)
		consume = []kgo.Opt{kgo.ConsumeTopics(re), kgo.ConsumeRegex()}
		if !x.cfg.fromStart {
			td, err := t.adm.ListTopics(ctx)
			if err != nil {
				return fmt.Errorf("kafka: transactor: list topics: %w", err)
			}
			for _, n := range td.Names() {
				if rx.MatchString(n) {
					existing = append(existing, n)
				}
			}
		}
	} else {
		k, err := t.cfg.mapper.ToKafka(x.pattern)
		if err != nil {
			return err
		}
		if err := t.ensureTopic(ctx, k); err != nil {
			return err
		}
		consume = []kgo.Opt{kgo.ConsumeTopics(k)}
		existing = []string{k}
	}
	if !x.cfg.fromStart && len(existing) > 0 {
		if err := t.initGroup(ctx, x.group, existing); err != nil {
			return err
		}
	}
	opts := append([]kgo.Opt{kgo.SeedBrokers(t.cfg.brokers...)}, t.cfg.clientOpts...)
	opts = append(opts, consume...)
	opts = append(opts,
		kgo.ConsumerGroup(x.group),
		kgo.TransactionalID(x.txnID),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.HeartbeatInterval(t.cfg.heartbeat),
		kgo.MetadataMaxAge(t.cfg.metadataMaxAge),
		kgo.FetchMaxWait(500*time.Millisecond),
	)
	opts = append(opts, t.cfg.producerOpts...)
	opts = append(opts, x.cfg.opts...)
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return fmt.Errorf("kafka: transactor: %w", err)
	}
	defer sess.Close()

	failures := map[recordKey]int{}
	for {
		fs := sess.PollRecords(ctx, x.cfg.batch)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return nil
		}
		fs.EachError(func(tp string, p int32, err error) {
			t.cfg.logger.Warn("kafka: transactor fetch error", "group", x.group, "topic", tp, "partition", p, "err", err)
		})
		if fs.NumRecords() == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			return fmt.Errorf("kafka: transactor: begin: %w", err)
		}
		out := &txPublisher{t: t, sess: sess}
		var (
			herr   error
			failed recordKey
		)
		fs.EachRecord(func(r *kgo.Record) {
			if herr != nil {
				return
			}
			name, ok := t.cfg.mapper.FromKafka(r.Topic)
			if !ok {
				return
			}
			ev, err := Decode(r)
			if err != nil {
				t.cfg.logger.Warn("kafka: transactor skips a record that is not a valid CloudEvent", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
				return
			}
			k := recordKey{r.Topic, r.Partition, r.Offset}
			m := eventkit.NewMessage(name, ev, 1+failures[k], nil, r)
			if err := safeTransform(ctx, x.fn, m, out); err != nil {
				herr, failed = err, k
			}
		})
		if herr == nil {
			herr = out.failure()
		}
		// End is not given ctx: cancelling it mid-request would leave the
		// outcome of the commit unknown (franz-go's warning).
		endCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		committed, err := sess.End(endCtx, kgo.TransactionEndTry(herr == nil && ctx.Err() == nil))
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("kafka: transactor: end transaction: %w", err)
		}
		if herr != nil {
			failures[failed]++
			if eventkit.IsPermanent(herr) || failures[failed] >= x.cfg.maxAttempts {
				return fmt.Errorf("kafka: transactor: record %s/%d@%d: %w", failed.topic, failed.part, failed.offset, herr)
			}
			t.cfg.logger.Warn("kafka: transactor handler failed; transaction aborted", "group", x.group, "attempt", failures[failed], "err", herr)
			d := x.cfg.backoff << min(failures[failed]-1, 6)
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		if committed {
			clear(failures)
		}
	}
}

type recordKey struct {
	topic  string
	part   int32
	offset int64
}

func safeTransform(ctx context.Context, fn TransformFunc, m *eventkit.Message, out eventkit.Publisher) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &eventkit.PanicError{Value: v}
		}
	}()
	return fn(ctx, m, out)
}

// txPublisher publishes into the open transaction of a Transactor.
type txPublisher struct {
	t    *Transport
	sess *kgo.GroupTransactSession
	mu   sync.Mutex
	err  error
}

func (p *txPublisher) Publish(ctx context.Context, name string, events ...event.Event) error {
	rs, err := p.t.records(ctx, name, events)
	if err != nil {
		return err
	}
	for _, r := range rs {
		p.sess.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				p.mu.Lock()
				if p.err == nil {
					p.err = err
				}
				p.mu.Unlock()
			}
		})
	}
	return nil
}

func (p *txPublisher) failure() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return fmt.Errorf("kafka: transactional produce: %w", p.err)
	}
	return nil
}

// Close does nothing: the Transactor owns the transaction.
func (p *txPublisher) Close() error { return nil }

// Flush sends the records published so far in the open transaction to the
// broker (they stay invisible to read_committed consumers until the
// transaction commits).
func (p *txPublisher) Flush(ctx context.Context) error { return p.sess.Client().Flush(ctx) }
