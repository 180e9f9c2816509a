package command

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/topic"
)

// Extension attributes used by requests and replies.
const (
	// ReplyToExtension holds the topic a request's reply goes to.
	ReplyToExtension = "replyto"
	// InReplyToExtension holds, on a reply, the id of the request.
	InReplyToExtension = "inreplyto"
	// ReplyTokenExtension holds a token unique to one Request call; the
	// reply carries it back, so that a reply to an earlier attempt with the
	// same command id does not answer a later one.
	ReplyTokenExtension = "replytoken"
)

// Event types of replies.
const (
	// ReplyType is the type of a successful reply; its data is the
	// handler's result (none for Handle).
	ReplyType = "eventkit.command.reply"
	// ErrorReplyType is the type of an error reply; its data is the JSON
	// of an *Error.
	ErrorReplyType = "eventkit.command.error"
)

// Error codes set by this package; handlers may use their own.
const (
	// CodeUnknownCommand: no handler is registered for the command's type.
	CodeUnknownCommand = "unknown_command"
	// CodeInvalid: the command's data did not decode or validate.
	CodeInvalid = "invalid_argument"
	// CodeFailed: the handler returned an error that is not an *Error.
	CodeFailed = "failed"
	// CodeInternal: the handler panicked.
	CodeInternal = "internal"
	// CodeConflict: HandleAggregate met a version conflict on every attempt.
	CodeConflict = "conflict"
)

// Error is an error returned by a command's handler, as the requester
// receives it. errors.Is(err, &Error{Code: c}) holds for any *Error with
// code c (ErrUnknownCommand, ErrInvalid are such targets).
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error returns "command: CODE: MESSAGE".
func (e *Error) Error() string { return "command: " + e.Code + ": " + e.Message }

// Is reports whether target is an *Error with the same code and either no
// message or the same message.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && (t.Message == "" || t.Message == e.Message)
}

// Errorf returns an *Error with code and a formatted message. A handler
// returns one to give the requester a code of its own; it also marks the
// failure as final (a sent command is not retried).
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

var (
	// ErrUnknownCommand matches the error reply to a command no handler is
	// registered for.
	ErrUnknownCommand = &Error{Code: CodeUnknownCommand}
	// ErrInvalid matches the error reply to a command that did not decode
	// or validate.
	ErrInvalid = &Error{Code: CodeInvalid}

	// ErrDuplicateHandler is returned when a second handler is registered
	// for a command type.
	ErrDuplicateHandler = errors.New("command: a handler is already registered for this type")
	// ErrTimeout is returned by Request when no reply came within the
	// timeout. The command may still have run.
	ErrTimeout = errors.New("command: request timed out")
	// ErrTooManyPending is returned by Request when WithMaxPending requests
	// already wait for their reply.
	ErrTooManyPending = errors.New("command: too many pending requests")
	// ErrClosed is returned by a Client after Close.
	ErrClosed = errors.New("command: client closed")
	// ErrNoSubscriber is returned by Request on a Client made without a
	// Subscriber.
	ErrNoSubscriber = errors.New("command: Request needs a Subscriber for replies")
)

// Validator is implemented by a command type that checks its own fields.
// A non-nil error becomes an *Error with CodeInvalid.
type Validator interface {
	Validate() error
}

type config struct {
	prefix      string
	replyPrefix string
	group       string
	source      string
	timeout     time.Duration
	maxPending  int
	rejected    string
	logger      *slog.Logger
}

func newConfig(opts []Option) (config, error) {
	c := config{
		prefix:      "commands",
		replyPrefix: "replies",
		source:      "/eventkit/command",
		timeout:     30 * time.Second,
		maxPending:  10000,
		logger:      slog.Default(),
	}
	for _, o := range opts {
		o(&c)
	}
	if c.group == "" {
		c.group = c.prefix
	}
	switch {
	case topic.ValidateName(c.prefix) != nil:
		return c, fmt.Errorf("command: prefix: %w", topic.ValidateName(c.prefix))
	case topic.ValidateName(c.replyPrefix) != nil:
		return c, fmt.Errorf("command: reply prefix: %w", topic.ValidateName(c.replyPrefix))
	case c.replyPrefix == c.prefix || strings.HasPrefix(c.replyPrefix, c.prefix+"."):
		return c, fmt.Errorf("command: reply prefix %q must be outside the command prefix %q", c.replyPrefix, c.prefix)
	case c.rejected != "" && (topic.ValidateName(c.rejected) != nil || c.rejected == c.prefix || strings.HasPrefix(c.rejected, c.prefix+".")):
		return c, fmt.Errorf("command: rejected topic %q must be a valid topic outside the command prefix %q", c.rejected, c.prefix)
	case c.timeout <= 0:
		return c, fmt.Errorf("command: timeout must be positive, got %s", c.timeout)
	case c.maxPending <= 0:
		return c, fmt.Errorf("command: max pending must be positive, got %d", c.maxPending)
	case c.source == "":
		return c, errors.New("command: source must not be empty")
	}
	return c, nil
}

// Option configures a Client or Handlers. Each option says which it
// applies to; the other ignores it.
type Option func(*config)

// WithPrefix sets the topic prefix of commands (default "commands"); a
// Client and the Handlers it sends to must use the same one.
func WithPrefix(p string) Option { return func(c *config) { c.prefix = p } }

// WithReplyPrefix sets the prefix of a Client's reply topic (default
// "replies"); it must lie outside the command prefix.
func WithReplyPrefix(p string) Option { return func(c *config) { c.replyPrefix = p } }

// WithGroup sets the consumer group Handlers.Mount subscribes in (default:
// the prefix, so that services with their own prefixes have their own
// groups).
func WithGroup(g string) Option { return func(c *config) { c.group = g } }

// WithSource sets the CloudEvents source of commands (Client) and replies
// (Handlers); default "/eventkit/command".
func WithSource(s string) Option { return func(c *config) { c.source = s } }

// WithRejectedTopic makes Handlers publish each sent command that fails
// for good (unknown type, invalid data, an *Error from its handler) to
// topic, with the errorcode and errormessage extensions, instead of only
// logging it. The topic must lie outside the command prefix.
func WithRejectedTopic(topic string) Option { return func(c *config) { c.rejected = topic } }

// WithTimeout sets how long a Client's Request waits for its reply when the
// context has no earlier deadline (default 30s).
func WithTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// WithMaxPending bounds the requests of a Client that wait for a reply at
// once (default 10000).
func WithMaxPending(n int) Option { return func(c *config) { c.maxPending = n } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// Topic returns the topic that commands of type cmdType are published to
// under prefix, or an error when the type cannot form a topic name.
func Topic(prefix, cmdType string) (string, error) {
	if cmdType == "" {
		return "", errors.New("command: empty command type")
	}
	b := []byte(cmdType)
	for i, ch := range b {
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || strings.IndexByte("-_:@.", ch) >= 0) {
			b[i] = '_'
		}
	}
	t := prefix + "." + string(b)
	if err := topic.ValidateName(t); err != nil {
		return "", fmt.Errorf("command: type %q: %w", cmdType, err)
	}
	return t, nil
}

type eventKey struct{}

// EventFromContext returns the command event whose handler runs with ctx:
// its id (the command id), subject, extensions.
func EventFromContext(ctx context.Context) (event.Event, bool) {
	e, ok := ctx.Value(eventKey{}).(*event.Event)
	if !ok {
		return event.Event{}, false
	}
	return *e, true
}
