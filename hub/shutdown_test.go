package hub_test

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/eventkit/eventkit/hub"
	"github.com/eventkit/eventkit/memory"
)

// TestShutdownCutsSlowClients: a client sending its body slowly does not
// make the graceful stop fail: its connection is cut within the shutdown
// budget, its request unanswered (so not acknowledged), and Run returns
// nil (the process exits 0).
func TestShutdownCutsSlowClients(t *testing.T) {
	bus := memory.New()
	s := start(t, hub.Config{ShutdownTimeout: hub.Duration(2 * time.Second)}, hub.WithBroker(bus, bus))
	conn, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = io.WriteString(conn, "POST /events HTTP/1.1\r\nHost: x\r\nce-specversion: 1.0\r\nce-id: slow\r\nce-source: /s\r\n"+
		"ce-type: a.b\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"a\":")
	waitFor(t, "the slow request in progress", func() bool {
		return grep(metricsText(t, s.URL()), "eventkit_ingress_requests_in_flight 1") != ""
	})
	began := time.Now()
	if err := s.stop(); err != nil {
		t.Fatalf("Run with a slow client: %v", err)
	}
	if d := time.Since(began); d > 10*time.Second {
		t.Fatalf("the stop took %v with a 2s budget", d)
	}
	b, _ := io.ReadAll(conn)
	if len(b) != 0 {
		t.Fatalf("the cut request was answered: %q", b)
	}
}
