package nats

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventkit/eventkit/nats/natsserver"
	"github.com/nats-io/nats.go"
)

// serverOfTest runs an embedded server of the test's own and returns it
// with a connection to it; both end with the test. (The package's external
// tests have ownServer.)
func serverOfTest(t *testing.T) (*natsserver.Embedded, *nats.Conn) {
	t.Helper()
	emb, err := natsserver.Run(natsserver.WithStoreDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emb.Shutdown(context.Background()) })
	nc, err := emb.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return emb, nc
}

// A JetStream request written while the client has not yet seen that the
// server went away is lost: no answer ever comes. retryJS must not wait
// for the setup timeout (a minute here, longer than the test's ctx): the
// reconnect ends the attempt, and the next one succeeds. The first
// attempt stands for the lost request by waiting for its ctx.
func TestRetryJSRetriesRequestLostInReconnect(t *testing.T) {
	emb, nc := serverOfTest(t)
	tr, err := New(nc, WithSetupTimeout(time.Minute),
		WithStream(StreamConfig{Name: "LOST", Subjects: []string{"lost.>"}}))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tr.EnsureStreams(ctx); err != nil { // New does no I/O
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	calls := 0
	err = tr.d.retryJS(ctx, func(actx context.Context) error {
		calls++
		if calls == 1 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := emb.Restart(ctx); err != nil {
					t.Errorf("Restart: %v", err)
				}
			}()
			<-actx.Done()
			return actx.Err()
		}
		_, err := tr.d.js.Stream(actx, "LOST")
		return err
	})
	if err != nil {
		t.Fatalf("retryJS: %v (after %d attempts)", err, calls)
	}
	if calls < 2 {
		t.Fatalf("%d attempts, want the lost one and another", calls)
	}
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatal("the lost request was waited for until the test's ctx ended")
	}
}

// When ctx ends during an attempt, that attempt's error is only ctx's: the
// error of retryJS names JetStream's last answer before it (here no
// responders), not the cut-off attempt alone. (Under load, Subscribe's
// last attempt was often the cut-off one, and TestSubscribeWaitsForJetStreamUntilCtxEnds
// failed.)
func TestRetryJSKeepsLastAnswerWhenCtxEndsMidAttempt(t *testing.T) {
	_, nc := serverOfTest(t)
	tr, err := New(nc, WithSetupTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	// Attempt 2 starts 50ms (the backoff) after the first and waits for
	// ctx: 2s leaves room for a loaded machine.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	calls := 0
	err = tr.d.retryJS(ctx, func(actx context.Context) error {
		calls++
		if calls == 1 {
			return fmt.Errorf("stream lookup: %w", nats.ErrNoResponders)
		}
		<-actx.Done() // the request still waits for its answer when ctx ends
		return fmt.Errorf("stream lookup: %w", actx.Err())
	})
	if calls != 2 {
		t.Fatalf("%d attempts, want 2", calls)
	}
	if !errors.Is(err, nats.ErrNoResponders) {
		t.Errorf("error %q does not name JetStream's last answer (no responders)", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "after 2 attempts") {
		t.Errorf("error %q does not say that ctx ended after 2 attempts", err)
	}
}
