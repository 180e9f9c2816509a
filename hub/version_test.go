package hub_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/eventkit/eventkit/hub"
	"github.com/eventkit/eventkit/internal/version"
	"github.com/eventkit/eventkit/memory"
)

// GET /healthz names eventkit and its version, and the metrics carry
// eventkit_build_info.
func TestHealthzAndBuildInfo(t *testing.T) {
	bus := memory.New()
	s := start(t, hub.Config{}, hub.WithBroker(bus, bus))
	resp, err := http.Get(s.URL() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var h map[string]any
	if err := json.Unmarshal(b, &h); err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("healthz: %d %q %s (%v)", resp.StatusCode, resp.Header.Get("Content-Type"), b, err)
	}
	if h["status"] != "ok" || h["name"] != "eventkit" || h["version"] != version.Get() || len(h) != 3 {
		t.Fatalf("healthz: %s, want status ok, name eventkit, version %s", b, version.Get())
	}

	want := `eventkit_build_info{goversion="` + runtime.Version() + `",version="` + version.Get() + `"} 1`
	if !strings.Contains(metricsText(t, s.URL()), want+"\n") {
		t.Fatalf("metrics lack %s", want)
	}
}

// An unhealthy broker is answered 503 with the same names and the error.
func TestHealthzUnavailable(t *testing.T) {
	bus := memory.New()
	s, err := hub.New(hub.Config{Listen: "127.0.0.1:0"}, hub.WithBroker(bus, bus), hub.WithLogger(quiet),
		hub.WithHealthCheck(func() error { return errors.New("broker gone") }))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = s.Run(ctx)
	}()
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	var h map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &h); err != nil || rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("healthz: %d %s (%v)", rec.Code, rec.Body, err)
	}
	if h["status"] != "unavailable" || h["name"] != "eventkit" || h["version"] != version.Get() || h["error"] != "broker gone" {
		t.Fatalf("healthz: %s", rec.Body)
	}
}
