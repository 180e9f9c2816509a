package hub_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/cehttp"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/hub"
	eknats "github.com/eventkit/eventkit/nats"
	"github.com/eventkit/eventkit/nats/natsserver"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
)

// TestEmbeddedBrokerSubscriptionSurvivesRestart runs the server on the
// embedded JetStream default: events posted while the webhook is down are
// kept by the durable subscription across a graceful restart and delivered
// once it is back.
func TestEmbeddedBrokerSubscriptionSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	down := newWebhook(t, 0, http.StatusServiceUnavailable)
	cfg := hub.Config{DataDir: dir, Subscriptions: []hub.SubscriptionConfig{
		{Name: "hook", Topic: "orders.>", URL: down.srv.URL, MaxAttempts: 1000, Backoff: hub.Duration(50 * time.Millisecond), MaxBackoff: hub.Duration(200 * time.Millisecond)},
	}}
	s := start(t, cfg)
	if s.DataDir() != dir {
		t.Fatalf("DataDir %q", s.DataDir())
	}
	items := sse(t, s.URL(), ">")
	for i := 0; i < 20; i++ {
		if r := postEvent(t, s.URL(), strconv.Itoa(i), "orders.created"); r.StatusCode != http.StatusNoContent {
			t.Fatalf("POST: %d", r.StatusCode)
		}
	}
	for i := 0; i < 20; i++ {
		select {
		case it := <-items:
			if it.Topic != "orders.created" {
				t.Fatalf("stream topic %q", it.Topic)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("stream: %d of 20 events", i)
		}
	}
	// Every event was tried (and refused) before the stop.
	waitFor(t, "20 refused deliveries", func() bool { return down.attempts.Load() >= 20 })
	if err := s.stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	up := newWebhook(t, 0, 0)
	cfg.Subscriptions[0].URL = up.srv.URL
	s2 := start(t, cfg)
	// Usually within a second. A message JetStream was handing to the
	// first hub's pull request as it stopped (the server delivers
	// asynchronously, after the client's unsubscription) is pending
	// without anyone holding it and comes back after the ack wait (30 s):
	// the bound allows one ack wait.
	waitFor(t, "20 events delivered after the restart", func() bool { d, _ := up.count(); return d == 20 })
	if err := s2.stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
}

// The crash test re-executes the test binary as the server process.
const childEnv = "EVENTKIT_HUB_TEST_CHILD_DIR"

// TestMain runs the server when re-executed as the crash test's child.
func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		os.Exit(runChild(dir))
	}
	code := m.Run()
	if code == 0 {
		// Every goroutine of the servers and their brokers is stopped.
		http.DefaultClient.CloseIdleConnections()
		if err := goleak.Find(goleak.IgnoreTopFunction("internal/poll.runtime_pollWait")); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// childSecretEnv, when set, makes the crash test's child require requests
// signed with its value (auth.hmac_secret).
const childSecretEnv = "EVENTKIT_HUB_TEST_CHILD_SECRET"

func runChild(dir string) int {
	cfg := hub.Config{DataDir: dir, Listen: "127.0.0.1:0"}
	if os.Getenv(childSecretEnv) != "" {
		cfg.Auth.HMACSecret = "env:" + childSecretEnv
	}
	s, err := hub.New(cfg, hub.WithLogger(quiet))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	fmt.Printf("LISTENING %s\n", s.URL())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := s.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

type child struct {
	*eventkittest.Child
	url string
}

// startChild starts a server process on dir, requests unsigned.
func startChild(t *testing.T, dir string) *child {
	t.Helper()
	return startSigningChild(t, dir, nil)
}

// startSigningChild starts a server process on dir that requires
// requests signed with secret (none when nil).
func startSigningChild(t *testing.T, dir string, secret []byte) *child {
	t.Helper()
	c := eventkittest.StartChild(t, "^$", childEnv+"="+dir, childSecretEnv+"="+string(secret))
	u := c.WaitLine(t, "LISTENING ", 60*time.Second)
	waitHealthy(t, u)
	return &child{Child: c, url: u}
}

// crashLoad posts the events e-0 … e-(total-1) from several clients,
// signed when secret is set, and records which were acknowledged.
type crashLoad struct {
	secret  []byte
	client  *http.Client
	next    atomic.Int64
	acked   sync.Map // id → true: answered 204
	retry   sync.Map // id → true: not answered (the server died)
	nacked  atomic.Int64
	refused atomic.Int64 // answered, but not 204
}

// request is the signed (when l.secret is set) POST of event id.
func (l *crashLoad) request(base, id string) *http.Request {
	body := `{"id":"` + id + `"}`
	req, _ := http.NewRequest(http.MethodPost, base+"/events", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("ce-specversion", "1.0")
	req.Header.Set("ce-id", id)
	req.Header.Set("ce-source", "/crash-test")
	req.Header.Set("ce-type", "crash.test")
	if l.secret != nil {
		if err := cehttp.SignRequest(req, []byte(body), "", l.secret); err != nil {
			panic(err)
		}
	}
	return req
}

// post sends one event; it reports whether the server answered.
func (l *crashLoad) post(base, id string) bool {
	resp, err := l.client.Do(l.request(base, id))
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	switch {
	case err == nil && resp.StatusCode == http.StatusNoContent:
		l.acked.Store(id, true)
		l.retry.Delete(id)
	case err == nil:
		l.refused.Add(1)
	default:
		// Not acknowledged (the server died): the client would retry;
		// this one does after the restart.
		l.nacked.Add(1)
		l.retry.Store(id, true)
	}
	return err == nil
}

// run posts from clients goroutines until stopAt events were taken or the
// server stops answering.
func (l *crashLoad) run(base string, clients int, stopAt int64) {
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for {
				i := l.next.Add(1) - 1
				if i >= stopAt {
					l.next.Add(-1) // not taken
					return
				}
				if !l.post(base, "e-"+strconv.FormatInt(i, 10)) {
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestKill9LosesNothingAcknowledged posts 10,000 events from 16 clients to
// a server process and kills it with SIGKILL while they are posting; a
// restarted server takes the rest and the retries of what was not
// answered; every event that was answered 2xx is in the store afterwards,
// once. The signed variant runs the same load with RFC 9421 signatures
// required: a retry is signed anew (a new nonce), and the restarted
// server's empty replay cache takes nothing twice.
func TestKill9LosesNothingAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test")
	}
	for _, tc := range []struct {
		name   string
		secret []byte
	}{{"unsigned", nil}, {"signed", []byte("crash-test-secret")}} {
		t.Run(tc.name, func(t *testing.T) { kill9Round(t, tc.secret) })
	}
}

func kill9Round(t *testing.T, secret []byte) {
	dir := t.TempDir()
	const total, clients = 10000, 16
	l := &crashLoad{secret: secret, client: &http.Client{Timeout: 30 * time.Second}}

	c1 := startSigningChild(t, dir, secret)
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		for countMap(&l.acked) < 3000 {
			time.Sleep(5 * time.Millisecond)
		}
		_ = c1.Kill()
	}()
	l.run(c1.url, clients, total)
	<-killed
	first := countMap(&l.acked)
	t.Logf("acknowledged before SIGKILL: %d (%d requests unanswered)", first, l.nacked.Load())
	if first >= total {
		t.Fatalf("the server was killed after every event was acknowledged; the test proves nothing")
	}

	c2 := startSigningChild(t, dir, secret)
	// Retry what was not acknowledged, then post the rest.
	var ids []string
	l.retry.Range(func(k, _ any) bool { ids = append(ids, k.(string)); return true })
	for _, id := range ids {
		if !l.post(c2.url, id) {
			t.Fatalf("retry of %s: no answer", id)
		}
	}
	l.run(c2.url, clients, total)
	if n, r := countMap(&l.acked), l.refused.Load(); n != total || r != 0 {
		t.Fatalf("acknowledged %d of %d events, %d refused", n, total, r)
	}
	// Stop the second server gracefully and count what the store holds.
	_ = c2.Signal(syscall.SIGTERM)
	if err := c2.Wait(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	stored := readStore(t, filepath.Join(dir, "nats"))
	missing, dup := 0, 0
	l.acked.Range(func(k, _ any) bool {
		if stored[k.(string)] == 0 {
			missing++
		}
		return true
	})
	for _, n := range stored {
		dup += n - 1
	}
	if missing > 0 || dup > 0 {
		t.Fatalf("%d acknowledged events are missing from the store, %d stored twice (%d distinct stored)", missing, dup, len(stored))
	}
	t.Logf("all %d acknowledged events stored once", total)
}

func countMap(m *sync.Map) int {
	n := 0
	m.Range(func(_, _ any) bool { n++; return true })
	return n
}

// readStore opens the store directory with an embedded server and returns
// the ids of every event in the hub's stream, each with the number of
// times it is stored.
func readStore(t *testing.T, dir string) map[string]int {
	t.Helper()
	emb, err := natsserver.Run(natsserver.WithStoreDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Shutdown(context.Background())
	nc, err := emb.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	tr, err := eknats.New(nc, eknats.WithStream(eknats.StreamConfig{Name: "EVENTKIT", Subjects: []string{"events.>"}, MaxAge: hub.DefaultRetention}))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sub, err := tr.Subscribe(ctx, "events.>", eventkit.FromStart(), eventkit.WithGroup("verify"))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	info, err := tr.JetStream().Stream(ctx, "EVENTKIT")
	if err != nil {
		t.Fatal(err)
	}
	want := info.CachedInfo().State.Msgs
	got := map[string]int{}
	var n uint64
	for n < want {
		select {
		case m := <-sub.Messages():
			got[m.Event.ID()]++
			_ = m.Ack()
			n++
		case <-ctx.Done():
			t.Fatalf("read %d of %d stored events", n, want)
		}
	}
	return got
}

// TestExternalNATS runs the server on a NATS server given by URL
// (EVENTKIT_NATS_URL), in a stream and subject prefix of its own.
func TestExternalNATS(t *testing.T) {
	url := eventkittest.ServerAddr(t, "EVENTKIT_NATS_URL", eventkittest.DefaultNATSURL, eventkittest.DialProbe)
	stream := eventkittest.UniqueName("HUB_")
	cfg := hub.Config{Broker: hub.BrokerConfig{URL: url, Stream: stream, SubjectPrefix: eventkittest.UniqueName("hub")}}
	t.Cleanup(func() {
		nc, err := natsgo.Connect(url)
		if err != nil {
			return
		}
		defer nc.Close()
		if js, err := jetstream.New(nc); err == nil {
			_ = js.DeleteStream(context.Background(), stream)
		}
	})
	s := start(t, cfg)
	if s.DataDir() != "" {
		t.Errorf("DataDir %q with an external broker", s.DataDir())
	}
	items := sse(t, s.URL(), "orders.*")
	if r := postEvent(t, s.URL(), "x-1", "orders.created"); r.StatusCode != http.StatusNoContent {
		t.Fatalf("POST: %d", r.StatusCode)
	}
	select {
	case it := <-items:
		e, err := eventkit.UnmarshalEvent(it.Event)
		if err != nil || e.ID() != "x-1" || it.Topic != "orders.created" {
			t.Fatalf("stream item %+v: %v", it, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("stream: nothing received")
	}
}
