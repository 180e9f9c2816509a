// Package natskit holds what the tests of several packages need of the
// NATS server the machine runs. It is imported by tests only.
package natskit

import (
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/eventkit/eventkit/eventkittest"
)

// Conn connects to the server of EVENTKIT_NATS_URL (default
// eventkittest.DefaultNATSURL); the connection is closed when tb ends. It
// skips tb when the server does not answer (fails it under CI=true).
func Conn(tb testing.TB, opts ...nats.Option) *nats.Conn {
	tb.Helper()
	url := eventkittest.ServerAddr(tb, "EVENTKIT_NATS_URL", eventkittest.DefaultNATSURL, eventkittest.DialProbe)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		eventkittest.Unavailable(tb, "EVENTKIT_NATS_URL", url, err)
	}
	tb.Cleanup(nc.Close)
	return nc
}
