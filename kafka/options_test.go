package kafka_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/kafka"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestDialRejectsInvalidOptions: an invalid option value makes Dial fail
// with ErrInvalidOption, before any I/O, instead of being replaced by the
// default (issue 15).
func TestDialRejectsInvalidOptions(t *testing.T) {
	cases := map[string]kafka.Option{
		"max in flight 0":      kafka.WithMaxInFlight(0),
		"default buffer -1":    kafka.WithDefaultBuffer(-1),
		"commit interval 0":    kafka.WithCommitInterval(0),
		"revoke timeout -1s":   kafka.WithRevokeTimeout(-time.Second),
		"metadata max age 0":   kafka.WithMetadataMaxAge(0),
		"heartbeat 0":          kafka.WithHeartbeatInterval(0),
		"close timeout 0":      kafka.WithCloseTimeout(0),
		"nil logger":           kafka.WithLogger(nil),
		"nil mapper":           kafka.WithTopicMapper(nil),
		"unknown mode":         kafka.WithMode(eventkit.Mode(7)),
		"negative linger":      kafka.WithLinger(-time.Millisecond),
		"batch max bytes 0":    kafka.WithBatchMaxBytes(0),
		"zero partitions":      kafka.WithTopicCreation(0, 1, nil),
		"replication factor 0": kafka.WithTopicCreation(1, 0, nil),
		"empty broker":         kafka.WithBrokers(""),
		"nil option":           nil,
	}
	ctx := context.Background()
	for name, o := range cases {
		tr, err := kafka.Dial(ctx, "127.0.0.1:1", o)
		if !errors.Is(err, eventkit.ErrInvalidOption) {
			t.Errorf("%s: Dial returned %v, want ErrInvalidOption", name, err)
		}
		if tr != nil {
			_ = tr.Close()
		}
	}
	if _, err := kafka.Dial(ctx, " , "); !errors.Is(err, eventkit.ErrInvalidOption) {
		t.Errorf("no brokers: %v, want ErrInvalidOption", err)
	}
	tr := dial(t, newCluster(t), kafka.WithTopicCreation(-1, -1, nil),
		kafka.WithMode(eventkit.Structured), kafka.WithLinger(0), kafka.WithCloseTimeout(time.Second))
	if err := tr.Close(); err != nil {
		t.Errorf("Close of an unused transport: %v", err)
	}
}

// TestDialChecksTheCluster: Dial fails, within its ctx, when no broker
// answers; New (deprecated) does no I/O and succeeds.
func TestDialChecksTheCluster(t *testing.T) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if tr, err := kafka.Dial(ctx, "127.0.0.1:1"); err == nil {
		_ = tr.Close()
		t.Fatal("Dial to a port where no broker listens succeeded")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Dial took %v with a 500ms ctx", d)
	}
	tr, err := kafka.New(kafka.WithBrokers("127.0.0.1:1"))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := tr.Close(); err != nil {
		t.Errorf("Close of an unused transport: %v", err)
	}
}

func TestNewTransactorRejectsInvalidOptions(t *testing.T) {
	tr := dial(t, newCluster(t))
	fn := func(context.Context, *eventkit.Message, eventkit.Publisher) error { return nil }
	for name, o := range map[string]kafka.TxOption{
		"batch 0":        kafka.WithTxBatch(0),
		"max attempts 0": kafka.WithTxMaxAttempts(-1),
	} {
		if _, err := tr.NewTransactor("in", "g", "tx", fn, o); !errors.Is(err, eventkit.ErrInvalidOption) {
			t.Errorf("%s: NewTransactor returned %v, want ErrInvalidOption", name, err)
		}
	}
}

func TestDecodeNotCloudEvent(t *testing.T) {
	_, err := kafka.Decode(&kgo.Record{Value: []byte("plain")})
	if !errors.Is(err, eventkit.ErrNotCloudEvent) {
		t.Errorf("plain record: %v, want eventkit.ErrNotCloudEvent", err)
	}
}

// unflushable returns a transport holding a record its broker, now gone,
// will never acknowledge.
func unflushable(t *testing.T, opts ...kafka.Option) *kafka.Transport {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tr, err := kafka.Dial(context.Background(), c.ListenAddrs()[0], append([]kafka.Option{kafka.WithTopicCreation(1, 1, nil)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	e := event.New()
	e.SetID("1")
	e.SetSource("test")
	e.SetType("t")
	if err := tr.Publish(ctx, "flush", e); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	c.Close()
	if err := tr.PublishAsync(ctx, "flush", []event.Event{e}, nil); err != nil {
		t.Fatalf("PublishAsync: %v", err)
	}
	return tr
}

// TestCloseReportsFlushError: a record that cannot be flushed within the
// close timeout makes Close return an error (Close returned nil before).
func TestCloseReportsFlushError(t *testing.T) {
	tr := unflushable(t, kafka.WithCloseTimeout(200*time.Millisecond))
	start := time.Now()
	err := tr.Close()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close: %v, want the flush's deadline error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v with a 200ms close timeout", d)
	}
	if err := tr.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestShutdownBoundedByContext: Shutdown stops when its ctx ends and says
// so.
func TestShutdownBoundedByContext(t *testing.T) {
	tr := unflushable(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := tr.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v, want ctx's error", err)
	}
	if err := tr.Publish(context.Background(), "flush", eventkittest.NewEvent("late")); !errors.Is(err, eventkit.ErrClosed) {
		t.Errorf("Publish after Shutdown: %v, want ErrClosed", err)
	}
}
