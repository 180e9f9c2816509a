package nats

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StreamConfig is the part of a JetStream stream's configuration that
// eventkit manages. Zero fields take the server's defaults (limits
// retention, file storage, one replica, no age or size limit), except
// Duplicates, whose zero keeps the server's two-minute window.
type StreamConfig struct {
	// Name of the stream (letters, digits, '-' and '_').
	Name string
	// Subjects the stream stores (NATS subjects, wildcards allowed):
	// "orders.>" stores every topic under orders.
	Subjects []string
	// Retention: jetstream.LimitsPolicy (keep until a limit), InterestPolicy
	// (keep until every consumer acked), WorkQueuePolicy (keep until one
	// consumer acked; consumers must not overlap).
	Retention jetstream.RetentionPolicy
	// MaxAge drops events older than this (0: no limit).
	MaxAge time.Duration
	// MaxBytes bounds the stream's size; at the bound, Discard decides (0
	// or negative: no limit).
	MaxBytes int64
	// MaxMsgs bounds the number of events kept (0 or negative: no limit).
	MaxMsgs int64
	// Replicas is the number of copies in a cluster (0: 1).
	Replicas int
	// Storage: jetstream.FileStorage (the default) or MemoryStorage.
	Storage jetstream.StorageType
	// Duplicates is the window in which a re-published event (same
	// Nats-Msg-Id) is dropped (0: the server's default of two minutes).
	Duplicates time.Duration
	// Discard is what a full stream does: jetstream.DiscardOld (the zero
	// value) drops the oldest events, jetstream.DiscardNew refuses new
	// ones (the publish fails).
	Discard jetstream.DiscardPolicy
}

func (c StreamConfig) js() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:       c.Name,
		Subjects:   slices.Clone(c.Subjects),
		Retention:  c.Retention,
		MaxAge:     c.MaxAge,
		MaxBytes:   orUnlimited(c.MaxBytes),
		MaxMsgs:    orUnlimited(c.MaxMsgs),
		Replicas:   max(c.Replicas, 1),
		Storage:    c.Storage,
		Duplicates: c.Duplicates,
		Discard:    c.Discard,
	}
}

func orUnlimited(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}

// DefaultStreamConfig is the template of streams made by WithAutoStreams
// when the transport is given no stream: file storage, limits retention,
// events kept 7 days.
var DefaultStreamConfig = StreamConfig{Storage: jetstream.FileStorage, Retention: jetstream.LimitsPolicy, MaxAge: 7 * 24 * time.Hour}

// DefaultMsgID is the default Nats-Msg-Id of an event: its id, and, when
// the id is not alone enough to identify one publication, its source and
// topic. The id comes first, so that it reads in monitoring tools. The
// result is "<id>" percent-encoded, then " <source> <topic>" when the
// source is not empty.
func DefaultMsgID(topic, id, source string) string {
	var b strings.Builder
	b.Grow(len(id) + len(source) + len(topic) + 2)
	b.WriteString(id)
	b.WriteByte(' ')
	b.WriteString(source)
	b.WriteByte(' ')
	b.WriteString(topic)
	s := b.String()
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			// Header values must not carry control characters: hash them.
			sum := sha256.Sum256([]byte(s))
			return "sha256:" + hex.EncodeToString(sum[:16])
		}
	}
	return s
}

func apiPrefix(o jetstream.JetStreamOptions) string {
	p := o.APIPrefix
	switch {
	case p != "":
	case o.Domain != "":
		p = "$JS." + o.Domain + ".API."
	default:
		p = jetstream.DefaultAPIPrefix
	}
	if !strings.HasSuffix(p, ".") {
		p += "."
	}
	return p
}

// JetStream returns the transport's JetStream context (for administration).
func (t *drv) JetStream() jetstream.JetStream { return t.js }

func checkStreamConfig(s StreamConfig) error {
	if !validName(s.Name) {
		return fmt.Errorf("nats: stream name %q: use letters, digits, '-' and '_'", s.Name)
	}
	if len(s.Subjects) == 0 {
		return fmt.Errorf("nats: stream %q has no subjects", s.Name)
	}
	return nil
}

func validName(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// safeName turns s into a stream or consumer name: characters outside
// letters, digits, '-' and '_' become '_', and a short hash of s is added
// when anything was replaced, so that distinct inputs stay distinct.
func safeName(s string) string {
	if validName(s) && len(s) <= 200 {
		return s
	}
	b := []byte(s)
	if len(b) > 180 {
		b = b[:180]
	}
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	sum := sha256.Sum256([]byte(s))
	return string(b) + "_" + hex.EncodeToString(sum[:4])
}

// StreamMismatchError reports a stream that exists with settings other
// than those declared.
type StreamMismatchError struct {
	Stream      string
	Differences []string // "max_age: want 1h0m0s, have 24h0m0s", ...
}

func (e *StreamMismatchError) Error() string {
	return fmt.Sprintf("nats: stream %q exists with other settings (%s); change the declaration, update the stream yourself, or allow updates with WithStreamUpdate", e.Stream, strings.Join(e.Differences, "; "))
}

func streamDiff(want, have jetstream.StreamConfig) []string {
	var d []string
	add := func(name string, w, h any) { d = append(d, fmt.Sprintf("%s: want %v, have %v", name, w, h)) }
	ws, hs := slices.Clone(want.Subjects), slices.Clone(have.Subjects)
	slices.Sort(ws)
	slices.Sort(hs)
	if !slices.Equal(ws, hs) {
		add("subjects", ws, hs)
	}
	if want.Retention != have.Retention {
		add("retention", want.Retention, have.Retention)
	}
	if want.Storage != have.Storage {
		add("storage", want.Storage, have.Storage)
	}
	if want.MaxAge != have.MaxAge {
		add("max_age", want.MaxAge, have.MaxAge)
	}
	if want.MaxBytes != have.MaxBytes {
		add("max_bytes", want.MaxBytes, have.MaxBytes)
	}
	if want.MaxMsgs != have.MaxMsgs {
		add("max_msgs", want.MaxMsgs, have.MaxMsgs)
	}
	if max(want.Replicas, 1) != max(have.Replicas, 1) {
		add("replicas", want.Replicas, have.Replicas)
	}
	if want.Duplicates != 0 && want.Duplicates != have.Duplicates {
		add("duplicate_window", want.Duplicates, have.Duplicates)
	}
	return d
}

// ensureStream creates the stream if missing, or checks (and with update,
// updates) an existing one, waiting for JetStream while it is unavailable
// (until ctx ends).
func (t *drv) ensureStream(ctx context.Context, want jetstream.StreamConfig, update bool) error {
	return t.retryJS(ctx, func(ctx context.Context) error {
		return t.ensureStreamOnce(ctx, want, update)
	})
}

func (t *drv) ensureStreamOnce(ctx context.Context, want jetstream.StreamConfig, update bool) error {
	t.mu.Lock()
	_, done := t.streams[want.Name]
	t.mu.Unlock()
	if done {
		return nil
	}
	s, err := t.js.Stream(ctx, want.Name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		_, err = t.js.CreateStream(ctx, want)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			// Created concurrently by another client: check it.
			return t.ensureStreamOnce(ctx, want, update)
		}
		if err != nil {
			return fmt.Errorf("nats: create stream %q: %w", want.Name, err)
		}
	case err != nil:
		return fmt.Errorf("nats: stream %q: %w", want.Name, err)
	default:
		have := s.CachedInfo().Config
		if diff := streamDiff(want, have); len(diff) > 0 {
			if !update {
				return &StreamMismatchError{Stream: want.Name, Differences: diff}
			}
			next := have
			next.Subjects, next.Retention, next.Storage = want.Subjects, want.Retention, want.Storage
			next.MaxAge, next.MaxBytes, next.MaxMsgs, next.Replicas = want.MaxAge, want.MaxBytes, want.MaxMsgs, want.Replicas
			if want.Duplicates != 0 {
				next.Duplicates = want.Duplicates
			}
			if _, err := t.js.UpdateStream(ctx, next); err != nil {
				return fmt.Errorf("nats: update stream %q (%s): %w", want.Name, strings.Join(diff, "; "), err)
			}
			t.log.Info("nats: stream updated", "stream", want.Name, "changes", strings.Join(diff, "; "))
		}
	}
	t.mu.Lock()
	c := want
	t.streams[want.Name] = &c
	t.mu.Unlock()
	return nil
}

// ErrNoStream is returned for a topic or pattern that no declared stream
// stores (and automatic streams are off, or cannot apply).
var ErrNoStream = errors.New("nats: no stream stores this topic")

// streamFor returns the name of the stream that stores every subject
// matching pattern (a topic is a pattern without wildcards), making an
// automatic stream if needed.
func (t *drv) streamFor(ctx context.Context, pattern string) (string, error) {
	for _, s := range t.cfg.streams {
		for _, subj := range s.Subjects {
			if subjectCovers(subj, pattern) {
				return s.Name, nil
			}
		}
	}
	if t.cfg.auto == nil {
		return "", fmt.Errorf("%w: %q (declared streams: %s)", ErrNoStream, pattern, t.declaredSubjects())
	}
	tok, _, _ := strings.Cut(pattern, ".")
	if tok == "*" || tok == ">" {
		return "", fmt.Errorf("%w: %q starts with a wildcard, which no single automatic stream stores; declare a stream with WithStream", ErrNoStream, pattern)
	}
	t.mu.Lock()
	name, ok := t.autoDone[tok]
	t.mu.Unlock()
	if ok {
		return name, nil
	}
	c := *t.cfg.auto
	c.Name = safeName(t.cfg.autoPrefix + tok)
	c.Subjects = []string{tok, tok + ".>"}
	if err := t.ensureStream(ctx, c.js(), false); err != nil {
		return "", err
	}
	t.mu.Lock()
	t.autoDone[tok] = c.Name
	t.mu.Unlock()
	return c.Name, nil
}

func (t *drv) declaredSubjects() string {
	var all []string
	for _, s := range t.cfg.streams {
		all = append(all, s.Subjects...)
	}
	return strings.Join(all, ", ")
}

// subjectCovers reports whether every subject matching pattern also
// matches the stream subject filter.
func subjectCovers(filter, pattern string) bool {
	f := strings.Split(filter, ".")
	p := strings.Split(pattern, ".")
	for i, ft := range f {
		if ft == ">" {
			return len(p) > i
		}
		if i >= len(p) {
			return false
		}
		pt := p[i]
		switch {
		case pt == ">":
			return false
		case ft == "*":
			continue
		case pt == "*" || pt != ft:
			return false
		}
	}
	return len(p) == len(f)
}
