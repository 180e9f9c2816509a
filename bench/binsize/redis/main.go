// Command redis is the minimal program of the Redis Streams transport.
package main

import (
	"github.com/eventkit/eventkit/bench/binsize/internal/run"
	ekredis "github.com/eventkit/eventkit/redis"
	goredis "github.com/redis/go-redis/v9"
)

func main() {
	c := goredis.NewClient(&goredis.Options{Addr: "localhost:6379"})
	defer c.Close()
	run.PubSub(run.Must(ekredis.New(c)))
}
