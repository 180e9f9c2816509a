package hub

import (
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestNativeBucketsByPowerOfTwo: observations of a native histogram land
// in the power-of-two row that holds them, whatever the schema.
func TestNativeBucketsByPowerOfTwo(t *testing.T) {
	for _, factor := range []float64{1.1, 1.5, 2, 4, 16} {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x", NativeHistogramBucketFactor: factor})
		obs := map[float64]int{0.0003: 2, 0.0012: 3, 0.003: 1, 0.7: 4, 1.5: 1, 3: 2}
		for v, n := range obs {
			for range n {
				h.Observe(v)
			}
		}
		var m dto.Metric
		if err := h.Write(&m); err != nil {
			t.Fatal(err)
		}
		got := nativeBuckets(m.GetHistogram())
		schema := m.GetHistogram().GetSchema()
		var total uint64
		for k, n := range got {
			total += n
			if k == zeroKey {
				t.Errorf("factor %v: %d in the zero bucket", factor, n)
			}
		}
		if total != 13 {
			t.Errorf("factor %v (schema %d): %d observations, want 13: %v", factor, schema, total, got)
		}
		if schema < 0 {
			continue // rows wider than a power of two: only the total is exact
		}
		// 0.0003 ∈ (2^-12, 2^-11]; 0.0012, 0.003 ∈ (2^-10, 2^-9], (2^-9, 2^-8];
		// 0.7 ∈ (2^-1, 2^0]; 1.5 ∈ (2^0, 2^1]; 3 ∈ (2^1, 2^2].
		want := latencyBuckets{-11: 2, -9: 3, -8: 1, 0: 4, 1: 1, 2: 2}
		for k, n := range want {
			if got[k] != n {
				t.Errorf("factor %v (schema %d): row 2^%d holds %d, want %d (%v)", factor, schema, k, got[k], n, got)
			}
		}
	}
}

func TestPowerOfTwo(t *testing.T) {
	for _, c := range []struct {
		i, schema int32
		want      int
	}{
		{0, 3, 0}, {1, 3, 1}, {8, 3, 1}, {9, 3, 2}, {-1, 3, 0}, {-8, 3, -1}, {-9, 3, -1}, {-17, 3, -2},
		{5, 0, 5}, {-5, 0, -5}, {3, -1, 6}, {-3, -2, -12},
	} {
		if got := powerOfTwo(c.i, c.schema); got != c.want {
			t.Errorf("powerOfTwo(%d, %d) = %d, want %d", c.i, c.schema, got, c.want)
		}
	}
}

// TestHeatmapColumnsAreDifferences: each column holds what happened in its
// interval; a count that went down (a subscription made again) starts
// from zero.
func TestHeatmapColumnsAreDifferences(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	h := heatmap([]sample{
		{at: at(0), latency: map[string]latencyBuckets{}},
		{at: at(5), latency: map[string]latencyBuckets{"a": {-3: 2}}},
		{at: at(10), latency: map[string]latencyBuckets{"a": {-3: 5, 1: 1}, "b": {0: 9}}},
		{at: at(15), latency: map[string]latencyBuckets{"a": {zeroKey: 1, -3: 1}}},
	}, "a")
	if want := []float64{0, 0.125, 0.25, 0.5, 1, 2}; !slices.Equal(h.Rows, want) {
		t.Fatalf("rows %v, want %v", h.Rows, want)
	}
	want := [][]uint64{{0, 2, 0, 0, 0, 0}, {0, 3, 0, 0, 0, 1}, {1, 1, 0, 0, 0, 0}}
	if len(h.Columns) != len(want) {
		t.Fatalf("%d columns, want %d", len(h.Columns), len(want))
	}
	for i, c := range h.Columns {
		if !slices.Equal(c.Counts, want[i]) || !c.End.Equal(at(5*(i+1))) {
			t.Errorf("column %d: %v at %v, want %v at %v", i, c.Counts, c.End, want[i], at(5*(i+1)))
		}
	}
}

// TestSamplerKeepsTheLastN: the sampler keeps a bounded history and
// answers the oldest sample at or after a time.
func TestSamplerKeepsTheLastN(t *testing.T) {
	t0 := time.Unix(1000, 0)
	n := 0
	s := newSampler(func() sample { n++; return sample{at: t0.Add(time.Duration(n) * time.Second)} }, time.Hour, 3)
	s.stop()
	s.stop() // twice is fine
	for range 5 {
		s.add(s.take())
	}
	all := s.all()
	if len(all) != 3 || !all[0].at.Equal(t0.Add(4*time.Second)) || !all[2].at.Equal(t0.Add(6*time.Second)) {
		t.Fatalf("kept %v", all)
	}
	if x, at := s.since(t0.Add(5 * time.Second)); x == nil || !at.Equal(t0.Add(5*time.Second)) {
		t.Errorf("since 5s: %v", at)
	}
	if x, at := s.since(t0); x == nil || !at.Equal(t0.Add(4*time.Second)) {
		t.Errorf("since 0: %v", at)
	}
	if x, at := s.since(t0.Add(time.Hour)); x == nil || !at.Equal(t0.Add(6*time.Second)) {
		t.Errorf("since later: %v, want the newest", at)
	}
}
