package eventkit

import "context"

// Handler handles one message. Returning nil acks it; returning an error
// nacks it (see Router).
type Handler interface {
	Handle(ctx context.Context, m *Message) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, m *Message) error

// Handle calls f(ctx, m).
func (f HandlerFunc) Handle(ctx context.Context, m *Message) error { return f(ctx, m) }

// Middleware wraps a Handler, in the shape of net/http middleware.
type Middleware func(Handler) Handler

// Chain composes middleware so that the first one given is the outermost:
// Chain(a, b)(h) is a(b(h)).
func Chain(mw ...Middleware) Middleware {
	return func(h Handler) Handler {
		for i := len(mw) - 1; i >= 0; i-- {
			h = mw[i](h)
		}
		return h
	}
}
