package nats_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	eknats "github.com/eventkit/eventkit/nats"
)

var (
	sharedOnce sync.Once
	shared     *eknats.Embedded
	sharedErr  error
)

// embedded returns the package's shared embedded server.
func embedded(t testing.TB) *eknats.Embedded {
	t.Helper()
	sharedOnce.Do(func() {
		// Server errors and warnings go to the test log output.
		l := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		shared, sharedErr = eknats.RunEmbedded(eknats.WithServerLogger(l))
	})
	if sharedErr != nil {
		t.Fatalf("RunEmbedded: %v", sharedErr)
	}
	return shared
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
