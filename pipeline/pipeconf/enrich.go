package pipeconf

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/pipeline"
	"gopkg.in/yaml.v3"
)

// enrichStage builds the "enrich" processor kind:
//
//	enrich:
//	  key: data.customer            # data.<path>, or an attribute name
//	  http: {url: "http://crm/customers/{key}", headers: {Authorization: Bearer x}}
//	  # or function: customers (Loader.Lookups), file: customers.yaml, values: {c1: {...}}
//	  into: customer                # a field of the data receives the value
//	  attributes: {tier: tier}      # extension ← field of the value
//	  timeout: 2s                   # each lookup (5s)
//	  cache: {size: 10000, ttl: 1m} # size -1: no cache
//	  on_error: fail                # fail (retry, dead letter, redelivery), pass or drop
//	  on_missing: fail
func (b *build) enrichStage(name string, n *Node, opts []pipeline.Option) *pipeline.Stage {
	cfg := pipeline.Enrichment{Into: n.String("into", false), Timeout: n.Duration("timeout", 0)}
	key := n.String("key", true)
	if path, ok := strings.CutPrefix(key, "data."); ok {
		cfg.Key = pipeline.DataField(path)
	} else if key != "" {
		cfg.Key = func(e event.Event) (string, error) { return attribute(e, key), nil }
	}
	for _, kv := range n.StringMap("attributes") {
		if cfg.Attributes == nil {
			cfg.Attributes = map[string]string{}
		}
		cfg.Attributes[kv[0]] = kv[1]
	}
	if c := n.Map("cache"); c != nil {
		cfg.CacheSize, cfg.CacheTTL = c.Int("size", 0), c.Duration("ttl", 0)
		c.Done()
	}
	for _, p := range []struct {
		key string
		to  *pipeline.Policy
	}{{"on_error", &cfg.OnError}, {"on_missing", &cfg.OnMissing}} {
		pol, err := pipeline.ParsePolicy(n.String(p.key, false))
		if err != nil {
			n.Errorf(p.key, "%v", err)
		}
		*p.to = pol
	}
	if cfg.Into == "" && len(cfg.Attributes) == 0 {
		n.Errorf("", "into or attributes is required: where the value goes")
	}
	cfg.Lookup = b.lookup(n)
	if cfg.Key == nil || cfg.Lookup == nil {
		return nil
	}
	return pipeline.Enrich(name, cfg, opts...)
}

// lookup builds the one lookup an enrich names.
func (b *build) lookup(n *Node) pipeline.Lookup {
	var given []string
	for _, k := range []string{"http", "function", "file", "values"} {
		if n.Has(k) {
			given = append(given, k)
			n.used[k] = true
		}
	}
	if len(given) != 1 {
		n.Errorf("", "want one lookup (http, function, file or values), got %v", given)
		return nil
	}
	switch given[0] {
	case "http":
		h := n.Map("http")
		if h == nil {
			return nil
		}
		defer h.Done()
		url := h.String("url", true)
		if url != "" && !strings.Contains(url, "{key}") {
			h.Errorf("url", "the url needs {key}, where the key goes")
		}
		header := http.Header{}
		for _, kv := range h.StringMap("headers") {
			header.Add(kv[0], kv[1])
		}
		return pipeline.HTTPLookup(url, nil, header)
	case "function":
		fname := n.String("function", true)
		fn := b.l.Lookups[fname]
		if fn == nil {
			n.Errorf("function", "no lookup %q is registered (registered: %v)", fname, slices.Sorted(mapKeys(b.l.Lookups)))
		}
		return fn
	case "file":
		path := n.String("file", true)
		if !filepath.IsAbs(path) {
			path = filepath.Join(filepath.Dir(n.file), path)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			n.Errorf("file", "%v", err)
			return nil
		}
		var table map[string]map[string]any
		if err := yaml.Unmarshal(data, &table); err != nil {
			n.Errorf("file", "%s: want a mapping of keys to mappings: %v", path, err)
			return nil
		}
		return pipeline.MapLookup(table)
	}
	v := n.value("values")
	n.used["values"] = true
	var table map[string]map[string]any
	if err := v.Decode(&table); err != nil {
		n.Errorf("values", "want a mapping of keys to mappings: %v", err)
		return nil
	}
	return pipeline.MapLookup(table)
}
