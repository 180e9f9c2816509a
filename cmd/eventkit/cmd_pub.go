package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/binding"
	"github.com/eventkit/eventkit/cehttp"
	"github.com/eventkit/eventkit/internal/jsonvalid"
	"github.com/google/uuid"
)

func init() {
	commands["pub"] = command{
		summary: "publish an event (or a file or stdin of events) to an eventkit server over HTTP",
		run:     runPub,
	}
}

// defaultServer is the server of pub and tail: $EVENTKIT_SERVER, else the
// default listen address of serve.
func defaultServer() string {
	if s := os.Getenv("EVENTKIT_SERVER"); s != "" {
		return s
	}
	return "http://127.0.0.1:8080"
}

// secretEnv holds the HMAC secret of pub and tail, when no file names it.
const secretEnv = "EVENTKIT_HMAC_SECRET"

// secretFlag declares --hmac-secret-file on fs. There is no flag taking
// the secret itself: a command line is visible to every user of the
// machine (ps, /proc), an environment variable or a file is not.
func secretFlag(fs *flag.FlagSet) *string {
	return fs.String("hmac-secret-file", os.Getenv(secretEnv+"_FILE"),
		"sign requests (RFC 9421 hmac-sha256, as the server's auth.hmac_secret requires) with the secret in `FILE` ($"+secretEnv+"_FILE; or the secret itself in $"+secretEnv+")")
}

// signingSecret returns the HMAC secret: the content of file (without its
// final line break) when given, else $EVENTKIT_HMAC_SECRET; nil when
// neither is set.
func signingSecret(file string) ([]byte, error) {
	if file == "" {
		if v := os.Getenv(secretEnv); v != "" {
			return []byte(v), nil
		}
		return nil, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("hmac secret: %w", err)
	}
	b = bytes.TrimRight(b, "\r\n")
	if len(b) == 0 {
		return nil, fmt.Errorf("hmac secret: %s is empty", file)
	}
	return b, nil
}

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// pubBatch is the number of events of a file posted per request.
const pubBatch = 500

func runPub(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pub", flag.ContinueOnError)
	fs.SetOutput(stderr)
	client := apiFlags(fs)
	typ := fs.String("type", "", "event `type` (also the topic, unless the server says otherwise)")
	source := fs.String("source", "eventkit-cli", "event `source`")
	id := fs.String("id", "", "event `id` (default: a new UUID)")
	subject := fs.String("subject", "", "event `subject`")
	data := fs.String("data", "", "event data; @FILE reads it from a file")
	ctype := fs.String("content-type", "", "data content `type` (default application/json when the data is JSON, else text/plain)")
	topic := fs.String("topic", "", "`topic` to ask for (the server honours it only with topic_header: true)")
	file := fs.String("f", "", "publish the events of `FILE` (\"-\": stdin): JSON-format events, a batch, or one per line")
	var exts stringList
	fs.Var(&exts, "ext", "extension `name=value` (repeatable)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: eventkit pub --type T [--source S] [--data JSON] [flags]\n       eventkit pub -f FILE|- [flags]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	var events []event.Event
	switch {
	case *file != "" && *typ != "":
		return fmt.Errorf("%w: give either -f or --type", errUsage)
	case *file != "":
		var b []byte
		var err error
		if *file == "-" {
			b, err = io.ReadAll(io.LimitReader(os.Stdin, 256<<20))
		} else {
			b, err = os.ReadFile(*file)
		}
		if err != nil {
			return err
		}
		events, err = parseEvents(b)
		if err != nil {
			return err
		}
	case *typ != "":
		e := event.New()
		e.SetType(*typ)
		e.SetSource(*source)
		if *id == "" {
			*id = uuid.NewString()
		}
		e.SetID(*id)
		e.SetTime(time.Now().UTC())
		if *subject != "" {
			e.SetSubject(*subject)
		}
		for _, x := range exts {
			k, v, ok := strings.Cut(x, "=")
			if !ok || !binding.IsAttributeName(k) {
				return fmt.Errorf("%w: --ext %q: want name=value, name of lower-case letters and digits", errUsage, x)
			}
			if err := binding.Set(&e, k, v); err != nil {
				return err
			}
		}
		if *data != "" {
			d := []byte(*data)
			if name, ok := strings.CutPrefix(*data, "@"); ok {
				var err error
				if d, err = os.ReadFile(name); err != nil {
					return err
				}
			}
			ct := *ctype
			if ct == "" {
				ct = "text/plain; charset=utf-8"
				if jsonvalid.Valid(d) {
					ct = "application/json"
				}
			}
			e.SetDataContentType(ct)
			e.DataEncoded = d
			e.DataBase64 = !eventkit.IsJSONContentType(ct) && !strings.HasPrefix(ct, "text/")
		}
		events = []event.Event{e}
	default:
		return fmt.Errorf("%w: give --type (one event) or -f FILE", errUsage)
	}
	if err := eventkit.ValidateEvents(events); err != nil {
		return err
	}
	popts := []cehttp.PublisherOption{cehttp.WithTimeout(time.Minute)}
	if len(events) > 1 {
		popts = append(popts, cehttp.WithBatch())
	}
	c, err := client()
	if err != nil {
		return err
	}
	if c.token != "" {
		popts = append(popts, cehttp.WithToken(c.token))
	}
	if c.secret != nil {
		popts = append(popts, cehttp.WithSigningSecret(c.secret))
	}
	if *topic == "" {
		popts = append(popts, cehttp.WithoutTopicHeader())
	}
	pub, err := cehttp.NewPublisher(c.server+"/events", popts...)
	if err != nil {
		return err
	}
	defer pub.Close()
	name := *topic
	if name == "" {
		name = "cli" // not sent: the server names the topic
	}
	for start := 0; start < len(events); start += pubBatch {
		end := min(start+pubBatch, len(events))
		if err := pub.Publish(ctx, name, events[start:end]...); err != nil {
			if start > 0 {
				return fmt.Errorf("after %d events were accepted: %w", start, err)
			}
			return err
		}
	}
	if len(events) == 1 {
		fmt.Fprintf(stdout, "published %s (type %s)\n", printable(events[0].ID()), printable(events[0].Type()))
	} else {
		fmt.Fprintf(stdout, "published %d events\n", len(events))
	}
	return nil
}

// parseEvents reads JSON-format events: a batch (array), or a sequence of
// events (one, or one per line).
func parseEvents(b []byte) ([]event.Event, error) {
	t := bytes.TrimSpace(b)
	if len(t) == 0 {
		return nil, errors.New("no events in the input")
	}
	if t[0] == '[' {
		return eventkit.UnmarshalBatch(t)
	}
	var out []event.Event
	d := json.NewDecoder(bytes.NewReader(t))
	for i := 1; ; i++ {
		var raw json.RawMessage
		if err := d.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
		e, err := eventkit.UnmarshalEvent(raw)
		if err != nil {
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
		out = append(out, e)
	}
}
