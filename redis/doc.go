// Package redis is eventkit's Redis Streams transport and a Redis dedup
// store, on github.com/redis/go-redis/v9.
//
// Each topic is one stream, named by the transport's prefix and the topic
// ("eventkit:orders.eu.created"). Publish appends events with XADD (with
// approximate MAXLEN trimming when WithMaxLen is set), in binary mode by
// default: each CloudEvents attribute in a field "ce_<name>", the data
// content type in "content-type" and the data, as bytes, in "data". With
// WithMode(eventkit.Structured) an event is one field "event" holding the
// CloudEvents JSON format, with "content-type" set to
// application/cloudevents+json. No CloudEvents binding exists for Redis;
// this one follows the Kafka binding's naming.
//
// New takes a client the caller owns and does no I/O; Dial makes a client
// from a URL, checks it within the caller's ctx and closes it on Close. An
// invalid option value makes both fail with eventkit.ErrInvalidOption. The
// transport is a driver (package driver) under package transport, which gives
// it what every transport shares: validation, the closed state,
// settle-once messages with batched acks (XACK), refusal of what its
// Capabilities lack, and Shutdown(ctx).
//
// Every subscription reads through a consumer group (XREADGROUP). A group
// named with eventkit.WithGroup is created on demand at the end of the
// stream as it is when Subscribe runs ("$"), or at its start with
// eventkit.FromStart, and persists: it resumes where it left off. A new
// group can also start at a time (eventkit.StartAt: the first entry whose
// ID, the millisecond Redis stored it at, is at or after it) or at a
// position (eventkit.StartAtPosition). Message.Position is the entry's
// stream ID, "<ms>-<seq>"; StartAtPosition takes such an ID (or "<ms>",
// meaning "<ms>-0") and starts at the first entry at or after it, on each
// stream the pattern covers. Transport.Seek (eventkit.Seeker) moves an
// existing group with XGROUP SETID, at once: members connected at the time
// read on from the new point, and entries they hold unacked stay pending
// (reclaimed after WithClaimIdle). A
// subscription without a group gets a private group of its own, destroyed
// when the subscription closes.
//
// Ack is XACK (batched). A message that is nacked is claimed again by its
// subscription (XCLAIM) after the nack's delay and delivered with its
// attempt taken from the group's pending list. A message that a consumer
// took and never settled (the consumer crashed, or forgot it) stays in the
// pending list; after WithClaimIdle (30s by default) any member of the group
// reclaims it with XAUTOCLAIM and delivers it again. Handlers must therefore
// finish within the claim idle time, or their message may be handled twice.
//
// Redis streams have no wildcards. Publish records every topic in a set
// (prefix + "#topics"); a subscription to a pattern with "*" or ">" reads
// every recorded stream whose topic matches, and looks for new ones every
// WithDiscoverInterval.
package redis
