// Command ingress measures the HTTP ingress of "eventkit serve" on
// loopback: events accepted and persisted per second (a 2xx answer means the
// embedded JetStream store acked every event of the request) and the
// latency of requests (p50, p99).
//
// By default it starts the server in-process on the embedded default, in a
// temporary data directory, and drives it over loopback TCP with -c
// concurrent clients. With -server it drives a running server instead.
//
//	go run . -mode single -n 100000 -c 64
//	go run . -mode batch -n 1000000 -batch 500 -c 8
//	go run . -mode both -runs 3
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventkit/eventkit/hub"
)

func main() {
	mode := flag.String("mode", "both", "single (one binary-mode event per request), batch, or both")
	n := flag.Int("n", 100000, "events per run")
	conc := flag.Int("c", 64, "concurrent clients (single mode)")
	bconc := flag.Int("bc", 8, "concurrent clients (batch mode)")
	batch := flag.Int("batch", 500, "events per batch request")
	size := flag.Int("size", 256, "bytes of JSON data per event")
	runs := flag.Int("runs", 3, "runs per mode (the median is reported)")
	server := flag.String("server", "", "URL of a running server (default: start one in-process)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to `file`")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fatal(err)
		}
		defer pprof.StopCPUProfile()
	}

	base := *server
	if base == "" {
		dir, err := os.MkdirTemp("", "eventkit-bench-ingress-")
		if err != nil {
			fatal(err)
		}
		defer os.RemoveAll(dir)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fatal(err)
		}
		s, err := hub.New(hub.Config{DataDir: dir}, hub.WithListener(ln),
			hub.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
		if err != nil {
			fatal(err)
		}
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		defer func() {
			stop()
			if err := <-done; err != nil {
				fmt.Fprintln(os.Stderr, "server:", err)
			}
		}()
		base = s.URL()
	}
	data := `{"pad":"` + strings.Repeat("x", max(*size-10, 0)) + `"}`
	fmt.Printf("# server %s, %d events per run, data %d bytes, GOMAXPROCS from nproc\n", base, *n, len(data))
	modes := []string{*mode}
	if *mode == "both" {
		modes = []string{"single", "batch"}
	}
	for _, m := range modes {
		var results []result
		for r := 0; r < *runs; r++ {
			var res result
			switch m {
			case "single":
				res = runSingle(base, *n, *conc, data, r)
			case "batch":
				res = runBatch(base, *n, *batch, *bconc, data, r)
			default:
				fatal(fmt.Errorf("unknown mode %q", m))
			}
			fmt.Printf("%-6s run %d: %s\n", m, r+1, res)
			results = append(results, res)
		}
		slices.SortFunc(results, func(a, b result) int { return int(a.rate - b.rate) })
		med := results[len(results)/2]
		fmt.Printf("%-6s median: %s\n", m, med)
	}
	if stored, ok := storedEvents(base); ok {
		fmt.Printf("# server counted %d events stored and acknowledged (eventkit_ingress_events_total)\n", stored)
	}
}

type result struct {
	events   int64
	failed   int64
	elapsed  time.Duration
	rate     float64
	p50, p99 time.Duration
	perReq   int
}

func (r result) String() string {
	return fmt.Sprintf("%9.0f events/s accepted+persisted (%d events, %d failed, %s), request p50 %s p99 %s (%d event(s)/request)",
		r.rate, r.events, r.failed, r.elapsed.Round(time.Millisecond), r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), r.perReq)
}

func client(conc int) *http.Client {
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		MaxIdleConns: conc, MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc, IdleConnTimeout: time.Minute,
	}}
}

// drive runs requests from conc clients until total requests are done.
func drive(conc, requests int, do func(c *http.Client, i int) (int, bool)) result {
	c := client(conc)
	defer c.CloseIdleConnections()
	var next, ok, failed atomic.Int64
	lat := make([][]time.Duration, conc)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= requests {
					return
				}
				t0 := time.Now()
				n, good := do(c, i)
				lat[w] = append(lat[w], time.Since(t0))
				if good {
					ok.Add(int64(n))
				} else {
					failed.Add(int64(n))
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	all := slices.Concat(lat...)
	slices.Sort(all)
	pct := func(p float64) time.Duration {
		if len(all) == 0 {
			return 0
		}
		return all[min(len(all)-1, int(p*float64(len(all))))]
	}
	return result{events: ok.Load(), failed: failed.Load(), elapsed: el, rate: float64(ok.Load()) / el.Seconds(), p50: pct(.50), p99: pct(.99)}
}

func runSingle(base string, n, conc int, data string, run int) result {
	body := []byte(data)
	url := base + "/events"
	res := drive(conc, n, func(c *http.Client, i int) (int, bool) {
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Ce-Specversion", "1.0")
		req.Header.Set("Ce-Id", "s"+strconv.Itoa(run)+"-"+strconv.Itoa(i))
		req.Header.Set("Ce-Source", "/bench/ingress")
		req.Header.Set("Ce-Type", "bench.ingress.single")
		resp, err := c.Do(req)
		if err != nil {
			return 1, false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return 1, resp.StatusCode == http.StatusNoContent
	})
	res.perReq = 1
	return res
}

func runBatch(base string, n, size, conc int, data string, run int) result {
	url := base + "/events"
	requests := (n + size - 1) / size
	res := drive(conc, requests, func(c *http.Client, i int) (int, bool) {
		var b bytes.Buffer
		b.WriteByte('[')
		count := min(size, n-i*size)
		for j := 0; j < count; j++ {
			if j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"specversion":"1.0","id":"b%d-%d-%d","source":"/bench/ingress","type":"bench.ingress.batch","datacontenttype":"application/json","data":%s}`, run, i, j, data)
		}
		b.WriteByte(']')
		req, _ := http.NewRequest(http.MethodPost, url, &b)
		req.Header.Set("Content-Type", "application/cloudevents-batch+json")
		resp, err := c.Do(req)
		if err != nil {
			return count, false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return count, resp.StatusCode == http.StatusOK
	})
	res.perReq = size
	return res
}

// storedEvents reads eventkit_ingress_events_total from /metrics.
func storedEvents(base string) (int64, bool) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "eventkit_ingress_events_total "); ok {
			var f float64
			if json.Unmarshal([]byte(v), &f) == nil {
				return int64(f), true
			}
		}
	}
	return 0, false
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "ingress:", err)
	os.Exit(1)
}
