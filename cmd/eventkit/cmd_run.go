package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/cehttp"
	"github.com/eventkit/eventkit/kafka"
	"github.com/eventkit/eventkit/memory"
	eknats "github.com/eventkit/eventkit/nats"
	"github.com/eventkit/eventkit/pipeline/cesql"
	"github.com/eventkit/eventkit/pipeline/pipecel"
	"github.com/eventkit/eventkit/pipeline/pipeconf"
	"github.com/eventkit/eventkit/pipeline/pipehttp"
	"github.com/eventkit/eventkit/pipeline/pipepg"
	"github.com/eventkit/eventkit/pipeline/pipewasm"
	"github.com/eventkit/eventkit/postgres/pgqueue"
	"github.com/eventkit/eventkit/pulsar"
	"github.com/eventkit/eventkit/redis"
	"github.com/jackc/pgx/v5/pgxpool"
)

func init() {
	commands["run"] = command{
		summary: "run a pipeline defined in YAML (input → processors → outputs) until SIGINT or SIGTERM",
		run:     runPipeline,
	}
}

// runKinds and runInputs are the processor and input kinds of `eventkit
// run` (and of the pipelines of `eventkit serve`).
var (
	runKinds  = map[string]pipeconf.Kind{"sql": cesql.Kind, "cel": pipecel.Kind, "wasm": pipewasm.Kind}
	runInputs = map[string]pipeconf.InputKind{"http": pipehttp.Kind, "cdc": pipepg.CDCKind, "outbox": pipepg.OutboxKind}
)

// runPipeline loads a pipeline definition, runs it until ctx ends, then
// drains it and prints each stage's counts.
func runPipeline(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	check := fs.Bool("check", false, "load the definition (opening its transports), report what is wrong, and exit")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: eventkit run [-check] PIPELINE.yaml\n\n"+
			"Runs the pipeline until SIGINT or SIGTERM, then drains it: events taken\n"+
			"are finished and acked before the command exits. Inputs and outputs are\n"+
			"URLs: nats://host:port, kafka://host:port, memory:// (in the process)\n"+
			"and, for outputs, stdout (CloudEvents JSON, one per line) and http(s)://\n"+
			"(a webhook). Declared inputs: http (an ingress), cdc, outbox (PostgreSQL).\n"+
			"Processor kinds: filter, route, batch, enrich, sql (CloudEvents SQL), cel, wasm;\n"+
			"see docs/pipelines.md.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("%w: want one pipeline file", errUsage)
	}
	file := fs.Arg(0)
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	loader, closeLoader := pipelineLoader(stdout)
	defer closeLoader()
	loaded, err := loader.Load(ctx, file, data)
	if err != nil {
		return err
	}
	defer loaded.Close()
	if *check {
		fmt.Fprintf(stdout, "%s: ok\n", file)
		return nil
	}
	if err := loaded.Start(ctx); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "eventkit run: %s running; SIGINT or SIGTERM drains and stops it\n", file)
	err = loaded.Wait()
	for _, s := range loaded.Pipeline.Stats() {
		fmt.Fprintf(stderr, "  %-16s in %d out %d failed %d blocked %s\n", s.Name, s.In, s.Out, s.Failed, s.Blocked.Round(time.Millisecond))
	}
	return err
}

// pipelineLoader is the loader of `eventkit run` and of the pipelines of
// `eventkit serve`: every processor and input kind the command knows, and
// its transports (stdout writes to stdout); release closes its in-process
// bus.
func pipelineLoader(stdout io.Writer) (l *pipeconf.Loader, release func()) {
	tr := &runTransports{stdout: stdout, mem: memory.New()}
	return &pipeconf.Loader{Transports: tr, Kinds: runKinds, Inputs: runInputs}, func() { _ = tr.mem.Close() }
}

// runTransports opens the inputs and outputs of `eventkit run` by URL.
type runTransports struct {
	stdout io.Writer
	mem    *memory.Bus
}

// noClose keeps a pipeline's Close from closing the shared memory bus.
type noClose struct{ *memory.Bus }

func (noClose) Close() error { return nil }

func (t *runTransports) open(ctx context.Context, raw string) (interface {
	eventkit.Publisher
	eventkit.Subscriber
}, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "memory":
		return noClose{t.mem}, nil
	case "nats":
		tr, err := eknats.Dial(ctx, raw) // Close closes the connection
		if err != nil {
			return nil, err
		}
		return tr, nil
	case "kafka":
		tr, err := kafka.Dial(ctx, u.Host) // Close closes its clients
		if err != nil {
			return nil, err
		}
		return tr, nil
	case "redis", "rediss", "unix":
		return redis.Dial(ctx, raw) // Close closes its client
	case "pulsar", "pulsar+ssl":
		return pulsar.Dial(ctx, raw) // Close closes its client
	case "postgres", "postgresql":
		pool, err := pgxpool.New(ctx, raw)
		if err != nil {
			return nil, err
		}
		tr, err := pgqueue.New(pool)
		if err != nil {
			pool.Close()
			return nil, err
		}
		return &poolQueue{Transport: tr, pool: pool}, nil
	}
	return nil, errors.New("want nats://…, kafka://…, redis://…, postgres://…, pulsar://… or memory:// (and stdout for an output)")
}

// poolQueue is a queue transport that owns its pool: Close closes both.
type poolQueue struct {
	*pgqueue.Transport
	pool *pgxpool.Pool
}

func (q *poolQueue) Close() error {
	err := q.Transport.Close()
	q.pool.Close()
	return err
}

func (t *runTransports) Subscriber(ctx context.Context, url string) (eventkit.Subscriber, error) {
	return t.open(ctx, url)
}

func (t *runTransports) Publisher(ctx context.Context, url string) (eventkit.Publisher, error) {
	if url == "stdout" || url == "-" {
		return &cdcStdout{w: bufio.NewWriterSize(t.stdout, 64<<10)}, nil
	}
	if strings.HasPrefix(url, "http://") || strings.HasPrefix(url, "https://") {
		return cehttp.NewPublisher(url)
	}
	return t.open(ctx, url)
}
