// Package randid makes the random parts of the names that the transports
// give their own broker objects (client ids, consumer tags, private
// queues): n bytes from crypto/rand, in hex, so two processes never pick
// the same name.
package randid

import (
	"crypto/rand"
	"encoding/hex"
)

// Hex returns n random bytes from crypto/rand as 2n hexadecimal digits.
func Hex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+).
	return hex.EncodeToString(b)
}
