package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/eventkit/eventkit/internal/benchkit"
)

// program is one bench program with the arguments of this report.
type program struct {
	name  string   // short name, used for files and headings
	dir   string   // its directory below bench/
	args  []string // arguments after "go run ."
	needs string   // host:port of the server it needs ("" for none)
	about string   // what it compares, one line

	// A `go test -bench` program instead of a bench/ program: the package
	// (run from the repository's root), the benchmarks' pattern, and the
	// ratios the report computes from its results.
	pkg, bench, benchtime string
	ratios                []ratioSpec
}

// programs lists the peer comparisons, with shorter loads in quick mode.
func programs(quick bool) []program {
	pick := func(q, full string) string {
		if quick {
			return q
		}
		return full
	}
	kafka := []string{"-n", pick("50000", "200000"), "-rounds", pick("2", "5")}
	if reachable("127.0.0.1:9092") {
		kafka = append(kafka, "-brokers", "127.0.0.1:9092")
	}
	return []program{
		{name: "memory", dir: "memory", args: []string{"-n", pick("200000", "1000000"), "-rounds", pick("3", "5")},
			about: "memory bus against Watermill's GoChannel"},
		{name: "nats", dir: "nats", args: []string{"-n", pick("30000", "100000"), "-rounds", pick("2", "5")},
			about: "NATS JetStream (embedded, file store) against raw nats.go and Watermill"},
		{name: "kafka", dir: "kafka", args: kafka, needs: "",
			about: "Kafka (Apache Kafka on 127.0.0.1:9092 when it answers, else kfake) against raw franz-go with and without CloudEvents headers, and Watermill"},
		{name: "kafka-bare", dir: "kafka", args: append(append([]string{}, kafka...), "-bare-headers", "-only", "eventkit,raw+headers"), needs: "",
			about: "Kafka as above, with the raw+headers peer only counting the records (it does not decode their headers into events: the peer of the reports before 2026-12-03)"},
		{name: "redis", dir: "brokers", args: []string{"-broker", "redis", "-n", pick("20000", "100000"), "-rounds", pick("2", "3")}, needs: "127.0.0.1:6379",
			about: "Redis Streams against raw go-redis and Watermill"},
		{name: "amqp", dir: "brokers", args: []string{"-broker", "amqp", "-n", pick("5000", "20000"), "-rounds", pick("2", "3")}, needs: "127.0.0.1:5672",
			about: "RabbitMQ against raw amqp091-go and Watermill"},
		{name: "mqtt", dir: "brokers", args: []string{"-broker", "mqtt", "-n", pick("5000", "20000"), "-rounds", pick("2", "3")}, needs: "127.0.0.1:1883",
			about: "MQTT (Mosquitto) against raw paho.golang and Watermill"},
		{name: "outbox", dir: "outbox", args: []string{"-n", pick("5000", "20000"), "-relay-n", pick("10000", "50000"), "-lat-n", pick("200", "1000"), "-rounds", pick("2", "3")}, needs: "127.0.0.1:5432",
			about: "PostgreSQL queue against watermill-sql; the outbox relay's rate and latency"},
		{name: "ingress", dir: "ingress", args: []string{"-mode", "all", "-n", pick("10000", "100000"), "-runs", pick("1", "3")},
			about: "HTTP ingress into the embedded store, against the store's own ceiling (raw nats.go)"},
		{name: "pipeline", dir: "pipeline", args: []string{"-n", pick("50000", "200000"), "-rounds", pick("2", "3")},
			about: "a filter → transform pipeline in memory against Benthos v4 (Bloblang), with Go functions and with CEL"},
		{name: "webhook", dir: "ingress", args: []string{"-mode", "webhook", "-n", pick("10000", "50000"), "-c", "8", "-runs", pick("1", "3")},
			about: "webhook delivery from the embedded store to a local sink (8 in flight), against a raw net/http client posting the same events"},
		{name: "tracing", pkg: "./middleware", bench: "BenchmarkMiddlewareChain/direct|BenchmarkSpanReference", benchtime: pick("20000x", "200000x"),
			about: "the tracing middleware and the rest of the recommended chain, against one bare OpenTelemetry SDK span",
			ratios: []ratioSpec{
				{"tracing", "bare-span", "cpu-per-event", figure{"MiddlewareChain/direct/tracing", "cpu-ns/event"}, figure{"SpanReference", "cpu-ns/event"}},
				{"tracing", "span-same-attributes", "cpu-per-event", figure{"MiddlewareChain/direct/tracing", "cpu-ns/event"}, figure{"SpanReferenceAttributes", "cpu-ns/event"}},
				{"tracing-minimal", "bare-span", "cpu-per-event", figure{"MiddlewareChain/direct/tracing-minimal", "cpu-ns/event"}, figure{"SpanReference", "cpu-ns/event"}},
			}},
		{name: "eventstore", pkg: "./postgres", bench: "BenchmarkPostgresAppendBatch", benchtime: pick("200x", "2000x"), needs: "127.0.0.1:5432",
			about: "PostgreSQL event store, 100 events per append, against raw pgx COPY into the same schema",
			ratios: []ratioSpec{
				{"eventkit", "raw-pgx-copy", "append-100", figure{"PostgresAppendBatch/writers=1", "events/s"}, figure{"PostgresAppendBatch/raw-pgx-copy", "events/s"}},
				{"eventkit-4-writers", "raw-pgx-copy", "append-100", figure{"PostgresAppendBatch/writers=4", "events/s"}, figure{"PostgresAppendBatch/raw-pgx-copy", "events/s"}},
			}},
		{name: "cdc", pkg: "./postgres/pgcdc", bench: "BenchmarkCDCBulkLoad", benchtime: "1x", needs: "127.0.0.1:5432",
			about:  "CDC of a bulk load: rows/s captured against rows/s inserted in the same run (keeping up); pg-decode-rows/s is PostgreSQL's own decoding of the same changes read from a peer slot after the load, a decoder with nothing to wait for, so not a same-basis peer (bench/cdc/recvlogical.sh runs pg_recvlogical beside the load)",
			ratios: []ratioSpec{{"eventkit-cdc", "insert", "rows/s", figure{"CDCBulkLoad", "cdc-rows/s"}, figure{"CDCBulkLoad", "insert-rows/s"}}}},
	}
}

func selectPrograms(all []program, names []string) []program {
	var out []program
	for _, p := range all {
		if slices.Contains(names, p.name) {
			out = append(out, p)
		}
	}
	return out
}

func (p program) command() string {
	if p.pkg != "" {
		return "go test -run '^$' -bench '" + p.bench + "' -benchtime " + p.benchtime + " " + p.pkg
	}
	return "cd bench/" + p.dir + " && go run . " + strings.Join(p.args, " ")
}

// run is what one program measured.
type run struct {
	program
	started    time.Time
	elapsed    time.Duration
	loadBefore string
	loadAfter  string
	lines      []benchkit.Line
	tail       string // the last lines of its output, kept when it failed
	err        error
}

// run runs the program, keeping its whole output in file.
func (p program) run(file string) (r run) {
	r = run{program: p, started: time.Now().UTC(), loadBefore: loadavg()}
	defer func() { r.elapsed, r.loadAfter = time.Since(r.started), loadavg() }()
	if p.needs != "" && !reachable(p.needs) {
		r.err = fmt.Errorf("nothing answers on %s (run scripts/services.sh)", p.needs)
		return r
	}
	var out bytes.Buffer
	cmd := exec.Command("go", append([]string{"run", "."}, p.args...)...)
	cmd.Dir = "../" + p.dir
	if p.pkg != "" {
		cmd = exec.Command("go", "test", "-run", "^$", "-bench", p.bench, "-benchtime", p.benchtime, p.pkg)
		cmd.Dir = "../.."
	}
	cmd.Stdout = &out
	cmd.Stderr = &out
	r.err = cmd.Run()
	if werr := os.WriteFile(file, out.Bytes(), 0o644); werr != nil && r.err == nil {
		r.err = werr
	}
	lines, perr := benchkit.Parse(bytes.NewReader(out.Bytes()))
	if p.pkg != "" {
		lines = addRatios(parseGoBench(out.Bytes()), p.ratios)
	}
	r.lines = lines
	if r.err == nil {
		r.err = perr
	}
	if r.err == nil && len(lines) == 0 {
		r.err = fmt.Errorf("no RESULT or RATIO lines in its output")
	}
	if r.err != nil {
		r.tail = lastLines(out.Bytes(), 8)
	}
	return r
}

func reachable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func lastLines(b []byte, n int) string {
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(ls[max(0, len(ls)-n):], "\n")
}

// readFile returns a file's content, "" when it cannot be read.
func readFile(name string) string {
	f, err := os.Open(name)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, _ := io.ReadAll(f)
	return string(b)
}
