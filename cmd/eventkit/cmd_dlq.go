package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/eventkit/eventkit/deadletter"
)

func init() {
	commands["dlq"] = command{
		summary: "list, show, re-drive or purge the dead letters of the server's subscriptions",
		run:     runDLQ,
	}
}

// dlqUsage is the usage of eventkit dlq.
const dlqUsage = `Usage: eventkit dlq list [--subscription NAME] [--after POS] [--limit N] [--json]
       eventkit dlq show POSITION
       eventkit dlq redrive POSITION... | --subscription NAME
       eventkit dlq purge POSITION... | --subscription NAME

A dead letter is an event a subscription gave up on, kept under its
position. redrive publishes it again to the topic it came from, with the
same id and its redrivecount extension incremented, for the subscription
that gave up only, then removes the dead letter; purge removes without
publishing. With --subscription, redrive and purge act on every dead letter
of that subscription.`

func runDLQ(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dlq", flag.ContinueOnError)
	fs.SetOutput(stderr)
	client := apiFlags(fs)
	sub := fs.String("subscription", "", "the subscription `name` whose dead letters to act on")
	after := fs.String("after", "", "list the dead letters after this `position` (paging)")
	limit := fs.Int("limit", deadletter.DefaultLimit, "list at most `n` dead letters")
	asJSON := fs.Bool("json", false, "list each dead letter in full, one JSON item per line")
	usageOf(fs, stderr, dlqUsage)
	if len(args) == 0 || !strings.Contains(" list show redrive purge ", " "+args[0]+" ") {
		fs.Usage()
		return fmt.Errorf("%w: want list, show, redrive or purge", errUsage)
	}
	verb := args[0]
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	c, err := client()
	if err != nil {
		return err
	}
	positions := fs.Args()
	switch verb {
	case "list":
		if len(positions) > 0 {
			return fmt.Errorf("%w: list takes no position", errUsage)
		}
		q := url.Values{"limit": {strconv.Itoa(*limit)}}
		if *sub != "" {
			q.Set("subscription", *sub)
		}
		if *after != "" {
			q.Set("after", *after)
		}
		return dlqList(ctx, c, q, *asJSON, stdout)
	case "show":
		if len(positions) != 1 {
			return fmt.Errorf("%w: show takes one position", errUsage)
		}
		b, err := c.fetch(ctx, http.MethodGet, "/deadletters/"+url.PathEscape(positions[0]))
		if err != nil {
			return err
		}
		return writeIndented(stdout, b)
	}
	if (len(positions) == 0) == (*sub == "") {
		return fmt.Errorf("%w: %s takes positions or --subscription, one of them", errUsage, verb)
	}
	return dlqAct(ctx, c, verb, *sub, positions, stdout)
}

// dlqList prints the dead letters q selects: one line each, or, with
// asJSON, each item as the server sent it.
func dlqList(ctx context.Context, c *apiClient, q url.Values, asJSON bool, stdout io.Writer) error {
	b, err := c.fetch(ctx, http.MethodGet, "/deadletters?"+q.Encode())
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), maxAPIAnswer)
	for sc.Scan() {
		if asJSON {
			fmt.Fprintln(stdout, printableJSON(sc.Text()))
			continue
		}
		var it deadletter.Item
		if err := json.Unmarshal(sc.Bytes(), &it); err != nil {
			return fmt.Errorf("the server answered %q: %w", printable(sc.Text()), err)
		}
		fmt.Fprintln(stdout, dlqLine(it))
	}
	return sc.Err()
}

// errClip is the number of characters of a dead letter's error a list
// line shows.
const errClip = 120

// dlqLine is the one-line form of a dead letter: position, time stored,
// subscription, original topic, type, id, attempts and error, escaped.
func dlqLine(it deadletter.Item) string {
	e, err := it.Decode()
	if err != nil {
		return printable(it.Position + " " + it.Topic + " (undecodable: " + err.Error() + ")")
	}
	ext := e.Extensions()
	orig, _ := deadletter.OriginalTopic(&e)
	msg := fmt.Sprint(ext[deadletter.ExtError])
	if utf8.RuneCountInString(msg) > errClip {
		msg = string([]rune(msg)[:errClip]) + "…"
	}
	line := fmt.Sprintf("%s %s sub=%s topic=%s type=%s id=%s attempts=%v",
		it.Position, it.Stored.Local().Format(time.DateTime), it.Subscription, orig, e.Type(), e.ID(), ext[deadletter.ExtAttempts])
	if n := deadletter.RedriveCount(&e); n > 0 {
		line += fmt.Sprintf(" redrives=%d", n)
	}
	return printable(line + " error=" + strconv.Quote(msg))
}

// dlqAct re-drives or purges the dead letters at positions, or all those
// of sub, and says what it did.
func dlqAct(ctx context.Context, c *apiClient, verb, sub string, positions []string, stdout io.Writer) error {
	if sub != "" {
		method, path := http.MethodPost, "/deadletters/redrive?subscription="
		if verb == "purge" {
			method, path = http.MethodDelete, "/deadletters?subscription="
		}
		b, err := c.fetch(ctx, method, path+url.QueryEscape(sub))
		if err != nil {
			return err
		}
		var n map[string]int
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("the server answered %q: %w", printable(string(b)), err)
		}
		did := map[string]string{"redrive": "re-drove", "purge": "purged"}[verb]
		fmt.Fprintln(stdout, printable(fmt.Sprintf("%s %d dead letter(s) of %s", did, n["redriven"]+n["purged"], sub)))
		return nil
	}
	for _, p := range positions {
		if verb == "purge" {
			if _, err := c.fetch(ctx, http.MethodDelete, "/deadletters/"+url.PathEscape(p)); err != nil {
				return fmt.Errorf("%s: %w", printable(p), err)
			}
			fmt.Fprintln(stdout, printable("purged "+p))
			continue
		}
		b, err := c.fetch(ctx, http.MethodPost, "/deadletters/"+url.PathEscape(p)+"/redrive")
		if err != nil {
			return fmt.Errorf("%s: %w", printable(p), err)
		}
		var it deadletter.Item
		if err := json.Unmarshal(b, &it); err != nil {
			return fmt.Errorf("the server answered %q: %w", printable(string(b)), err)
		}
		e, _ := it.Decode()
		fmt.Fprintln(stdout, printable(fmt.Sprintf("re-drove %s to %s as %s (id %s, redrive %d)", p, it.Topic, it.Position, e.ID(), deadletter.RedriveCount(&e))))
	}
	return nil
}

// usageOf makes fs print text, then its flags, as its usage.
func usageOf(fs *flag.FlagSet, stderr io.Writer, text string) {
	fs.Usage = func() {
		fmt.Fprintln(stderr, text)
		fs.PrintDefaults()
	}
}

// writeIndented writes the JSON b indented, escaped for a terminal.
func writeIndented(w io.Writer, b []byte) error {
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return fmt.Errorf("the server answered %q: %w", printable(string(b)), err)
	}
	_, err := fmt.Fprintln(w, printableJSON(strings.TrimSpace(out.String())))
	return err
}
