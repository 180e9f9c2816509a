package saga

import "time"

// Metrics receives what a saga measures. Implement it with the metrics
// library of your choice (the package imports none); embed NopMetrics to
// implement only some of it. Calls come from many goroutines.
type Metrics interface {
	// StepDone is called after each step ran, with its duration and its
	// error (nil on success).
	StepDone(saga, step string, d time.Duration, err error)
	// Compensated is called after a step's compensation was committed.
	Compensated(saga, step string)
	// Failed is called when a step's failure starts a compensation.
	Failed(saga, step string)
	// TimedOut is called when an instance's deadline starts a compensation.
	TimedOut(saga string)
	// Active is called with +1 when an instance starts and -1 when it
	// reaches a final status (the sum is the number of active instances
	// this process saw start or end).
	Active(saga string, delta int)
}

// NopMetrics is a Metrics that does nothing.
type NopMetrics struct{}

// StepDone implements Metrics.
func (NopMetrics) StepDone(string, string, time.Duration, error) {}

// Compensated implements Metrics.
func (NopMetrics) Compensated(string, string) {}

// Failed implements Metrics.
func (NopMetrics) Failed(string, string) {}

// TimedOut implements Metrics.
func (NopMetrics) TimedOut(string) {}

// Active implements Metrics.
func (NopMetrics) Active(string, int) {}
