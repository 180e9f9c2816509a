package hub

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/cehttp"
	"github.com/nats-io/nats.go/jetstream"
)

// natsMaxHeader is the largest header block a NATS server takes.
const natsMaxHeader = 64 << 10

// headerOverhead bounds what a message's NATS header holds besides the
// de-duplication id (its name, the content type, the framing).
const headerOverhead = 256

// brokerLimits are the broker's own bounds on one event, checked for
// every event of a request before any is published, so that a request is
// stored whole or not at all, and refused with an answer no retry would
// change (a 4xx) rather than a 503.
type brokerLimits struct {
	prefix     string // prepended to topics
	maxPayload int64  // the largest message (header and body)
}

// check returns an error holding the problem to answer, naming the first
// event beyond the limits, or nil.
func (l *brokerLimits) check(topics []string, events []event.Event) error {
	if l == nil {
		return nil
	}
	for i := range events {
		e := &events[i]
		hdr := len(e.ID()) + len(e.Source()) + len(l.prefix) + len(topics[i]) + headerOverhead
		if hdr > natsMaxHeader {
			return tooLargeForBroker(i, len(events), http.StatusRequestHeaderFieldsTooLarge, "id",
				fmt.Sprintf("id, source and topic take %d bytes; the broker stores at most %d", hdr-headerOverhead, natsMaxHeader-headerOverhead))
		}
		// Only an event whose data is near the bound is encoded to be
		// measured: the attributes of the others fit the header room.
		if int64(len(e.Data())+natsMaxHeader) < l.maxPayload {
			continue
		}
		b, err := eventkit.MarshalEvent(*e)
		if err != nil {
			continue // the publisher reports it
		}
		if n := int64(len(b) + hdr); n > l.maxPayload {
			return tooLargeForBroker(i, len(events), http.StatusRequestEntityTooLarge, "data",
				fmt.Sprintf("the event takes %d bytes stored; the broker stores at most %d", n, l.maxPayload))
		}
	}
	return nil
}

func tooLargeForBroker(i, n, status int, attr, detail string) error {
	p := &cehttp.Problem{Type: problemBase + "too-large", Status: status, Attribute: attr,
		Detail: detail + "; nothing of the request was stored"}
	if n > 1 {
		p.Index = &i
	}
	return p
}

// brokerRefused turns a broker's refusal of the request itself (a
// JetStream 4xx API error) into a 400 problem: retrying cannot help, so
// no 503 with Retry-After.
func brokerRefused(err error) error {
	var api *jetstream.APIError
	if err == nil || !errors.As(err, &api) || api.Code < 400 || api.Code >= 500 {
		return err
	}
	return &storageError{err: err, p: &cehttp.Problem{Type: problemBase + "refused", Title: "Refused by the broker",
		Status: http.StatusBadRequest, Detail: err.Error()}}
}
