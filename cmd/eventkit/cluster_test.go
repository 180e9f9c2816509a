package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/hub"
	"github.com/eventkit/eventkit/internal/testkit"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"gopkg.in/yaml.v3"
)

// clusterChildEnv names the configuration file of an "eventkit serve"
// child of TestNATSClusterKillNodeAndServer.
const clusterChildEnv = "EVENTKIT_CLUSTER_TEST_SERVE_CONFIG"

// The load of TestNATSClusterKillNodeAndServer: clusterClients clients post
// clusterEvents events in all through the two servers.
const (
	clusterEvents  = 3000
	clusterClients = 8
	clusterStream  = "EVENTKIT"
	clusterTopics  = "cluster.>"
)

// TestNATSClusterKillNodeAndServer runs a 3-node JetStream cluster on
// loopback (private nats-server processes), and two "eventkit serve"
// processes on it with a stream of three replicas and a webhook
// subscription. While eight clients post through both servers (each
// client retries an unanswered event, with the same id, on the other
// server), the node leading the stream and then one of the two servers
// are killed with SIGKILL. Every event is acknowledged in the end; the
// stream holds each exactly once (counted by id); the webhook receives
// each at least once.
func TestNATSClusterKillNodeAndServer(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster crash test")
	}
	nodes := startNATSCluster(t, 3)
	urls := make([]string, len(nodes))
	for i, n := range nodes {
		urls[i] = "nats://" + n.Addr()
	}
	js := clusterJetStream(t, urls)
	sink := newCountingSink(t)
	cfg := hub.Config{
		Listen: "127.0.0.1:0",
		Broker: hub.BrokerConfig{URL: strings.Join(urls, ","), Replicas: 3, Stream: clusterStream},
		Subscriptions: []hub.SubscriptionConfig{{
			Name: "sink", Topic: clusterTopics, URL: sink.URL, AllowPrivateTargets: true,
			Concurrency: 8, MaxAttempts: 1000,
			Backoff: hub.Duration(100 * time.Millisecond), MaxBackoff: hub.Duration(time.Second),
		}},
	}
	servers := []*serveChild{startServeChild(t, cfg), startServeChild(t, cfg)}
	leader := streamLeader(t, js)

	load := newClusterLoad([]string{servers[0].url, servers[1].url})
	start := time.Now()
	loaded := make(chan struct{})
	go func() {
		defer close(loaded)
		load.run(clusterEvents, clusterClients)
	}()
	// Kill the stream's leader once a quarter is acknowledged, then the
	// second server at half.
	testkit.Eventually(t, 2*time.Minute, "a quarter of the events acknowledged", func() bool { return load.acked.Load() >= clusterEvents/4 })
	firstQuarter := time.Since(start)
	atNodeKill := load.acked.Load()
	nodes[leader].Kill()
	t.Logf("killed nats node n%d (the stream's leader) at %d acknowledged events", leader, atNodeKill)
	testkit.Eventually(t, 2*time.Minute, "half of the events acknowledged", func() bool { return load.acked.Load() >= clusterEvents/2 })
	atServerKill := load.acked.Load()
	if err := servers[1].Kill(); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed the second eventkit serve at %d acknowledged events", atServerKill)
	testkit.Receive(t, loaded, 3*time.Minute, "the load to end")
	took := time.Since(start)
	if load.acked.Load() <= atServerKill {
		t.Fatalf("no event was acknowledged after the kills: the test proves nothing")
	}
	if err := load.failure(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d events acknowledged in %v (%.0f events/s; %.0f events/s before the kills), %d requests failed and were retried",
		clusterEvents, took.Round(time.Millisecond), clusterEvents/took.Seconds(),
		float64(clusterEvents/4)/firstQuarter.Seconds(), load.retries.Load())

	stored := storedIDs(t, js)
	checkExactlyOnce(t, stored, clusterEvents)
	testkit.Eventually(t, 2*time.Minute, "every event delivered to the webhook", func() bool { return sink.distinct() == clusterEvents })
	if extra := sink.total() - clusterEvents; extra > 0 {
		t.Logf("the webhook received %d events more than once (at-least-once delivery)", extra)
	}
	if ids := sink.unknown(stored); len(ids) > 0 {
		t.Fatalf("the webhook received events that are not stored: %v", ids)
	}
}

// TestNATSClusterServeChild is "eventkit serve" in a process of its own
// for TestNATSClusterKillNodeAndServer; it prints "LISTENING <url>" once
// it serves.
func TestNATSClusterServeChild(t *testing.T) {
	path := os.Getenv(clusterChildEnv)
	if path == "" {
		t.Skip("the server process of TestNATSClusterKillNodeAndServer")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	found := make(chan string, 1)
	logs := &listenWatcher{found: found}
	served := make(chan error, 1)
	go func() { served <- runServe(ctx, []string{"--config", path}, io.Discard, logs) }()
	select {
	case u := <-found:
		fmt.Printf("LISTENING %s\n", u)
	case err := <-served:
		t.Fatalf("serve: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("serve: %v", err)
	}
}

// listenWatcher passes the server's log to stderr and sends the base URL
// of its startup line on found.
type listenWatcher struct {
	mu    sync.Mutex
	buf   []byte
	found chan string
}

var startupLineRE = regexp.MustCompile(`events="POST (http://[^ ]+)/events"`)

func (w *listenWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.found != nil {
		w.buf = append(w.buf, p...)
		if m := startupLineRE.FindSubmatch(w.buf); m != nil {
			w.found <- string(m[1])
			w.found, w.buf = nil, nil
		}
	}
	return os.Stderr.Write(p)
}

// serveChild is an "eventkit serve" process.
type serveChild struct {
	*eventkittest.Child
	url string
}

// startServeChild writes cfg to a file and starts "eventkit serve" on it
// in a child process.
func startServeChild(t *testing.T, cfg hub.Config) *serveChild {
	t.Helper()
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "eventkit.yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	c := eventkittest.StartChild(t, "^TestNATSClusterServeChild$", clusterChildEnv+"="+path)
	u := c.WaitLine(t, "LISTENING ", 2*time.Minute)
	return &serveChild{Child: c, url: u}
}

// startNATSCluster starts n nats-server processes with JetStream, routed
// to each other on loopback as one cluster.
func startNATSCluster(t *testing.T, n int) []*eventkittest.ServerProcess {
	t.Helper()
	routes := make([]string, n)
	for i, p := range freePorts(t, n) {
		routes[i] = "nats://127.0.0.1:" + strconv.Itoa(p)
	}
	nodes := make([]*eventkittest.ServerProcess, n)
	for i := range nodes {
		nodes[i] = eventkittest.StartServerProcess(t, eventkittest.ServerCommand{
			Program: "nats-server",
			Args: func(port int, dir string) []string {
				return []string{"-a", "127.0.0.1", "-p", strconv.Itoa(port), "-n", "n" + strconv.Itoa(i),
					"-js", "-sd", dir, "--cluster_name", "eventkit-test",
					"--cluster", routes[i], "--routes", strings.Join(routes, ",")}
			},
		})
	}
	return nodes
}

// freePorts returns n ports of 127.0.0.1 that were free a moment ago.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close() // held until all are chosen: n different ports
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports
}

// clusterJetStream connects to the cluster and waits until JetStream
// answers (the cluster elected its meta leader).
func clusterJetStream(t *testing.T, urls []string) jetstream.JetStream {
	t.Helper()
	nc, err := natsgo.Connect(strings.Join(urls, ","), natsgo.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, time.Minute, "the JetStream cluster", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := js.AccountInfo(ctx)
		return err == nil
	})
	return js
}

// streamLeader returns the index of the node that leads the stream ("n0"
// is 0), once the stream has its three replicas.
func streamLeader(t *testing.T, js jetstream.JetStream) int {
	t.Helper()
	leader := -1
	testkit.Eventually(t, time.Minute, "the stream's leader", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, clusterStream)
		if err != nil {
			return false
		}
		c := s.CachedInfo().Cluster
		if s.CachedInfo().Config.Replicas != 3 || c == nil || len(c.Replicas) != 2 {
			return false
		}
		n, err := strconv.Atoi(strings.TrimPrefix(c.Leader, "n"))
		leader = n
		return err == nil
	})
	return leader
}

// clusterLoad posts events through several servers: each client starts
// on one and moves to the next when a request fails, retrying the same
// event (same id) until it is acknowledged.
type clusterLoad struct {
	servers []string
	client  *http.Client
	next    atomic.Int64
	acked   atomic.Int64
	retries atomic.Int64

	mu  sync.Mutex
	err error // the first event given up on
}

func newClusterLoad(servers []string) *clusterLoad {
	return &clusterLoad{servers: servers, client: &http.Client{Timeout: 15 * time.Second}}
}

// run posts events 0 to total-1 from clients goroutines and returns when
// each is acknowledged or given up on.
func (l *clusterLoad) run(total, clients int) {
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			server := c % len(l.servers)
			for i := l.next.Add(1) - 1; i < int64(total); i = l.next.Add(1) - 1 {
				if !l.post(&server, "ev-"+strconv.FormatInt(i, 10)) {
					return
				}
			}
		})
	}
	wg.Wait()
	l.client.CloseIdleConnections()
}

// post posts one event until a server acknowledges it (2xx), moving to
// the next server after each failure; it gives up after two minutes.
func (l *clusterLoad) post(server *int, id string) bool {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		status, err := l.postOnce(l.servers[*server], id)
		if err == nil && status/100 == 2 {
			l.acked.Add(1)
			return true
		}
		if time.Now().After(deadline) {
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.err == nil {
				l.err = fmt.Errorf("event %s not acknowledged within 2m: status %d, %v", id, status, err)
			}
			return false
		}
		l.retries.Add(1)
		*server = (*server + 1) % len(l.servers)
	}
}

func (l *clusterLoad) postOnce(base, id string) (int, error) {
	req, err := http.NewRequest(http.MethodPost, base+"/events", strings.NewReader(`{"id":"`+id+`"}`))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Ce-Specversion", "1.0")
	req.Header.Set("Ce-Id", id)
	req.Header.Set("Ce-Source", "/cluster-test")
	req.Header.Set("Ce-Type", "cluster.test")
	resp, err := l.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

func (l *clusterLoad) failure() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// storedIDs reads the whole stream and counts its events by id.
func storedIDs(t *testing.T, js jetstream.JetStream) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stream jetstream.Stream
	testkit.Eventually(t, time.Minute, "the stream's state", func() bool {
		s, err := js.Stream(ctx, clusterStream)
		stream = s
		return err == nil
	})
	state := stream.CachedInfo().State
	ids := map[string]int{}
	for seq := state.FirstSeq; seq <= state.LastSeq; seq++ {
		m := getMsg(t, ctx, stream, seq)
		e, err := eventkit.UnmarshalEvent(m.Data)
		if err != nil {
			t.Fatalf("stored message %d on %s: %v", seq, m.Subject, err)
		}
		if !strings.HasPrefix(m.Subject, "events.cluster.") {
			t.Errorf("stored message %d on %s (event %s)", seq, m.Subject, e.ID())
		}
		ids[e.ID()]++
	}
	if n := state.LastSeq - state.FirstSeq + 1; n != state.Msgs {
		t.Fatalf("the stream holds %d messages between sequences %d and %d", state.Msgs, state.FirstSeq, state.LastSeq)
	}
	return ids
}

// getMsg returns the stream's message seq, asking again while the
// cluster cannot answer (a new leader is being elected).
func getMsg(t *testing.T, ctx context.Context, s jetstream.Stream, seq uint64) *jetstream.RawStreamMsg {
	t.Helper()
	for {
		m, err := s.GetMsg(ctx, seq)
		if err == nil {
			return m
		}
		select {
		case <-ctx.Done():
			t.Fatalf("stored message %d: %v", seq, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestNATSClusterReplicasConfig checks broker.replicas: 1 to 5, and more
// than one only on an external NATS.
func TestNATSClusterReplicasConfig(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		ok   bool
	}{
		{"broker: {url: 'nats://a:4222,nats://b:4222', replicas: 3}", true},
		{"broker: {replicas: 1}", true},
		{"broker: {url: 'nats://a:4222', replicas: 6}", false},
		{"broker: {url: 'nats://a:4222', replicas: -1}", false},
		{"broker: {replicas: 3}", false},
	} {
		c, err := hub.ParseConfig([]byte(tc.yaml))
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.yaml, err)
		}
		if err == nil && c.Broker.Replicas == 0 {
			t.Errorf("%s: replicas not read", tc.yaml)
		}
	}
}

// checkExactlyOnce fails t unless stored holds ev-0 to ev-(total-1), each
// once, and nothing else.
func checkExactlyOnce(t *testing.T, stored map[string]int, total int) {
	t.Helper()
	var missing, dup []string
	for i := range total {
		id := "ev-" + strconv.Itoa(i)
		switch stored[id] {
		case 1:
		case 0:
			missing = append(missing, id)
		default:
			dup = append(dup, fmt.Sprintf("%s×%d", id, stored[id]))
		}
	}
	if len(missing) > 0 || len(dup) > 0 || len(stored) != total {
		t.Fatalf("the stream holds %d distinct events for %d acknowledged: missing %v, duplicated %v", len(stored), total, missing, dup)
	}
}

// countingSink is a webhook that counts deliveries by event id.
type countingSink struct {
	*httptest.Server
	mu   sync.Mutex
	seen map[string]int
	n    int
}

func newCountingSink(t *testing.T) *countingSink {
	s := &countingSink{seen: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		s.mu.Lock()
		s.seen[r.Header.Get("Ce-Id")]++
		s.n++
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *countingSink) distinct() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

func (s *countingSink) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// unknown returns the ids delivered that are not in stored.
func (s *countingSink) unknown(stored map[string]int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for id := range s.seen {
		if stored[id] == 0 {
			ids = append(ids, id)
		}
	}
	return ids
}
