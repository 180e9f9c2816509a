package kafka

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// fetchGroupOffsets is kadm's FetchOffsets, retried while the group's
// coordinator is not ready: on a new Kafka cluster the first request for any
// group makes the broker create __consumer_offsets, and until its partitions
// have loaded the broker answers COORDINATOR_NOT_AVAILABLE (or
// COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR), which the client hands back
// instead of retrying. It gives up when ctx ends.
func (d *drv) fetchGroupOffsets(ctx context.Context, group string) (kadm.OffsetResponses, error) {
	backoff := 10 * time.Millisecond
	for {
		offs, err := d.adm.FetchOffsets(ctx, group)
		if !coordinatorNotReady(err) {
			return offs, err
		}
		timer := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			timer.Stop()
			return offs, err
		case <-timer.C:
		}
		backoff = min(2*backoff, 250*time.Millisecond)
	}
}

// coordinatorNotReady reports whether err says that a group coordinator is
// loading or moving, which passes.
func coordinatorNotReady(err error) bool {
	return errors.Is(err, kerr.CoordinatorNotAvailable) ||
		errors.Is(err, kerr.CoordinatorLoadInProgress) ||
		errors.Is(err, kerr.NotCoordinator)
}
