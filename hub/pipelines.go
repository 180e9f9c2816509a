package hub

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/pipeline/pipeconf"
	"gopkg.in/yaml.v3"
)

// PipelineConfig is one pipeline the server runs beside its routes: a
// definition of package pipeline/pipeconf (docs/pipelines.md), from File or
// inline under Definition. Its inputs and outputs may be the server's own
// broker: the URL "hub" subscribes to (with a group, durably) and publishes
// to the broker's topics, so a pipeline can transform what POST /events
// accepted and publish the result for the webhook subscriptions and the
// live tail. The pipelines start before the server serves and are drained
// after it stopped serving, before the broker closes.
type PipelineConfig struct {
	// Name names the pipeline in logs (default: the file, or pipelines[i]).
	Name string `yaml:"name"`
	// File is the definition's file (relative to the working directory).
	File string `yaml:"file"`
	// Definition is the definition itself, inline.
	Definition yaml.Node `yaml:"definition"`
}

// HubURL is the input and output URL of the server's own broker in a
// pipeline it runs.
const HubURL = "hub"

// WithPipelineLoader sets the loader of Config.Pipelines: its processor
// and input kinds and its transports for URLs other than HubURL (the
// eventkit command gives it every kind it knows). Without it the
// pipelines have the built-in kinds and only the server's broker.
func WithPipelineLoader(l *pipeconf.Loader) Option {
	return func(o *options) { o.pipeLoader = l }
}

// pipelines are the loaded pipelines of a server.
type pipelines struct {
	names  []string
	loaded []*pipeconf.Loaded
}

// loadPipelines loads every configured pipeline; on error none stays
// open.
func (s *Server) loadPipelines(ctx context.Context, base *pipeconf.Loader) error {
	if len(s.cfg.Pipelines) == 0 {
		return nil
	}
	l := pipeconf.Loader{}
	if base != nil {
		l = *base
	}
	l.Transports = hubTransports{pub: s.pub, sub: s.sub, other: l.Transports}
	var errs []error
	for i, pc := range s.cfg.Pipelines {
		name, ld, err := loadPipeline(ctx, &l, i, pc)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.pipes.names = append(s.pipes.names, name)
		s.pipes.loaded = append(s.pipes.loaded, ld)
	}
	if len(errs) > 0 {
		s.closePipelines()
		return fmt.Errorf("hub: pipelines: %w", errors.Join(errs...))
	}
	// Closed before the broker, if Run never drained them.
	s.closers = append(s.closers, func(context.Context) error { s.closePipelines(); return nil })
	return nil
}

func loadPipeline(ctx context.Context, l *pipeconf.Loader, i int, pc PipelineConfig) (string, *pipeconf.Loaded, error) {
	field := fmt.Sprintf("pipelines[%d]", i)
	inline := pc.Definition.Kind != 0
	name := pc.Name
	switch {
	case pc.File != "" && inline:
		return "", nil, fmt.Errorf("%s: give file or definition, not both", field)
	case pc.File != "":
		if name == "" {
			name = pc.File
		}
		data, err := os.ReadFile(pc.File)
		if err != nil {
			return "", nil, fmt.Errorf("%s.file: %w", field, err)
		}
		ld, err := l.Load(ctx, pc.File, data)
		return name, ld, err
	case inline:
		if name == "" {
			name = field
		}
		ld, err := l.LoadNode(ctx, "configuration", field+".definition", &pc.Definition)
		return name, ld, err
	}
	return "", nil, fmt.Errorf("%s: file or definition is required", field)
}

// startPipelines starts every pipeline; on error the ones started are
// shut down.
func (s *Server) startPipelines(ctx context.Context) error {
	for i, ld := range s.pipes.loaded {
		if err := ld.Start(context.WithoutCancel(ctx)); err != nil {
			s.pipes.loaded = s.pipes.loaded[:i] // started ones only
			_ = s.stopPipelines(ctx)
			return fmt.Errorf("hub: pipeline %s: %w", s.pipes.names[i], err)
		}
		s.log.Info("eventkit hub: pipeline running", "pipeline", s.pipes.names[i])
	}
	return nil
}

// stopPipelines drains every pipeline (bounded by ctx) and closes what it
// opened.
func (s *Server) stopPipelines(ctx context.Context) error {
	var errs []error
	for i, ld := range s.pipes.loaded {
		if err := ld.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("hub: pipeline %s: %w", s.pipes.names[i], err))
		}
	}
	s.closePipelines()
	return errors.Join(errs...)
}

func (s *Server) closePipelines() {
	for i, ld := range s.pipes.loaded {
		if err := ld.Close(); err != nil {
			s.log.Warn("eventkit hub: close pipeline", "pipeline", s.pipes.names[i], "err", err)
		}
	}
	s.pipes.loaded = nil
}

// hubTransports opens HubURL on the server's broker (kept open: the
// server closes it) and any other URL with other.
type hubTransports struct {
	pub   eventkit.Publisher
	sub   eventkit.Subscriber
	other pipeconf.Transports
}

func isHub(url string) bool { return url == HubURL || strings.HasPrefix(url, HubURL+"://") }

// pick returns the transports of url: the server's broker for HubURL.
func (t hubTransports) pick(url string) (pipeconf.Transports, error) {
	switch {
	case isHub(url):
		return pipeconf.Fixed{Sub: t.sub, Pub: t.pub}, nil
	case t.other == nil:
		return nil, fmt.Errorf("only %q (the server's broker) is known here", HubURL)
	}
	return t.other, nil
}

func (t hubTransports) Subscriber(ctx context.Context, url string) (eventkit.Subscriber, error) {
	tr, err := t.pick(url)
	if err != nil {
		return nil, err
	}
	return tr.Subscriber(ctx, url)
}

func (t hubTransports) Publisher(ctx context.Context, url string) (eventkit.Publisher, error) {
	tr, err := t.pick(url)
	if err != nil {
		return nil, err
	}
	return tr.Publisher(ctx, url)
}
