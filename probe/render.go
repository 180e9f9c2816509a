package probe

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"html/template"
	"io"
	"strings"
	"time"

	"github.com/eventkit/eventkit"
)

// row is one item of a timeline decoded for drawing.
type row struct {
	At                                time.Time
	Position, Topic, Source, Type, ID string
	Subject, Correlation, Causation   string
	Data                              string
	Undecodable                       string
}

func rows(tl Timeline) []row {
	out := make([]row, 0, len(tl.Items))
	for _, it := range tl.Items {
		r := row{At: it.Stored, Position: it.Position, Topic: it.Topic}
		e, err := eventkit.UnmarshalEvent(it.Event)
		if err != nil {
			r.Undecodable = err.Error()
			out = append(out, r)
			continue
		}
		r.Source, r.Type, r.ID, r.Subject = e.Source(), e.Type(), e.ID(), e.Subject()
		r.Correlation, _ = e.Extensions()[ExtCorrelationID].(string)
		r.Causation, _ = e.Extensions()["causationid"].(string)
		if r.At.IsZero() {
			r.At = e.Time()
		}
		if d := e.Data(); len(d) > 0 {
			var buf bytes.Buffer
			if eventkit.IsJSONContentType(e.DataContentType()) && json.Indent(&buf, d, "", "  ") == nil {
				r.Data = buf.String()
			} else if !e.DataBase64 {
				r.Data = string(d)
			} else {
				r.Data = fmt.Sprintf("(%d bytes of %s)", len(d), e.DataContentType())
			}
		}
		out = append(out, r)
	}
	return out
}

// Mermaid returns tl as a Mermaid sequence diagram: one participant per
// event source and per topic, one arrow per event from its source to its
// topic, labelled with its type and id. Every name is escaped, so that no
// value of an event can end a line or a statement of the diagram.
func (tl Timeline) Mermaid() string {
	var b strings.Builder
	b.WriteString("sequenceDiagram\n")
	fmt.Fprintf(&b, "    title %s\n", mermaidText(tl.Key.String()))
	ids := map[string]string{}
	participant := func(kind, name string) string {
		k := kind + "\x00" + name
		if id, ok := ids[k]; ok {
			return id
		}
		id := fmt.Sprintf("p%d", len(ids)+1)
		ids[k] = id
		fmt.Fprintf(&b, "    participant %s as %s\n", id, mermaidText(name))
		return id
	}
	rs := rows(tl)
	for _, r := range rs {
		if r.Undecodable == "" {
			participant("source", r.Source)
		}
		participant("topic", r.Topic)
	}
	for _, r := range rs {
		to := participant("topic", r.Topic)
		if r.Undecodable != "" {
			fmt.Fprintf(&b, "    Note over %s: undecodable event at %s\n", to, mermaidText(r.Position))
			continue
		}
		from := participant("source", r.Source)
		label := r.Type + " " + r.ID
		if r.Subject != "" {
			label += " (" + r.Subject + ")"
		}
		fmt.Fprintf(&b, "    %s->>%s: %s\n", from, to, mermaidText(label))
	}
	return b.String()
}

// mermaidText escapes s for a Mermaid label: line breaks, the statement
// separator and the characters Mermaid reads as markup become entity
// codes (#NN;), which Mermaid shows as the character.
func mermaidText(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r < 0x20 || r == 0x7f || r == 0x2028 || r == 0x2029:
			b.WriteString(" ")
		case strings.ContainsRune("#;:<>&\"%{}[]()`|", r):
			fmt.Fprintf(&b, "#%d;", r)
		default:
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "#32;"
	}
	return b.String()
}

var page = template.Must(template.New("probe").Funcs(template.FuncMap{"txt": text}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>eventkit probe: {{txt .Key}}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em}
ol{list-style:none;padding:0;border-left:3px solid #4a7;margin-left:.5em}
li{position:relative;padding:.4em 0 .8em 1.2em}
li::before{content:"";position:absolute;left:-.5em;top:.8em;width:.7em;height:.7em;border-radius:50%;background:#4a7}
.t{color:#666;font-family:monospace}
.topic{font-weight:bold}
.type{background:#eef;padding:0 .3em;border-radius:3px}
dl{display:grid;grid-template-columns:max-content auto;gap:0 1em;margin:.3em 0}
dt{color:#666}
pre{background:#f6f6f6;padding:.5em;overflow:auto;max-height:20em}
.bad{color:#a00}
</style>
</head>
<body>
<h1>eventkit probe: {{txt .Key}}</h1>
<p>{{len .Rows}} event(s){{if .Truncated}}, more matched than shown{{end}}.</p>
<ol>
{{range .Rows}}<li><span class="t">{{.At.UTC.Format "2006-01-02T15:04:05.000Z07:00"}}</span> <span class="topic">{{txt .Topic}}</span> {{if .Undecodable}}<span class="bad">undecodable: {{txt .Undecodable}}</span>{{else}}<span class="type">{{txt .Type}}</span>
<dl><dt>id</dt><dd>{{txt .ID}}</dd><dt>source</dt><dd>{{txt .Source}}</dd>{{if .Subject}}<dt>subject</dt><dd>{{txt .Subject}}</dd>{{end}}{{if .Correlation}}<dt>correlationid</dt><dd>{{txt .Correlation}}</dd>{{end}}{{if .Causation}}<dt>causationid</dt><dd>{{txt .Causation}}</dd>{{end}}<dt>position</dt><dd>{{txt .Position}}</dd></dl>
{{if .Data}}<pre>{{txt .Data}}</pre>{{end}}{{end}}</li>
{{end}}</ol>
<h2>Mermaid sequence diagram</h2>
<pre>{{txt .Mermaid}}</pre>
</body>
</html>
`))

// WriteHTML writes tl as a self-contained HTML page: the events as a timeline,
// each with its attributes and data pretty-printed, and the Mermaid source
// of the diagram. It loads nothing (no script, no external URL, a
// Content-Security-Policy that forbids loading), so it opens offline.
func (tl Timeline) WriteHTML(w io.Writer) error {
	return page.Execute(w, struct {
		Key       string
		Rows      []row
		Truncated bool
		Mermaid   string
	}{tl.Key.String(), rows(tl), tl.Truncated, tl.Mermaid()})
}

// text escapes s for the content of an element, with ':' written as a
// character reference too: the page shows the events' URLs (a source is
// often one) but holds no URL a tool could mistake for a resource.
func text(s string) template.HTML {
	return template.HTML(strings.ReplaceAll(html.EscapeString(s), ":", "&#58;"))
}
