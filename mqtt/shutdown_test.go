package mqtt_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/internal/testkit"
	ekmqtt "github.com/eventkit/eventkit/mqtt"
)

// proxy forwards TCP connections to target until cut, after which it
// refuses new ones.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.cut)
	return p
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); _, _ = io.Copy(up, c); _ = up.Close() }()
		go func() { defer p.wg.Done(); _, _ = io.Copy(c, up); _ = c.Close() }()
	}
}

// cut closes the listener and every connection, and waits for the copies.
func (p *proxy) cut() {
	_ = p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// TestShutdownEndsPublishWaitingForReconnect cuts the publisher's
// connection and refuses every reconnect: a Publish with no deadline waits
// for the reconnect, and Shutdown makes it return eventkit.ErrClosed.
func TestShutdownEndsPublishWaitingForReconnect(t *testing.T) {
	u, err := url.Parse(testkit.MQTTURL(t))
	if err != nil {
		t.Fatal(err)
	}
	p := newProxy(t, u.Host)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pt, err := ekmqtt.Dial(ctx, "mqtt://"+p.ln.Addr().String(), ekmqtt.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	ns := eventkittest.UniqueName("ekstop")
	if err := pt.Publish(ctx, ns+".x", eventkittest.NewEvent("up")); err != nil {
		t.Fatal(err)
	}
	p.cut()
	// The publish in flight when the connection was cut waits for its
	// PUBACK (paho gives up after its packet timeout, 10s); Shutdown's
	// bound ends that wait, then the publish does not wait for a reconnect.
	testkit.PublishEndedByShutdown(t, pt, ns+".x", time.Second)
}
