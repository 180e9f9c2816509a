package saga

import (
	"encoding/json"
	"fmt"
)

// MarshalRecord encodes r as JSON, for stores that keep records as
// documents (UnmarshalRecord decodes it). A record at version 0 cannot be
// saved: the error matches ErrConflict.
func MarshalRecord(r Record) ([]byte, error) {
	if r.Version == 0 {
		return nil, fmt.Errorf("saga %s %q: version 0: %w", r.Saga, r.ID, ErrConflict)
	}
	return json.Marshal(r)
}

// UnmarshalRecord decodes a record encoded by MarshalRecord.
func UnmarshalRecord(b []byte) (Record, error) {
	var r Record
	err := json.Unmarshal(b, &r)
	return r, err
}
