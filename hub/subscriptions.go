package hub

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/cehttp"
	"github.com/eventkit/eventkit/deadletter"
	"github.com/eventkit/eventkit/middleware"
)

// setupSubscriptions makes one router route per configured subscription:
// a durable group "hub-<name>" on the topic pattern, whose handler posts
// each event to the webhook. Failed deliveries are retried by nack with
// exponential backoff (the broker keeps the attempt count, so retries
// survive a restart) and, after MaxAttempts, published to the dead-letter
// topic.
func (s *Server) setupSubscriptions() error {
	if len(s.cfg.Subscriptions) == 0 {
		return nil
	}
	r := eventkit.NewRouter(s.sub, eventkit.WithLogger(s.log.With("component", "subscriptions")),
		// A quarter of the shutdown budget: the clients have half, the
		// broker the last quarter.
		eventkit.WithShutdownTimeout(time.Duration(s.cfg.ShutdownTimeout)/4))
	for _, sc := range s.cfg.Subscriptions {
		hook, err := s.addSubscription(r, sc, nil)
		if err != nil {
			return err
		}
		s.closers = append(s.closers, hook.Shutdown)
		if sc.HandshakeOrigin != "" {
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(sc.Timeout))
			err := hook.Handshake(ctx, sc.HandshakeOrigin, 0)
			cancel()
			if err != nil {
				return fmt.Errorf("hub: subscription %s: %w", sc.Name, err)
			}
		}
	}
	s.router = r
	return nil
}

// addSubscription adds the route of sc to r: a durable group
// "hub-<name>" on the topic pattern, whose handler posts each event to the
// webhook it returns (the caller shuts it down), with retry, dead letter
// and, at concurrency 1, ordering. The subscriptions of the configuration
// and those of the Subscriptions API are made here alike. skip, when not
// nil, is asked first: a message it is true for is acknowledged without
// being delivered (counted as outcome "filtered"); extra are more options
// of the webhook publisher.
func (s *Server) addSubscription(r *eventkit.Router, sc SubscriptionConfig, skip func(*eventkit.Message) bool, extra ...cehttp.PublisherOption) (*cehttp.Publisher, error) {
	hook, err := cehttp.NewPublisher(sc.URL, append(hookOptions(sc), extra...)...)
	if err != nil {
		return nil, fmt.Errorf("hub: subscription %s: %w", sc.Name, err)
	}
	s.discard.track(sc.Name, sc.Topic)
	name, dlq := sc.Name, sc.DeadLetter
	deliveries := s.metrics.deliveries
	took := s.metrics.deliveryTime.WithLabelValues(name)
	h := eventkit.HandlerFunc(func(ctx context.Context, m *eventkit.Message) error {
		// An event re-driven for another subscription is not ours again.
		if skip != nil && skip(m) || !deadletter.For(&m.Event, name) {
			deliveries.WithLabelValues(name, "filtered").Inc()
			return nil
		}
		start := time.Now()
		err := hook.Publish(ctx, m.Topic, m.Event)
		took.Observe(time.Since(start).Seconds())
		outcome := "delivered"
		if err != nil {
			outcome = "failed"
		}
		deliveries.WithLabelValues(name, outcome).Inc()
		return err
	})
	subOpts := []eventkit.SubscribeOption{}
	if sc.FromStart {
		subOpts = append(subOpts, eventkit.FromStart())
	}
	routeOpts := []eventkit.RouteOption{
		eventkit.RouteName(sc.Name),
		eventkit.RouteGroup("hub-" + sc.Name),
		eventkit.Concurrency(sc.Concurrency),
		eventkit.RouteSubscribeOptions(subOpts...),
		eventkit.RouteMiddleware(
			s.tel.delivery(), // outermost: the retry and dead-letter logs carry its trace id
			middleware.DeadLetter(s.pub, middleware.DeadLetterTopic(func(string) string { return dlq }),
				middleware.DeadLetterLogger(s.log.With("subscription", name))),
			countDeadLetters(deliveries.WithLabelValues(name, "dead_lettered")),
			middleware.Retry(middleware.RetryByNack(), middleware.MaxAttempts(sc.MaxAttempts),
				middleware.Backoff(time.Duration(sc.Backoff), time.Duration(sc.MaxBackoff), 2),
				middleware.RetryLogger(s.log.With("subscription", name))),
		),
	}
	if sc.Concurrency == 1 {
		routeOpts = append(routeOpts, eventkit.OrderedByKey())
	}
	if err := r.Handle(sc.Topic, h, routeOpts...); err != nil {
		_ = hook.Shutdown(context.Background())
		return nil, fmt.Errorf("hub: subscription %s: %w", sc.Name, err)
	}
	return hook, nil
}

// hookOptions are the options of the webhook publisher of sc: its mode,
// credentials and egress policy.
func hookOptions(sc SubscriptionConfig) []cehttp.PublisherOption {
	popts := []cehttp.PublisherOption{cehttp.WithTimeout(time.Duration(sc.Timeout))}
	if !sc.AllowPrivateTargets {
		popts = append(popts, cehttp.WithPublicTargetsOnly())
	}
	if sc.FollowRedirects == "same_origin" {
		popts = append(popts, cehttp.WithSameOriginRedirects())
	}
	switch sc.Mode {
	case "structured":
		popts = append(popts, cehttp.WithMode(eventkit.Structured))
	case "batch":
		popts = append(popts, cehttp.WithBatch())
	}
	if tok := secret(sc.Token); tok != "" {
		popts = append(popts, cehttp.WithToken(tok))
	}
	if sec := secret(sc.HMACSecret); sec != "" {
		popts = append(popts, cehttp.WithSigningSecret([]byte(sec)))
		if sc.LegacySignature {
			popts = append(popts, cehttp.WithLegacySignature())
		}
	}
	return popts
}

// countDeadLetters counts the errors that DeadLetter (outside it) will
// dead-letter: those Retry gave up on.
func countDeadLetters(c interface{ Inc() }) eventkit.Middleware {
	return func(next eventkit.Handler) eventkit.Handler {
		return eventkit.HandlerFunc(func(ctx context.Context, m *eventkit.Message) error {
			err := next.Handle(ctx, m)
			var ra *eventkit.RetryAfterError
			if err != nil && !errors.As(err, &ra) && (middleware.IsExhausted(err) || middleware.IsPermanent(err)) {
				c.Inc()
			}
			return err
		})
	}
}
