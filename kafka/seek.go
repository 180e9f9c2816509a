package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/driver"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// partOffset is one item of a StartAtPosition: a partition's offset, of
// one Kafka topic or (topic "") of every topic the subscription reads.
type partOffset struct {
	topic  string
	part   int32
	offset int64
}

// parsePositions parses a StartAtPosition: a comma-separated list of
// "<partition>:<offset>" (a Message.Position), each optionally prefixed by
// a Kafka topic and "/" to apply to that topic only.
func parsePositions(s string) ([]partOffset, error) {
	var out []partOffset
	for item := range strings.SplitSeq(s, ",") {
		var po partOffset
		rest := strings.TrimSpace(item)
		if i := strings.LastIndexByte(rest, '/'); i >= 0 {
			po.topic, rest = rest[:i], rest[i+1:]
		}
		ps, os, ok := strings.Cut(rest, ":")
		part, perr := strconv.ParseInt(ps, 10, 32)
		off, oerr := strconv.ParseInt(os, 10, 64)
		if !ok || perr != nil || oerr != nil || part < 0 || off < 0 || (po.topic == "" && strings.Contains(item, "/")) {
			return nil, eventkit.InvalidOption("eventkit.StartAtPosition", fmt.Sprintf("a Kafka position is a comma-separated list of [<topic>/]<partition>:<offset>, got %q", s))
		}
		po.part, po.offset = int32(part), off
		out = append(out, po)
	}
	return out, nil
}

// lookupPosition returns the offset that pos gives the partition, a
// topic's own item before one of every topic.
func lookupPosition(pos []partOffset, topic string, part int32) (int64, bool) {
	at, found := int64(0), false
	for _, po := range pos {
		if po.part != part {
			continue
		}
		if po.topic == topic {
			return po.offset, true
		}
		if po.topic == "" {
			at, found = po.offset, true
		}
	}
	return at, found
}

// startOffsets returns the offsets at which a group starts on the
// partitions of topics, as cfg says: the end offsets by default; the start
// offsets with FromStart; the first offsets at or after StartTime (by the
// records' timestamps: the producer's clock, or the broker's for topics
// with LogAppendTime); the offsets StartPosition lists, within the
// partition's start and end. A partition that StartPosition does not list
// starts at its start offset: it is in the result when all is set (a
// Seek) and left out otherwise (a new group, whose partitions without an
// offset start at their start).
func (d *drv) startOffsets(ctx context.Context, topics []string, cfg driver.Config, all bool) (kadm.Offsets, error) {
	var pos []partOffset
	if cfg.StartPosition != "" {
		var err error
		if pos, err = parsePositions(cfg.StartPosition); err != nil {
			return nil, err
		}
	}
	var listed, ends kadm.ListedOffsets
	var err error
	switch {
	case !cfg.StartTime.IsZero():
		listed, err = d.adm.ListOffsetsAfterMilli(ctx, cfg.StartTime.UnixMilli(), topics...)
	case cfg.FromStart, cfg.StartPosition != "":
		listed, err = d.adm.ListStartOffsets(ctx, topics...)
		if err == nil && cfg.StartPosition != "" {
			ends, err = d.adm.ListEndOffsets(ctx, topics...)
		}
	default:
		listed, err = d.adm.ListEndOffsets(ctx, topics...)
	}
	if err != nil {
		return nil, fmt.Errorf("kafka: list offsets: %w", err)
	}
	set := kadm.Offsets{}
	listed.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			return
		}
		at := o.Offset
		if pos != nil {
			p, ok := lookupPosition(pos, o.Topic, o.Partition)
			if !ok && !all {
				return
			}
			if ok {
				at = max(at, p)
				if end, found := ends.Lookup(o.Topic, o.Partition); found && end.Err == nil {
					at = min(at, end.Offset)
				}
			}
		}
		set.Add(kadm.Offset{Topic: o.Topic, Partition: o.Partition, At: at, LeaderEpoch: -1})
	})
	return set, nil
}

// Seek implements driver.Seeker: it commits, for the group, the offsets
// where cfg says on every partition of the topics that pattern matches now
// (see startOffsets). Kafka refuses offsets for a group that has members:
// Seek then fails with an error wrapping ErrGroupHasMembers; stop the
// members first.
func (d *drv) Seek(ctx context.Context, pattern string, cfg driver.Config) error {
	if cfg.StartPosition != "" {
		if _, err := parsePositions(cfg.StartPosition); err != nil {
			return err
		}
	}
	_, existing, err := d.consumeTopics(ctx, pattern)
	if err != nil {
		return err
	}
	if len(existing) == 0 {
		return nil
	}
	set, err := d.startOffsets(ctx, existing, cfg, true)
	if err != nil {
		return fmt.Errorf("kafka: seek group %q: %w", cfg.Group, err)
	}
	resp, err := d.adm.CommitOffsets(ctx, cfg.Group, set)
	if err == nil {
		err = resp.Error()
	}
	if errors.Is(err, kerr.UnknownMemberID) || errors.Is(err, kerr.IllegalGeneration) || errors.Is(err, kerr.RebalanceInProgress) {
		err = fmt.Errorf("%w: %w", ErrGroupHasMembers, err)
	}
	if err != nil {
		return fmt.Errorf("kafka: seek group %q: %w", cfg.Group, err)
	}
	return nil
}

// ErrGroupHasMembers is wrapped by the error of a Seek of a consumer group
// that has members: Kafka moves the offsets of an empty group only.
var ErrGroupHasMembers = errors.New("kafka: the consumer group has members; stop them before seeking")

var _ driver.Seeker = (*drv)(nil)
