package eventkit

import (
	"errors"
	"fmt"
	"time"
)

var (
	// ErrClosed is returned by a Publisher, Subscriber, Subscription or Router
	// that has been closed.
	ErrClosed = errors.New("eventkit: closed")
	// ErrAlreadySettled is returned when a Message that was already acked or
	// nacked is settled the other way.
	ErrAlreadySettled = errors.New("eventkit: message already settled")
	// ErrBufferFull is returned by a publish that a subscription's
	// back-pressure policy rejected.
	ErrBufferFull = errors.New("eventkit: subscriber buffer full")
)

// permanentError marks an error that retrying cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as permanent: retry middleware does not retry it and
// dead-letter middleware dead-letters it at once. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil || IsPermanent(err) {
		return err
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err, or an error it wraps, was marked with
// Permanent or is a *PanicError.
func IsPermanent(err error) bool {
	var p *permanentError
	if errors.As(err, &p) {
		return true
	}
	var pe *PanicError
	return errors.As(err, &pe)
}

// RetryAfterError asks the Router to nack the message with a redelivery
// delay instead of an immediate redelivery.
type RetryAfterError struct {
	Err   error
	Delay time.Duration
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("retry after %s: %v", e.Delay, e.Err)
}

// Unwrap returns the underlying error.
func (e *RetryAfterError) Unwrap() error { return e.Err }

// RetryAfter wraps err so that the Router nacks the message with the given
// redelivery delay. RetryAfter(nil, d) is nil.
func RetryAfter(err error, delay time.Duration) error {
	if err == nil {
		return nil
	}
	return &RetryAfterError{Err: err, Delay: delay}
}

// ValidationError reports an event that breaks a CloudEvents rule. Attribute
// names the offending attribute ("id", "source", "time", an extension name...).
type ValidationError struct {
	Attribute string
	Reason    string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("invalid CloudEvent: attribute %q: %s", e.Attribute, e.Reason)
}

// DecodeError reports event data that could not be decoded into a Go type.
// The Router's typed handlers return it marked Permanent.
type DecodeError struct {
	Type        string // the event's type
	ContentType string // the event's datacontenttype
	Target      string // the Go type
	Err         error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("decode data of event type %q (datacontenttype %q) into %s: %v", e.Type, e.ContentType, e.Target, e.Err)
}

// Unwrap returns the underlying error.
func (e *DecodeError) Unwrap() error { return e.Err }
