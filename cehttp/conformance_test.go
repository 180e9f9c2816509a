package cehttp_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
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
	Tests []struct {
		ID       string          `json:"id"`
		SampleID string          `json:"sampleId"`
		Event    json.RawMessage `json:"event"`
		Batch    json.RawMessage `json:"batch"`
	} `json:"tests"`
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

// TestConformanceValidEvents posts every valid event of the JSON format
// vectors in structured mode, and again re-encoded in binary mode, and
// compares what reaches the publisher with the golden sample event.
func TestConformanceValidEvents(t *testing.T) {
	rec := &recorder{}
	h := cehttp.NewHandler(rec)
	for _, tc := range loadFormat(t, "valid-events.json").Tests {
		t.Run(tc.ID, func(t *testing.T) {
			want := golden(t, tc.SampleID)
			rec.reset()
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
}

// TestConformanceInvalidEvents posts every invalid event of the vectors:
// each gets 400 problem+json naming an attribute, and nothing is published.
func TestConformanceInvalidEvents(t *testing.T) {
	rec := &recorder{}
	h := cehttp.NewHandler(rec)
	wantAttr := map[string]string{
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
	for _, tc := range loadFormat(t, "invalid-events.json").Tests {
		t.Run(tc.ID, func(t *testing.T) {
			rec.reset()
			p := problem(t, do(t, h, post("application/cloudevents+json", string(tc.Event), nil)), http.StatusBadRequest)
			want, ok := wantAttr[tc.ID]
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
}

// TestConformanceBatches posts the valid and invalid batches of the vectors
// in batch mode: valid ones publish every event in order, invalid ones
// publish nothing (all-or-nothing).
func TestConformanceBatches(t *testing.T) {
	rec := &recorder{}
	h := cehttp.NewHandler(rec)
	for _, tc := range loadFormat(t, "valid-batches.json").Tests {
		t.Run(tc.ID, func(t *testing.T) {
			rec.reset()
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
	}
	for _, tc := range loadFormat(t, "invalid-batches.json").Tests {
		t.Run(tc.ID, func(t *testing.T) {
			rec.reset()
			p := problem(t, do(t, h, post("application/cloudevents-batch+json", string(tc.Batch), nil)), http.StatusBadRequest)
			if tc.ID != "invalidBatchContainingNonObject" && (p.Index == nil || p.Attribute == "") {
				t.Errorf("problem %+v does not name the event and attribute", p)
			}
			if _, got := rec.got(); len(got) != 0 {
				t.Errorf("%d events of an invalid batch were published", len(got))
			}
		})
	}
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
	attrs := map[string]string{}
	binding.Attributes(got[0], true, func(k, v string) { attrs[k] = v })
	for k, v := range want {
		g := attrs[k]
		if k == "time" {
			g = got[0].Time().UTC().Format(time.RFC3339)
		}
		if g != v {
			t.Errorf("attribute %s = %q, want %q", k, g, v)
		}
	}
	return got
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
	for _, file := range []string{"v1.yaml", "v1_minimum.yaml"} {
		for i, c := range loadYAML(t, file) {
			modes := []string{"binary", "structured"}
			if c.Mode != "" {
				modes = []string{strings.ToLower(c.Mode)}
			}
			for _, mode := range modes {
				n++
				t.Run(file+"/"+strconv.Itoa(i)+"/"+mode, func(t *testing.T) {
					rec.reset()
					req := yamlRequest(t, c, mode)
					want := map[string]string{}
					for k, v := range c.ContextAttributes {
						want[k] = v.(string)
					}
					got := publishedOne(t, h, rec, req, want)
					ct, _ := c.ContextAttributes["datacontenttype"].(string)
					// Structured mode carries JSON data as JSON (compacted);
					// binary mode carries the bytes as they are.
					if eventkit.IsJSONContentType(ct) && (ct != "" || mode == "structured") {
						if !jsonEqual(t, got[0].Data(), []byte(c.Data)) {
							t.Errorf("data %q, want %q", got[0].Data(), c.Data)
						}
					} else if string(got[0].Data()) != c.Data {
						t.Errorf("data %q, want %q", got[0].Data(), c.Data)
					}
				})
			}
		}
	}
	if n < 8 {
		t.Fatalf("ran %d YAML cases, want at least 8", n)
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
