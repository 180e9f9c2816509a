package e2e

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
)

// webhook answers 410 (a permanent failure: dead-lettered at once) while
// failing, then takes the events, recording their ids.
type webhook struct {
	srv     *httptest.Server
	failing atomic.Bool
	mu      sync.Mutex
	got     []string
}

func newWebhook(t *testing.T) *webhook {
	w := &webhook{}
	w.failing.Store(true)
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if w.failing.Load() {
			rw.WriteHeader(http.StatusGone)
			return
		}
		w.mu.Lock()
		w.got = append(w.got, r.Header.Get("ce-id"))
		w.mu.Unlock()
		rw.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(w.srv.Close)
	return w
}

func (w *webhook) has(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Contains(w.got, id)
}
