package cehttp_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/binding"
	"github.com/eventkit/eventkit/cehttp"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/hub"
	"gopkg.in/yaml.v3"
)

// conformanceDir is the CloudEvents conformance data kept in the repository
// (testdata/cloudevents-conformance; PROVENANCE.md there names its source).
const conformanceDir = "../testdata/cloudevents-conformance"

func readConformance(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(conformanceDir, name))
	if err != nil {
		t.Fatalf("conformance data (expected at testdata/cloudevents-conformance in the repository): %v", err)
	}
	return b
}

// golden returns the golden sample events the conformance vectors name.
func golden(t *testing.T, id string) event.Event {
	t.Helper()
	e := event.New()
	e.SetID("minimal")
	e.SetType("io.cloudevents.test")
	e.SetSource("https://cloudevents.io")
	at := time.Date(2018, 4, 5, 17, 31, 0, 0, time.UTC)
	switch id {
	case "minimal":
	case "minimalWithTime":
		e.SetID(id)
		e.SetTime(at)
	case "minimalWithRelativeSource":
		e.SetID(id)
		e.SetSource("#fragment")
	case "allCore":
		e.SetID(id)
		e.SetDataContentType("text/plain")
		e.SetDataSchema("https://cloudevents.io/dataschema")
		e.SetSubject("tests")
		e.SetTime(at)
	case "simpleTextData":
		e.SetID(id)
		if err := e.SetData("text/plain", []byte("Simple text")); err != nil {
			t.Fatal(err)
		}
	case "allExtensionTypes":
		e.SetID(id)
		e.SetExtension("extinteger", 10)
		e.SetExtension("extboolean", true)
		e.SetExtension("extstring", "text")
		e.SetExtension("extbinary", []byte{77, 97})
		e.SetExtension("exttimestamp", time.Date(2023, 3, 31, 15, 12, 0, 0, time.UTC))
		e.SetExtension("exturi", "https://cloudevents.io")
		e.SetExtension("exturiref", "//authority/path")
	default:
		t.Fatalf("unknown sample event %q", id)
	}
	return e
}

func goldenBatch(t *testing.T, id string) []event.Event {
	switch id {
	case "empty":
		return nil
	case "minimal":
		return []event.Event{golden(t, "minimal")}
	case "minimal2":
		return []event.Event{golden(t, "minimal"), golden(t, "minimal")}
	case "minimalAndAllCore":
		return []event.Event{golden(t, "minimal"), golden(t, "allCore")}
	case "minimalAndAllExtensionTypes":
		return []event.Event{golden(t, "minimal"), golden(t, "allExtensionTypes")}
	}
	t.Fatalf("unknown sample batch %q", id)
	return nil
}

type formatFile struct {
	Tests []formatCase `json:"tests"`
}

// formatCase is a vector of the JSON format files.
type formatCase struct {
	ID       string          `json:"id"`
	SampleID string          `json:"sampleId"`
	Event    json.RawMessage `json:"event"`
	Batch    json.RawMessage `json:"batch"`
}

func loadFormat(t *testing.T, name string) formatFile {
	var f formatFile
	if err := json.Unmarshal(readConformance(t, "json/"+name), &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Tests) == 0 {
		t.Fatalf("%s: no tests", name)
	}
	return f
}

// forEachVector runs check on each vector of the JSON format file name, in
// a subtest named after it, with a handler h that publishes to rec (reset
// before each vector).
func forEachVector(t *testing.T, name string, check func(t *testing.T, tc formatCase, h http.Handler, rec *recorder)) {
	rec := &recorder{}
	h := cehttp.NewHandler(rec)
	for _, tc := range loadFormat(t, name).Tests {
		t.Run(tc.ID, func(t *testing.T) {
			rec.reset()
			check(t, tc, h, rec)
		})
	}
}

// TestConformanceValidEvents posts every valid event of the JSON format
// vectors in structured mode, and again re-encoded in binary mode, and
// compares what reaches the publisher with the golden sample event.
func TestConformanceValidEvents(t *testing.T) {
	forEachVector(t, "valid-events.json", func(t *testing.T, tc formatCase, h http.Handler, rec *recorder) {
		want := golden(t, tc.SampleID)
		wantStatus(t, do(t, h, post("application/cloudevents+json", string(tc.Event), nil)), http.StatusNoContent)
		topics, got := rec.got()
		if len(got) != 1 {
			t.Fatalf("published %d events, want 1", len(got))
		}
		if topics[0] != "io.cloudevents.test" {
			t.Errorf("topic %q, want the event type", topics[0])
		}
		if d := eventkittest.DiffEvents(want, got[0]); d != "" {
			t.Fatalf("structured: %s", d)
		}
		// The same event in binary mode, as the egress encodes it.
		hdr, body, err := cehttp.Encode(got[0], false)
		if err != nil {
			t.Fatal(err)
		}
		req := post("", string(body), nil)
		for k, v := range hdr {
			req.Header[k] = v
		}
		rec.reset()
		wantStatus(t, do(t, h, req), http.StatusNoContent)
		_, got = rec.got()
		if len(got) != 1 {
			t.Fatalf("binary: published %d events, want 1", len(got))
		}
		if d := eventkittest.DiffEvents(want, got[0]); d != "" {
			t.Fatalf("binary: %s", d)
		}
	})
}

// invalidEventAttr is the attribute the problem names for each invalid
// event of the vectors.
var invalidEventAttr = map[string]string{
	"invalidNoSpecVersion": "specversion", "invalidNoId": "id", "invalidNoType": "type", "invalidNoSource": "source",
	"invalidTimeGarbage": "time", "invalidTimeToMinute": "time", "invalidTimeOffsetX": "time",
	"invalidTimeOffsetOutOfRange": "time", "invalidTimeOffsetNonInteger": "time", "invalidTimeOffsetHourOnly": "time",
	"invalidEmptyId": "id", "invalidEmptyType": "type", "invalidEmptySource": "source", "invalidEmptySpecVersion": "specversion",
	"invalidUnknownSpecVersion": "specversion", "invalidNonRfc2046DataContentType": "datacontenttype",
	"invalidEmptyDataContentType": "datacontenttype", "invalidEmptyDataSchema": "dataschema", "invalidEmptySubject": "subject",
	"invalidNumericId": "id", "invalidObjectId": "id", "invalidCapitalizedExtension": "MyExtension",
	"invalidPunctuatedExtension": "my.extension", "invalidNonIntegerExtensionValue": "my.extension",
	"invalidBothDataAndDataBase64": "data_base64",
}

// TestConformanceInvalidEvents posts every invalid event of the vectors:
// each gets 400 problem+json naming an attribute, and nothing is published.
func TestConformanceInvalidEvents(t *testing.T) {
	forEachVector(t, "invalid-events.json", func(t *testing.T, tc formatCase, h http.Handler, rec *recorder) {
		p := problem(t, do(t, h, post("application/cloudevents+json", string(tc.Event), nil)), http.StatusBadRequest)
		want, ok := invalidEventAttr[tc.ID]
		if !ok {
			t.Fatalf("no expected attribute for vector %s (new vector?)", tc.ID)
		}
		if p.Attribute != want {
			t.Errorf("problem names attribute %q, want %q (%s)", p.Attribute, want, p.Detail)
		}
		if _, got := rec.got(); len(got) != 0 {
			t.Errorf("an invalid event was published")
		}
	})
}

// TestConformanceBatches posts the valid and invalid batches of the vectors
// in batch mode: valid ones publish every event in order, invalid ones
// publish nothing (all-or-nothing).
func TestConformanceBatches(t *testing.T) {
	forEachVector(t, "valid-batches.json", func(t *testing.T, tc formatCase, h http.Handler, rec *recorder) {
		want := goldenBatch(t, tc.SampleID)
		resp := do(t, h, post("application/cloudevents-batch+json", string(tc.Batch), nil))
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || string(b) != `{"accepted":`+strconv.Itoa(len(want))+`}` {
			t.Fatalf("answer %d %s", resp.StatusCode, b)
		}
		_, got := rec.got()
		if len(got) != len(want) {
			t.Fatalf("published %d events, want %d", len(got), len(want))
		}
		for i := range want {
			if d := eventkittest.DiffEvents(want[i], got[i]); d != "" {
				t.Errorf("event %d: %s", i, d)
			}
		}
	})
	forEachVector(t, "invalid-batches.json", func(t *testing.T, tc formatCase, h http.Handler, rec *recorder) {
		p := problem(t, do(t, h, post("application/cloudevents-batch+json", string(tc.Batch), nil)), http.StatusBadRequest)
		if tc.ID != "invalidBatchContainingNonObject" && (p.Index == nil || p.Attribute == "") {
			t.Errorf("problem %+v does not name the event and attribute", p)
		}
		if _, got := rec.got(); len(got) != 0 {
			t.Errorf("%d events of an invalid batch were published", len(got))
		}
	})
}

// TestConformanceHTTPFeature runs the scenarios of the HTTP protocol
// binding feature file: each example request is parsed, served, and the
// published event's attributes and data are compared with the tables.
func TestConformanceHTTPFeature(t *testing.T) {
	scenarios := parseFeature(t, string(readConformance(t, "yaml/http-protocol-binding.feature")))
	if len(scenarios) < 4 {
		t.Fatalf("found %d scenarios, want at least 4", len(scenarios))
	}
	rec := &recorder{}
	h := cehttp.NewHandler(rec)
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			rec.reset()
			req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(sc.request)))
			if err != nil {
				t.Fatalf("parsing the scenario's request: %v", err)
			}
			got := publishedOne(t, h, rec, req, sc.attrs)
			if !jsonEqual(t, got[0].Data(), []byte(sc.data)) {
				t.Errorf("data %s, want %s", got[0].Data(), sc.data)
			}
		})
	}
}

// publishedOne serves req, which must be answered 204 with one event
// published, whose attributes must be want (time compared in RFC 3339,
// UTC); it returns the published events.
func publishedOne(t *testing.T, h http.Handler, rec *recorder, req *http.Request, want map[string]string) []event.Event {
	t.Helper()
	wantStatus(t, do(t, h, req), http.StatusNoContent)
	_, got := rec.got()
	if len(got) != 1 {
		t.Fatalf("published %d events", len(got))
	}
	checkAttrs(t, got[0], want)
	return got
}

// checkAttrs fails t unless e has the attributes want (time compared in
// RFC 3339, UTC).
func checkAttrs(t *testing.T, e event.Event, want map[string]string) {
	t.Helper()
	attrs := map[string]string{}
	binding.Attributes(e, true, func(k, v string) { attrs[k] = v })
	for k, v := range want {
		g := attrs[k]
		if k == "time" {
			g = e.Time().UTC().Format(time.RFC3339)
		}
		if g != v {
			t.Errorf("attribute %s = %q, want %q", k, g, v)
		}
	}
}

type featureScenario struct {
	name    string
	request string
	attrs   map[string]string
	data    string
}

// parseFeature reads the Gherkin scenario outlines of the binding feature:
// the request doc string, the attribute table, the data doc string and the
// examples that fill <placeholders>.
func parseFeature(t *testing.T, src string) []featureScenario {
	t.Helper()
	lines := strings.Split(src, "\n")
	var out []featureScenario
	var name, request, data string
	var attrs [][2]string
	var docs []string
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		switch {
		case strings.HasPrefix(l, "Scenario Outline:"):
			name = strings.TrimSpace(strings.TrimPrefix(l, "Scenario Outline:"))
			docs, attrs = nil, nil
		case l == `"""`:
			indent := len(lines[i]) - len(strings.TrimLeft(lines[i], " "))
			var b []string
			for i++; i < len(lines) && strings.TrimSpace(lines[i]) != `"""`; i++ {
				s := lines[i]
				if len(s) >= indent {
					s = s[indent:]
				}
				b = append(b, s)
			}
			docs = append(docs, strings.Join(b, "\n"))
		case strings.HasPrefix(l, "| key"):
			for i++; i < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[i]), "|"); i++ {
				cells := strings.Split(strings.Trim(strings.TrimSpace(lines[i]), "|"), "|")
				attrs = append(attrs, [2]string{strings.TrimSpace(cells[0]), strings.TrimSpace(cells[1])})
			}
			i--
		case l == "Examples:":
			if len(docs) != 2 {
				t.Fatalf("scenario %q: %d doc strings, want 2", name, len(docs))
			}
			request, data = docs[0], docs[1]
			i++ // header row
			header := strings.TrimSpace(strings.Trim(strings.TrimSpace(lines[i]), "|"))
			for i++; i < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[i]), "|"); i++ {
				val := strings.TrimSpace(strings.Trim(strings.TrimSpace(lines[i]), "|"))
				ph := "<" + header + ">"
				sc := featureScenario{name: strings.ReplaceAll(name, ph, val), attrs: map[string]string{}, data: data}
				for _, a := range attrs {
					sc.attrs[a[0]] = strings.ReplaceAll(a[1], ph, val)
				}
				sc.request = fixContentLength(strings.ReplaceAll(request, ph, val))
				out = append(out, sc)
			}
			i--
		}
	}
	return out
}

// fixContentLength rewrites the request with CRLF line ends in its head and
// the Content-Length of its actual body (the feature's figures count the
// body as the spec page shows it, not as the doc string holds it).
func fixContentLength(req string) string {
	head, body, _ := strings.Cut(req, "\n\n")
	var hl []string
	for _, l := range strings.Split(head, "\n") {
		if strings.HasPrefix(strings.ToLower(l), "content-length:") {
			continue
		}
		hl = append(hl, l)
	}
	hl = append(hl, "Content-Length: "+strconv.Itoa(len(body)))
	return strings.Join(hl, "\r\n") + "\r\n\r\n" + body
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Errorf("data %q is not JSON: %v", a, err)
		return false
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("expected data %q is not JSON: %v", b, err)
	}
	return reflect.DeepEqual(x, y)
}

type yamlCase struct {
	Mode              string            `yaml:"Mode"`
	ContextAttributes map[string]any    `yaml:"ContextAttributes"`
	Transport         map[string]string `yaml:"TransportExtensions"`
	Data              string            `yaml:"Data"`
}

func loadYAML(t *testing.T, name string) []yamlCase {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(readConformance(t, "yaml/"+name)))
	var out []yamlCase
	for {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("%s: %v", name, err)
		}
		var c yamlCase
		if err := n.Decode(&c); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// Scalars keep their text: specversion 1.0 is the string "1.0".
		c.ContextAttributes = scalarText(n, "ContextAttributes")
		out = append(out, c)
	}
	return out
}

// scalarText returns the ContextAttributes mapping with every scalar as its
// source text, and Extensions flattened in.
func scalarText(doc yaml.Node, key string) map[string]any {
	out := map[string]any{}
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != key {
			continue
		}
		m := root.Content[i+1]
		for j := 0; j+1 < len(m.Content); j += 2 {
			k, v := m.Content[j].Value, m.Content[j+1]
			if k == "Extensions" {
				for x := 0; x+1 < len(v.Content); x += 2 {
					val := v.Content[x+1]
					// A literal block scalar ("|") ends with the line
					// break YAML's clip chomping keeps. It is not part
					// of the value: a CloudEvents String must not hold
					// control characters (U+000A included), and an HTTP
					// header (binary mode) cannot carry one.
					text := val.Value
					if val.Style == yaml.LiteralStyle {
						text = strings.TrimSuffix(text, "\n")
					}
					out[v.Content[x].Value] = text
				}
				continue
			}
			out[k] = v.Value
		}
	}
	return out
}

// TestConformanceYAML sends the events of the conformance tool's YAML files
// in the mode each names (both modes when none) and checks that the
// published event has the attributes, extensions and data.
func TestConformanceYAML(t *testing.T) {
	rec := &recorder{}
	h := cehttp.NewHandler(rec)
	n := 0
	eachYAMLCase(t, func(name string, c yamlCase, mode string) {
		n++
		t.Run(name, func(t *testing.T) {
			rec.reset()
			got := publishedOne(t, h, rec, yamlRequest(t, c, mode), nil)
			checkYAMLEvent(t, c, mode, got[0])
		})
	})
	if n < 8 {
		t.Fatalf("ran %d YAML cases, want at least 8", n)
	}
}

// eachYAMLCase calls f with each case of the YAML files in each mode it
// names (both modes when it names none).
func eachYAMLCase(t *testing.T, f func(name string, c yamlCase, mode string)) {
	for _, file := range []string{"v1.yaml", "v1_minimum.yaml"} {
		for i, c := range loadYAML(t, file) {
			modes := []string{"binary", "structured"}
			if c.Mode != "" {
				modes = []string{strings.ToLower(c.Mode)}
			}
			for _, mode := range modes {
				f(file+"/"+strconv.Itoa(i)+"/"+mode, c, mode)
			}
		}
	}
}

// checkYAMLEvent fails t unless e is the event of case c sent in mode.
func checkYAMLEvent(t *testing.T, c yamlCase, mode string, e event.Event) {
	t.Helper()
	want := map[string]string{}
	for k, v := range c.ContextAttributes {
		want[k] = v.(string)
	}
	checkAttrs(t, e, want)
	ct, _ := c.ContextAttributes["datacontenttype"].(string)
	// Structured mode carries JSON data as JSON (compacted); binary mode
	// carries the bytes as they are.
	if eventkit.IsJSONContentType(ct) && (ct != "" || mode == "structured") {
		if !jsonEqual(t, e.Data(), []byte(c.Data)) {
			t.Errorf("data %q, want %q", e.Data(), c.Data)
		}
	} else if string(e.Data()) != c.Data {
		t.Errorf("data %q, want %q", e.Data(), c.Data)
	}
}

func yamlRequest(t *testing.T, c yamlCase, mode string) *http.Request {
	t.Helper()
	var req *http.Request
	ct, _ := c.ContextAttributes["datacontenttype"].(string)
	switch mode {
	case "binary":
		req = post(ct, c.Data, nil)
		for k, v := range c.ContextAttributes {
			if k == "datacontenttype" {
				continue
			}
			req.Header.Set("ce-"+k, binding.EncodeHeaderValue(v.(string)))
		}
	case "structured":
		m := map[string]any{}
		for k, v := range c.ContextAttributes {
			m[k] = v
		}
		if eventkit.IsJSONContentType(ct) {
			m["data"] = json.RawMessage(c.Data)
		} else {
			m["data"] = c.Data
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		req = post("application/cloudevents+json", string(b), nil)
	default:
		t.Fatalf("unknown mode %q", mode)
	}
	for k, v := range c.Transport {
		req.Header.Set(k, v)
	}
	return req
}

// notApplicableToServe lists the conformance data that
// TestConformanceAgainstServe does not send, with the reason.
var notApplicableToServe = map[string]string{
	"yaml/kafka-protocol-binding.feature": "the Kafka protocol binding: the server takes events over HTTP only (kafka's tests run the Kafka binding)",
}

// A case's events are stored once per (topic, id, source): JetStream's
// duplicate window drops an event already stored with the same id and
// source (CloudEvents: "consumers MAY assume that Events with identical
// source and id are duplicates"). The vectors reuse ids (the golden
// "minimal" event is in eight of them), so the cases are spread over as
// many servers as needed for each to store its events as new, and a batch
// that repeats an event (valid-batches minimal2) stores it once.

// serveCase is one conformance request sent to a running server.
type serveCase struct {
	name string
	req  *http.Request // built for the handler tests (URL path only)
	// status is the answer wanted; body, when set, its exact body.
	status int
	body   string
	// check checks the events stored, in order (none for a refusal).
	stored int
	check  func(t *testing.T, got []event.Event)
	// problem checks a refusal's problem (nil: any problem+json).
	problem func(t *testing.T, p cehttp.Problem)
}

// TestConformanceAgainstServe runs the cloudevents/conformance data (the
// JSON format vectors, the HTTP YAML cases and the HTTP binding feature)
// against "eventkit serve": the hub with its defaults (embedded JetStream
// on disk) on a real TCP listener. Each case's request goes over the
// network; each stored event is read back from the live tail
// (GET /events/stream) and compared with the case's expected event; a
// refused case must be answered with problem+json and store nothing.
func TestConformanceAgainstServe(t *testing.T) {
	cases := serveCases(t)
	if len(cases) < 50 {
		t.Fatalf("%d cases, want the whole conformance data (at least 50)", len(cases))
	}
	for name, why := range notApplicableToServe {
		t.Logf("not sent: %s: %s", name, why)
	}
	pool := &servePool{parent: t}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := pool.serverFor(t, c)
			resp, b := srv.send(t, c)
			if c.status >= 400 {
				checkServeProblem(t, resp, b, c)
				srv.nothingStored(t)
				return
			}
			got := make([]event.Event, c.stored)
			for i := range got {
				got[i] = srv.next(t)
			}
			c.check(t, got)
		})
	}
	t.Logf("%d cases on %d servers", len(cases), len(pool.servers))
}

func checkServeProblem(t *testing.T, resp *http.Response, body []byte, c serveCase) {
	t.Helper()
	var p cehttp.Problem
	if resp.Header.Get("Content-Type") != "application/problem+json" || json.Unmarshal(body, &p) != nil || p.Status != c.status {
		t.Fatalf("refusal %q %s is not a problem+json of status %d", resp.Header.Get("Content-Type"), body, c.status)
	}
	if c.problem != nil {
		c.problem(t, p)
	}
}

// serveCases builds the cases from the conformance data, with the
// expectations the handler tests use.
func serveCases(t *testing.T) []serveCase {
	var out []serveCase
	for _, tc := range loadFormat(t, "valid-events.json").Tests {
		want := golden(t, tc.SampleID)
		out = append(out, serveCase{name: "valid-events/" + tc.ID,
			req: post("application/cloudevents+json", string(tc.Event), nil), status: http.StatusNoContent,
			stored: 1, check: diffAll(want)})
	}
	for _, tc := range loadFormat(t, "invalid-events.json").Tests {
		attr := invalidEventAttr[tc.ID]
		out = append(out, serveCase{name: "invalid-events/" + tc.ID,
			req: post("application/cloudevents+json", string(tc.Event), nil), status: http.StatusBadRequest,
			problem: func(t *testing.T, p cehttp.Problem) {
				if p.Attribute != attr {
					t.Errorf("problem names attribute %q, want %q (%s)", p.Attribute, attr, p.Detail)
				}
			}})
	}
	for _, tc := range loadFormat(t, "valid-batches.json").Tests {
		want := goldenBatch(t, tc.SampleID)
		out = append(out, serveCase{name: "valid-batches/" + tc.ID,
			req: post("application/cloudevents-batch+json", string(tc.Batch), nil), status: http.StatusOK,
			body: `{"accepted":` + strconv.Itoa(len(want)) + `}`, stored: len(distinct(want)), check: diffAll(distinct(want)...)})
	}
	for _, tc := range loadFormat(t, "invalid-batches.json").Tests {
		out = append(out, serveCase{name: "invalid-batches/" + tc.ID,
			req: post("application/cloudevents-batch+json", string(tc.Batch), nil), status: http.StatusBadRequest})
	}
	eachYAMLCase(t, func(name string, c yamlCase, mode string) {
		out = append(out, serveCase{name: "yaml/" + name, req: yamlRequest(t, c, mode), status: http.StatusNoContent, stored: 1,
			// The server stores events in the JSON format, where JSON
			// data is a JSON value: whitespace around it (the line break
			// a YAML block leaves in binary mode's body) is not kept, so
			// data compares as JSON, as in structured mode.
			check: func(t *testing.T, got []event.Event) { checkYAMLEvent(t, c, "structured", got[0]) }})
	})
	for _, sc := range parseFeature(t, string(readConformance(t, "yaml/http-protocol-binding.feature"))) {
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(sc.request)))
		if err != nil {
			t.Fatalf("%s: parsing the scenario's request: %v", sc.name, err)
		}
		out = append(out, serveCase{name: "feature/" + sc.name, req: req, status: http.StatusNoContent, stored: 1,
			check: func(t *testing.T, got []event.Event) {
				checkAttrs(t, got[0], sc.attrs)
				if !jsonEqual(t, got[0].Data(), []byte(sc.data)) {
					t.Errorf("data %s, want %s", got[0].Data(), sc.data)
				}
			}})
	}
	return out
}

// diffAll checks that the stored events are want, in order.
func diffAll(want ...event.Event) func(t *testing.T, got []event.Event) {
	return func(t *testing.T, got []event.Event) {
		for i := range want {
			if d := eventkittest.DiffEvents(want[i], got[i]); d != "" {
				t.Errorf("stored event %d: %s", i, d)
			}
		}
	}
}

// distinct drops the events whose (type, id, source) came before: the
// server stores them once.
func distinct(evs []event.Event) []event.Event {
	seen := map[string]bool{}
	var out []event.Event
	for _, e := range evs {
		if k := dedupKey(e.Type(), e.ID(), e.Source()); !seen[k] {
			seen[k] = true
			out = append(out, e)
		}
	}
	return out
}

func dedupKey(typ, id, source string) string { return typ + "\x00" + id + "\x00" + source }

// toServer is req (made for a handler) sent to the server at base, with
// its headers and body.
func toServer(t *testing.T, req *http.Request, base string) *http.Request {
	t.Helper()
	body, err := io.ReadAll(req.Body)
	if err != nil {
		t.Fatal(err)
	}
	out, err := http.NewRequest(req.Method, base+"/events", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	out.Header = req.Header.Clone()
	return out
}

// servePool starts servers as the cases need them: a case goes to the
// first server that has stored none of its events yet.
type servePool struct {
	parent  *testing.T // the servers live as long as it
	servers []*liveServer
}

// liveServer is a running hub read through its live tail.
type liveServer struct {
	base      string
	keys      map[string]bool // (type, id, source) stored
	items     *bufio.Reader   // the tail stream
	sentinels int
}

func (p *servePool) serverFor(t *testing.T, c serveCase) *liveServer {
	t.Helper()
	var keys []string
	if c.status < 400 {
		keys = requestKeys(t, c.req)
	}
	for _, s := range p.servers {
		if !s.hasAny(keys) {
			s.add(keys)
			return s
		}
	}
	s := startLive(t, p.parent)
	p.servers = append(p.servers, s)
	s.add(keys)
	return s
}

// requestKeys reads the (type, id, source) of the events of req's body or
// headers, leaving req's body readable again.
func requestKeys(t *testing.T, req *http.Request) []string {
	t.Helper()
	body, err := io.ReadAll(req.Body)
	if err != nil {
		t.Fatal(err)
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	var evs []struct{ Type, ID, Source string }
	switch ct := req.Header.Get("Content-Type"); {
	case strings.HasPrefix(ct, "application/cloudevents-batch+json"):
		if err := json.Unmarshal(body, &evs); err != nil {
			t.Fatalf("batch: %v", err)
		}
	case strings.HasPrefix(ct, "application/cloudevents+json"):
		var e struct{ Type, ID, Source string }
		if err := json.Unmarshal(body, &e); err != nil {
			t.Fatalf("event: %v", err)
		}
		evs = append(evs, e)
	default:
		evs = append(evs, struct{ Type, ID, Source string }{req.Header.Get("ce-type"), req.Header.Get("ce-id"), req.Header.Get("ce-source")})
	}
	var keys []string
	for _, e := range evs {
		keys = append(keys, dedupKey(e.Type, e.ID, e.Source))
	}
	return keys
}

func (s *liveServer) hasAny(keys []string) bool {
	for _, k := range keys {
		if s.keys[k] {
			return true
		}
	}
	return false
}

func (s *liveServer) add(keys []string) {
	for _, k := range keys {
		s.keys[k] = true
	}
}

// startLive runs the hub as "eventkit serve --listen 127.0.0.1:0 --data
// DIR" does, and opens its live tail on every topic; both end with
// parent, t fails if they do not start.
func startLive(t, parent *testing.T) *liveServer {
	t.Helper()
	s, err := hub.New(hub.Config{Listen: "127.0.0.1:0", DataDir: parent.TempDir()}, hub.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var resp *http.Response
	eventkittest.WaitFor(t, time.Minute, "the live tail of the server", func() bool {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL()+"/events/stream?topic=>", nil)
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		if r.StatusCode != http.StatusOK {
			r.Body.Close()
			return false
		}
		resp = r
		return true
	})
	parent.Cleanup(func() {
		cancel()
		resp.Body.Close()
		if err := <-done; err != nil {
			parent.Errorf("server: %v", err)
		}
	})
	ls := &liveServer{base: s.URL(), keys: map[string]bool{}, items: bufio.NewReader(resp.Body)}
	if l, err := ls.items.ReadString('\n'); err != nil || !strings.HasPrefix(l, ": subscribed") {
		t.Fatalf("tail's first line %q: %v", l, err)
	}
	return ls
}

// next reads the next event of the tail (the server pings every 15 s; a
// stuck tail ends with the test's deadline).
func (s *liveServer) next(t *testing.T) event.Event {
	t.Helper()
	for {
		l, err := s.items.ReadString('\n')
		if err != nil {
			t.Fatalf("tail: %v", err)
		}
		data, ok := strings.CutPrefix(strings.TrimRight(l, "\n"), "data: ")
		if !ok {
			continue
		}
		var it hub.StreamItem
		if err := json.Unmarshal([]byte(data), &it); err != nil {
			t.Fatalf("tail item %q: %v", data, err)
		}
		e, err := eventkit.UnmarshalEvent(it.Event)
		if err != nil {
			t.Fatalf("tail event %s: %v", it.Event, err)
		}
		if it.Topic != e.Type() {
			t.Errorf("topic %q, want the event type %q", it.Topic, e.Type())
		}
		return e
	}
}

// send sends c's request to the server, and fails t unless the answer is
// c's; it returns the answer and its body.
func (s *liveServer) send(t *testing.T, c serveCase) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(toServer(t, c.req, s.base))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != c.status || (c.body != "" && string(b) != c.body) {
		t.Fatalf("%s: answer %d %s, want %d %s", c.name, resp.StatusCode, b, c.status, c.body)
	}
	return resp, b
}

// nothingStored sends a sentinel event: the next event of the tail must
// be it, so a refused request stored nothing.
func (s *liveServer) nothingStored(t *testing.T) {
	t.Helper()
	s.sentinels++
	id := "sentinel-" + strconv.Itoa(s.sentinels)
	sentinel := `{"specversion":"1.0","id":"` + id + `","source":"/conformance","type":"conformance.sentinel"}`
	s.send(t, serveCase{name: "sentinel", req: post("application/cloudevents+json", sentinel, nil), status: http.StatusNoContent})
	if e := s.next(t); e.ID() != id {
		t.Fatalf("a refused request stored event %s (%s)", e.ID(), e.Type())
	}
}
