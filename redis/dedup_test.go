package redis_test

import (
	"testing"

	"github.com/eventkit/eventkit/dedup"
	"github.com/eventkit/eventkit/eventkittest"
	ekredis "github.com/eventkit/eventkit/redis"
)

func TestDedupStore(t *testing.T) {
	eventkittest.TestDedupStore(t, func(t *testing.T) dedup.Store {
		c := newClient(t)
		prefix := eventkittest.UniqueName("ektest:dedup:") + ":"
		t.Cleanup(func() { deleteKeys(t, c, prefix) })
		return ekredis.NewDedupStore(c, ekredis.WithDedupPrefix(prefix))
	})
}
