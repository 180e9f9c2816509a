// Package ceext reads CloudEvents extensions without copying the extension
// map, which event.Event.Extensions does on every call.
package ceext

import "github.com/cloudevents/sdk-go/v2/event"

// Get returns the value of the extension name (lower case, as SetExtension
// stores it).
func Get(e *event.Event, name string) (any, bool) {
	var ext map[string]any
	switch ec := e.Context.(type) {
	case *event.EventContextV1:
		ext = ec.Extensions
	case *event.EventContextV03:
		ext = ec.Extensions
	default:
		ext = e.Extensions()
	}
	v, ok := ext[name]
	return v, ok
}

// String returns the extension name as a string: a string value, or the
// String() of a value that has one (a URI, a timestamp).
func String(e *event.Event, name string) (string, bool) {
	v, ok := Get(e, name)
	if !ok {
		return "", false
	}
	switch s := v.(type) {
	case string:
		return s, true
	case interface{ String() string }:
		return s.String(), true
	}
	return "", false
}
