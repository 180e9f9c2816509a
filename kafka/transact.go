package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/driver"
	"github.com/eventkit/eventkit/internal/opt"
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
	return opt.Positive("kafka.WithTxBatch", n, func(c *txConfig) *int { return &c.batch })
}

// WithTxMaxAttempts sets how many times a record whose handler fails is
// tried (each failure aborts its transaction) before Run returns the error
// (default 10). A handler error marked eventkit.Permanent ends Run at once.
// n must be positive.
func WithTxMaxAttempts(n int) TxOption {
	return opt.Positive("kafka.WithTxMaxAttempts", n, func(c *txConfig) *int { return &c.maxAttempts })
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
	d       *drv
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
	return &Transactor{d: t.d, pattern: pattern, group: group, txnID: txnID, fn: fn, cfg: cfg}, nil
}

// Run consumes, transforms and produces until ctx ends (then it returns
// nil, aborting the transaction in progress) or an error that cannot be
// retried.
func (x *Transactor) Run(ctx context.Context) error {
	x.runMu.Lock()
	defer x.runMu.Unlock()
	sess, err := x.session(ctx)
	if err != nil {
		return err
	}
	defer sess.Close()
	failures := map[recordKey]int{}
	for {
		fs := sess.PollRecords(ctx, x.cfg.batch)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return nil
		}
		fs.EachError(func(tp string, p int32, err error) {
			x.d.cfg.logger.Warn("kafka: transactor fetch error", "group", x.group, "topic", tp, "partition", p, "err", err)
		})
		if fs.NumRecords() == 0 {
			continue
		}
		if end, err := x.transact(ctx, sess, fs, failures); end {
			return err
		}
	}
}

// session joins the group in a transactional session, the group starting
// at the end offsets of the topics that exist unless WithTxFromStart.
func (x *Transactor) session(ctx context.Context) (*kgo.GroupTransactSession, error) {
	d := x.d
	if d.closed.Load() {
		return nil, eventkit.ErrClosed
	}
	consume, existing, err := d.consumeTopics(ctx, x.pattern)
	if err != nil {
		return nil, fmt.Errorf("kafka: transactor: %w", err)
	}
	if !x.cfg.fromStart && len(existing) > 0 {
		if err := d.initGroup(ctx, x.group, existing, driver.Config{}); err != nil {
			return nil, err
		}
	}
	opts := append(d.groupOptions(x.group, consume), kgo.TransactionalID(x.txnID))
	opts = append(opts, d.cfg.producerOpts...)
	opts = append(opts, x.cfg.opts...)
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: transactor: %w", err)
	}
	return sess, nil
}

// transact handles the records of fs in one transaction, and ends it:
// committed when every handler succeeded, aborted otherwise. It reports
// whether Run ends, and with which error.
func (x *Transactor) transact(ctx context.Context, sess *kgo.GroupTransactSession, fs kgo.Fetches, failures map[recordKey]int) (bool, error) {
	if err := sess.Begin(); err != nil {
		return true, fmt.Errorf("kafka: transactor: begin: %w", err)
	}
	out := &txPublisher{d: x.d, sess: sess}
	failed, herr := x.handle(ctx, fs, out, failures)
	if herr == nil {
		herr = out.failure()
	}
	// End is not given ctx: cancelling it mid-request would leave the
	// outcome of the commit unknown (franz-go's warning).
	endCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	committed, err := sess.End(endCtx, kgo.TransactionEndTry(herr == nil && ctx.Err() == nil))
	cancel()
	switch {
	case ctx.Err() != nil:
		return true, nil
	case err != nil:
		return true, fmt.Errorf("kafka: transactor: end transaction: %w", err)
	case herr != nil:
		return x.retry(ctx, herr, failed, failures)
	}
	if committed {
		clear(failures)
	}
	return false, nil
}

// handle runs the handler on each record of fs, up to the first failure,
// which it returns with its record.
func (x *Transactor) handle(ctx context.Context, fs kgo.Fetches, out *txPublisher, failures map[recordKey]int) (failed recordKey, herr error) {
	fs.EachRecord(func(r *kgo.Record) {
		if herr != nil {
			return
		}
		name, ok := x.d.cfg.mapper.FromKafka(r.Topic)
		if !ok {
			return
		}
		ev, err := Decode(r)
		if err != nil {
			x.d.cfg.logger.Warn("kafka: transactor skips a record that is not a valid CloudEvent", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
			return
		}
		k := recordKey{r.Topic, r.Partition, r.Offset}
		m := eventkit.NewMessage(name, ev, 1+failures[k], nil, r)
		if err := safeTransform(ctx, x.fn, m, out); err != nil {
			herr, failed = err, k
		}
	})
	return failed, herr
}

// retry counts the failure of the handler on the record failed, and ends
// Run when the error is permanent or the record has had its attempts;
// otherwise it waits for the attempt's backoff.
func (x *Transactor) retry(ctx context.Context, herr error, failed recordKey, failures map[recordKey]int) (bool, error) {
	failures[failed]++
	if eventkit.IsPermanent(herr) || failures[failed] >= x.cfg.maxAttempts {
		return true, fmt.Errorf("kafka: transactor: record %s/%d@%d: %w", failed.topic, failed.part, failed.offset, herr)
	}
	x.d.cfg.logger.Warn("kafka: transactor handler failed; transaction aborted", "group", x.group, "attempt", failures[failed], "err", herr)
	select {
	case <-time.After(x.cfg.backoff << min(failures[failed]-1, 6)):
		return false, nil
	case <-ctx.Done():
		return true, nil
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
	d    *drv
	sess *kgo.GroupTransactSession
	mu   sync.Mutex
	err  error
}

func (p *txPublisher) Publish(ctx context.Context, name string, events ...event.Event) error {
	rs, err := p.d.checkedRecords(ctx, name, events)
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
