package eventkittest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ServerProcess is a server binary that a test runs on a free port of
// 127.0.0.1 and can restart: for the restart feature of TestTransport,
// which must not restart the shared servers that other tests use.
type ServerProcess struct {
	t    testing.TB
	bin  string
	args []string
	port int

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has ended
	out  *syncBuf
}

// StartServerProcess starts the program bin with the arguments that args
// returns for the chosen port and data directory (empty, the test's own,
// kept across restarts), and waits (up to 30s) until it accepts TCP
// connections on the port. Without the program, the test skips (fails
// under CI=true). The process is stopped when the test ends; its output is
// logged if the test failed.
func StartServerProcess(t testing.TB, bin string, args func(port int, dir string) []string) *ServerProcess {
	t.Helper()
	path, err := exec.LookPath(bin)
	if err != nil {
		if InCI() {
			t.Fatalf("%s is not installed: %v", bin, err)
		}
		t.Skipf("%s is not installed: %v", bin, err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	p := &ServerProcess{t: t, bin: path, args: args(port, t.TempDir()), port: port, out: &syncBuf{}}
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("output of %s:\n%s", bin, p.out.String())
		}
	})
	p.start()
	return p
}

// Addr returns the server's address, "127.0.0.1:port".
func (p *ServerProcess) Addr() string { return "127.0.0.1:" + strconv.Itoa(p.port) }

// Restart stops the server (SIGTERM, then SIGKILL after 30s) and starts it
// again on the same port and directory, returning once it accepts
// connections.
func (p *ServerProcess) Restart() {
	p.t.Helper()
	p.stop()
	p.start()
}

func (p *ServerProcess) start() {
	p.t.Helper()
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", p.bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", p.Addr())
		if err == nil {
			_ = conn.Close()
			return
		}
		select {
		case <-done:
			p.t.Fatalf("%s ended at start: %s\n%s", p.bin, cmd.ProcessState, p.out.String())
		case <-ctx.Done():
			p.t.Fatalf("%s does not accept connections on %s: %v\n%s", p.bin, p.Addr(), err, p.out.String())
		case <-tick.C:
		}
	}
}

func (p *ServerProcess) stop() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	_, _ = fmt.Fprintf(p.out, "--- %s stopped: %s\n", p.bin, cmd.ProcessState)
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(b)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
