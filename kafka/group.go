package kafka

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/eventkit/eventkit/driver"
	"github.com/eventkit/eventkit/topic"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// consumeTopics returns the franz-go options that consume pattern (an
// eventkit topic name or pattern), and the Kafka topics it matches that
// exist now. A topic name's Kafka topic is created first when the
// transport creates topics.
func (d *drv) consumeTopics(ctx context.Context, pattern string) ([]kgo.Opt, []string, error) {
	if topic.IsPattern(pattern) {
		re := d.cfg.mapper.Regexp(pattern)
		rx, err := regexp.Compile(re)
		if err != nil {
			return nil, nil, fmt.Errorf("kafka: pattern %q: %w", pattern, err)
		}
		td, err := d.adm.ListTopics(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("kafka: subscribe %q: list topics: %w", pattern, err)
		}
		var existing []string
		for _, name := range td.Names() {
			if rx.MatchString(name) {
				existing = append(existing, name)
			}
		}
		return []kgo.Opt{kgo.ConsumeTopics(re), kgo.ConsumeRegex()}, existing, nil
	}
	k, err := d.cfg.mapper.ToKafka(pattern)
	if err != nil {
		return nil, nil, err
	}
	if err := d.ensureTopic(ctx, k); err != nil {
		return nil, nil, err
	}
	td, err := d.adm.ListTopics(ctx, k)
	if err != nil {
		return nil, nil, fmt.Errorf("kafka: subscribe %q: describe topic: %w", pattern, err)
	}
	var existing []string
	if t, ok := td[k]; ok && t.Err == nil {
		existing = []string{k}
	}
	return []kgo.Opt{kgo.ConsumeTopics(k)}, existing, nil
}

// groupOptions are the options of a client that consumes as a member of
// group, read_committed, from the start of a partition the group has no
// offset for: the transport's client options, then consume.
func (d *drv) groupOptions(group string, consume []kgo.Opt) []kgo.Opt {
	opts := append([]kgo.Opt{kgo.SeedBrokers(d.cfg.brokers...)}, d.cfg.clientOpts...)
	opts = append(opts, consume...)
	return append(opts,
		kgo.ConsumerGroup(group),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.HeartbeatInterval(d.cfg.heartbeat),
		kgo.MetadataMaxAge(d.cfg.metadataMaxAge),
		// Kafka's own fetch.max.wait.ms: a partition that joins the fetch
		// session late (after leader-epoch validation of its committed
		// offset) waits at most this for the fetch in flight.
		kgo.FetchMaxWait(500*time.Millisecond),
	)
}

// initGroup commits, for each partition of topics that group has no offset
// for, the offset where cfg starts it (startOffsets): by default the
// current end offset, so that the group starts at the events published
// from now on.
func (d *drv) initGroup(ctx context.Context, group string, topics []string, cfg driver.Config) error {
	have, err := d.fetchGroupOffsets(ctx, group)
	if err != nil && !isNoGroup(err) {
		return fmt.Errorf("kafka: fetch offsets of group %q: %w", group, err)
	}
	start, err := d.startOffsets(ctx, topics, cfg, false)
	if err != nil {
		return err
	}
	var set kadm.Offsets
	start.Each(func(o kadm.Offset) {
		if _, ok := have.Lookup(o.Topic, o.Partition); ok {
			return
		}
		if set == nil {
			set = kadm.Offsets{}
		}
		set.Add(o)
	})
	if len(set) == 0 {
		return nil
	}
	resp, err := d.adm.CommitOffsets(ctx, group, set)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		// The group may have become active meanwhile (a member that
		// committed its own start); it then reads from its commits.
		d.cfg.logger.Debug("kafka: initial offsets of group not committed", "group", group, "err", err)
	}
	return nil
}

func isNoGroup(err error) bool { return errors.Is(err, kerr.GroupIDNotFound) }

// commitRespErr returns the first partition error of an offset commit.
func commitRespErr(resp *kmsg.OffsetCommitResponse) error {
	if resp == nil {
		return nil
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return fmt.Errorf("%s/%d: %w", t.Topic, p.Partition, err)
			}
		}
	}
	return nil
}
