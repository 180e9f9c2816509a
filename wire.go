package eventkit

import (
	"errors"
	"fmt"
)

// Mode is how a transport puts an event in a broker's message, as the
// CloudEvents protocol bindings define it. Every transport reads both modes
// and writes the one its WithMode option chooses.
type Mode int

const (
	// Binary mode (the default) carries the attributes in the message's
	// headers (or fields) and the data as the message's body.
	Binary Mode = iota
	// Structured mode carries the whole event in the body in the
	// CloudEvents JSON format, with the content type
	// application/cloudevents+json.
	Structured
)

// String returns "binary" or "structured".
func (m Mode) String() string {
	switch m {
	case Binary:
		return "binary"
	case Structured:
		return "structured"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Valid reports whether m is Binary or Structured.
func (m Mode) Valid() bool { return m == Binary || m == Structured }

// StructuredContentType is the content type of an event in structured mode
// with the JSON format.
const StructuredContentType = "application/cloudevents+json"

// ErrNotCloudEvent is wrapped by the error of a transport that received a
// message which is not a CloudEvent in either mode (no specversion
// attribute, no structured content type). Transports drop such messages
// (acknowledged, logged); decoders return it.
var ErrNotCloudEvent = errors.New("eventkit: not a CloudEvent")

// ErrInvalidOption is wrapped by the error of a constructor or Subscribe
// given an option with an invalid value (a negative size, a nil logger, an
// unknown mode). No option is silently replaced by its default.
var ErrInvalidOption = errors.New("eventkit: invalid option")

// InvalidOption returns an error wrapping ErrInvalidOption that names the
// option and says why its value is refused, for example
// InvalidOption("redis.WithBlock", "must be positive, got -1s").
func InvalidOption(option, reason string) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidOption, option, reason)
}
