package redis_test

import (
	"testing"

	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/middleware"
	ekredis "github.com/eventkit/eventkit/redis"
)

func TestDedupStore(t *testing.T) {
	eventkittest.TestDedupStore(t, func(t *testing.T) middleware.DedupStore {
		c := newClient(t)
		prefix := eventkittest.UniqueName("ektest:dedup:") + ":"
		t.Cleanup(func() { deleteKeys(t, c, prefix) })
		return ekredis.NewDedupStore(c, ekredis.WithDedupPrefix(prefix))
	})
}
