package hub

import (
	"context"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"
)

// ConsoleSubscriptions is the body of GET /console/api/subscriptions.
type ConsoleSubscriptions struct {
	Subscriptions []ConsoleSubscription `json:"subscriptions"`
}

// ConsoleSubscription is one subscription of the console's view: its
// settings, its delivery outcomes since the server started, its lag and
// a heatmap of its delivery times.
type ConsoleSubscription struct {
	ID    string `json:"id"`
	Topic string `json:"topic"`
	Sink  string `json:"sink"`
	// FromConfiguration says that it comes from the configuration file
	// (else from the Subscriptions API).
	FromConfiguration bool   `json:"from_configuration"`
	DeadLetter        string `json:"dead_letter"`
	// Outcomes count deliveries by outcome (delivered, failed,
	// dead_lettered, filtered) since the server started.
	Outcomes map[string]uint64 `json:"outcomes"`
	// Lag is the broker's view of its durable consumer (nil when unknown).
	Lag *ConsoleLag `json:"lag"`
	// Latency is the heatmap of its delivery times.
	Latency Heatmap `json:"latency"`
}

// ConsoleLag is a subscription's progress in the store (JetStream
// consumer info).
type ConsoleLag struct {
	// Pending events stored and not yet delivered.
	Pending uint64 `json:"pending"`
	// AckPending events delivered and not yet settled.
	AckPending int `json:"ack_pending"`
	// Redelivered events being delivered again.
	Redelivered int `json:"redelivered"`
	// Position is the stream sequence of the last event delivered.
	Position uint64 `json:"position"`
}

// Heatmap is a time × latency grid read from a native histogram: one
// column per sample interval (the last one ends now), one row per power
// of two of seconds, every one from the fastest delivery to the slowest.
type Heatmap struct {
	// Rows are the upper bounds of the rows in seconds, ascending; 0 is
	// the zero bucket.
	Rows []float64 `json:"rows"`
	// Columns hold the deliveries of each interval, one count per row.
	Columns []HeatmapColumn `json:"columns"`
}

// HeatmapColumn is one interval of a Heatmap.
type HeatmapColumn struct {
	End    time.Time `json:"end"`
	Counts []uint64  `json:"counts"`
}

func (c *console) subscriptions(ctx context.Context) ConsoleSubscriptions {
	out := ConsoleSubscriptions{Subscriptions: []ConsoleSubscription{}}
	fams, _ := c.s.reg.Gather()
	history := append(c.sample.all(), c.snapshotOf(fams))
	outcomes := outcomes(fams)
	for _, sub := range c.s.api.all() {
		cs := ConsoleSubscription{ID: sub.ID, Sink: sub.Sink, Outcomes: outcomes[sub.ID]}
		cs.Topic, _ = sub.Config["topic"].(string)
		cs.DeadLetter, _ = sub.Config["dead_letter"].(string)
		cs.FromConfiguration = sub.Config["from_configuration"] == "true"
		if cs.Outcomes == nil {
			cs.Outcomes = map[string]uint64{}
		}
		cs.Lag = c.lag(ctx, sub.ID)
		cs.Latency = heatmap(history, sub.ID)
		out.Subscriptions = append(out.Subscriptions, cs)
	}
	return out
}

// all returns the subscriptions of the configuration and of the API, by
// id, as the API answers them.
func (a *apiSubs) all() []APISubscription {
	a.mu.Lock()
	out := make([]APISubscription, 0, len(a.fixed)+len(a.live))
	for _, sub := range a.fixed {
		out = append(out, sub)
	}
	for _, ls := range a.live {
		out = append(out, ls.public)
	}
	a.mu.Unlock()
	slices.SortFunc(out, func(x, y APISubscription) int { return strings.Compare(x.ID, y.ID) })
	return out
}

// outcomes reads eventkit_subscription_deliveries_total by subscription
// and outcome.
func outcomes(fams []*dto.MetricFamily) map[string]map[string]uint64 {
	out := map[string]map[string]uint64{}
	for _, f := range fams {
		if f.GetName() != "eventkit_subscription_deliveries_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			sub := labelValue(m, "subscription")
			if out[sub] == nil {
				out[sub] = map[string]uint64{}
			}
			out[sub][labelValue(m, "outcome")] = uint64(m.GetCounter().GetValue())
		}
	}
	return out
}

// lag reads the durable consumer of subscription id.
func (c *console) lag(ctx context.Context, id string) *ConsoleLag {
	js := c.s.jsAPI
	if js == nil {
		return nil
	}
	cons, err := js.Consumer(ctx, c.s.cfg.Broker.Stream, "hub-"+id)
	if err != nil {
		return nil
	}
	info := cons.CachedInfo()
	return consoleLag(info)
}

func consoleLag(info *jetstream.ConsumerInfo) *ConsoleLag {
	if info == nil {
		return nil
	}
	return &ConsoleLag{Pending: info.NumPending, AckPending: info.NumAckPending, Redelivered: info.NumRedelivered,
		Position: info.Delivered.Stream}
}

// heatmap makes subscription id's grid from cumulative samples: each
// column is the difference of two consecutive ones (a count that went
// down, the subscription made again, counts from zero).
func heatmap(history []sample, id string) Heatmap {
	h := Heatmap{Rows: []float64{}, Columns: []HeatmapColumn{}}
	keys := map[int]bool{}
	for _, s := range history {
		for k := range s.latency[id] {
			keys[k] = true
		}
	}
	// Every power of two from the fastest to the slowest, so that the rows
	// read as an axis; the zero bucket below them.
	rows := []int{}
	if keys[zeroKey] {
		rows = append(rows, zeroKey)
		delete(keys, zeroKey)
	}
	if len(keys) > 0 {
		lo, hi := math.MaxInt, math.MinInt
		for k := range keys {
			lo, hi = min(lo, k), max(hi, k)
		}
		for k := lo; k <= hi; k++ {
			rows = append(rows, k)
		}
	}
	for _, k := range rows {
		if k == zeroKey {
			h.Rows = append(h.Rows, 0)
		} else {
			h.Rows = append(h.Rows, math.Ldexp(1, k))
		}
	}
	for i := 1; i < len(history); i++ {
		prev, cur := history[i-1].latency[id], history[i].latency[id]
		col := HeatmapColumn{End: history[i].at, Counts: make([]uint64, len(rows))}
		for j, k := range rows {
			if cur[k] >= prev[k] {
				col.Counts[j] = cur[k] - prev[k]
			} else {
				col.Counts[j] = cur[k]
			}
		}
		h.Columns = append(h.Columns, col)
	}
	return h
}
