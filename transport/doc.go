// Package transport builds eventkit's Publisher, Subscriber and Subscription
// once, on a transport's driver (package driver), in the shape of
// database/sql on database/sql/driver. A transport package (redis, ...)
// returns what this package builds; applications use it through the
// eventkit interfaces and rarely import this package themselves.
//
// What this package guarantees, for every transport built on it:
//
//   - Publish refuses an invalid topic name (topic.ValidateName) or an
//     invalid event (eventkit.ValidateEvents) before anything is sent, and
//     returns eventkit.ErrClosed after Close; Subscribe refuses an invalid
//     pattern and returns eventkit.ErrClosed after Close.
//   - A subscription that needs a capability its transport lacks is
//     refused with a *eventkit.CapabilityError (wrapping
//     eventkit.ErrUnsupported): wildcards, a group, FromStart on a
//     persistent transport without it, StartAt without
//     eventkit.CapStartAtTime, StartAtPosition without
//     eventkit.CapStartAtPosition, and whatever eventkit.Require asks. Two
//     starting points (FromStart, StartAt, StartAtPosition) are an error
//     wrapping eventkit.ErrInvalidOption.
//   - Seek (eventkit.Seeker) checks the pattern, that the group is not
//     empty and that exactly one starting point is given with its
//     capability, then calls the driver's driver.Seeker; a driver that is
//     none refuses it with a *eventkit.CapabilityError.
//     A Nack on a transport without eventkit.CapNack, and a NackAfter with
//     a positive delay on one without eventkit.CapNackDelay, return such an
//     error and leave the message to the broker: nothing is acked in place
//     of a nack.
//   - An option with an invalid value fails the constructor (or
//     Subscribe) with an error wrapping eventkit.ErrInvalidOption.
//   - A Message is settled once (see eventkit.Message). Acks are sent in
//     batches by one goroutine per subscription; a Nack is sent when it is
//     called, and returns the driver's error.
//   - A subscription holds at most two batches of received messages that
//     the application has not taken (a batch is eventkit.WithBuffer
//     messages, else driver.DefaultMaxBatch). When it is stopped (Close,
//     Shutdown, its context, its subscriber), those are not
//     handed over any more: Messages is closed, and they are left to the
//     broker, unsettled.
//   - A subscription ends when its context ends, when it is closed or when
//     its subscriber is closed; Err then returns nil. A permanent driver
//     error (driver.IsRetryable) ends it too, and Err returns that error;
//     transient ones are retried with a capped exponential backoff and
//     logged.
//   - Shutdown(ctx) stops gracefully within ctx: no new messages, acks
//     already made flushed to the broker, then the driver closed; Close is
//     Shutdown bounded by WithCloseTimeout. Both report every error met
//     (errors.Join) to their first caller; later calls return nil once the
//     stop is over. Acking or nacking a message after its subscription
//     closed returns eventkit.ErrClosed: the broker delivers it again by
//     its own rules.
//   - Every goroutine started here ends when its subscription, subscriber
//     or publisher has stopped.
package transport
