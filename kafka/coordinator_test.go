package kafka_test

import (
	"context"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A new group's Subscribe waits while the coordinator is not ready, as on
// a new Apache Kafka cluster whose __consumer_offsets is still being
// created (COORDINATOR_NOT_AVAILABLE), instead of failing.
func TestSubscribeWaitsForCoordinator(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var refused atomic.Int32
	// The broker's answer while it creates __consumer_offsets.
	c.ControlKey(kmsg.FindCoordinator.Int16(), func(r kmsg.Request) (kmsg.Response, error, bool) {
		if refused.Add(1) > 3 {
			return nil, nil, false // then as usual
		}
		c.KeepControl()
		req := r.(*kmsg.FindCoordinatorRequest)
		resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
		resp.Version = req.Version
		code := kerr.CoordinatorNotAvailable.Code
		resp.ErrorCode = code
		resp.NodeID = -1
		keys := req.CoordinatorKeys
		if req.Version < 4 {
			keys = []string{req.CoordinatorKey}
		}
		for _, k := range keys {
			rc := kmsg.NewFindCoordinatorResponseCoordinator()
			rc.Key = k
			rc.NodeID = -1
			rc.ErrorCode = code
			resp.Coordinators = append(resp.Coordinators, rc)
		}
		return resp, nil, true
	})
	tr := newTransport(t, c.ListenAddrs())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := eventkittest.UniqueName("coord") + ".t"
	if err := tr.CreateTopic(ctx, name, 1, 1, nil); err != nil {
		t.Fatal(err)
	}
	s, err := tr.Subscribe(ctx, name, eventkit.WithGroup("g"))
	if err != nil {
		t.Fatalf("Subscribe while the coordinator loads: %v", err)
	}
	defer s.Close()
	if refused.Load() < 3 {
		t.Fatalf("only %d coordinator look-ups refused; the test did not exercise the wait", refused.Load())
	}
	if err := tr.Publish(ctx, name, events("c-", 1)...); err != nil {
		t.Fatal(err)
	}
	if m := take(t, s, 1)[0]; m.Event.ID() != "c-0" {
		t.Fatalf("got %s, want c-0", m.Event.ID())
	}
}

// A topic the transport creates can be published to at once, even while
// the brokers' metadata does not show it yet (on Apache Kafka, CreateTopics
// answers before every broker knows the topic): more metadata answers
// without it than the client's unknown-topic retries.
func TestPublishWaitsForNewTopicMetadata(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	addr := c.ListenAddrs()[0]
	host, portS, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portS)
	tr := newTransport(t, c.ListenAddrs())
	name := eventkittest.UniqueName("meta") + ".t"
	const hidden = 12 // metadata answers that do not show the new topic
	var created atomic.Bool
	var hid atomic.Int32
	c.ControlKey(kmsg.CreateTopics.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		created.Store(true)
		return nil, nil, false
	})
	c.ControlKey(kmsg.Metadata.Int16(), func(r kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := r.(*kmsg.MetadataRequest)
		if !created.Load() || len(req.Topics) != 1 || req.Topics[0].Topic == nil || *req.Topics[0].Topic != name {
			return nil, nil, false
		}
		if hid.Add(1) > hidden {
			c.DropControl()
			return nil, nil, false
		}
		resp := req.ResponseKind().(*kmsg.MetadataResponse)
		resp.Version = req.Version
		b := kmsg.NewMetadataResponseBroker()
		b.NodeID, b.Host, b.Port = 0, host, int32(port)
		resp.Brokers = []kmsg.MetadataResponseBroker{b}
		mt := kmsg.NewMetadataResponseTopic()
		mt.Topic = &name
		mt.ErrorCode = kerr.UnknownTopicOrPartition.Code
		resp.Topics = []kmsg.MetadataResponseTopic{mt}
		return resp, nil, true
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tr.Publish(ctx, name, events("m-", 3)...); err != nil {
		t.Fatalf("Publish to a topic created a moment ago: %v", err)
	}
	if hid.Load() < hidden {
		t.Fatalf("only %d metadata answers hid the topic; the test did not exercise the wait", hid.Load())
	}
}
