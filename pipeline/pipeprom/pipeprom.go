// Package pipeprom exports the back-pressure and counts of a pipeline
// (pipeline.Pipeline.Stats) as Prometheus metrics, in its own package so
// that the pipeline core links no metrics library. The values are read at
// each scrape; nothing is kept between scrapes.
//
// Metrics, each labelled pipeline and stage (a source is a stage too):
//
//	eventkit_pipeline_queue_depth          events waiting in the stage's queue (a source: messages in flight)
//	eventkit_pipeline_queue_capacity       the bound of that queue (a source: WithMaxInFlight)
//	eventkit_pipeline_senders_waiting      senders blocked on the stage now (a source: waiting for a slot)
//	eventkit_pipeline_blocked_seconds_total time senders spent blocked on the stage
//	eventkit_pipeline_events_in_total      events handled (a source: messages taken)
//	eventkit_pipeline_events_out_total     events emitted (a source: messages acked)
//	eventkit_pipeline_events_failed_total  events failed (a source: messages nacked)
package pipeprom

import (
	"github.com/eventkit/eventkit/pipeline"
	"github.com/prometheus/client_golang/prometheus"
)

var labels = []string{"pipeline", "stage"}

var (
	depthDesc   = prometheus.NewDesc("eventkit_pipeline_queue_depth", "Events waiting in the stage's queue (a source: messages in flight).", labels, nil)
	capDesc     = prometheus.NewDesc("eventkit_pipeline_queue_capacity", "The bound of the stage's queue (a source: its max in flight).", labels, nil)
	waitingDesc = prometheus.NewDesc("eventkit_pipeline_senders_waiting", "Senders blocked on the stage now.", labels, nil)
	blockedDesc = prometheus.NewDesc("eventkit_pipeline_blocked_seconds_total", "Time senders spent blocked on the stage.", labels, nil)
	inDesc      = prometheus.NewDesc("eventkit_pipeline_events_in_total", "Events handled by the stage (a source: messages taken).", labels, nil)
	outDesc     = prometheus.NewDesc("eventkit_pipeline_events_out_total", "Events emitted by the stage (a source: messages acked).", labels, nil)
	failedDesc  = prometheus.NewDesc("eventkit_pipeline_events_failed_total", "Events failed in the stage (a source: messages nacked).", labels, nil)
)

// Collector is a prometheus.Collector of one pipeline's Stats.
type Collector struct {
	name string
	p    *pipeline.Pipeline
}

// NewCollector returns a collector of p's stats, labelled pipeline=name.
// Register it with a prometheus.Registerer.
func NewCollector(name string, p *pipeline.Pipeline) *Collector { return &Collector{name: name, p: p} }

// Describe sends the descriptions of the metrics.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{depthDesc, capDesc, waitingDesc, blockedDesc, inDesc, outDesc, failedDesc} {
		ch <- d
	}
}

// Collect sends the current values.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.p.Stats() {
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, c.name, s.Name)
		}
		counter := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, c.name, s.Name)
		}
		gauge(depthDesc, float64(s.Queue))
		gauge(capDesc, float64(s.QueueCap))
		gauge(waitingDesc, float64(s.Waiting))
		counter(blockedDesc, s.Blocked.Seconds())
		counter(inDesc, float64(s.In))
		counter(outDesc, float64(s.Out))
		counter(failedDesc, float64(s.Failed))
	}
}
