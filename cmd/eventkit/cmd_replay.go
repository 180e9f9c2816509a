package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/cehttp"
	"github.com/eventkit/eventkit/hub"
	"github.com/eventkit/eventkit/inspect"
)

func init() {
	commands["replay"] = command{
		summary: "publish a range of stored events again, to a topic or a URL (rate-limited, resumable)",
		run:     runReplay,
	}
}

// replayPoll is how often replay asks the server how far its replay is.
const replayPoll = 500 * time.Millisecond

type replayFlags struct {
	*inspectFlags
	toTopic, toURL, checkpoint, resume *string
	rate                               *float64
}

func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := replayFlags{inspectFlags: addInspectFlags(fs)}
	f.toTopic = fs.String("to-topic", "", "publish to `TOPIC` (on the server, or on the --broker)")
	f.toURL = fs.String("to-url", "", "post each event to `URL` (CloudEvents over HTTP, structured mode)")
	f.rate = fs.Float64("rate", 0, "at most `N` events per second (0: no bound)")
	f.checkpoint = fs.String("checkpoint", "eventkit-replay.json", "with --broker: write the checkpoint to `FILE` after each batch")
	f.resume = fs.String("resume", "", "with --broker: resume the replay whose checkpoint is in `FILE` (its range, filters and target)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: eventkit replay [flags] --to-topic TOPIC|--to-url URL [PATTERN]\n       eventkit replay --broker URL --resume FILE\n\n"+
			"Publishes the stored events of topics matching PATTERN (default \">\") again, unchanged (same id).\n"+
			"Through the server the replay runs there and survives its restarts; with --broker it runs here\n"+
			"and, interrupted, resumes from its checkpoint file with --resume.")
		fs.PrintDefaults()
	}
	pattern, err := parseWithPattern(fs, args)
	if err != nil {
		return err
	}
	if *f.rate < 0 {
		return fmt.Errorf("%w: --rate must not be negative", errUsage)
	}
	prog := newProgress(stderr)
	if *f.broker != "" {
		return f.direct(ctx, pattern, prog, stderr)
	}
	if *f.resume != "" {
		return fmt.Errorf("%w: --resume needs --broker: the server keeps and resumes its replays itself", errUsage)
	}
	return f.viaServer(ctx, pattern, prog, stderr)
}

// viaServer posts the replay to the server and follows it until it ends.
// Interrupted, the replay goes on on the server.
func (f *replayFlags) viaServer(ctx context.Context, pattern string, prog *progress, stderr io.Writer) error {
	if (*f.toTopic == "") == (*f.toURL == "") {
		return fmt.Errorf("%w: give --to-topic or --to-url", errUsage)
	}
	q, err := f.query(pattern)
	if err != nil {
		return err
	}
	req := hub.ReplayRequest{Topic: q.Topic, SQL: q.SQL, Filter: q.Filter, ToTopic: *f.toTopic, ToURL: *f.toURL, Rate: *f.rate}
	if !q.Since.IsZero() {
		req.Since = q.Since.Format(time.RFC3339Nano)
	}
	if !q.Until.IsZero() {
		req.Until = q.Until.Format(time.RFC3339Nano)
	}
	if q.After != "" {
		return fmt.Errorf("%w: --after needs --broker (the server's replays start at a time)", errUsage)
	}
	c, err := f.client()
	if err != nil {
		return err
	}
	body, _ := json.Marshal(req)
	var rep hub.Replay
	if err := c.json(ctx, http.MethodPost, "/replays", body, &rep); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "replay %s started on the server\n", rep.ID)
	t := time.NewTicker(replayPoll)
	defer t.Stop()
	start := time.Now()
	for rep.State == hub.ReplayRunning {
		select {
		case <-ctx.Done():
			prog.done()
			fmt.Fprintf(stderr, "replay %s goes on on the server; DELETE %s/replays/%s cancels it\n", rep.ID, c.base, rep.ID)
			return nil
		case <-t.C:
		}
		if err := c.json(ctx, http.MethodGet, "/replays/"+rep.ID, nil, &rep); err != nil && ctx.Err() == nil {
			return err
		}
		total := int64(-1)
		if rep.Total != nil {
			total = *rep.Total
		}
		prog.show(rep.Done, total, rep.Position, float64(rep.Done)/time.Since(start).Seconds())
	}
	prog.done()
	if rep.State != hub.ReplayDone {
		return fmt.Errorf("replay %s %s: %s", rep.ID, rep.State, rep.Error)
	}
	fmt.Fprintf(stderr, "replay %s done: %d events\n", rep.ID, rep.Done)
	return nil
}

// json calls the API and decodes its JSON answer into v.
func (c *apiClient) json(ctx context.Context, method, path string, body []byte, v any) error {
	resp, err := c.do(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(v)
}

// direct runs the replay here, from the broker, checkpointing to a file.
func (f *replayFlags) direct(ctx context.Context, pattern string, prog *progress, stderr io.Writer) error {
	var from *inspect.Checkpoint
	file := *f.checkpoint
	q, err := f.query(pattern)
	if err != nil {
		return err
	}
	toTopic, toURL := *f.toTopic, *f.toURL
	if *f.resume != "" {
		if from, err = inspect.LoadCheckpoint(*f.resume); err != nil {
			return err
		}
		file, toTopic, toURL = *f.resume, from.ToTopic, from.ToURL
		from.Query.Group = q.Group
	}
	if (toTopic == "") == (toURL == "") {
		return fmt.Errorf("%w: give --to-topic or --to-url", errUsage)
	}
	tr, err := openBroker(ctx, *f.broker, io.Discard)
	if err != nil {
		return err
	}
	defer tr.Close()
	var to eventkit.Publisher = tr
	if toURL != "" {
		var opts []cehttp.PublisherOption
		if tok := os.Getenv("EVENTKIT_REPLAY_TOKEN"); tok != "" {
			opts = append(opts, cehttp.WithToken(tok))
		}
		p, err := cehttp.NewPublisher(toURL, opts...)
		if err != nil {
			return err
		}
		defer p.Close()
		to = p
	}
	r := &inspect.Replay{From: inspect.FromSubscriber(tr), To: to, ToTopic: toTopic, ToURL: toURL, Rate: *f.rate,
		Save: inspect.FileCheckpoint(file),
		Progress: func(p inspect.Progress) {
			prog.show(p.Done, -1, p.Position, p.Rate)
		}}
	cp, err := r.Run(ctx, q, from)
	prog.done()
	if err != nil {
		if ctx.Err() != nil || !errors.Is(err, inspect.ErrInvalidQuery) {
			fmt.Fprintf(stderr, "replay stopped after %d events; resume it with: eventkit replay --broker %s --resume %s\n", cp.Done, *f.broker, file)
		}
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	fmt.Fprintf(stderr, "replay done: %d events (checkpoint %s)\n", cp.Done, file)
	return nil
}

// progress shows a replay's progress on stderr: a bar redrawn in place on
// a terminal, a line every few seconds otherwise.
type progress struct {
	w        io.Writer
	terminal bool
	last     time.Time
	drawn    bool
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.terminal = true
		}
	}
	return p
}

// barWidth is the number of cells of the progress bar.
const barWidth = 30

// show reports done events of total (-1: unknown).
func (p *progress) show(done, total int64, pos string, rate float64) {
	if !p.terminal {
		if time.Since(p.last) < 2*time.Second {
			return
		}
		p.last = time.Now()
		fmt.Fprintf(p.w, "replayed %d events (position %s, %.0f/s)\n", done, printable(pos), rate)
		return
	}
	p.drawn = true
	if total <= 0 {
		fmt.Fprintf(p.w, "\r%d events  %.0f/s  position %s\x1b[K", done, rate, printable(pos))
		return
	}
	fill := int(min(done, total) * barWidth / total)
	fmt.Fprintf(p.w, "\r[%s%s] %3d%%  %d/%d  %.0f/s\x1b[K", strings.Repeat("#", fill), strings.Repeat(".", barWidth-fill),
		min(done, total)*100/total, done, total, rate)
}

// done ends the bar's line.
func (p *progress) done() {
	if p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}
