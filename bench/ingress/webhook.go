package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/eventkit/eventkit/hub"
	"github.com/eventkit/eventkit/internal/benchkit"
)

// runWebhookMode measures webhook delivery: n events are stored through
// the batch ingress of a first server; a second server on the same data
// directory then delivers them from the store to a sink (a local net/http
// server that answers 204) through a subscription with conc deliveries in
// flight, and the time until the sink has them all is measured. In the
// same run a raw net/http client posts the same events (binary mode, the
// same ce- headers and body) to a fresh sink from conc goroutines: the
// peer the delivery is read against.
func runWebhookMode(n, conc, runs int, data string) {
	fmt.Printf("# webhook delivery: %d events per run, data %d bytes, %d in flight, load average %s\n", n, len(data), conc, loadavg())
	var ek, raw []float64
	for r := 0; r < runs; r++ {
		e := webhookRun(n, conc, data, r)
		w := rawPostRun(n, conc, data)
		fmt.Printf("webhook run %d: eventkit %9.0f events/s delivered   raw net/http %9.0f events/s posted\n", r+1, e, w)
		ek, raw = append(ek, e), append(raw, w)
	}
	e, w := benchkit.Median(ek), benchkit.Median(raw)
	fmt.Printf("webhook median: eventkit %9.0f events/s, raw net/http %9.0f events/s   [load average %s]\n", e, w, loadavg())
	benchkit.Result("eventkit", "webhook", e, "events/s")
	benchkit.Result("raw-nethttp", "webhook", w, "events/s")
	benchkit.Ratio("eventkit", "raw-nethttp", "webhook", e, w)
}

// sink counts the events posted to it.
type sink struct {
	srv   *http.Server
	url   string
	count atomic.Int64
}

func newSink() *sink {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatal(err)
	}
	s := &sink{url: "http://" + ln.Addr().String() + "/hook"}
	s.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		s.count.Add(1)
		w.WriteHeader(http.StatusNoContent)
	})}
	go func() { _ = s.srv.Serve(ln) }()
	return s
}

func (s *sink) close() { _ = s.srv.Close() }

// startHub runs an in-process server with cfg on a free loopback port
// until stop is called.
func startHub(cfg hub.Config) (base string, stop func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatal(err)
	}
	s, err := hub.New(cfg, hub.WithListener(ln),
		hub.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	if err != nil {
		fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	return s.URL(), func() {
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintln(os.Stderr, "server:", err)
		}
	}
}

func webhookRun(n, conc int, data string, run int) float64 {
	dir, err := os.MkdirTemp("", "eventkit-bench-webhook-")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(dir)
	base, stop := startHub(hub.Config{DataDir: dir})
	if res := runBatch("raw", base, n, 500, 8, 1, data, run); res.failed > 0 {
		fatal(fmt.Errorf("webhook: %d of %d events not stored", res.failed, n))
	}
	stop()
	sk := newSink()
	defer sk.close()
	start := time.Now()
	_, stop = startHub(hub.Config{DataDir: dir, Subscriptions: []hub.SubscriptionConfig{{Name: "bench", Topic: "bench.>", URL: sk.url,
		Concurrency: conc, FromStart: true, AllowPrivateTargets: true}}})
	defer stop()
	deadline := time.Now().Add(10 * time.Minute)
	for sk.count.Load() < int64(n) {
		if time.Now().After(deadline) {
			fatal(fmt.Errorf("webhook: %d of %d events delivered in 10 minutes", sk.count.Load(), n))
		}
		time.Sleep(time.Millisecond)
	}
	return float64(n) / time.Since(start).Seconds()
}

// rawPostRun posts n events in binary mode from conc goroutines with one
// keep-alive net/http client, and returns events/s.
func rawPostRun(n, conc int, data string) float64 {
	sk := newSink()
	defer sk.close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	start := time.Now()
	parallel(conc, n, func(_, i int) {
		req, err := http.NewRequest(http.MethodPost, sk.url, strings.NewReader(data))
		if err != nil {
			fatal(err)
		}
		h := req.Header
		h["Ce-Specversion"] = []string{"1.0"}
		h["Ce-Id"] = []string{"w" + strconv.Itoa(i)}
		h["Ce-Source"] = []string{"/bench/ingress"}
		h["Ce-Type"] = []string{"bench.ingress.batch"}
		h["Content-Type"] = []string{"application/json"}
		resp, err := client.Do(req)
		if err != nil {
			fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			fatal(fmt.Errorf("raw post: %s", resp.Status))
		}
	})
	return float64(n) / time.Since(start).Seconds()
}
