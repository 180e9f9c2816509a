package kafka_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventkit/eventkit/eventkittest"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// kafkaNode is one node (broker and controller) of a cluster a test runs.
type kafkaNode struct {
	id          int
	port, cport int
	dir         string
	cmd         *exec.Cmd
}

func (n *kafkaNode) addr() string { return "127.0.0.1:" + strconv.Itoa(n.port) }

// tail returns the end of the node's log, for a failure message.
func (n *kafkaNode) tail() string {
	b, _ := os.ReadFile(filepath.Join(n.dir, "server.log"))
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}

// usage returns the CPU time the node's JVM has used and its number of
// threads (from /proc; zero where /proc is not).
func (n *kafkaNode) usage() (cpu time.Duration, threads int) {
	pid := strconv.Itoa(n.cmd.Process.Pid)
	if b, err := os.ReadFile("/proc/" + pid + "/stat"); err == nil {
		// The fields after the command name (in parentheses): utime and
		// stime are the 12th and 13th, in clock ticks of 1/100 s.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 12 {
			ut, _ := strconv.Atoi(f[11])
			st, _ := strconv.Atoi(f[12])
			cpu = time.Duration(ut+st) * 10 * time.Millisecond
		}
	}
	if b, err := os.ReadFile("/proc/" + pid + "/status"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "Threads:"); ok {
				threads, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
	}
	return cpu, threads
}

// usages describes what each node has used, for the test's log.
func usages(nodes []*kafkaNode) string {
	var b strings.Builder
	for _, n := range nodes {
		cpu, threads := n.usage()
		fmt.Fprintf(&b, " node %d: %v CPU, %d threads;", n.id, cpu, threads)
	}
	return b.String()
}

// kafkaClasspath returns Apache Kafka's classpath from scripts/kafka (Maven
// resolves it on first use), or skips t naming what is missing (fails it
// under CI=true).
func kafkaClasspath(t *testing.T) string {
	t.Helper()
	var missing []string
	for _, tool := range []string{"java", "mvn"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		why := "cannot run Apache Kafka: missing " + strings.Join(missing, ", ") + " (Java 17+ and Maven)"
		if eventkittest.InCI() {
			t.Fatalf("%s (CI=true)", why)
		}
		t.Skip(why)
	}
	out, err := exec.Command("bash", "../scripts/kafka/start.sh", "classpath").Output()
	if err != nil {
		t.Fatalf("scripts/kafka/start.sh classpath: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	cp, err := os.ReadFile(lines[len(lines)-1])
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(cp))
}

// freePorts returns n TCP ports free on 127.0.0.1 at the time of the call.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	ports := make([]int, n)
	ls := make([]net.Listener, n)
	for i := range ls {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls[i] = l
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	for _, l := range ls {
		_ = l.Close()
	}
	return ports
}

// startKafkaCluster starts an Apache Kafka cluster of size KRaft nodes, each
// broker and controller, on loopback, with replication factor size for the
// internal topics and as the default; it returns when every broker is in the
// cluster's metadata. The nodes are killed when the test ends.
func startKafkaCluster(t *testing.T, ctx context.Context, size int) []*kafkaNode {
	t.Helper()
	cp := kafkaClasspath(t)
	ports := freePorts(t, 2*size)
	root := t.TempDir()
	nodes := make([]*kafkaNode, size)
	var voters []string
	for i := range nodes {
		n := &kafkaNode{id: i + 1, port: ports[2*i], cport: ports[2*i+1], dir: filepath.Join(root, "node"+strconv.Itoa(i+1))}
		nodes[i] = n
		voters = append(voters, fmt.Sprintf("%d@127.0.0.1:%d", n.id, n.cport))
	}
	minISR := min(2, size)
	// Three JVMs start at once on a machine that may have two cores. What
	// they do at start is mostly compiling: with HotSpot's default tiered
	// compilation, the C2 compiler threads of each JVM take most of the
	// CPU of the first minute, and on a loaded machine the Raft threads
	// then miss the quorum's 2 s deadlines (vote and fetch requests time
	// out, the leader resigns, a new epoch starts, over and over: the
	// cluster did not form in 2 minutes at load 30-48). C1 alone
	// (TieredStopAtLevel=1) compiles a fraction of that for code that
	// moves a few thousand records; the heap starts at its size, so that
	// the serial collector does not collect to grow it; no perf-data
	// file. The broker's thread pools (below) are those of a test, not of
	// a production broker's defaults (3 network, 8 I/O, 10 background
	// threads). Measured on one CPU at load 25-30: 7.4-7.9 s of CPU and
	// 99 threads per node until the cluster formed (66 s) before, 4.6-4.9 s
	// and 75 threads (47 s) after; the usage is logged at each start.
	java := func(n *kafkaNode, args ...string) *exec.Cmd {
		a := []string{"-Xmx256m", "-Xms256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData",
			"-Djava.awt.headless=true",
			"-Dlog4j2.configurationFile=" + filepath.Join(n.dir, "log4j2.properties"), "-cp", cp}
		return exec.Command("java", append(a, args...)...)
	}
	var wg sync.WaitGroup
	errs := make([]error, size)
	for i, n := range nodes {
		if err := os.MkdirAll(n.dir, 0o755); err != nil {
			t.Fatal(err)
		}
		props := fmt.Sprintf(`process.roles=broker,controller
node.id=%d
controller.quorum.voters=%s
listeners=PLAINTEXT://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d
advertised.listeners=PLAINTEXT://127.0.0.1:%d
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=%s
default.replication.factor=%d
min.insync.replicas=%d
offsets.topic.replication.factor=%d
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=%d
transaction.state.log.min.isr=%d
transaction.state.log.num.partitions=8
group.min.session.timeout.ms=500
group.initial.rebalance.delay.ms=0
num.network.threads=1
num.io.threads=2
background.threads=2
num.recovery.threads.per.data.dir=1
num.replica.fetchers=1
`, n.id, strings.Join(voters, ","), n.port, n.cport, n.port, filepath.Join(n.dir, "data"),
			size, minISR, size, size, minISR)
		log4j := fmt.Sprintf("status = warn\nappender.file.type = File\nappender.file.name = file\n"+
			"appender.file.fileName = %s\nappender.file.layout.type = PatternLayout\n"+
			"appender.file.layout.pattern = [%%d] %%p %%m (%%c)%%n\nrootLogger.level = INFO\n"+
			"rootLogger.appenderRef.file.ref = file\n", filepath.Join(n.dir, "server.log"))
		if err := os.WriteFile(filepath.Join(n.dir, "server.properties"), []byte(props), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(n.dir, "log4j2.properties"), []byte(log4j), 0o644); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := java(n, "kafka.tools.StorageTool", "format", "-t", "ZXZlbnRraXQtdGVzdHMtMw",
				"-c", filepath.Join(n.dir, "server.properties")).CombinedOutput()
			if err != nil {
				errs[i] = fmt.Errorf("format node %d: %v: %s", n.id, err, out)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range nodes {
		out, err := os.Create(filepath.Join(n.dir, "stdout.log"))
		if err != nil {
			t.Fatal(err)
		}
		n.cmd = java(n, "kafka.Kafka", filepath.Join(n.dir, "server.properties"))
		n.cmd.Stdout, n.cmd.Stderr = out, out
		if err := n.cmd.Start(); err != nil {
			t.Fatalf("start node %d: %v", n.id, err)
		}
		_ = out.Close()
		t.Cleanup(func() {
			_ = n.cmd.Process.Kill()
			_ = n.cmd.Wait()
		})
	}
	addrs := make([]string, size)
	for i, n := range nodes {
		addrs[i] = n.addr()
	}
	// A new client for each look: a client keeps the broker list of its
	// first metadata answer for a while.
	brokersNow := func(ctx context.Context) ([]int32, error) {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
		if err != nil {
			return nil, err
		}
		defer cl.Close()
		m, err := kadm.NewClient(cl).BrokerMetadata(ctx)
		return m.Brokers.NodeIDs(), err
	}
	upCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	started := time.Now()
	for {
		ids, err := brokersNow(upCtx)
		if err == nil && len(ids) == size {
			t.Logf("the %d-node cluster is up %v after the nodes started;%s", size, time.Since(started).Round(time.Millisecond), usages(nodes))
			return nodes
		}
		select {
		case <-upCtx.Done():
			for _, n := range nodes {
				t.Logf("node %d's log ends:\n%s", n.id, n.tail())
			}
			t.Fatalf("the %d-node cluster did not come up in 2 minutes (brokers in the metadata: %v, %v;%s)", size, ids, err, usages(nodes))
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// TestKafkaRealBrokerClusterExactlyOnceBrokerKilled runs a transactional
// consume-transform-produce loop on a 3-node Apache Kafka cluster (KRaft,
// replication factor 3, min.insync.replicas 2) and SIGKILLs the broker that
// coordinates the loop's transactions in the middle of it. The loop carries
// on with the two others (a Run that ends with an error is started again
// with the same transactional id, as an application would); read_committed
// then holds every output exactly once.
func TestKafkaRealBrokerClusterExactlyOnceBrokerKilled(t *testing.T) {
	const inputs = 3000
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	nodes := startKafkaCluster(t, ctx, 3)
	var brokers []string
	for _, n := range nodes {
		brokers = append(brokers, n.addr())
	}
	names := uniqueEOSNames()
	tr := eosTransport(t, brokers)
	for _, topic := range []string{names.in, names.out} {
		if err := tr.CreateTopic(ctx, topic, 4, 3, nil); err != nil {
			t.Fatal(err)
		}
	}
	publishInputs(t, ctx, tr, names.in, inputs)

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	runs := make(chan error, 1)
	var restarts int
	start := func() {
		x, err := tr.NewTransactor(names.in, names.group, names.txn, transformTo(names.out), eosTxOptions()...)
		if err != nil {
			t.Fatal(err)
		}
		go func() { runs <- x.Run(runCtx) }()
	}
	start()
	adm := kadm.NewClient(tr.Client())
	killed := 0
	looks, failedLooks := 0, 0
	var (
		progress int64
		lastErr  error
	)
	for {
		// The group's coordinator may be the killed broker: until the
		// client finds the new one, the look fails and is made again.
		looks++
		if p, err := progressOf(ctx, brokers, names.group); err != nil {
			failedLooks++
			lastErr = err
		} else {
			progress = p
		}
		if progress >= inputs {
			break
		}
		if killed == 0 && progress >= inputs/3 {
			co := adm.FindTxnCoordinators(ctx, names.txn)
			var victim *kafkaNode
			for _, c := range co {
				for _, n := range nodes {
					if c.Err == nil && int(c.NodeID) == n.id {
						victim = n
					}
				}
			}
			if victim == nil {
				t.Fatalf("no transaction coordinator found for %s: %v", names.txn, co)
			}
			if err := victim.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			killed = victim.id
			t.Logf("SIGKILLed node %d, the transaction coordinator, after %d of %d inputs", victim.id, progress, inputs)
		}
		select {
		case err := <-runs:
			restarts++
			t.Logf("Run ended (%v); starting again", err)
			if restarts > 20 {
				t.Fatalf("Run ended %d times; last: %v", restarts, err)
			}
			start()
		case <-ctx.Done():
			t.Fatalf("the loop did not finish the input (at %d of %d; %d of %d looks at the group's offsets failed, the last with %v)", progress, inputs, failedLooks, looks, lastErr)
		case <-time.After(50 * time.Millisecond):
		}
	}
	stop()
	if err := <-runs; err != nil {
		t.Logf("last Run: %v", err)
	}
	if killed == 0 {
		t.Fatal("the loop finished before a broker was killed")
	}

	var alive []string
	for _, n := range nodes {
		if n.id != killed {
			alive = append(alive, n.addr())
		}
	}
	outputsOnce(t, readAll(t, ctx, alive, names.out, kgo.ReadCommitted(), inputs), inputs)
	uncommitted := readAll(t, ctx, alive, names.out, kgo.ReadUncommitted(), inputs)
	total := 0
	for _, n := range uncommitted {
		total += n
	}
	t.Logf("restarts of Run: %d; log holds %d output records, %d committed", restarts, total, inputs)
}

// progressOf returns the inputs group has committed. It asks with a new
// client each time: in one run, a long-lived client whose group coordinator
// had been on the killed broker failed every look for four minutes with
// "unable to dial" to that broker.
func progressOf(ctx context.Context, brokers []string, group string) (int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	offs, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
	if err != nil {
		return 0, err
	}
	var n int64
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Err == nil {
			n += o.At
		}
	})
	return n, nil
}
