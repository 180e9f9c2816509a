package es

import "context"

// CheckpointStore keeps, per projection (or subscriber) name, the global
// position up to which events were handled. Stores live in the technology
// packages and pass eventkittest.TestCheckpointStore.
type CheckpointStore interface {
	// Load returns the saved position of name; ok is false when none was
	// saved.
	Load(ctx context.Context, name string) (pos uint64, ok bool, err error)
	// Save records pos as the position of name, replacing any earlier one.
	Save(ctx context.Context, name string, pos uint64) error
}
