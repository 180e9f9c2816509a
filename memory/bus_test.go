package memory_test

import (
	"testing"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/memory"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestTransport(t *testing.T) {
	eventkittest.TestTransport(t, func(t *testing.T, ns string) (eventkit.Publisher, eventkit.Subscriber) {
		b := memory.New()
		return b, b
	}, eventkittest.Features{
		Wildcards:      true,
		ConsumerGroups: true,
		GroupBalance:   true,
		OrderPerKey:    true,
		Redelivery:     true,
		AttemptCount:   true,
		NackDelay:      true,
	})
}
