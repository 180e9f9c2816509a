package hub

import (
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/eventkit/eventkit/cehttp"
	"github.com/eventkit/eventkit/nats/natsserver"
	"github.com/nats-io/nats-server/v2/server"
)

// minFreeBytes is the free space the embedded store's file system needs
// before JetStream, disabled for want of space, is enabled again.
const minFreeBytes = 64 << 20

// jsGuard watches the embedded JetStream: nats-server disables it when its
// store runs out of space, and it stays off until enabled again. While it
// is off, publishes are refused at once with 507 (instead of waiting the
// publish timeout for a JetStream that does not answer), the probes say
// so, and each probe or publish (at most once a second) enables it again
// once the file system has room.
type jsGuard struct {
	emb  *natsserver.Embedded
	cfg  server.JetStreamConfig
	free func(dir string) (uint64, error)

	mu   sync.Mutex
	last time.Time
}

func newJSGuard(emb *natsserver.Embedded) *jsGuard {
	g := &jsGuard{emb: emb, free: freeBytes}
	if c := emb.Server().JetStreamConfig(); c != nil {
		g.cfg = *c
		// EnableJetStream adds the "jetstream" directory to the one it is
		// given, which the running configuration already names.
		if filepath.Base(g.cfg.StoreDir) == server.JetStreamStoreDir {
			g.cfg.StoreDir = filepath.Dir(g.cfg.StoreDir)
		}
	}
	return g
}

// errJSDisabled says that the embedded JetStream is off.
var errJSDisabled = errors.New("the embedded JetStream is disabled (its store ran out of space)")

// check returns nil while JetStream runs, enabling it again when it is off
// and the store has room; otherwise an error holding the 507 problem.
func (g *jsGuard) check() error {
	if g == nil {
		return nil
	}
	srv := g.emb.Server()
	if srv == nil || srv.JetStreamEnabled() {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if srv.JetStreamEnabled() {
		return nil
	}
	if time.Since(g.last) >= time.Second {
		g.last = time.Now()
		free, err := g.free(g.cfg.StoreDir)
		if err == nil && free >= minFreeBytes {
			cfg := g.cfg
			err := srv.EnableJetStream(&cfg)
			if err == nil && srv.JetStreamEnabled() {
				return nil
			}
		}
	}
	return &storageError{err: errJSDisabled, p: &cehttp.Problem{Type: problemBase + "insufficient-storage",
		Title: "Insufficient Storage", Status: http.StatusInsufficientStorage,
		Detail: errJSDisabled.Error() + "; nothing of the request was stored"}}
}

// freeBytes is the space available to the process in dir's file system.
func freeBytes(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}
