package redis

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/driver"
	"github.com/eventkit/eventkit/topic"
)

// groupStart returns the ID at which a new group starts (the last
// delivered ID of XGROUP CREATE and XGROUP SETID): "$" (the end of the
// stream), "0" (FromStart), or the ID just before the first entry to
// deliver, which is "<ms>-0" for StartAt (the stream's IDs are the
// milliseconds Redis stored them at) and the entry ID of StartAtPosition.
func groupStart(cfg driver.Config) (string, error) {
	switch {
	case cfg.FromStart:
		return "0", nil
	case !cfg.StartTime.IsZero():
		return idBefore(uint64(max(cfg.StartTime.UnixMilli(), 0)), 0), nil
	case cfg.StartPosition != "":
		ms, seq, err := parsePosition(cfg.StartPosition)
		if err != nil {
			return "", err
		}
		return idBefore(ms, seq), nil
	}
	return "$", nil
}

// idBefore returns the greatest stream ID below ms-seq.
func idBefore(ms, seq uint64) string {
	switch {
	case seq > 0:
		return strconv.FormatUint(ms, 10) + "-" + strconv.FormatUint(seq-1, 10)
	case ms > 0:
		return strconv.FormatUint(ms-1, 10) + "-" + strconv.FormatUint(math.MaxUint64, 10)
	}
	return "0"
}

// parsePosition parses a Message.Position of the transport: a stream
// entry ID, "<ms>-<seq>" (or "<ms>", meaning "<ms>-0").
func parsePosition(pos string) (ms, seq uint64, err error) {
	msPart, seqPart, hasSeq := strings.Cut(pos, "-")
	ms, err = strconv.ParseUint(msPart, 10, 64)
	if err == nil && hasSeq {
		seq, err = strconv.ParseUint(seqPart, 10, 64)
	}
	if err != nil {
		return 0, 0, eventkit.InvalidOption("eventkit.StartAtPosition", fmt.Sprintf("a Redis position is a stream entry ID <ms>-<seq>, got %q", pos))
	}
	return ms, seq, nil
}

// Seek implements driver.Seeker with XGROUP SETID on the stream of each
// topic the pattern covers (XGROUP CREATE where the group is missing).
// Redis moves the group at once: members connected at the time read on
// from the new point; entries they hold unacked stay pending and are
// reclaimed after WithClaimIdle as usual.
func (d *drv) Seek(ctx context.Context, pattern string, cfg driver.Config) error {
	id, err := groupStart(cfg)
	if err != nil {
		return err
	}
	names := []string{pattern}
	if topic.IsPattern(pattern) {
		all, err := d.client.SMembers(ctx, d.registryKey()).Result()
		if err != nil {
			return fmt.Errorf("redis: seek group %q: read topic registry: %w", cfg.Group, err)
		}
		names = names[:0]
		for _, name := range all {
			if topic.Match(pattern, name) {
				names = append(names, name)
			}
		}
	}
	for _, name := range names {
		key := d.streamKey(name)
		err := d.client.XGroupCreateMkStream(ctx, key, cfg.Group, id).Err()
		if isBusyGroup(err) {
			err = d.client.XGroupSetID(ctx, key, cfg.Group, id).Err()
		}
		if err != nil {
			return fmt.Errorf("redis: seek group %q on %q to %s: %w", cfg.Group, key, id, err)
		}
	}
	return nil
}

var _ driver.Seeker = (*drv)(nil)
