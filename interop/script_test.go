package interop

// Running the Python and Java programs of scripts/interop.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/internal/testkit"
)

// installWait bounds a script's setup: the first run installs the SDK
// (a virtualenv from PyPI, a classpath from Maven Central).
const installWait = 8 * time.Minute

// script returns the path of scripts/interop/name once its setup command
// (which installs what it needs) succeeded. When the script reports that a
// tool is missing (exit status 3), it skips t with the script's message,
// and fails t under CI=true.
func script(t *testing.T, name, setup string) string {
	t.Helper()
	path, err := filepath.Abs(filepath.Join("..", "scripts", "interop", name))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), installWait)
	defer cancel()
	out, err := exec.CommandContext(ctx, "bash", path, setup).CombinedOutput()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit) && exit.ExitCode() == 3 && !eventkittest.InCI():
		t.Skipf("cannot run the SDK: %s", strings.TrimSpace(string(out)))
	case err != nil:
		t.Fatalf("%s %s: %v\n%s", name, setup, err, out)
	}
	return path
}

// child is a running script: its stdin, and its stdout's JSON lines.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	mu    sync.Mutex
	lines []map[string]json.RawMessage
	done  chan struct{}
	err   error
	// stderr keeps what the script logged, for a failure's message.
	stderr eventkittest.SyncBuffer
}

// startWait bounds a program's start, until it prints {"ready": ...}:
// starting a JVM that compiles Interop.java, or Python importing the SDK,
// takes long on a busy machine, and the waits for events (wait) start
// after it.
const startWait = 3 * time.Minute

// startScript starts bash path args..., waits until it is ready, and stops
// it at the end of the test (closing its stdin, then killing it if it does
// not end).
func startScript(t *testing.T, path string, args ...string) *child {
	t.Helper()
	c := &child{done: make(chan struct{})}
	c.cmd = exec.Command("bash", append([]string{path}, args...)...)
	c.cmd.Stderr = &c.stderr
	var stdout io.ReadCloser
	c.stdin, stdout = testkit.StartPiped(t, c.cmd)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 16<<20)
		for sc.Scan() {
			var m map[string]json.RawMessage
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				m = map[string]json.RawMessage{"text": json.RawMessage(mustJSON(sc.Text()))}
			}
			c.mu.Lock()
			c.lines = append(c.lines, m)
			c.mu.Unlock()
		}
		err := c.cmd.Wait()
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
		close(c.done)
	}()
	t.Cleanup(func() {
		_ = c.stdin.Close()
		select {
		case <-c.done:
		case <-time.After(wait):
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	})
	c.waitLine(t, "ready", "", startWait)
	return c
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	must(err)
	return b
}

// send writes v as one JSON line to the child's stdin.
func (c *child) send(t *testing.T, v any) {
	t.Helper()
	if _, err := c.stdin.Write(append(mustJSON(v), '\n')); err != nil {
		t.Fatalf("write to the SDK's program: %v (stderr: %s)", err, c.log())
	}
}

func (c *child) log() string { return c.stderr.String() }

// waitLine waits for a line with key (and, unless match is "", the JSON
// string match as its value), and returns its value; it fails t if the
// child ends first or nothing comes within d.
func (c *child) waitLine(t *testing.T, key, match string, d time.Duration) json.RawMessage {
	t.Helper()
	var v json.RawMessage
	deadline := time.Now().Add(d)
	for {
		c.mu.Lock()
		for _, l := range c.lines {
			if x, ok := l[key]; ok && (match == "" || string(x) == string(mustJSON(match))) {
				v = x
				break
			}
		}
		exited := c.err != nil || isClosed(c.done)
		c.mu.Unlock()
		if v != nil {
			return v
		}
		if exited {
			t.Fatalf("the SDK's program ended (%v) before printing %q; stderr:\n%s", c.err, key, c.log())
		}
		if time.Now().After(deadline) {
			t.Fatalf("the SDK's program printed no %q within %v; stderr:\n%s", key, d, c.log())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// received is an event that the SDK's program read, as it printed it.
type received struct {
	Via   string    `json:"via"`
	Mode  string    `json:"mode"`
	Event described `json:"event"`
	Error string    `json:"error"`
}

// waitEvents waits until the program printed n events read via via in
// mode, and returns them; it fails t on a line reporting an error.
func (c *child) waitEvents(t *testing.T, via, mode string, n int) []described {
	t.Helper()
	var got []described
	deadline := time.Now().Add(wait)
	for {
		got = got[:0]
		c.mu.Lock()
		for _, l := range c.lines {
			if _, ok := l["via"]; !ok {
				continue
			}
			var r received
			must(json.Unmarshal(mustJSON(l), &r))
			if r.Error != "" {
				c.mu.Unlock()
				t.Fatalf("the SDK refused an event (%s): %s", r.Via, r.Error)
			}
			if r.Via == via && r.Mode == mode {
				got = append(got, r.Event)
			}
		}
		c.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("the SDK's program read %d of %d events via %s in %s mode within %v; stderr:\n%s", len(got), n, via, mode, wait, c.log())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// finish closes the child's stdin and waits for it to end well.
func (c *child) finish(t *testing.T) {
	t.Helper()
	_ = c.stdin.Close()
	select {
	case <-c.done:
	case <-time.After(wait):
		t.Fatalf("the SDK's program did not end within %v; stderr:\n%s", wait, c.log())
	}
	if c.err != nil {
		t.Fatalf("the SDK's program: %v; stderr:\n%s", c.err, c.log())
	}
}
