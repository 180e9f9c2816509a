package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/eventkit/eventkit/hub"
)

func init() {
	commands["serve"] = command{
		summary: "run the server: HTTP ingress, live tail and webhook subscriptions on an embedded JetStream store",
		run:     runServe,
	}
}

// runServe runs the hub until ctx ends (SIGINT, SIGTERM), then shuts it
// down gracefully.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "", "YAML configuration `file` (see docs/server.md)")
	listen := fs.String("listen", "", "HTTP listen `address` (default "+hub.DefaultListen+")")
	data := fs.String("data", "", "data `directory` of the embedded broker (default "+hub.DefaultDataDir+")")
	natsURL := fs.String("nats", "", "use the NATS JetStream server at `URL` instead of the embedded one")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: eventkit serve [flags]\n\nWith no flags: an embedded JetStream server storing under "+hub.DefaultDataDir+",\nCloudEvents accepted at POST http://"+hub.DefaultListen+"/events.\nFlags override the configuration file.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("%w: -log-level %q", errUsage, *logLevel)
	}
	hopts := &slog.HandlerOptions{Level: level}
	var log *slog.Logger
	switch strings.ToLower(*logFormat) {
	case "text":
		log = slog.New(slog.NewTextHandler(stderr, hopts))
	case "json":
		log = slog.New(slog.NewJSONHandler(stderr, hopts))
	default:
		return fmt.Errorf("%w: -log-format %q (want text or json)", errUsage, *logFormat)
	}
	var cfg hub.Config
	if *config != "" {
		c, err := hub.LoadConfig(*config)
		if err != nil {
			return err
		}
		cfg = c
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	if *data != "" {
		cfg.DataDir = *data
	}
	if *natsURL != "" {
		cfg.Broker.URL = *natsURL
	}
	loader, closeLoader := pipelineLoader(stdout) // cmd_run.go
	defer closeLoader()
	s, err := hub.New(cfg, hub.WithLogger(log), hub.WithPipelineLoader(loader))
	if err != nil {
		return err
	}
	return s.Run(ctx)
}
