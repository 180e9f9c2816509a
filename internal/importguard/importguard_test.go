package importguard

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/eventkit/eventkit"

// A heavy module, by the import path prefix of its packages.
type heavy struct {
	name   string
	prefix string
}

var (
	otel       = heavy{"OpenTelemetry", "go.opentelemetry.io/otel"}
	prometheus = heavy{"Prometheus", "github.com/prometheus/"}
	jsonschema = heavy{"jsonschema", "github.com/santhosh-tekuri/jsonschema"}
	gobreaker  = heavy{"gobreaker", "github.com/sony/gobreaker"}
	backoff    = heavy{"backoff", "github.com/cenkalti/backoff"}
	xrate      = heavy{"golang.org/x/time/rate", "golang.org/x/time"}
	natsServer = heavy{"nats-server", "github.com/nats-io/nats-server"}
	celgo      = heavy{"cel-go", "github.com/google/cel-go"}
	cesqlLib   = heavy{"CloudEvents SQL", "github.com/cloudevents/sdk-go/sql"}
	yamlv3     = heavy{"yaml.v3", "gopkg.in/yaml.v3"}
	wazero     = heavy{"wazero", "github.com/tetratelabs/wazero"}

	pgx      = heavy{"pgx (PostgreSQL)", "github.com/jackc/"}
	sqlite   = heavy{"modernc.org/sqlite", "modernc.org/"}
	goredis  = heavy{"go-redis", "github.com/redis/go-redis"}
	natsgo   = heavy{"nats.go", "github.com/nats-io/nats.go"}
	franz    = heavy{"franz-go (Kafka)", "github.com/twmb/franz-go"}
	amqp091  = heavy{"amqp091-go (RabbitMQ)", "github.com/rabbitmq/amqp091-go"}
	paho     = heavy{"paho.golang (MQTT)", "github.com/eclipse/paho.golang"}
	natsKeys = heavy{"nkeys/jwt (nats-server)", "github.com/nats-io/jwt"}
)

// cdcSource is the CDC source's code: pgcdc (with its replication
// protocol, pgcdc/internal/pgrepl) and the cdc logic package.
var cdcSource = []heavy{
	{"postgres/pgcdc (CDC source, replication protocol)", module + "/postgres/pgcdc"},
	{"cdc", module + "/cdc"},
}

var (
	drivers       = []heavy{pgx, sqlite, goredis, natsgo, franz, amqp091, paho, natsServer}
	observability = []heavy{otel, prometheus}
	// middlewareLibs are the libraries of the middleware subpackages and the
	// embedded NATS server: what a store or transport must not pull.
	middlewareLibs = []heavy{otel, prometheus, jsonschema, gobreaker, backoff, xrate, natsServer, natsKeys}
)

// without returns hs without the ones in except.
func without(hs []heavy, except ...heavy) []heavy {
	var out []heavy
	for _, h := range hs {
		if !slices.Contains(except, h) {
			out = append(out, h)
		}
	}
	return out
}

func join(lists ...[]heavy) []heavy {
	var out []heavy
	for _, l := range lists {
		for _, h := range l {
			if !slices.Contains(out, h) {
				out = append(out, h)
			}
		}
	}
	return out
}

// A rule: pkg (relative to the module; "" is the root) must not depend on
// any of forbid.
type rule struct {
	pkg    string
	forbid []heavy
	why    string
	// ifPresent: the package is being added by work not merged yet; the
	// rule is skipped, not failed, while it does not exist.
	ifPresent bool
}

func rules() []rule {
	rs := []rule{
		{pkg: "", forbid: join(drivers, observability, middlewareLibs),
			why: "the root package pulls no driver and no observability library"},
	}
	// Stores and transports: their own driver and nothing heavy besides.
	own := map[string][]heavy{
		"memory":   nil,
		"postgres": {pgx},
		"sqlite":   nil, // the user imports modernc.org/sqlite (or another database/sql driver)
		"redis":    {goredis},
		"nats":     {natsgo},
		"kafka":    {franz},
		"amqp":     {amqp091},
		"mqtt":     {paho},
		"cehttp":   nil,

		"postgres/pgqueue": {pgx},
		"postgres/pgcdc":   {pgx},
	}
	for _, pkg := range []string{"memory", "postgres", "postgres/pgqueue", "postgres/pgcdc", "sqlite", "redis", "nats", "kafka", "amqp", "mqtt", "cehttp"} {
		rs = append(rs, rule{pkg: pkg, forbid: join(middlewareLibs, without(drivers, own[pkg]...)),
			why: "a store or transport pulls its own driver and nothing else heavy"})
	}
	// Logic packages: no driver; nothing heavy but middleware's own two.
	for _, pkg := range []string{"dedup", "topic", "binding", "es", "outbox", "cdc", "saga", "cefilter", "deadletter", "probe", "inspect"} {
		rs = append(rs, rule{pkg: pkg, forbid: join(drivers, middlewareLibs),
			why: "a logic package imports no driver and no heavy library"})
	}
	// probe and deadletter answer inspection's item (inspect/stored), not
	// inspect itself, whose filters pull the CloudEvents SQL parser.
	for _, pkg := range []string{"probe", "deadletter", "inspect/stored"} {
		rs = append(rs, rule{pkg: pkg, forbid: []heavy{cesqlLib},
			why: "the inspection item is shared through inspect/stored, without inspect's CloudEvents SQL filters"})
	}
	rs = append(rs,
		rule{pkg: "middleware", forbid: join(drivers, without(middlewareLibs, backoff, xrate)),
			why: "middleware core pulls no driver; OpenTelemetry, Prometheus, gobreaker and jsonschema are in its subpackages"},
		rule{pkg: "middleware/tracing", forbid: join(drivers, without(middlewareLibs, otel, backoff, xrate)),
			why: "each middleware subpackage pulls only its own library"},
		rule{pkg: "middleware/prom", forbid: join(drivers, without(middlewareLibs, prometheus, backoff, xrate)),
			why: "each middleware subpackage pulls only its own library"},
		rule{pkg: "middleware/breaker", forbid: join(drivers, without(middlewareLibs, gobreaker, backoff, xrate)),
			why: "each middleware subpackage pulls only its own library"},
		rule{pkg: "middleware/schema", forbid: join(drivers, without(middlewareLibs, jsonschema, backoff, xrate)),
			why: "each middleware subpackage pulls only its own library"},
		rule{pkg: "es/esprom", forbid: join(drivers, without(middlewareLibs, prometheus)),
			why: "es's Prometheus gauge pulls Prometheus and nothing else heavy"},
		rule{pkg: "saga/sagaprom", forbid: join(drivers, without(middlewareLibs, prometheus)),
			why: "the saga metrics on Prometheus pull Prometheus and nothing else heavy"},
		rule{pkg: "eventkittest", forbid: join(drivers, middlewareLibs),
			why: "the conformance suites, which third-party transports import, pull no driver and no heavy library"},
		rule{pkg: "driver", forbid: join(drivers, middlewareLibs), ifPresent: true,
			why: "the driver layer under every transport pulls no driver and no heavy library"},
		rule{pkg: "transport", forbid: join(drivers, middlewareLibs), ifPresent: true,
			why: "the publisher and subscriber built once on the driver layer pull no driver and no heavy library"},
		rule{pkg: "postgres", forbid: cdcSource,
			why: "a user of the PostgreSQL stores does not link the CDC source or its replication protocol"},
		rule{pkg: "postgres/pgqueue", forbid: cdcSource,
			why: "a user of the PostgreSQL queue does not link the CDC source or its replication protocol"},
		rule{pkg: "pipeline", forbid: join(drivers, middlewareLibs, []heavy{celgo, cesqlLib, yamlv3, wazero}), ifPresent: true,
			why: "the pipeline core is logic: no driver, no heavy library (CEL, SQL, WASM, YAML live in its subpackages)"},
		rule{pkg: "pipeline/pipeprom", forbid: join(drivers, without(middlewareLibs, prometheus), []heavy{celgo, cesqlLib, yamlv3}), ifPresent: true,
			why: "the pipeline metrics pull Prometheus and nothing else heavy"},
		rule{pkg: "pipeline/pipeconf", forbid: join(drivers, []heavy{celgo, cesqlLib, wazero, otel, prometheus}), ifPresent: true,
			why: "the YAML loader pulls yaml.v3 and middleware, never CEL, SQL or a driver: kinds and transports are plugged in"},
		rule{pkg: "pipeline/pipehttp", forbid: join(drivers, []heavy{celgo, cesqlLib, wazero, otel, prometheus}), ifPresent: true,
			why: "the HTTP ingress input is net/http and cehttp: no driver, no heavy library"},
		rule{pkg: "pipeline/pipepg", forbid: join(without(drivers, pgx), []heavy{celgo, cesqlLib, wazero, otel, prometheus}), ifPresent: true,
			why: "the PostgreSQL inputs pull pgx and nothing else heavy"},
		rule{pkg: "nats/natsserver", forbid: join(observability, without(drivers, natsServer, natsgo), []heavy{jsonschema, gobreaker, backoff}),
			why: "the embedded server pulls nats-server and nats.go, nothing else heavy"},
	)
	return rs
}

// pendingRules do not hold yet; each says why. (None today: the last one,
// "postgres does not pull the CDC replication protocol", holds since the
// split of postgres into postgres, pgqueue and pgcdc, and is a rule.)
var pendingRules = []pendingRule{}

// A pendingRule forbids one package of the module to pkg.
type pendingRule struct {
	pkg, dep, why, pending string
}

// pkgInfo is what the test reads of `go list -deps -json`.
type pkgInfo struct {
	ImportPath string
	Imports    []string
	Deps       []string
	Standard   bool
	Error      *struct{ Err string }
}

// goTool returns the go command: the one on PATH, else the one in $GOROOT
// (go test sets it for the test binary's environment when it runs it).
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(os.Getenv("GOROOT"), "bin", "go")
}

// loadGraph returns every package of the module and its dependencies, by
// import path (build constraints of this machine; tests excluded).
func loadGraph(t *testing.T) map[string]*pkgInfo {
	t.Helper()
	cmd := exec.Command(goTool(), "list", "-deps", "-e", "-json=ImportPath,Imports,Deps,Standard,Error", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	graph := map[string]*pkgInfo{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkgInfo
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		graph[p.ImportPath] = &p
	}
	return graph
}

func fullPath(pkg string) string {
	if pkg == "" {
		return module
	}
	return module + "/" + pkg
}

func matches(dep string, h heavy) bool {
	if strings.HasSuffix(h.prefix, "/") {
		return strings.HasPrefix(dep, h.prefix)
	}
	return dep == h.prefix || strings.HasPrefix(dep, h.prefix+"/")
}

// chain returns the shortest import chain from pkg to dep.
func chain(graph map[string]*pkgInfo, pkg, dep string) []string {
	prev := map[string]string{pkg: ""}
	queue := []string{pkg}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p == dep {
			var c []string
			for ; p != ""; p = prev[p] {
				c = append(c, p)
			}
			slices.Reverse(c)
			return c
		}
		if info := graph[p]; info != nil {
			for _, imp := range info.Imports {
				if _, seen := prev[imp]; !seen {
					prev[imp] = p
					queue = append(queue, imp)
				}
			}
		}
	}
	return []string{pkg, "…", dep}
}

// violations returns, per heavy module that pkg pulls although forbidden,
// one offending package and the chain that pulls it.
func violations(graph map[string]*pkgInfo, pkg string, forbid []heavy) ([]string, error) {
	info := graph[pkg]
	if info == nil {
		return nil, fmt.Errorf("package %s not found (renamed or removed? update the rules)", pkg)
	}
	if info.Error != nil {
		return nil, fmt.Errorf("package %s: %s", pkg, info.Error.Err)
	}
	var out []string
	for _, h := range forbid {
		for _, dep := range info.Deps {
			if matches(dep, h) {
				c := chain(graph, pkg, dep)
				out = append(out, fmt.Sprintf("pulls %s (%s): %s", h.name, dep, strings.Join(short(c), " → ")))
				break
			}
		}
	}
	return out, nil
}

func short(c []string) []string {
	out := make([]string, len(c))
	for i, p := range c {
		if p == module {
			out[i] = "eventkit"
		} else {
			out[i] = strings.TrimPrefix(p, module+"/")
		}
	}
	return out
}

func TestImports(t *testing.T) {
	graph := loadGraph(t)
	for _, r := range rules() {
		name := r.pkg
		if name == "" {
			name = "root"
		}
		t.Run(strings.ReplaceAll(name, "/", "_"), func(t *testing.T) {
			if r.ifPresent && graph[fullPath(r.pkg)] == nil {
				t.Skipf("package %s does not exist yet", r.pkg)
			}
			vs, err := violations(graph, fullPath(r.pkg), r.forbid)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range vs {
				t.Errorf("%s %s; rule: %s", name, v, r.why)
			}
		})
	}
}

func TestPendingImports(t *testing.T) {
	graph := loadGraph(t)
	for _, r := range pendingRules {
		vs, err := violations(graph, fullPath(r.pkg), []heavy{{name: strings.TrimPrefix(r.dep, module+"/"), prefix: r.dep}})
		if err != nil {
			t.Fatal(err)
		}
		if len(vs) == 0 {
			t.Errorf("pending rule now holds, make it a normal rule: %s (%s)", r.why, r.pkg)
			continue
		}
		for _, v := range vs {
			t.Logf("PENDING: %s %s; rule: %s; pending because %s", r.pkg, v, r.why, r.pending)
		}
	}
}

// The checker finds a forbidden module and names the chain that pulls it,
// on a graph made by hand.
func TestViolationsNamesTheChain(t *testing.T) {
	graph := map[string]*pkgInfo{
		module + "/postgres":                             {ImportPath: module + "/postgres", Imports: []string{module + "/middleware", "github.com/jackc/pgx/v5"}, Deps: []string{module + "/middleware", "github.com/jackc/pgx/v5", "github.com/prometheus/client_golang/prometheus"}},
		module + "/middleware":                           {ImportPath: module + "/middleware", Imports: []string{"github.com/prometheus/client_golang/prometheus"}, Deps: []string{"github.com/prometheus/client_golang/prometheus"}},
		"github.com/prometheus/client_golang/prometheus": {ImportPath: "github.com/prometheus/client_golang/prometheus"},
		"github.com/jackc/pgx/v5":                        {ImportPath: "github.com/jackc/pgx/v5"},
	}
	vs, err := violations(graph, module+"/postgres", []heavy{otel, prometheus, goredis})
	if err != nil {
		t.Fatal(err)
	}
	want := "pulls Prometheus (github.com/prometheus/client_golang/prometheus): postgres → middleware → github.com/prometheus/client_golang/prometheus"
	if len(vs) != 1 || vs[0] != want {
		t.Fatalf("violations = %q; want [%q]", vs, want)
	}
	if vs, _ := violations(graph, module+"/postgres", []heavy{pgx}); len(vs) != 1 {
		t.Fatalf("pgx prefix github.com/jackc/ not matched: %q", vs)
	}
	if vs, _ := violations(graph, module+"/postgres", []heavy{{"x", "github.com/jackc/pgx/v"}}); len(vs) != 0 {
		t.Fatalf("a prefix without a trailing slash matched a longer path element: %q", vs)
	}
	if _, err := violations(graph, module+"/nosuch", nil); err == nil {
		t.Fatal("no error for a package that does not exist")
	}
}
