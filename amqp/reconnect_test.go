package amqp_test

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	ekamqp "github.com/eventkit/eventkit/amqp"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/internal/testkit"
	amqp "github.com/rabbitmq/amqp091-go"
)

// closeConnections closes, from the broker's side, the connections named
// name (rabbitmqctl close_connection), and returns how many it closed.
func closeConnections(t *testing.T, name string) int {
	t.Helper()
	out, err := exec.Command("rabbitmqctl", "-q", "list_connections", "pid", "client_properties").CombinedOutput()
	if err != nil {
		eventkittest.Unavailable(t, "EVENTKIT_AMQP_URL", "rabbitmqctl", fmt.Errorf("%v: %s", err, out))
	}
	n := 0
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.Contains(line, name) {
			continue
		}
		pid := strings.Fields(line)[0]
		if o, err := exec.Command("rabbitmqctl", "-q", "close_connection", pid, "eventkit reconnect test").CombinedOutput(); err != nil {
			t.Fatalf("close_connection %s: %v: %s", pid, err, o)
		}
		n++
	}
	return n
}

// TestReconnectNoConfirmedLoss closes the transport's connection from the
// broker's side while events are published and consumed: the transport
// reconnects, declares its topology again, and every event whose Publish
// returned nil is delivered to the group.
func TestReconnectNoConfirmedLoss(t *testing.T) {
	ns := eventkittest.UniqueName("ekrc")
	name := "eventkit-test-" + ns
	tr := dial(t, "ektest-"+ns, ekamqp.WithConfig(amqp.Config{Properties: amqp.Table{"connection_name": name}}))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tp := ns + ".orders"
	sub := testkit.Subscribe(t, ctx, tr, tp, eventkit.WithGroup(ns+"-g"))

	var mu sync.Mutex
	confirmed := map[string]bool{}
	received := map[string]bool{}
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		for m := range sub.Messages() {
			mu.Lock()
			received[m.Event.ID()] = true
			mu.Unlock()
			_ = m.Ack() // may fail on a lost channel: then it comes again
		}
	}()
	stop := make(chan struct{})
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			id := fmt.Sprintf("rc-%d", i)
			pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
			err := tr.Publish(pctx, tp, eventkittest.NewEvent(id))
			pcancel()
			if err == nil {
				mu.Lock()
				confirmed[id] = true
				mu.Unlock()
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	count := func() (int, int) {
		mu.Lock()
		defer mu.Unlock()
		return len(confirmed), len(received)
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				c, r := count()
				t.Fatalf("%s: %d confirmed, %d received", what, c, r)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("before the close", func() bool { c, r := count(); return c >= 50 && r >= 20 })
	if n := closeConnections(t, name); n == 0 {
		t.Fatalf("found no connection named %s to close", name)
	}
	waitFor("reconnect", func() bool { return tr.Reconnects() >= 1 })
	before, _ := count()
	waitFor("after the reconnect", func() bool { c, _ := count(); return c >= before+50 })
	close(stop)
	<-pubDone
	waitFor("delivery of every confirmed event", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for id := range confirmed {
			if !received[id] {
				return false
			}
		}
		return true
	})
	_ = sub.Close()
	<-recvDone
	c, r := count()
	t.Logf("%d events confirmed, %d distinct received, %d reconnects", c, r, tr.Reconnects())
}
