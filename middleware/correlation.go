package middleware

import (
	"context"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/internal/ceext"
)

// Extensions that CorrelationPublisher sets.
const (
	// ExtCorrelationID is the id shared by every event of one flow: the
	// correlation id of the event being handled, or its id if it has none.
	ExtCorrelationID = "correlationid"
	// ExtCausationID is the id of the event whose handling published this
	// one.
	ExtCausationID = "causationid"
)

type messageKey struct{}

// ContextWithMessage returns ctx carrying m, the message being handled.
func ContextWithMessage(ctx context.Context, m *eventkit.Message) context.Context {
	return context.WithValue(ctx, messageKey{}, m)
}

// MessageFromContext returns the message being handled with ctx, as put
// there by Correlation (or ContextWithMessage).
func MessageFromContext(ctx context.Context) (*eventkit.Message, bool) {
	m, ok := ctx.Value(messageKey{}).(*eventkit.Message)
	return m, ok
}

// Correlation puts the message being handled into the handler's context
// (MessageFromContext), so that a CorrelationPublisher used by the handler
// can link the events it publishes to it.
func Correlation() eventkit.Middleware {
	return func(next eventkit.Handler) eventkit.Handler {
		return eventkit.HandlerFunc(func(ctx context.Context, m *eventkit.Message) error {
			return next.Handle(ContextWithMessage(ctx, m), m)
		})
	}
}

// CorrelationPublisher returns a Publisher that sets, on each event published
// with a context carrying a handled message (see Correlation), the
// extensions causationid (the handled event's id) and correlationid (the
// handled event's correlationid, or its id when it has none). An event that
// already has one of them keeps it. Events are copied, never modified in
// place. With no handled message in the context, events pass unchanged.
func CorrelationPublisher(pub eventkit.Publisher) eventkit.Publisher {
	return &correlationPublisher{pub: pub}
}

type correlationPublisher struct{ pub eventkit.Publisher }

func (p *correlationPublisher) Publish(ctx context.Context, topic string, events ...event.Event) error {
	m, ok := MessageFromContext(ctx)
	if !ok {
		return p.pub.Publish(ctx, topic, events...)
	}
	cause := m.Event.ID()
	corr := cause
	if s, ok := ceext.String(&m.Event, ExtCorrelationID); ok && s != "" {
		corr = s
	}
	out := make([]event.Event, len(events))
	for i := range events {
		e := events[i].Clone()
		ext := e.Extensions()
		if _, ok := ext[ExtCorrelationID]; !ok {
			e.SetExtension(ExtCorrelationID, corr)
		}
		if _, ok := ext[ExtCausationID]; !ok {
			e.SetExtension(ExtCausationID, cause)
		}
		out[i] = e
	}
	return p.pub.Publish(ctx, topic, out...)
}

func (p *correlationPublisher) Close() error { return p.pub.Close() }
