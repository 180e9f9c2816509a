package nats_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/eventkit/eventkit/nats/natsserver"
)

var (
	sharedOnce sync.Once
	shared     *natsserver.Embedded
	sharedErr  error
)

// embedded returns the package's shared embedded server.
func embedded(t testing.TB) *natsserver.Embedded {
	t.Helper()
	sharedOnce.Do(func() {
		// Server errors and warnings go to the test log output.
		l := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		shared, sharedErr = natsserver.Run(natsserver.WithServerLogger(l))
		if sharedErr == nil {
			sharedErr = anchorStream(shared)
		}
	})
	if sharedErr != nil {
		t.Fatalf("natsserver.Run: %v", sharedErr)
	}
	return shared
}

// ownServer runs an embedded server of the test's own, on a store
// directory of its own unless opts name one, and returns it with a
// connection to it; both end with the test.
func ownServer(t *testing.T, opts ...natsserver.Option) (*natsserver.Embedded, *nats.Conn) {
	t.Helper()
	emb, err := natsserver.Run(append([]natsserver.Option{natsserver.WithStoreDir(t.TempDir())}, opts...)...)
	if err != nil {
		t.Fatalf("natsserver.Run: %v", err)
	}
	t.Cleanup(func() { _ = emb.Shutdown(context.Background()) })
	nc, err := emb.Connect()
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return emb, nc
}

// anchorStream creates a stream that lives as long as the shared server.
// Tests create and delete their own streams; when the last stream of the
// account is deleted, nats-server removes the account's store directory,
// and a stream created at that moment can fail with "could not create
// storage directory" (seen once in a CI run). With one stream always
// present, the directory is never removed under the tests.
func anchorStream(e *natsserver.Embedded) error {
	nc, err := e.Connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "EKTEST_ANCHOR", Subjects: []string{"ektest-anchor.>"}})
	return err
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := shared.Shutdown(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "shutdown:", err)
			code = 1
		}
		cancel()
	}
	if code == 0 {
		if err := goleak.Find(goleak.IgnoreCurrent()); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
