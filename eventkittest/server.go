package eventkittest

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/url"
	"os"
	"testing"
	"time"
)

// Default addresses of the servers that tests use, each overridden by the
// environment variable of the same purpose.
const (
	DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	DefaultRedisAddr   = "127.0.0.1:6379"
	DefaultAMQPURL     = "amqp://guest:guest@127.0.0.1:5672/"
	DefaultMQTTURL     = "mqtt://127.0.0.1:1883"
	DefaultNATSURL     = "nats://127.0.0.1:4222"
	DefaultPulsarURL   = "pulsar://127.0.0.1:6650"
)

// InCI reports whether the tests run under CI (CI=true), where a missing
// server fails a test instead of skipping it.
func InCI() bool { return os.Getenv("CI") == "true" }

// Env returns the value of the environment variable name, or def.
func Env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// ServerAddr returns the address of a server from the environment variable
// envVar (def when unset) after probe confirmed that the server answers. If
// probe fails, the test is skipped with a message naming envVar, or failed
// under CI=true.
func ServerAddr(t testing.TB, envVar, def string, probe func(addr string) error) string {
	t.Helper()
	addr := Env(envVar, def)
	if err := probe(addr); err != nil {
		Unavailable(t, envVar, addr, err)
	}
	return addr
}

// Unavailable skips t (fails it under CI=true) because the server named by
// envVar at addr did not answer.
func Unavailable(t testing.TB, envVar, addr string, err error) {
	t.Helper()
	if InCI() {
		t.Fatalf("server at %s (%s) is not available under CI=true: %v", addr, envVar, err)
	}
	t.Skipf("server at %s is not available (set %s to point at one): %v", addr, envVar, err)
}

// UniqueName returns prefix followed by random hex, usable as a topic token,
// a stream, schema or database name.
func UniqueName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// DialProbe is a probe for ServerAddr that opens a TCP connection to the
// host of addr, which may be a URL (postgres://, amqp://, mqtt://, nats://,
// redis://) or host:port.
func DialProbe(addr string) error {
	hostport := addr
	if u, err := url.Parse(addr); err == nil && u.Host != "" {
		hostport = u.Host
		if u.Port() == "" {
			if p, ok := defaultPorts[u.Scheme]; ok {
				hostport = net.JoinHostPort(u.Hostname(), p)
			}
		}
	}
	c, err := net.DialTimeout("tcp", hostport, 2*time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}

var defaultPorts = map[string]string{
	"postgres": "5432", "postgresql": "5432", "amqp": "5672", "mqtt": "1883",
	"tcp": "1883", "nats": "4222", "redis": "6379", "pulsar": "6650",
}
