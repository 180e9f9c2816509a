package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/kafka"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	eosHelperEnv = "EVENTKIT_KAFKA_EOS_HELPER"
	eosInputs    = 2000
	eosKillAfter = 700 // outputs the helper produces before it stops to be killed
)

// eosNames are the topics, group and transactional id of one run of the
// exactly-once test.
type eosNames struct{ in, out, group, txn string }

// kfakeEOSNames are the names on kfake, which starts empty for each test; a
// real broker keeps its topics, so tests on one use uniqueEOSNames.
var kfakeEOSNames = eosNames{"eos.in", "eos.out", "eos-group", "eos-txn"}

func uniqueEOSNames() eosNames {
	p := eventkittest.UniqueName("eos")
	return eosNames{p + ".in", p + ".out", p + "-group", p + "-txn"}
}

// transformTo is the test's transform: one output per input on topic out,
// keyed alike.
func transformTo(out string) kafka.TransformFunc {
	return func(ctx context.Context, m *eventkit.Message, pub eventkit.Publisher) error {
		ev := eventkittest.NewEvent("out-" + m.Event.ID())
		ev.SetExtension("partitionkey", eventkit.EventKey(m.Event))
		return pub.Publish(ctx, out, ev)
	}
}

func eosTransport(t testing.TB, brokers []string) *kafka.Transport {
	return newTransport(t, brokers, kafka.WithConsumerOptions(), kafka.WithClientOptions())
}

func eosTxOptions() []kafka.TxOption {
	return []kafka.TxOption{
		kafka.WithTxFromStart(),
		kafka.WithTxBatch(200),
		kafka.WithTxClientOptions(kgo.SessionTimeout(time.Second), kgo.RebalanceTimeout(2*time.Second)),
	}
}

// TestEOSHelperProcess is the consume-transform-produce process that
// TestExactlyOnceAfterKill kills; it does nothing in a normal test run.
func TestEOSHelperProcess(t *testing.T) {
	if os.Getenv(eosHelperEnv) == "" {
		t.Skip("helper process of TestExactlyOnceAfterKill")
	}
	// brokers;in;out;group;txn
	f := strings.Split(os.Getenv(eosHelperEnv), ";")
	if len(f) != 5 {
		t.Fatalf("%s=%q: want brokers;in;out;group;txn", eosHelperEnv, os.Getenv(eosHelperEnv))
	}
	brokers, names := strings.Split(f[0], ","), eosNames{f[1], f[2], f[3], f[4]}
	tr := eosTransport(t, brokers)
	transform := transformTo(names.out)
	var n atomic.Int64
	x, err := tr.NewTransactor(names.in, names.group, names.txn, func(ctx context.Context, m *eventkit.Message, out eventkit.Publisher) error {
		if err := transform(ctx, m, out); err != nil {
			return err
		}
		if n.Add(1) == eosKillAfter {
			// Mid-transaction: make sure this transaction's outputs are
			// on the broker, say so, and wait to be killed.
			if f, ok := out.(interface{ Flush(context.Context) error }); ok {
				_ = f.Flush(ctx)
			}
			fmt.Println("MID")
			select {}
		}
		return nil
	}, eosTxOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	_ = x.Run(context.Background())
}

// TestExactlyOnceAfterKill runs the consume-transform-produce loop in a
// subprocess, kills it with SIGKILL in the middle of a transaction, resumes
// in a new instance with the same transactional id, and reads the output
// topic with read_committed: every input has exactly one output.
func TestExactlyOnceAfterKill(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	exactlyOnceAfterKill(t, c.ListenAddrs(), kfakeEOSNames, 1)
}

// exactlyOnceAfterKill is TestExactlyOnceAfterKill on brokers, with the
// output topic's replication factor rf.
func exactlyOnceAfterKill(t *testing.T, brokers []string, names eosNames, rf int16) {
	tr := eosTransport(t, brokers)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := tr.CreateTopic(ctx, names.out, 4, rf, nil); err != nil {
		t.Fatal(err)
	}
	publishInputs(t, ctx, tr, names.in, eosInputs)

	// 1. The first instance, in a subprocess, is killed mid-transaction.
	child := eventkittest.StartChild(t, "^TestEOSHelperProcess$", eosHelperEnv+"="+strings.Join(append([]string{strings.Join(brokers, ",")}, names.in, names.out, names.group, names.txn), ";"))
	child.WaitLine(t, "MID", 2*time.Minute) // no shorter than ctx's bound
	if err := child.Kill(); err != nil {
		t.Fatal(err)
	}

	adm := kadm.NewClient(tr.Client())
	committedBefore := groupProgress(t, ctx, adm, names.group)
	if committedBefore <= 0 || committedBefore >= eosInputs {
		t.Fatalf("the killed instance committed %d of %d inputs; want a kill in the middle", committedBefore, eosInputs)
	}

	// 2. A new instance with the same transactional id fences the dead one
	// (aborting its open transaction) and finishes the input.
	runCtx, stop := context.WithCancel(ctx)
	x, err := tr.NewTransactor(names.in, names.group, names.txn, transformTo(names.out), eosTxOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- x.Run(runCtx) }()
	for groupProgress(t, ctx, adm, names.group) < eosInputs {
		select {
		case err := <-runErr:
			t.Fatalf("Run ended: %v", err)
		case <-ctx.Done():
			t.Fatalf("the second instance did not finish the input")
		case <-time.After(50 * time.Millisecond):
		}
	}
	stop()
	if err := <-runErr; err != nil {
		t.Fatalf("Run: %v", err)
	}

	// 3. read_committed: every output exactly once.
	outputsOnce(t, readAll(t, ctx, brokers, names.out, kgo.ReadCommitted(), eosInputs), eosInputs)
	// The killed transaction's outputs did reach the log: read_uncommitted
	// sees more records than inputs, so the test exercised an abort.
	uncommitted := readAll(t, ctx, brokers, names.out, kgo.ReadUncommitted(), eosInputs+1)
	total := 0
	for _, n := range uncommitted {
		total += n
	}
	if total <= eosInputs {
		t.Errorf("read_uncommitted: %d records; want more than %d (the aborted transaction's)", total, eosInputs)
	}
	t.Logf("killed instance committed %d inputs; log holds %d output records, %d committed", committedBefore, total, eosInputs)
}

// publishInputs publishes the inputs in-0 … in-(n-1) to topic, in batches
// of 100, keyed over 32 keys.
func publishInputs(t *testing.T, ctx context.Context, tr *kafka.Transport, topic string, n int) {
	t.Helper()
	for i := 0; i < n; i += 100 {
		batch := make([]event.Event, 0, 100)
		for j := i; j < min(i+100, n); j++ {
			ev := eventkittest.NewEvent("in-" + strconv.Itoa(j))
			ev.SetExtension("partitionkey", "k"+strconv.Itoa(j%32))
			batch = append(batch, ev)
		}
		if err := tr.Publish(ctx, topic, batch...); err != nil {
			t.Fatal(err)
		}
	}
}

// outputsOnce checks that the read_committed counts of the outputs hold
// each of the n outputs exactly once.
func outputsOnce(t *testing.T, committed map[string]int, n int) {
	t.Helper()
	if len(committed) != n {
		t.Errorf("read_committed: %d distinct outputs, want %d", len(committed), n)
	}
	for i := 0; i < n; i++ {
		id := "out-in-" + strconv.Itoa(i)
		if committed[id] != 1 {
			t.Errorf("read_committed: %s appears %d times, want once", id, committed[id])
		}
	}
}

// groupProgress returns the inputs the group has committed.
func groupProgress(t *testing.T, ctx context.Context, adm *kadm.Client, group string) int64 {
	t.Helper()
	offs, err := adm.FetchOffsets(ctx, group)
	// A coordinator that is loading or moving (a new cluster, a broker
	// killed) answers again soon.
	for errors.Is(err, kerr.CoordinatorNotAvailable) || errors.Is(err, kerr.NotCoordinator) ||
		errors.Is(err, kerr.CoordinatorLoadInProgress) {
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
		offs, err = adm.FetchOffsets(ctx, group)
	}
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return 0
		}
		t.Fatalf("FetchOffsets: %v", err)
	}
	var n int64
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Err == nil {
			n += o.At
		}
	})
	return n
}

// readAll counts the output ids in topic read from the start with the
// isolation level: at least min records, then until the topic stays quiet
// for a second (so that a duplicate has time to show).
func readAll(t *testing.T, ctx context.Context, brokers []string, topic string, level kgo.IsolationLevel, min int) map[string]int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(level))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	counts := map[string]int{}
	total := 0
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			t.Fatalf("reading %s: read %d records, want at least %d: %v", topic, total, min, ctx.Err())
		}
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			ev, err := kafka.Decode(r)
			if err != nil {
				t.Fatalf("output record: %v", err)
			}
			counts[ev.ID()]++
			n++
		})
		total += n
		if n == 0 && pctx.Err() != nil && total >= min {
			return counts
		}
	}
}
