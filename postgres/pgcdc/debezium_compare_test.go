package pgcdc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"slices"
	"sort"
	"strings"
	"testing"
)

// The field-by-field comparison of a Debezium envelope (the payload of
// Debezium's value) with eventkit's (the event's data).

// knownDifferences are the paths where eventkit differs from Debezium on
// purpose, each with its reason; docs/cdc.md lists the same. A path ends
// with the field; "*" stands for any column of a row image.
var knownDifferences = map[string]string{
	// The producer's own version, as Debezium writes its own.
	"source.version": "eventkit's version (pgcdc.SourceVersion), not Debezium's",
	// Debezium 3.6 cannot convert multi-dimensional arrays (it logs
	// "Unexpected value" and writes null elements); eventkit keeps the
	// values as nested arrays.
	"after.a2": "multi-dimensional arrays: Debezium writes null elements",
}

// knownDifference returns the key of knownDifferences that covers path
// (the path itself, or a path inside it).
func knownDifference(path string) (string, bool) {
	for k := range knownDifferences {
		if path == k || strings.HasPrefix(path, k+"[") || strings.HasPrefix(path, k+".") {
			return k, true
		}
	}
	return "", false
}

// perSnapshot are the source fields of a snapshot row (op r) that depend
// on when each connector took its snapshot (its own slot's position and
// transaction): compared by kind, not value.
var perSnapshot = []string{"lsn", "txId", "sequence", "ts_ms", "ts_us", "ts_ns"}

// processingTimes are the envelope's own times: when each connector
// processed the change, different by nature; they are checked for
// consistency instead (ts_us within ts_ms, ts_ns within ts_us).
var processingTimes = []string{"ts_ms", "ts_us", "ts_ns"}

// decodeJSON decodes JSON with numbers kept as json.Number.
func decodeJSON(t *testing.T, what string, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: %v in %s", what, err, b)
	}
	return v
}

// jsonDiff appends the differences between a (Debezium's) and b
// (eventkit's) under path. Numbers are equal when their values are
// (Debezium's JSON writes doubles as 2.0, Go as 2).
func jsonDiff(diffs []string, path string, a, b any) []string {
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			return append(diffs, fmt.Sprintf("%s: Debezium %s, eventkit %s", path, show(a), show(b)))
		}
		keys := make([]string, 0, len(av)+len(bv))
		for k := range av {
			keys = append(keys, k)
		}
		for k := range bv {
			if _, ok := av[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := k
			if path != "" {
				p = path + "." + k
			}
			x, inA := av[k]
			y, inB := bv[k]
			switch {
			case !inA:
				diffs = append(diffs, fmt.Sprintf("%s: only in eventkit (%s)", p, show(y)))
			case !inB:
				diffs = append(diffs, fmt.Sprintf("%s: only in Debezium (%s)", p, show(x)))
			default:
				diffs = jsonDiff(diffs, p, x, y)
			}
		}
		return diffs
	case []any:
		bv, ok := b.([]any)
		if !ok || len(av) != len(bv) {
			return append(diffs, fmt.Sprintf("%s: Debezium %s, eventkit %s", path, show(a), show(b)))
		}
		for i := range av {
			diffs = jsonDiff(diffs, fmt.Sprintf("%s[%d]", path, i), av[i], bv[i])
		}
		return diffs
	case json.Number:
		if bv, ok := b.(json.Number); ok && sameNumber(av, bv) {
			return diffs
		}
	default:
		if a == b {
			return diffs
		}
	}
	return append(diffs, fmt.Sprintf("%s: Debezium %s, eventkit %s", path, show(a), show(b)))
}

func sameNumber(a, b json.Number) bool {
	if a == b {
		return true
	}
	x, ok1 := new(big.Rat).SetString(string(a))
	y, ok2 := new(big.Rat).SetString(string(b))
	return ok1 && ok2 && x.Cmp(y) == 0
}

func show(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// envelopeDiffs compares the envelope of one change: every field but the
// processing times and the known differences, which it returns apart.
func envelopeDiffs(t *testing.T, dbz, ek []byte) (diffs, known []string) {
	t.Helper()
	a, _ := decodeJSON(t, "Debezium payload", dbz).(map[string]any)
	b, _ := decodeJSON(t, "eventkit data", ek).(map[string]any)
	if a == nil || b == nil {
		t.Fatalf("not objects: Debezium %s, eventkit %s", dbz, ek)
	}
	for _, f := range processingTimes {
		if _, inA := a[f]; inA != (b[f] != nil) {
			t.Errorf("envelope %s: in Debezium's %v, in eventkit's %v", f, inA, b[f] != nil)
		}
	}
	for _, m := range []map[string]any{a, b} {
		checkTimes(t, m)
		for _, f := range processingTimes {
			delete(m, f)
		}
		src, _ := m["source"].(map[string]any)
		if m["op"] == "m" && src != nil && src["txId"] == nil {
			// A message outside transactions has no commit time: each
			// connector gives its own clock's.
			for _, f := range processingTimes {
				if v, ok := src[f]; ok {
					src[f] = fmt.Sprintf("<%T>", v)
				}
			}
		}
		if m["op"] == "r" && src != nil {
			checkSequence(t, src)
			for _, f := range perSnapshot {
				if v, ok := src[f]; ok {
					src[f] = fmt.Sprintf("<%T>", v)
				}
			}
		}
	}
	for _, d := range jsonDiff(nil, "", a, b) {
		path, _, _ := strings.Cut(d, ":")
		if _, ok := knownDifference(path); ok {
			known = append(known, d)
		} else {
			diffs = append(diffs, d)
		}
	}
	return diffs, known
}

// checkTimes checks that an envelope's ts_us and ts_ns, and its source
// block's, are the same instant as its ts_ms at their precision.
func checkTimes(t *testing.T, m map[string]any) {
	t.Helper()
	blocks := []map[string]any{m}
	if s, ok := m["source"].(map[string]any); ok {
		blocks = append(blocks, s)
	}
	for _, blk := range blocks {
		if _, ok := blk["ts_us"]; !ok && blk["op"] == "m" {
			continue // Debezium's messages have ts_ms only; eventkit's too
		}
		ms, err1 := numberOf(blk["ts_ms"])
		us, err2 := numberOf(blk["ts_us"])
		ns, err3 := numberOf(blk["ts_ns"])
		if err1 != nil || err2 != nil || err3 != nil {
			t.Errorf("times of %s: ts_ms %v, ts_us %v, ts_ns %v", show(blk), err1, err2, err3)
			continue
		}
		if us/1000 != ms || ns/1000 != us {
			t.Errorf("times of %s: ts_ms %d, ts_us %d, ts_ns %d are not one instant", show(blk), ms, us, ns)
		}
	}
}

// checkSequence checks a snapshot row's source.sequence: [null,"<lsn>"].
func checkSequence(t *testing.T, src map[string]any) {
	t.Helper()
	if want := fmt.Sprintf(`[null,"%v"]`, src["lsn"]); src["sequence"] != want {
		t.Errorf("snapshot row: sequence %s, want %s", show(src["sequence"]), want)
	}
}

func numberOf(v any) (int64, error) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, fmt.Errorf("not a number: %s", show(v))
	}
	return n.Int64()
}

// compareStreams compares Debezium's records (tombstones aside, see
// checkTombstones) with eventkit's events, one by one in order, and fails t
// listing every unexpected difference. It logs the known ones.
func compareStreams(t *testing.T, recs []dbzRecord, evs []recordedEvent) {
	t.Helper()
	var values []dbzRecord
	for _, r := range recs {
		if payload(r.Value) != nil {
			values = append(values, r)
		}
	}
	if len(values) != len(evs) {
		for _, r := range values {
			t.Logf("Debezium: %s", payload(r.Value))
		}
		for _, e := range evs {
			t.Logf("eventkit: %s", e.ev.Data())
		}
		t.Fatalf("Debezium sent %d change events, eventkit %d", len(values), len(evs))
	}
	var all, allKnown []string
	for i, r := range values {
		diffs, known := envelopeDiffs(t, payload(r.Value), evs[i].ev.Data())
		for _, d := range diffs {
			all = append(all, fmt.Sprintf("event %d (%s): %s", i, opOf(payload(r.Value)), d))
		}
		allKnown = append(allKnown, known...)
		if len(diffs) > 0 {
			t.Logf("event %d\n Debezium %s\n eventkit %s", i, payload(r.Value), evs[i].ev.Data())
		}
	}
	if testing.Verbose() && len(values) > 0 {
		t.Logf("first event, Debezium: %s", payload(values[0].Value))
	}
	slices.Sort(allKnown)
	for _, k := range slices.Compact(allKnown) {
		t.Logf("known difference: %s", k)
	}
	if len(all) > 0 {
		t.Fatalf("%d differences from Debezium:\n%s", len(all), strings.Join(all, "\n"))
	}
}

func opOf(p json.RawMessage) string {
	var v struct {
		Op string `json:"op"`
	}
	_ = json.Unmarshal(p, &v)
	return v.Op
}

func slicesContains(s []string, v string) bool { return slices.Contains(s, v) }
