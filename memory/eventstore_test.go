package memory_test

import (
	"testing"

	"github.com/eventkit/eventkit/es"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/memory"
)

func TestEventStore(t *testing.T) {
	eventkittest.TestEventStore(t, func(t *testing.T) es.EventStore { return memory.NewEventStore() })
}

func TestCheckpointStore(t *testing.T) {
	eventkittest.TestCheckpointStore(t, func(t *testing.T) es.CheckpointStore { return memory.NewCheckpointStore() })
}

func TestSnapshotStore(t *testing.T) {
	eventkittest.TestSnapshotStore(t, func(t *testing.T) es.SnapshotStore { return memory.NewSnapshotStore() })
}
