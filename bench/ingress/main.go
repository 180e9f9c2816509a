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
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/eventkit/eventkit/cehttp"
	"github.com/eventkit/eventkit/hub"
	"github.com/eventkit/eventkit/internal/benchkit"
)

func main() {
	mode := flag.String("mode", "both", "single (one binary-mode event per request), batch, both, all (store, then both: the batch rate as a fraction of the store's ceiling), webhook (delivery from the store to a local sink through a subscription with -c in flight, against a raw net/http client posting the same events), or store (raw nats.go async publish into the embedded JetStream file store, no HTTP: the store's ceiling)")
	n := flag.Int("n", 100000, "events per run")
	conc := flag.Int("c", 64, "concurrent clients (single mode)")
	bconc := flag.Int("bc", 8, "concurrent clients (batch mode)")
	batch := flag.Int("batch", 500, "events per batch request")
	types := flag.Int("types", 1, "batch mode: event types (topics) per batch, taken in turn (1: every event of a batch has one type)")
	size := flag.Int("size", 256, "bytes of JSON data per event")
	runs := flag.Int("runs", 3, "runs per mode (the median is reported)")
	server := flag.String("server", "", "URL of a running server (default: start one in-process)")
	serverPID := flag.Int("serverpid", 0, "with -server: process id of the server, whose CPU time is reported per event")
	spawn := flag.String("spawn", "", "run the server as a separate process: path of the eventkit binary, started as \"serve\" on a free port and a temporary data directory (its CPU time is reported per event)")
	clientKind := flag.String("client", "raw", "load generator: raw (HTTP/1.1 keep-alive over net.Conn, requests built in a reused buffer, light) or nethttp (net/http.Client)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to `file`")
	hmacFlag := flag.String("hmac", "", "in-process server: require RFC 9421 request signatures under this secret (auth.hmac_secret); single mode signs each request before the timed run")
	flag.Parse()
	hmacSecret = *hmacFlag
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
	if *clientKind != "raw" && *clientKind != "nethttp" {
		fatal(fmt.Errorf("unknown -client %q", *clientKind))
	}
	data := `{"pad":"` + strings.Repeat("x", max(*size-10, 0)) + `"}`
	if *mode == "store" {
		runStoreMode(*n, *runs, data)
		return
	}
	if *mode == "webhook" {
		runWebhookMode(*n, *conc, *runs, data)
		return
	}
	// The store's own rate and CPU per event, measured first with -mode all.
	var ceiling, ceilingCPU float64
	if *mode == "all" {
		ceiling, ceilingCPU = runStoreMode(*n, *runs, data)
	}

	base := *server
	pid := *serverPID
	inProcess := false
	switch {
	case *spawn != "":
		u, p, stop := spawnServer(*spawn)
		defer stop()
		base, pid = u, p
	case base == "":
		inProcess = true
		dir, err := os.MkdirTemp("", "eventkit-bench-ingress-")
		if err != nil {
			fatal(err)
		}
		defer os.RemoveAll(dir)
		u, stop := startHub(hub.Config{DataDir: dir, Auth: hub.AuthConfig{HMACSecret: *hmacFlag}})
		defer stop()
		base = u
	}
	where := "a separate process"
	if inProcess {
		where = "in-process (server and load generator share this process)"
	}
	fmt.Printf("# server %s, %s; %s client; %d events per run, data %d bytes, GOMAXPROCS %d, load average %s\n",
		base, where, *clientKind, *n, len(data), runtime.GOMAXPROCS(0), loadavg())
	modes := []string{*mode}
	if *mode == "both" || *mode == "all" {
		modes = []string{"single", "batch"}
	}
	for _, m := range modes {
		var results []result
		for r := 0; r < *runs; r++ {
			var res result
			cpu0, scpu0 := benchkit.CPUTime(), pidCPU(pid)
			switch m {
			case "single":
				res = runSingle(*clientKind, base, *n, *conc, data, r)
			case "batch":
				res = runBatch(*clientKind, base, *n, *batch, *bconc, *types, data, r)
			default:
				fatal(fmt.Errorf("unknown mode %q", m))
			}
			res.selfCPU = benchkit.CPUTime() - cpu0 - signCPU
			signCPU = 0
			if pid != 0 {
				res.serverCPU = pidCPU(pid) - scpu0
			}
			res.inProcess = inProcess
			fmt.Printf("%-6s run %d: %s\n", m, r+1, res)
			results = append(results, res)
		}
		slices.SortFunc(results, func(a, b result) int { return cmp.Compare(a.rate, b.rate) })
		med := results[len(results)/2]
		fmt.Printf("%-6s median: %s   [load average %s]\n", m, med, loadavg())
		fmt.Printf("%-6s spread: %.0f–%.0f events/s over %d runs (%.0f %% of the median)\n", m, results[0].rate, results[len(results)-1].rate,
			len(results), 100*(results[len(results)-1].rate-results[0].rate)/med.rate)
		benchkit.Result("eventkit", "ingress-"+m, med.rate, "events/s")
		benchkit.Result("eventkit", "ingress-"+m+"-p50", float64(med.p50)/1e3, "µs")
		benchkit.Result("eventkit", "ingress-"+m+"-p99", float64(med.p99)/1e3, "µs")
		if med.events > 0 {
			benchkit.Result("eventkit", "ingress-"+m+"-cpu", float64((med.selfCPU+med.serverCPU).Microseconds())/float64(med.events), "µs/event")
		}
		if m == "batch" {
			benchkit.Ratio("eventkit", "store-ceiling", "ingress-batch", med.rate, ceiling)
			// The same ratio in events per CPU-second of the process (the
			// store's CPU per event over the ingress's): it moves much less
			// than the wall clock when the machine is shared.
			if cpu := median(results, func(r result) float64 { return float64((r.selfCPU + r.serverCPU).Microseconds()) / float64(r.events) }); cpu > 0 {
				benchkit.Ratio("eventkit", "store-ceiling", "ingress-batch-per-cpu", ceilingCPU, cpu)
			}
		}
	}
	if stored, ok := storedEvents(base); ok {
		fmt.Printf("# server counted %d events stored and acknowledged (eventkit_ingress_events_total)\n", stored)
	}
}

// median returns the median of f over results.
func median(results []result, f func(result) float64) float64 {
	v := make([]float64, 0, len(results))
	for _, r := range results {
		if r.events > 0 {
			v = append(v, f(r))
		}
	}
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[len(v)/2]
}

type result struct {
	events    int64
	failed    int64
	elapsed   time.Duration
	rate      float64
	p50, p99  time.Duration
	perReq    int
	selfCPU   time.Duration // CPU time of this process during the run
	serverCPU time.Duration // CPU time of the server process (separate process only)
	inProcess bool
}

func (r result) String() string {
	s := fmt.Sprintf("%9.0f events/s accepted+persisted (%d events, %d failed, %s), request p50 %s p99 %s (%d event(s)/request)",
		r.rate, r.events, r.failed, r.elapsed.Round(time.Millisecond), r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), r.perReq)
	if r.events == 0 {
		return s
	}
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(r.events) }
	if r.inProcess {
		s += fmt.Sprintf("; process CPU %.1f µs/event (server + load generator)", per(r.selfCPU))
	} else {
		s += fmt.Sprintf("; load generator CPU %.1f µs/event", per(r.selfCPU))
		if r.serverCPU > 0 {
			s += fmt.Sprintf(", server CPU %.1f µs/event (%.0f events per server CPU-second)", per(r.serverCPU), float64(r.events)/r.serverCPU.Seconds())
		}
	}
	return s
}

// doer sends one request and reports whether it was answered with want.
type doer interface {
	do(req *request, want int) bool
	close()
}

// request is one POST /events: its extra headers and body.
type request struct {
	headers [][2]string
	body    []byte
}

func newDoer(kind, base string) doer {
	if kind == "nethttp" {
		return &netDoer{url: base + "/events", c: &http.Client{Timeout: time.Minute}}
	}
	u, err := url.Parse(base)
	if err != nil {
		fatal(err)
	}
	return &rawDoer{addr: u.Host}
}

// netDoer uses net/http.Client (one per worker, so one connection each).
type netDoer struct {
	url string
	c   *http.Client
}

func (d *netDoer) do(r *request, want int) bool {
	req, _ := http.NewRequest(http.MethodPost, d.url, bytes.NewReader(r.body))
	for _, h := range r.headers {
		req.Header.Set(h[0], h[1])
	}
	resp, err := d.c.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == want
}

func (d *netDoer) close() { d.c.CloseIdleConnections() }

// rawDoer speaks HTTP/1.1 with keep-alive over one TCP connection,
// building each request in a reused buffer and reading the answer's status
// line, headers and Content-Length body. It is a much lighter load
// generator than net/http's client, so that it takes less of the CPU the
// server needs.
type rawDoer struct {
	addr string
	conn net.Conn
	r    *bufio.Reader
	buf  []byte
}

func (d *rawDoer) do(r *request, want int) bool {
	if d.conn == nil {
		c, err := net.Dial("tcp", d.addr)
		if err != nil {
			return false
		}
		d.conn, d.r = c, bufio.NewReaderSize(c, 4096)
	}
	b := d.buf[:0]
	b = append(b, "POST /events HTTP/1.1\r\nHost: "...)
	b = append(b, d.addr...)
	b = append(b, "\r\n"...)
	for _, h := range r.headers {
		b = append(b, h[0]...)
		b = append(b, ": "...)
		b = append(b, h[1]...)
		b = append(b, "\r\n"...)
	}
	b = append(b, "Content-Length: "...)
	b = strconv.AppendInt(b, int64(len(r.body)), 10)
	b = append(b, "\r\n\r\n"...)
	d.buf = b
	_ = d.conn.SetDeadline(time.Now().Add(time.Minute))
	bufs := net.Buffers{b, r.body} // one writev, the body not copied
	if _, err := bufs.WriteTo(d.conn); err != nil {
		d.close()
		return false
	}
	code, keep, err := readResponse(d.r)
	if err != nil || !keep {
		d.close()
	}
	return err == nil && code == want
}

func (d *rawDoer) close() {
	if d.conn != nil {
		d.conn.Close()
		d.conn = nil
	}
}

// readResponse reads one HTTP/1.1 response with a Content-Length body (or
// none) and returns its status code and whether the connection stays open.
func readResponse(r *bufio.Reader) (code int, keep bool, err error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	// "HTTP/1.1 204 No Content\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, false, fmt.Errorf("bad status line %q", line)
	}
	code, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, false, err
	}
	length := 0
	keep = true
	for {
		line, err = r.ReadSlice('\n')
		if err != nil {
			return 0, false, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		k, v, _ := bytes.Cut(line, []byte(":"))
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(v)); err != nil {
				return 0, false, err
			}
		case bytes.EqualFold(k, []byte("Transfer-Encoding")):
			return 0, false, fmt.Errorf("transfer-encoding %q not supported", v)
		case bytes.EqualFold(k, []byte("Connection")) && bytes.EqualFold(v, []byte("close")):
			keep = false
		}
	}
	if _, err := r.Discard(length); err != nil {
		return 0, false, err
	}
	return code, keep, nil
}

// parallel runs work(w, i) for every i in [0, total) from conc goroutines,
// w being the goroutine's number, each taking the next i; it returns when
// all are done.
func parallel(conc, total int, work func(w, i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < total; i = int(next.Add(1) - 1) {
				work(w, i)
			}
		})
	}
	wg.Wait()
}

// drive runs requests from conc workers until total requests are done;
// build returns the i-th request and its number of events.
func drive(kind, base string, conc, requests int, build func(w, i int, req *request) int, want int) result {
	var ok, failed atomic.Int64
	lat := make([][]time.Duration, conc)
	doers := make([]doer, conc) // one connection per worker
	reqs := make([]request, conc)
	start := time.Now()
	parallel(conc, requests, func(w, i int) {
		if doers[w] == nil {
			doers[w] = newDoer(kind, base)
		}
		n := build(w, i, &reqs[w])
		t0 := time.Now()
		good := doers[w].do(&reqs[w], want)
		lat[w] = append(lat[w], time.Since(t0))
		if good {
			ok.Add(int64(n))
		} else {
			failed.Add(int64(n))
		}
	})
	for _, d := range doers {
		if d != nil {
			d.close()
		}
	}
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

// hmacSecret signs the single-mode requests when not empty (-hmac).
var hmacSecret string

// signCPU is the CPU time the last signatures call took (not counted in
// the run's CPU: the signing is the load generator's, before the run).
var signCPU time.Duration

// signatures returns the signature headers of the n single-mode requests,
// made before the timed run (the load generator shares the CPU).
func signatures(base, prefix string, n int, body []byte) [][3][2]string {
	if hmacSecret == "" {
		return nil
	}
	cpu0 := benchkit.CPUTime()
	defer func() { signCPU = benchkit.CPUTime() - cpu0 }()
	out := make([][3][2]string, n)
	for i := range out {
		req, _ := http.NewRequest(http.MethodPost, base+"/events", bytes.NewReader(body))
		for _, h := range singleHeaders(prefix, i) {
			req.Header.Set(h[0], h[1])
		}
		if err := cehttp.SignRequest(req, body, "bench", []byte(hmacSecret)); err != nil {
			fatal(err)
		}
		for j, k := range []string{cehttp.ContentDigestHeader, cehttp.SignatureInputHeader, cehttp.SignatureValueHeader} {
			out[i][j] = [2]string{k, req.Header.Get(k)}
		}
	}
	return out
}

func singleHeaders(prefix string, i int) [][2]string {
	return [][2]string{
		{"Content-Type", "application/json"},
		{"Ce-Specversion", "1.0"},
		{"Ce-Id", prefix + strconv.Itoa(i)},
		{"Ce-Source", "/bench/ingress"},
		{"Ce-Type", "bench.ingress.single"},
	}
}

func runSingle(kind, base string, n, conc int, data string, run int) result {
	body := []byte(data)
	prefix := "s" + strconv.Itoa(run) + "-"
	sigs := signatures(base, prefix, n, body)
	res := drive(kind, base, conc, n, func(_, i int, req *request) int {
		req.body = body
		req.headers = append(req.headers[:0],
			[2]string{"Content-Type", "application/json"},
			[2]string{"Ce-Specversion", "1.0"},
			[2]string{"Ce-Id", prefix + strconv.Itoa(i)},
			[2]string{"Ce-Source", "/bench/ingress"},
			[2]string{"Ce-Type", "bench.ingress.single"})
		if sigs != nil {
			req.headers = append(req.headers, sigs[i][:]...)
		}
		return 1
	}, http.StatusNoContent)
	res.perReq = 1
	return res
}

// runBatch posts n events in batches of size from conc clients. The
// bodies are built before the clock starts, as the store mode builds its
// messages before its clock: the load generator shares the CPU with the
// server, and the JSON it writes is not the ingress's work.
func runBatch(kind, base string, n, size, conc, types int, data string, run int) result {
	requests := (n + size - 1) / size
	bodies := make([][]byte, requests)
	for i := range bodies {
		var b bytes.Buffer
		b.WriteByte('[')
		count := min(size, n-i*size)
		for j := 0; j < count; j++ {
			if j > 0 {
				b.WriteByte(',')
			}
			typ := "bench.ingress.batch"
			if types > 1 {
				typ += strconv.Itoa(j % types)
			}
			fmt.Fprintf(&b, `{"specversion":"1.0","id":"b%d-%d-%d","source":"/bench/ingress","type":"%s","datacontenttype":"application/json","data":%s}`, run, i, j, typ, data)
		}
		b.WriteByte(']')
		bodies[i] = b.Bytes()
	}
	runtime.GC()
	res := drive(kind, base, conc, requests, func(_, i int, req *request) int {
		req.body = bodies[i]
		req.headers = append(req.headers[:0], [2]string{"Content-Type", "application/cloudevents-batch+json"})
		return min(size, n-i*size)
	}, http.StatusOK)
	res.perReq = size
	return res
}

// spawnServer starts "bin serve" on a free loopback port with a temporary
// data directory and waits until it is healthy.
func spawnServer(bin string) (base string, pid int, stop func()) {
	dir, err := os.MkdirTemp("", "eventkit-bench-ingress-")
	if err != nil {
		fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "serve", "--listen", addr, "--data", dir, "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		fatal(err)
	}
	base = "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			fatal(fmt.Errorf("server %s did not become healthy", bin))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return base, cmd.Process.Pid, func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		os.RemoveAll(dir)
	}
}

// pidCPU returns utime+stime of process pid from /proc (0 for pid 0).
func pidCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name (which ends with the last ')'):
	// state is field 3, utime 14, stime 15.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const ticks = 100 // USER_HZ
	return time.Duration(ut+st) * time.Second / ticks
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
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
