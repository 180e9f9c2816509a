package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/cehttp"
	"github.com/eventkit/eventkit/hub"
)

func init() {
	commands["tail"] = command{
		summary: "print the events published to topics matching a pattern, live, one line each",
		run:     runTail,
	}
}

func runTail(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	fs.SetOutput(stderr)
	client := apiFlags(fs)
	asJSON := fs.Bool("json", false, "print each event in full, in the CloudEvents JSON format (one per line)")
	from := fs.String("from", "", "print the stored events from `TIME` first: RFC 3339, \"start\" (the oldest) or a duration ago (\"15m\"); a reconnection goes on live")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: eventkit tail [flags] [PATTERN]\n\nPATTERN is a topic pattern (default \">\": every topic); \"*\" matches one token, \">\" the rest.")
		fs.PrintDefaults()
	}
	// Flags may follow the pattern.
	var pattern string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		if pattern != "" {
			return fmt.Errorf("%w: one pattern only", errUsage)
		}
		pattern, rest = fs.Arg(0), fs.Args()[1:]
	}
	if pattern == "" {
		pattern = ">"
	}
	c, err := client()
	if err != nil {
		return err
	}
	u := c.server + "/events/stream?topic=" + url.QueryEscape(pattern)
	first := u
	if *from != "" {
		t, start, err := parseWhen(*from, time.Now())
		if err != nil {
			return err
		}
		since := "start"
		if !start {
			since = t.Format(time.RFC3339Nano)
		}
		first += "&since=" + url.QueryEscape(since)
	}
	backoff := 250 * time.Millisecond
	for {
		connected, err := tailOnce(ctx, first, c.token, c.secret, *asJSON, stdout)
		if connected {
			first = u // a reconnection goes on live, not from --from again
		}
		if ctx.Err() != nil {
			return nil
		}
		var perm *permanentTailError
		if errors.As(err, &perm) {
			return err
		}
		if connected {
			backoff = 250 * time.Millisecond
		}
		fmt.Fprintln(stderr, printable(fmt.Sprintf("eventkit tail: %v; reconnecting in %s", err, backoff)))
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return nil
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

type permanentTailError struct{ msg string }

func (e *permanentTailError) Error() string { return e.msg }

// tailOnce reads the stream until it ends; connected reports whether the
// server accepted the subscription. With secret, the request is signed
// (each connection anew: a signature is good once).
func tailOnce(ctx context.Context, u, token string, secret []byte, asJSON bool, stdout io.Writer) (connected bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, &permanentTailError{err.Error()}
	}
	req.Header.Set("Accept", "text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if secret != nil {
		if err := cehttp.SignRequest(req, nil, "", secret); err != nil {
			return false, &permanentTailError{err.Error()}
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		msg := printable(fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(b))))
		if resp.StatusCode >= 400 && resp.StatusCode < 500 {
			return false, &permanentTailError{msg}
		}
		return false, errors.New(msg)
	}
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("the server closed the stream")
			}
			return true, err
		}
		data, ok := strings.CutPrefix(strings.TrimRight(line, "\r\n"), "data: ")
		if !ok {
			continue
		}
		var it hub.StreamItem
		if err := json.Unmarshal([]byte(data), &it); err != nil {
			continue
		}
		if asJSON {
			fmt.Fprintln(stdout, tailJSON(it.Event))
			continue
		}
		fmt.Fprintln(stdout, tailLine(it))
	}
}

// tailJSON is the --json form of an event: its JSON format, with the
// characters a terminal could act on escaped (see printableJSON).
func tailJSON(ev []byte) string { return printableJSON(string(ev)) }

// dataClip is the number of characters of data a tail line shows.
const dataClip = 160

// tailLine is the one-line form of an event: time, topic, type, id,
// source, subject and the data (clipped). Every value is escaped with
// printable: control characters and escape sequences sent by a producer
// are shown, never acted on by the terminal.
func tailLine(it hub.StreamItem) string {
	e, err := eventkit.UnmarshalEvent(it.Event)
	if err != nil {
		return printable(it.Topic + " (undecodable: " + err.Error() + ")")
	}
	t := e.Time()
	if t.IsZero() {
		t = time.Now()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s type=%s id=%s source=%s", t.Local().Format("15:04:05.000"),
		printable(it.Topic), printable(e.Type()), printable(e.ID()), printable(e.Source()))
	if s := e.Subject(); s != "" {
		fmt.Fprintf(&b, " subject=%s", printable(s))
	}
	if d := e.Data(); len(d) > 0 {
		if e.DataBase64 && !eventkit.IsJSONContentType(e.DataContentType()) && !strings.HasPrefix(e.DataContentType(), "text/") {
			fmt.Fprintf(&b, " data=(%d bytes %s)", len(d), printable(e.DataContentType()))
		} else {
			s := strings.Join(strings.Fields(string(d)), " ")
			if utf8.RuneCountInString(s) > dataClip {
				s = string([]rune(s)[:dataClip]) + "…"
			}
			fmt.Fprintf(&b, " data=%s", printable(s))
		}
	}
	return b.String()
}
