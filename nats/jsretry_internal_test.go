package nats

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/eventkit/eventkit/nats/natsserver"
)

// A JetStream request written while the client has not yet seen that the
// server went away is lost: no answer ever comes. retryJS must not wait
// for the setup timeout (a minute here, longer than the test's ctx): the
// reconnect ends the attempt, and the next one succeeds. The first
// attempt stands for the lost request by waiting for its ctx.
func TestRetryJSRetriesRequestLostInReconnect(t *testing.T) {
	emb, err := natsserver.Run(natsserver.WithStoreDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Shutdown(context.Background())
	nc, err := emb.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
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
