// Command brokers compares eventkit's Redis Streams, RabbitMQ and MQTT
// transports with the raw client libraries (go-redis, amqp091-go,
// paho.golang) doing the same loop in the same run, and the Redis transport
// with Watermill's Redis Streams pub/sub (watermill-redisstream). Each round
// of each system uses a fresh stream, queue or topic. Redis and AMQP: first
// every event is published (in batches of -batch, each batch one eventkit
// Publish call), then one consumer reads them all, acking each. MQTT keeps
// nothing for a topic nobody subscribes to, so there one subscriber is
// subscribed first and publishing and consuming run at once (produce,
// consume and total are then the same rate). It prints the median of the
// rounds per system and the ratios to the raw client.
//
// The servers are the ones the tests use (EVENTKIT_REDIS_ADDR,
// EVENTKIT_AMQP_URL, EVENTKIT_MQTT_URL).
//
//	cd bench/brokers && go run . -broker redis -n 100000 -rounds 3
//	cd bench/brokers && go run . -broker amqp -n 20000 -rounds 3
//	cd bench/brokers && go run . -broker mqtt -n 20000 -rounds 3
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/eventkit/eventkit/internal/benchkit"
)

var payload = func() []byte {
	const head = `{"order":"o-000001","customer":"c-42","items":[{"sku":"sku-1","qty":1}],"note":"`
	return []byte(head + strings.Repeat("x", 256-len(head)-2) + `"}`)
}()

type result struct{ produce, consume, total float64 }

type system struct {
	name string
	fn   func(n, batch int) (result, error)
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func main() {
	broker := flag.String("broker", "redis", "redis, amqp or mqtt")
	n := flag.Int("n", 100_000, "events per round")
	batch := flag.Int("batch", 100, "events per publish call")
	rounds := flag.Int("rounds", 3, "rounds per system (the median is printed)")
	only := flag.String("only", "", "run only the system with this name")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		benchkit.Check(err)
		_ = pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	var systems []system
	switch *broker {
	case "redis":
		systems = redisSystems()
	case "amqp":
		systems = amqpSystems()
	case "mqtt":
		systems = mqttSystems()
	default:
		fmt.Fprintln(os.Stderr, "unknown broker", *broker)
		os.Exit(2)
	}
	if *only != "" {
		for _, s := range systems {
			if s.name == *only {
				x, err := s.fn(*n, *batch)
				fmt.Println(s.name, x, err)
			}
		}
		return
	}
	fmt.Printf("# %s: %d events of %d bytes per round, batches of %d, %d rounds, GOMAXPROCS=%d, %s\n",
		*broker, *n, len(payload), *batch, *rounds, runtime.GOMAXPROCS(0), time.Now().UTC().Format(time.RFC3339))
	res := make([][]result, len(systems))
	for r := 0; r < *rounds; r++ {
		for i, s := range systems { // alternate so that load drift hits all
			x, err := s.fn(*n, *batch)
			if err != nil {
				benchkit.Check(fmt.Errorf("%s: %w", s.name, err))
			}
			fmt.Printf("#   round %d %-22s produce %9.0f/s consume %9.0f/s total %9.0f/s\n", r+1, s.name, x.produce, x.consume, x.total)
			res[i] = append(res[i], x)
		}
	}
	med := func(rs []result, f func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		return benchkit.Median(v)
	}
	fmt.Printf("%-22s %12s %12s %12s\n", "system", "produce/s", "consume/s", "total/s")
	meds := make([]result, len(systems))
	for i, s := range systems {
		meds[i] = result{med(res[i], func(r result) float64 { return r.produce }), med(res[i], func(r result) float64 { return r.consume }), med(res[i], func(r result) float64 { return r.total })}
		fmt.Printf("%-22s %12.0f %12.0f %12.0f\n", s.name, meds[i].produce, meds[i].consume, meds[i].total)
	}
	if *broker == "redis" {
		sweepRedis()
	}
	raw := meds[1] // systems[1] is the raw client
	for i, s := range systems {
		if i == 1 {
			continue
		}
		fmt.Printf("%s / %s: produce %.2f, consume %.2f, total %.2f\n", s.name, systems[1].name,
			meds[i].produce/raw.produce, meds[i].consume/raw.consume, meds[i].total/raw.total)
	}
	for i, s := range systems {
		benchkit.Result(s.name, "produce", meds[i].produce, "events/s")
		benchkit.Result(s.name, "consume", meds[i].consume, "events/s")
		benchkit.Result(s.name, "end-to-end", meds[i].total, "events/s")
		if i != 1 {
			benchkit.Ratio(s.name, systems[1].name, "produce", meds[i].produce, raw.produce)
			benchkit.Ratio(s.name, systems[1].name, "consume", meds[i].consume, raw.consume)
			benchkit.Ratio(s.name, systems[1].name, "end-to-end", meds[i].total, raw.total)
		}
	}
}

// timed returns the rates of a round that produced n events in p and
// consumed them in c.
func timed(n int, p, c time.Duration) result {
	return result{float64(n) / p.Seconds(), float64(n) / c.Seconds(), float64(n) / (p + c).Seconds()}
}
