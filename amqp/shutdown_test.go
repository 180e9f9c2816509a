package amqp_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	ekamqp "github.com/eventkit/eventkit/amqp"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/internal/testkit"
	amqp "github.com/rabbitmq/amqp091-go"
)

// TestShutdownEndsPublishWaitingForReconnect cuts the transport's
// connection and refuses every reconnect: a Publish with no deadline waits
// for the reconnect, and Shutdown makes it return eventkit.ErrClosed
// instead of waiting for it (or for its own bound) forever.
func TestShutdownEndsPublishWaitingForReconnect(t *testing.T) {
	u, err := url.Parse(testkit.AMQPURL(t))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	refuse := false
	dialer := func(network, addr string) (net.Conn, error) {
		mu.Lock()
		defer mu.Unlock()
		if refuse {
			return nil, errors.New("test: the network is down")
		}
		c, err := net.DialTimeout(network, u.Host, 5*time.Second)
		if err == nil {
			conns = append(conns, c)
		}
		return c, err
	}
	ns := eventkittest.UniqueName("ekstop")
	tr := dial(t, "ektest-"+ns, ekamqp.WithConfig(amqp.Config{Dial: dialer}))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := tr.Publish(ctx, ns+".x", eventkittest.NewEvent("up")); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	refuse = true
	for _, c := range conns {
		_ = c.Close()
	}
	mu.Unlock()
	// The publish is waiting for the reconnect (or failing on the cut
	// channel first); either way it must not have returned nil.
	testkit.PublishEndedByShutdown(t, tr, ns+".x", 20*time.Second)
}
