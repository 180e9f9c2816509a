package command

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/topic"
	"github.com/google/uuid"
)

// Handlers dispatches commands to the one handler registered for their
// type, and publishes replies to requests. It is safe for concurrent use;
// handlers are registered before Mount.
type Handlers struct {
	pub eventkit.Publisher
	cfg config

	rejected atomic.Uint64
	ignored  atomic.Uint64

	mu       sync.RWMutex
	handlers map[string]func(ctx context.Context, e event.Event) (any, error)
}

// NewHandlers returns an empty set of handlers whose replies are published
// through pub. It applies WithPrefix, WithGroup, WithSource,
// WithRejectedTopic and WithLogger.
func NewHandlers(pub eventkit.Publisher, opts ...Option) (*Handlers, error) {
	if pub == nil {
		return nil, errors.New("command: NewHandlers: nil publisher")
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	return &Handlers{pub: pub, cfg: cfg, handlers: map[string]func(context.Context, event.Event) (any, error){}}, nil
}

// Handle registers fn as the handler of commands of type cmdType, whose
// data decodes into a C (the zero C when the command has no data; a C with
// a Validate method is validated either way). A request gets an empty successful reply when fn
// returns nil. A second handler for one type is ErrDuplicateHandler.
func Handle[C any](h *Handlers, cmdType string, fn func(ctx context.Context, cmd C) error) error {
	if fn == nil {
		return fmt.Errorf("command: Handle %q: nil handler", cmdType)
	}
	return register(h, cmdType, func(ctx context.Context, c C) (any, error) { return nil, fn(ctx, c) })
}

// HandleReply registers fn as the handler of commands of type cmdType; the
// R it returns is the data (JSON) of the reply to a request. A second
// handler for one type is ErrDuplicateHandler.
func HandleReply[C, R any](h *Handlers, cmdType string, fn func(ctx context.Context, cmd C) (R, error)) error {
	if fn == nil {
		return fmt.Errorf("command: HandleReply %q: nil handler", cmdType)
	}
	return register(h, cmdType, func(ctx context.Context, c C) (any, error) { return fn(ctx, c) })
}

func register[C any](h *Handlers, cmdType string, fn func(ctx context.Context, c C) (any, error)) error {
	if _, err := Topic(h.cfg.prefix, cmdType); err != nil {
		return err
	}
	call := func(ctx context.Context, e event.Event) (any, error) {
		var c C
		// A command without data leaves C zero (then validated).
		if len(e.Data()) > 0 {
			if err := eventkit.DecodeData(e, &c); err != nil {
				return nil, &Error{Code: CodeInvalid, Message: err.Error()}
			}
		}
		if err := validate(&c); err != nil {
			return nil, &Error{Code: CodeInvalid, Message: err.Error()}
		}
		return fn(ctx, c)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, dup := h.handlers[cmdType]; dup {
		return fmt.Errorf("%w: %q", ErrDuplicateHandler, cmdType)
	}
	h.handlers[cmdType] = call
	return nil
}

// validate calls Validate on c or *c, whichever implements Validator.
func validate[C any](c *C) error {
	if v, ok := any(c).(Validator); ok {
		return v.Validate()
	}
	if v, ok := any(*c).(Validator); ok {
		return v.Validate()
	}
	return nil
}

// Types returns the registered command types, sorted.
func (h *Handlers) Types() []string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return slices.Sorted(maps.Keys(h.handlers))
}

// Mount adds to r one route on every command topic of the prefix
// (Prefix + ".>"), in the consumer group (WithGroup; default the prefix),
// handled by h. The
// group starts, when it is new, at the oldest command the transport
// retains (eventkit.FromStart), so that commands sent before the service
// first ran are handled; an existing group resumes where it left off. opts
// are added to the route (Concurrency, RouteMiddleware, ...).
func (h *Handlers) Mount(r *eventkit.Router, opts ...eventkit.RouteOption) error {
	all := append([]eventkit.RouteOption{
		eventkit.RouteName("commands " + h.cfg.prefix),
		eventkit.RouteGroup(h.cfg.group),
		eventkit.RouteSubscribeOptions(eventkit.FromStart()),
	}, opts...)
	return r.Handle(h.cfg.prefix+".>", h, all...)
}

// Handle dispatches one command message; it makes Handlers an
// eventkit.Handler. An event that is not on the topic of its type (a dead
// letter "<topic>.dlq", for instance) is no command: it is acked and
// counted in Ignored. A request is answered (success or *Error) and Handle
// returns nil once the reply is published. A sent command that fails for
// good (unknown type, invalid data, an *Error from its handler) is
// rejected: published to the WithRejectedTopic topic, or logged, and
// Handle returns nil, so that it is not redelivered. Any other error of a
// sent command, and an *Error with CodeConflict (a conflict is transient),
// is returned, and the Router redelivers the command by its policy.
func (h *Handlers) Handle(ctx context.Context, m *eventkit.Message) error {
	e := m.Event
	if want, err := Topic(h.cfg.prefix, e.Type()); m.Topic != "" && (err != nil || m.Topic != want) {
		// Not a command: an event of a command type on another topic of
		// the prefix, such as a dead letter ("<topic>.dlq").
		h.ignored.Add(1)
		h.cfg.logger.Warn("command: ignored an event off its command topic", "type", e.Type(), "id", e.ID(), "topic", m.Topic, "want", want)
		return nil
	}
	replyTo, _ := e.Extensions()[ReplyToExtension].(string)
	if replyTo != "" && (topic.ValidateName(replyTo) != nil || replyTo == h.cfg.prefix || strings.HasPrefix(replyTo, h.cfg.prefix+".")) {
		// No reply could ever reach the requester: running the command
		// would leave it waiting, and redelivering it would loop.
		return h.reject(ctx, e, &Error{Code: CodeInvalid, Message: fmt.Sprintf("reply topic %q is not a topic outside the command prefix", replyTo)})
	}
	h.mu.RLock()
	call := h.handlers[e.Type()]
	h.mu.RUnlock()
	var (
		result any
		err    error
	)
	if call == nil {
		err = &Error{Code: CodeUnknownCommand, Message: fmt.Sprintf("no handler for command type %q", e.Type())}
	} else {
		result, err = h.run(ctx, call, e)
	}
	if replyTo == "" {
		var ce *Error
		if errors.As(err, &ce) && ce.Code != CodeConflict {
			return h.reject(ctx, e, ce)
		}
		return err
	}
	reply, rerr := h.reply(e, result, err)
	if rerr != nil {
		h.cfg.logger.Error("command: reply not encoded", "type", e.Type(), "id", e.ID(), "err", rerr)
		if reply, rerr = h.reply(e, nil, &Error{Code: CodeInternal, Message: rerr.Error()}); rerr != nil {
			return eventkit.Permanent(rerr)
		}
	}
	if perr := h.pub.Publish(ctx, replyTo, reply); perr != nil {
		return fmt.Errorf("command: publish reply to %q: %w", replyTo, perr)
	}
	return nil
}

// run calls the handler, turning a panic into an *Error with CodeInternal.
func (h *Handlers) run(ctx context.Context, call func(context.Context, event.Event) (any, error), e event.Event) (result any, err error) {
	defer func() {
		if p := recover(); p != nil {
			h.cfg.logger.Error("command: handler panicked", "type", e.Type(), "id", e.ID(), "panic", p, "stack", string(debug.Stack()))
			result, err = nil, &Error{Code: CodeInternal, Message: fmt.Sprintf("handler panicked: %v", p)}
		}
	}()
	return call(context.WithValue(ctx, eventKey{}, &e), e)
}

// reply builds the reply event to request e.
func (h *Handlers) reply(e event.Event, result any, err error) (event.Event, error) {
	r := event.New()
	r.SetID(uuid.NewString())
	r.SetSource(h.cfg.source)
	r.SetExtension(InReplyToExtension, e.ID())
	if tok, ok := e.Extensions()[ReplyTokenExtension].(string); ok && tok != "" {
		r.SetExtension(ReplyTokenExtension, tok)
	}
	if err != nil {
		var ce *Error
		if !errors.As(err, &ce) {
			ce = &Error{Code: CodeFailed, Message: err.Error()}
		}
		r.SetType(ErrorReplyType)
		return r, r.SetData(event.ApplicationJSON, ce)
	}
	r.SetType(ReplyType)
	if result == nil {
		return r, nil
	}
	data, merr := json.Marshal(result)
	if merr != nil {
		return r, fmt.Errorf("command: encode the reply to %q: %w", e.Type(), merr)
	}
	return r, r.SetData(event.ApplicationJSON, json.RawMessage(data))
}

// ErrorCodeExtension and ErrorMessageExtension carry, on a rejected command
// (WithRejectedTopic), the code and message of its *Error.
const (
	ErrorCodeExtension    = "errorcode"
	ErrorMessageExtension = "errormessage"
)

// reject disposes of a sent command that failed for good.
func (h *Handlers) reject(ctx context.Context, e event.Event, ce *Error) error {
	h.rejected.Add(1)
	if h.cfg.rejected == "" {
		h.cfg.logger.Error("command: rejected", "type", e.Type(), "id", e.ID(), "code", ce.Code, "err", ce.Message)
		return nil
	}
	r := e.Clone()
	r.SetExtension(ErrorCodeExtension, ce.Code)
	r.SetExtension(ErrorMessageExtension, ce.Message)
	if err := h.pub.Publish(ctx, h.cfg.rejected, r); err != nil {
		return fmt.Errorf("command: publish rejected %q to %q: %w", e.Type(), h.cfg.rejected, err)
	}
	h.cfg.logger.Warn("command: rejected", "type", e.Type(), "id", e.ID(), "code", ce.Code, "err", ce.Message, "topic", h.cfg.rejected)
	return nil
}

// Ignored returns the number of events ignored because they were not on
// the topic of their type (see Handle).
func (h *Handlers) Ignored() uint64 { return h.ignored.Load() }

// Rejected returns the number of sent commands rejected (see Handle).
func (h *Handlers) Rejected() uint64 { return h.rejected.Load() }
